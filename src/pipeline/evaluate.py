"""Score the trained variants on the held-out test split, beside the seed's figures.

    python -m pipeline.evaluate experiment=wide_deep

Writes metrics/<experiment>.json (DVC metrics: per variant our test metrics, the seed's figure
and the difference, the null-model baseline, the bar) and plots/<experiment>/evaluate/*.png,
and logs the test metrics and plots to the variant's MLflow run made by the train stage.
"""

from __future__ import annotations

import sys

from pipeline import cli
from pipeline.config import experiment_config, load


def compare_with_seed(ours: dict[str, float], seed: dict[str, float] | None) -> dict[str, float]:
    """``{seed_test_rmse: 0.56, diff_test_rmse: ours - seed}`` for every figure the seed reports."""
    result: dict[str, float] = {}
    for key, figure in (seed or {}).items():
        result[f"seed_{key}"] = figure
        if key in ours:
            result[f"diff_{key}"] = round(ours[key] - figure, 6)
    return result


def read_history(path: str) -> dict[str, list[float]]:
    """The per-epoch CSV the train stage wrote, as {metric: values}."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def main(args: list[str]) -> int:
    cfg = load(args)
    name = cfg.experiment
    exp_cfg = experiment_config(cfg)

    import keras
    import mlflow
    from omegaconf import OmegaConf

    from pipeline import plots, tracking
    from pipeline.data.store import load_prepared
    from pipeline.experiments import get_experiment
    from pipeline.io import atomic_dir, read_json, write_json

    tracking.configure(cfg)  # an unreachable tracking server fails before any work is done
    experiment = get_experiment(exp_cfg.family)
    data = load_prepared(exp_cfg.dataset)
    run_record = read_json(f"models/{name}/runs.json")
    runs = run_record["variants"]
    # An empty mapping (note 003 reports no figures) is falsy and not a container to convert.
    seed_figures = OmegaConf.to_container(exp_cfg.seed_figures) if exp_cfg.get("seed_figures") else {}

    report: dict[str, dict] = {"variants": {}, "baseline": experiment.baseline(exp_cfg, data)}
    with atomic_dir(f"plots/{name}/evaluate") as plot_dir:
        for variant in experiment.variants(exp_cfg):
            run_cfg = experiment.resolve(exp_cfg, variant)
            model = keras.models.load_model(f"models/{name}/{variant}.keras")
            measured = experiment.evaluation(run_cfg, variant, model, data)
            during_training = read_json(f"models/{name}/{variant}.metrics.json")
            entry = {**measured, **during_training,
                     **compare_with_seed({**during_training, **measured}, seed_figures.get(variant))}
            report["variants"][variant] = entry
            figure = experiment.figure(run_cfg, variant, model, data)
            with tracking.run(variant, run_id=runs[variant]):
                tracking.log_metrics({k: v for k, v in entry.items() if not k.startswith("seed_")})
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
    report["bar"] = OmegaConf.to_container(exp_cfg.get("bar") or {})
    write_json(f"metrics/{name}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
