"""What a search leaves behind: best_params.json (the DVC metrics file), the table printed at
the end, and the study's plots on the parent MLflow run."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI

from pipeline.errors import TrainingDiverged  # noqa: E402
from pipeline.tuning.study import completed, state_counts  # noqa: E402


def champion_trial(study, settings: dict[str, Any]):
    """The complete trial with the best first objective (for one objective: the best trial)."""
    done = completed(study)
    if not done:
        raise TrainingDiverged(
            f"No trial of study {study.study_name!r} completed (states: {state_counts(study)})."
        )
    pick = min if settings["directions"][0] == "minimize" else max
    return pick(done, key=lambda t: t.values[0])


def pareto_front(study, settings: dict[str, Any]) -> list:
    """The Pareto-optimal trials, by first objective; for one objective just the best."""
    if len(settings["objectives"]) == 1:
        return [champion_trial(study, settings)]
    reverse = settings["directions"][0] == "maximize"
    return sorted(study.best_trials, key=lambda t: t.values[0], reverse=reverse)


def _test_scores(trial) -> dict[str, float]:
    return {k: v for k, v in trial.user_attrs.items() if k.startswith("test_")}


def summarize(study, settings: dict[str, Any]) -> dict[str, Any]:
    """best_params.json: the keys the DVC stage has always written, plus the objectives, the
    Pareto front (several objectives) and why trials failed."""
    best = champion_trial(study, settings)
    summary = {
        "study": study.study_name,
        "metric": settings["metric"],
        "direction": settings["direction"],
        "best_trial": best.number,
        "best_value": best.values[0],
        "best_params": best.params,
        "best_test": _test_scores(best),
        "n_trials": len(study.trials),
        "states": state_counts(study),
    }
    if len(settings["objectives"]) > 1:
        summary["objectives"] = settings["objectives"]
        summary["directions"] = settings["directions"]
        summary["best_values"] = dict(zip(settings["objectives"], best.values))
        summary["pareto_front"] = [
            {
                "trial": t.number,
                "values": dict(zip(settings["objectives"], t.values)),
                "params": t.params,
                "test": _test_scores(t),
            }
            for t in pareto_front(study, settings)
        ]
    failed = {
        str(t.number): t.user_attrs["fail_reason"]
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL" and "fail_reason" in t.user_attrs
    }
    if failed:
        summary["fail_reasons"] = failed
    return summary


def table(study, settings: dict[str, Any], top: int = 5) -> str:
    """The best trials (one objective) or the Pareto front (several), one line each."""
    objectives = settings["objectives"]
    if len(objectives) == 1:
        reverse = settings["direction"] == "maximize"
        rows = sorted(completed(study), key=lambda t: t.value, reverse=reverse)[:top]
        title = f"best {len(rows)} of {len(study.trials)} trials"
    else:
        rows = pareto_front(study, settings)
        title = f"Pareto front: {len(rows)} of {len(study.trials)} trials"
    header = f"{'trial':>5}  " + "  ".join(f"{name:>12}" for name in objectives) + "  params"
    lines = [title, header]
    for trial in rows:
        values = "  ".join(f"{v:>12.5g}" for v in trial.values)
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        lines.append(f"{trial.number:>5}  {values}  {params}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def log_plots(study, settings: dict[str, Any]) -> dict[str, str]:
    """Optimization history, parameter importances, parallel coordinates (and the Pareto front
    with several objectives) as PNGs on the active (parent) run. A plot that cannot be drawn
    (importances need two complete trials) is skipped: {file: why}."""
    import matplotlib.pyplot as plt
    import mlflow
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as vis

    from pipeline.tuning.study import quiet_experimental

    first = settings["objectives"][0]
    target = {"target": lambda t: t.values[0], "target_name": first}
    plots = {
        "optimization_history": lambda: vis.plot_optimization_history(study, **target),
        # fANOVA (variance explained) is direction-agnostic; Optuna 5's default (PED-ANOVA)
        # assumes lower is better whenever a target is given
        "param_importances": lambda: vis.plot_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), **target
        ),
        "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, **target),
    }
    if len(settings["objectives"]) in (2, 3):
        plots["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=settings["objectives"])
    skipped = {}
    for name, draw in plots.items():
        if name == "param_importances" and len(completed(study)) < 2:
            skipped[name] = "needs at least 2 complete trials"
            continue
        try:
            with quiet_experimental(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # e.g. one trial: a flat axis
                axes = draw()
        except Exception as error:  # a missing plot must not fail a finished search
            skipped[name] = f"{type(error).__name__}: {error}"
            continue
        figure = _figure(axes)
        figure.tight_layout()
        mlflow.log_figure(figure, f"plots/{name}.png")
        plt.close(figure)
    return skipped


def _figure(axes):
    """The figure of what an optuna matplotlib plot returns (Axes, or an array of them)."""
    import numpy as np

    return np.asarray(axes).flat[0].figure if isinstance(axes, np.ndarray) else axes.figure
