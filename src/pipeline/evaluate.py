"""Score the trained variants on the held-out test split, beside the source note's figures.

    python -m pipeline.evaluate experiment=<name> [key=value | +key=value | ~key ...]

    e.g. python -m pipeline.evaluate experiment=wide_deep

Writes metrics/<experiment>.json (DVC metrics: per variant our test metrics, the note's figure
and the difference, the null-model baseline, the bar's rules checked: bar_met), metrics/headline/<experiment>.json (the
best variant on validation and its test scores: the few columns `dvc exp show` should show)
and plots/<experiment>/evaluate/*.png,
and logs the test metrics and plots to the variant's MLflow run made by the train stage and to
its logged model. The best variant on validation (the tune stage's metric, never test) is
registered as a new version of the model ``<experiment>``; it becomes ``@champion`` if it beats
the current champion, else ``@challenger`` (the ``registry`` entry of the metrics file says).
"""

from __future__ import annotations

import sys

from pipeline import cli
from pipeline.config import load


def compare_with_note(ours: dict[str, float], note: dict[str, float] | None) -> dict[str, float]:
    """``{note_test_rmse: 0.56, diff_test_rmse: ours - note}`` for every figure the source note reports."""
    result: dict[str, float] = {}
    for key, figure in (note or {}).items():
        result[f"note_{key}"] = figure
        if key in ours:
            result[f"diff_{key}"] = round(ours[key] - figure, 6)
    return result


def read_history(path) -> dict[str, list[float]]:
    """The per-epoch CSV the train stage wrote, as {metric: values}."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def best_variant(results: dict[str, dict], metric: str, direction: str) -> str | None:
    """The variant with the best validation ``metric`` (None if no variant measured it)."""
    scored = {
        v: entry[metric]
        for v, entry in results.items()
        if isinstance(entry.get(metric), (int, float)) and entry[metric] == entry[metric]
    }
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=scored.get)


def headline(results: dict[str, dict], metric: str, direction: str) -> dict:
    """The best variant on validation ``metric``, that value and the variant's test scores."""
    from pipeline.tracking import numeric

    variant = best_variant(results, metric, direction)
    if variant is None:
        return {}
    scores = numeric(results[variant])
    return {
        "variant": variant,
        metric: scores[metric],
        **{k: v for k, v in scores.items() if k.startswith("test_")},
    }


def register_best(stage, results: dict[str, dict], run_record: dict) -> dict:
    """Register the best variant's logged model and promote it if it beats the champion."""
    from pipeline import tracking
    from pipeline.tuning.study import settings_of

    settings = settings_of(stage.cfg)
    metric, direction = settings["metric"], settings["direction"]
    variant = best_variant(results, metric, direction)
    if variant is None or variant not in run_record.get("models", {}):
        cli.progress(f"evaluate {stage.name}: no variant measured {metric}; nothing registered")
        return {}
    entry = results[variant]
    scores = {k: v for k, v in tracking.numeric(entry).items() if k.startswith(("test_", "val_"))}
    registered = tracking.register_and_promote(
        f"models:/{run_record['models'][variant]}",
        stage.name,
        metric=metric,
        value=float(entry[metric]),
        direction=direction,
        tags={**stage.tags, "variant": variant, "run_id": run_record["variants"][variant], **scores},
    )
    cli.progress(
        f"evaluate {stage.name}: registered {variant} ({metric} {entry[metric]:.4f}) as "
        f"version {registered['version']}, now {registered['uri']}"
    )
    # no version number here: it counts registrations, so it is no figure of this run
    return {"variant": variant, "metric": metric, "value": entry[metric], "alias": registered["alias"]}


def main(args: list[str]) -> int:
    cfg = load(args)  # bad input stops here, before TensorFlow is imported
    from pipeline import bars, layout
    from pipeline.io import atomic_dir, read_json, write_json
    from pipeline.stage import StageContext
    from pipeline.tuning.study import settings_of

    stage = StageContext.open("evaluate", cfg)
    exp_cfg, name = stage.exp_cfg, stage.name
    run_record = read_json(layout.run_record(name))
    report: dict[str, dict] = {"variants": {}, "baseline": stage.experiment.baseline(exp_cfg, stage.data)}
    with atomic_dir(layout.evaluate_plots(name)) as plot_dir:
        for variant in stage.variants():
            report["variants"][variant] = score_variant(
                stage, variant, run_record, report["baseline"], plot_dir
            )
        report.update(summarize(stage, report["variants"], run_record, plot_dir))
    settings = settings_of(cfg)
    report["bar"] = bars.check(exp_cfg.get("bar"), report["variants"], report["baseline"], settings)
    report["registry"] = register_best(stage, report["variants"], run_record)
    write_json(layout.headline(name), headline(report["variants"], settings["metric"], settings["direction"]))
    write_json(layout.metrics(name), report)
    return 0


def score_variant(stage, variant: str, run_record: dict, baseline: dict, plot_dir) -> dict:
    """A variant's test scores beside the note's figures, logged to its train run and model."""
    import keras
    from omegaconf import OmegaConf

    from pipeline import layout, plots, tracking
    from pipeline.io import read_json

    exp_cfg, name = stage.exp_cfg, stage.name
    # An empty mapping (note 003 reports no figures) is falsy and not a container to convert.
    note_figures = OmegaConf.to_container(exp_cfg.note_figures) if exp_cfg.get("note_figures") else {}
    run_cfg = stage.experiment.resolve(exp_cfg, variant)
    model = keras.models.load_model(layout.model_file(name, variant))
    measured = stage.experiment.evaluation(run_cfg, variant, model, stage.data)
    during_training = read_json(layout.training_metrics(name, variant))
    entry = {
        **measured,
        **during_training,
        **compare_with_note({**during_training, **measured}, note_figures.get(variant)),
    }
    figure = stage.experiment.figure(run_cfg, variant, model, stage.data)
    with tracking.run(variant, run_id=run_record["variants"][variant]):
        tracking.log_metrics(
            {k: v for k, v in entry.items() if not k.startswith("note_")},
            model_id=run_record.get("models", {}).get(variant),
        )
        tracking.log_metrics({f"baseline_{k}": v for k, v in baseline.items()})
        if figure is not None:
            tracking.log_figure(figure, "test_predictions.png")
    if figure is not None:
        plots.save(figure, plot_dir / f"{variant}.png")
    shown = {k: v for k, v in measured.items() if k.startswith("test_")} or measured
    cli.progress(
        f"evaluate {name} {variant}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in shown.items() if isinstance(v, (int, float)))
    )
    return entry


def summarize(stage, results: dict[str, dict], run_record: dict, plot_dir) -> dict:
    """The experiment's tables and figures across variants, on the train stage's parent run."""
    import mlflow

    from pipeline import layout, plots, tracking

    histories = {variant: read_history(layout.history_file(stage.name, variant)) for variant in results}
    tables, figures = stage.experiment.summary(stage.exp_cfg, results, histories)
    if not (tables or figures):
        return {}
    with tracking.run("train", run_id=run_record["parent_run_id"]):
        for file_name, figure in figures.items():
            tracking.log_figure(figure, file_name)
            plots.save(figure, plot_dir / file_name)
        mlflow.log_dict(tables, "tables.json")
    return {"tables": tables}


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
