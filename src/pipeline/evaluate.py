"""Score the trained variants on the held-out test split, beside the seed's figures.

    python -m pipeline.evaluate experiment=wide_deep

Writes metrics/<experiment>.json (DVC metrics: per variant our test metrics, the seed's figure
and the difference, the null-model baseline, the bar), metrics/headline/<experiment>.json (the
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
from pipeline.config import experiment_config, load


def compare_with_note(ours: dict[str, float], note: dict[str, float] | None) -> dict[str, float]:
    """``{note_test_rmse: 0.56, diff_test_rmse: ours - note}`` for every figure the source note reports."""
    result: dict[str, float] = {}
    for key, figure in (note or {}).items():
        result[f"note_{key}"] = figure
        if key in ours:
            result[f"diff_{key}"] = round(ours[key] - figure, 6)
    return result


def read_history(path: str) -> dict[str, list[float]]:
    """The per-epoch CSV the train stage wrote, as {metric: values}."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def best_variant(results: dict[str, dict], metric: str, direction: str) -> str | None:
    """The variant with the best validation ``metric`` (None if no variant measured it)."""
    scored = {v: entry[metric] for v, entry in results.items()
              if isinstance(entry.get(metric), (int, float)) and entry[metric] == entry[metric]}
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
    return {"variant": variant, metric: scores[metric],
            **{k: v for k, v in scores.items() if k.startswith("test_")}}


def register_best(cfg, results: dict[str, dict], run_record: dict) -> dict:
    """Register the best variant's logged model and promote it if it beats the champion."""
    from pipeline import tracking
    from pipeline.config import experiment_config
    from pipeline.data.store import load_info
    from pipeline.tuning.study import settings_of

    settings = settings_of(cfg)
    metric, direction = settings["metric"], settings["direction"]
    variant = best_variant(results, metric, direction)
    if variant is None or variant not in run_record.get("models", {}):
        cli.progress(f"evaluate {cfg.experiment}: no variant measured {metric}; nothing registered")
        return {}
    entry = results[variant]
    hashes = load_info(experiment_config(cfg).dataset)["sha256"]
    registered = tracking.register_and_promote(
        f"models:/{run_record['models'][variant]}", cfg.experiment, metric=metric,
        value=float(entry[metric]), direction=direction,
        tags={**tracking.standard_tags("evaluate", cfg.experiment, hashes), "variant": variant, "run_id": run_record["variants"][variant],
              **{k: v for k, v in tracking.numeric(entry).items() if k.startswith(("test_", "val_"))}})
    cli.progress(f"evaluate {cfg.experiment}: registered {variant} ({metric} {entry[metric]:.4f}) as "
                 f"version {registered['version']}, now {registered['uri']}")
    # no version number here: it counts registrations, so it is no figure of this run
    return {"variant": variant, "metric": metric, "value": entry[metric], "alias": registered["alias"]}


def main(args: list[str]) -> int:
    cfg = load(args)
    name = cfg.experiment
    exp_cfg = experiment_config(cfg)

    import keras
    import mlflow
    from omegaconf import OmegaConf

    from pipeline import bars, plots, tracking
    from pipeline.data.store import load_prepared
    from pipeline.experiments import get_experiment
    from pipeline.io import atomic_dir, read_json, write_json
    from pipeline.tuning.study import settings_of

    tracking.configure(cfg)  # an unreachable tracking server fails before any work is done
    experiment = get_experiment(exp_cfg.family)
    data = load_prepared(exp_cfg.dataset)
    run_record = read_json(f"models/{name}/runs.json")
    runs, models = run_record["variants"], run_record.get("models", {})
    # An empty mapping (note 003 reports no figures) is falsy and not a container to convert.
    note_figures = OmegaConf.to_container(exp_cfg.note_figures) if exp_cfg.get("note_figures") else {}

    report: dict[str, dict] = {"variants": {}, "baseline": experiment.baseline(exp_cfg, data)}
    with atomic_dir(f"plots/{name}/evaluate") as plot_dir:
        for variant in experiment.variants(exp_cfg):
            run_cfg = experiment.resolve(exp_cfg, variant)
            model = keras.models.load_model(f"models/{name}/{variant}.keras")
            measured = experiment.evaluation(run_cfg, variant, model, data)
            during_training = read_json(f"models/{name}/{variant}.metrics.json")
            entry = {**measured, **during_training,
                     **compare_with_note({**during_training, **measured}, note_figures.get(variant))}
            report["variants"][variant] = entry
            figure = experiment.figure(run_cfg, variant, model, data)
            with tracking.run(variant, run_id=runs[variant]):
                tracking.log_metrics({k: v for k, v in entry.items() if not k.startswith("note_")},
                                     model_id=models.get(variant))
                tracking.log_metrics({f"baseline_{k}": v for k, v in report["baseline"].items()})
                if figure is not None:
                    tracking.log_figure(figure, "test_predictions.png")
            if figure is not None:
                plots.save(figure, plot_dir / f"{variant}.png")
            shown = {k: v for k, v in measured.items() if k.startswith("test_")} or measured
            cli.progress(f"evaluate {name} {variant}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in shown.items() if isinstance(v, (int, float))))
        histories = {variant: read_history(f"plots/{name}/history/{variant}.csv")
                     for variant in report["variants"]}
        tables, figures = experiment.summary(exp_cfg, report["variants"], histories)
        if tables or figures:
            report["tables"] = tables
            with tracking.run("train", run_id=run_record["parent_run_id"]):
                for file_name, figure in figures.items():
                    tracking.log_figure(figure, file_name)
                    plots.save(figure, plot_dir / file_name)
                mlflow.log_dict(tables, "tables.json")
    report["bar"] = bars.check(exp_cfg.get("bar"), report["variants"], report["baseline"], settings_of(cfg))
    report["registry"] = register_best(cfg, report["variants"], run_record)
    settings = settings_of(cfg)
    write_json(f"metrics/headline/{name}.json",
               headline(report["variants"], settings["metric"], settings["direction"]))
    write_json(f"metrics/{name}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
