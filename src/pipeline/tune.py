"""Hyperparameter search with Optuna, resumable, pruned, tracked in MLflow.

    python -m pipeline.tune experiment=wide_deep tune.n_trials=20 [tune.timeout=600]
        [tune.pruner=median|successive_halving|hyperband|none] [tune.storage=URL]

The search space is the experiment's ``tune.space`` (conf/tune/<experiment>.yaml). The study
lives in persistent storage (a journal file under ``tune.dir``, or an RDB URL), so running the
same command again resumes it: ``n_trials`` more trials are added. Every trial is an MLflow
child run under one parent run per invocation; the best parameters, with the best trial's
test-set score (never used for selection), are written to <dir>/<experiment>/best_params.json.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from pipeline import cli
from pipeline.config import experiment_config, load
from pipeline.errors import ConfigError, TrainingDiverged

PRUNERS = ("median", "successive_halving", "hyperband", "none")


def settings_of(cfg: DictConfig) -> dict[str, Any]:
    """The experiment's tune defaults, overridden by the non-null top-level ``tune.*`` keys."""
    exp_tune = experiment_config(cfg).tune
    merged = {key: exp_tune.get(key) for key in ("n_trials", "pruner", "direction", "metric", "variant")}
    merged.update({key: value for key, value in cfg.tune.items() if value is not None})
    merged.setdefault("timeout", None)
    merged["study_name"] = merged.get("study_name") or cfg.experiment
    if merged["pruner"] not in PRUNERS:
        raise ConfigError(f"Unknown pruner {merged['pruner']!r}; valid choices: {', '.join(PRUNERS)}.")
    if not isinstance(merged["n_trials"], int) or merged["n_trials"] < 1:
        raise ConfigError(f"tune.n_trials must be a positive integer, got {merged['n_trials']!r}.")
    return merged


def search_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, dict]:
    """Flatten the nested space: {"model.units": {"type": "int", ...}, ...}."""
    flat: dict[str, dict] = {}
    for key, value in space.items():
        if isinstance(value, Mapping) and "type" in value:
            flat[f"{prefix}{key}"] = dict(value)
        elif isinstance(value, Mapping):
            flat.update(search_space(value, f"{prefix}{key}."))
        else:
            raise ConfigError(f"Search-space entry {prefix}{key} must be a mapping with a 'type'.")
    return flat


def suggest(trial, exp_cfg: DictConfig) -> DictConfig:
    """A copy of the experiment config with every search-space key set by the trial."""
    trial_cfg = exp_cfg.copy()
    for path, spec in search_space(OmegaConf.to_container(exp_cfg.tune.space)).items():
        kind = spec["type"]
        if OmegaConf.select(trial_cfg, path, default="__missing__") == "__missing__":
            raise ConfigError(f"Search-space key {path} is not a key of the experiment's config.")
        if kind == "int":
            value = trial.suggest_int(path, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "float":
            value = trial.suggest_float(path, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "categorical":
            value = trial.suggest_categorical(path, list(spec["choices"]))
        else:
            raise ConfigError(f"Search-space type {kind!r} of {path}; valid: int, float, categorical.")
        OmegaConf.update(trial_cfg, path, value, merge=False)
    return trial_cfg


def make_pruner(name: str, max_epochs: int):
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=2, max_resource=max_epochs),
        "none": lambda: optuna.pruners.NopPruner(),
    }[name]()


def make_storage(storage: str | None, study_dir: Path):
    """An RDB URL as given; otherwise a journal file (safe for several local worker processes)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage and "://" in storage:
        return storage
    path = Path(storage) if storage else study_dir / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def best_trials_table(study, top: int = 5) -> str:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    done.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    lines = [f"{'trial':>5}  {'value':>9}  params"]
    for trial in done[:top]:
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        lines.append(f"{trial.number:>5}  {trial.value:>9.4f}  {params}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(args: list[str]) -> int:
    cfg = load(args)
    name = cfg.experiment
    exp_cfg = experiment_config(cfg)
    settings = settings_of(cfg)
    search_space(OmegaConf.to_container(exp_cfg.tune.space))  # fail fast on a malformed space

    import keras
    import mlflow
    import mlflow.keras
    import optuna
    from optuna_integration import KerasPruningCallback

    from pipeline import tracking
    from pipeline.data.store import load_info, load_prepared
    from pipeline.experiments import get_experiment
    from pipeline.io import write_json

    experiment = get_experiment(exp_cfg.family)
    variant = settings["variant"]
    experiment.variant_config(exp_cfg, variant)
    data = load_prepared(exp_cfg.dataset)
    hashes = load_info(exp_cfg.dataset)["sha256"]
    study_dir = Path(settings["dir"]) / name
    study = optuna.create_study(
        study_name=settings["study_name"],
        storage=make_storage(settings.get("storage"), study_dir),
        direction=settings["direction"],
        sampler=optuna.samplers.TPESampler(seed=int(cfg.seed)),
        pruner=make_pruner(settings["pruner"], int(exp_cfg.train.epochs)),
        load_if_exists=True,
    )
    already = len(study.trials)
    tracking.configure(cfg)
    experiment_id = tracking.get_experiment_id(cfg, name)
    tags = {**tracking.standard_tags("tune", name, hashes), "optuna.study": study.study_name}

    def objective(trial: optuna.Trial) -> float:
        trial_cfg = suggest(trial, exp_cfg)
        keras.backend.clear_session()
        pruned = None
        with tracking.run(f"trial-{trial.number}", experiment_id=experiment_id, nested=True,
                          tags={**tags, "optuna.trial": str(trial.number)}):
            tracking.log_params(trial.params)
            try:
                trained = experiment.train_variant(
                    trial_cfg, variant, data, seed=int(cfg.seed),
                    callbacks=[KerasPruningCallback(trial, experiment.monitor),
                               mlflow.keras.MlflowCallback()],
                )
            except optuna.TrialPruned as signal:
                mlflow.set_tag("optuna.state", "PRUNED")
                pruned = signal
            except TrainingDiverged:
                mlflow.set_tag("optuna.state", "FAILED")
                raise
            if pruned is None:
                run_cfg = experiment.resolve(trial_cfg, variant)
                scores = {**trained.metrics,
                          **experiment.evaluation(run_cfg, variant, trained.model, data)}
                for key, value in scores.items():
                    if key.startswith("test_"):  # reported for the best trial, never optimized
                        trial.set_user_attr(key, value)
                trial.set_user_attr("epochs", trained.fit.epochs)
                tracking.log_metrics(scores)
                mlflow.set_tag("optuna.state", "COMPLETE")
        if pruned is not None:
            raise pruned
        if settings["metric"] not in scores:
            raise ConfigError(f"Tune metric {settings['metric']!r} is not measured; measured: "
                              f"{', '.join(sorted(scores))}.")
        value = scores[settings["metric"]]
        if not math.isfinite(value):
            raise TrainingDiverged(f"trial {trial.number}: {settings['metric']} is {value}")
        return value

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = len(study.trials) - already
        best = f"{study.best_value:.4f} (trial {study.best_trial.number})" if _has_complete(study) else "-"
        # a pruned trial carries its last intermediate value: show the state instead
        value = f"{trial.value:.4f}" if trial.state.name == "COMPLETE" else trial.state.name.lower()
        cli.progress(f"tune {name}: trial {done}/{settings['n_trials']} #{trial.number} {value}; best {best}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one-line progress replaces it
    cli.progress(f"tune {name}: study {study.study_name!r} has {already} trials; "
                 f"running {settings['n_trials']} more (pruner {settings['pruner']})")
    with tracking.run(f"tune-{study.study_name}", experiment_id=experiment_id, tags=tags):
        tracking.log_params({f"tune.{k}": v for k, v in settings.items()})
        study.optimize(objective, n_trials=settings["n_trials"], timeout=settings["timeout"],
                       callbacks=[report], catch=(TrainingDiverged,))
        if not _has_complete(study):
            raise TrainingDiverged(f"No trial of study {study.study_name!r} completed.")
        best = study.best_trial
        summary = {
            "study": study.study_name,
            "metric": settings["metric"],
            "direction": settings["direction"],
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
            "best_test": {k: v for k, v in best.user_attrs.items() if k.startswith("test_")},
            "n_trials": len(study.trials),
            "states": _state_counts(study),
        }
        mlflow.log_metrics({"best_value": best.value, **summary["best_test"]})
        mlflow.log_dict(summary, "best_params.json")
        write_json(study_dir / "best_params.json", summary)
    cli.progress(best_trials_table(study))
    cli.progress(f"tune {name}: best {settings['metric']} {best.value:.4f} (trial {best.number}), "
                 f"test {summary['best_test']}; wrote {study_dir / 'best_params.json'}")
    return 0


def _has_complete(study) -> bool:
    import optuna

    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def _state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
