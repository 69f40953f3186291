"""Train every variant of an experiment and track it in MLflow.

    python -m pipeline.train experiment=<name> [key=value | +key=value | ~key | group=option ...]

    e.g. python -m pipeline.train experiment=wide_deep experiments.wide_deep.train.epochs=5

One MLflow parent run ``train`` per invocation, one child run per variant with its params, the
dataset it used (name, sha256, splits), per-epoch metrics, learning-curve PNG and a logged model
that takes raw inputs (signature, input example, pinned requirements), and TensorBoard event
files under ``tensorboard/`` when the variant's ``train.tensorboard`` asks.
Writes models/<experiment>/<variant>.keras, <variant>.metrics.json and runs.json (variant -> run
id and logged model, read by evaluate) and plots/<experiment>/history/<variant>.csv (DVC plots),
all atomically: a failure or Ctrl-C leaves the previous outputs as they were.
The variants train side by side in ``train.workers`` processes (null: one per core; 1: one
after the other in one worker), an odd last one alone with every core, with the same numbers
either way: pipeline.pool.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from pipeline import cli
from pipeline.config import load


def main(args: list[str]) -> int:
    cfg = load(args)  # bad input stops here, before TensorFlow is imported
    from pipeline import layout, pool, tracking
    from pipeline.errors import WorkerDied
    from pipeline.io import atomic_dir, write_json
    from pipeline.stage import StageContext

    stage = StageContext.open("train", cfg)
    variants = stage.variants()
    runs: dict[str, str] = {}
    models: dict[str, str] = {}
    with (
        atomic_dir(layout.models(stage.name)) as model_dir,
        atomic_dir(layout.history(stage.name)) as history_dir,
        tracking.run("train", experiment_id=stage.experiment_id, tags=stage.tags) as parent,
    ):
        # the parent logs the dataset first: MLflow's SQL store checks for it, then inserts it, so
        # two workers logging a dataset new to the experiment at once collide (see tracking.py)
        tracking.log_dataset(stage.info, stage.data_origin)
        tasks = [(variant, model_dir, history_dir, parent.info.run_id) for variant in variants]
        trained = pool.run(stage, train_and_log, tasks, workers=cfg.train.workers, describe=lambda t: t[0])
        try:
            for done, (index, (run_id, model_id, line)) in enumerate(trained, start=1):
                runs[variants[index]], models[variants[index]] = run_id, model_id
                cli.progress(f"train {stage.name} [{done}/{len(variants)}] {variants[index]}: {line}")
        except WorkerDied:
            tracking.fail_unfinished_children(stage.experiment_id, parent.info.run_id)
            raise
        write_json(
            model_dir / layout.run_record(stage.name).name,
            {
                "parent_run_id": parent.info.run_id,
                "variants": {v: runs[v] for v in variants},  # in the config's order, however they ran
                "models": {v: models[v] for v in variants},
            },
        )
    return 0


def train_and_log(stage, variant: str, model_dir: Path, history_dir: Path, parent_run_id: str):
    """One variant's child run of ``parent_run_id``: train, then log and write what it made
    (into the stage's temporary folders); (run id, logged model id, result line). It runs in
    this process or in a worker (pipeline.pool), with the worker's own ``stage``."""
    import mlflow.keras

    from pipeline import layout, plots, tracking, training
    from pipeline.io import save_keras_model, write_json

    cli.progress(f"train {stage.name} {variant} ...")
    exp_cfg, tags = stage.exp_cfg, {**stage.tags, "pipeline.variant": variant}
    with (
        tracking.run(
            variant, experiment_id=stage.experiment_id, nested=True, parent_run_id=parent_run_id, tags=tags
        ) as child,
        tracking.artifact_dir("tensorboard") as tensorboard_dir,
    ):
        tracking.log_params(stage.experiment.flat_params(exp_cfg, variant))
        tracking.log_dataset(stage.info, stage.data_origin)
        trained = stage.experiment.train_variant(
            exp_cfg,
            variant,
            stage.data,
            seed=stage.seed,
            callbacks=[
                mlflow.keras.MlflowCallback(),
                *training.tensorboard_callbacks(
                    stage.experiment.resolve(exp_cfg, variant).train, tensorboard_dir
                ),
            ],
            logger=tracking.MlflowLogger(stage.experiment_id, tags),
        )
        summary = {
            **trained.metrics,
            "epochs": trained.fit.epochs,
            "train_seconds": round(trained.fit.seconds, 2),
            "samples_per_second": round(trained.fit.samples_per_second, 1),
        }
        tracking.log_metrics(summary)
        # inside the stage's temporary folders: the layout's file names, not yet its paths
        write_json(model_dir / layout.training_metrics(stage.name, variant).name, summary)
        figures = {
            **trained.figures,
            "learning_curves.png": plots.learning_curves(trained.fit.history, f"{stage.name} / {variant}"),
        }
        for file_name, figure in figures.items():
            tracking.log_figure(figure, file_name)
            plots.save(figure, model_dir / f"{variant}_{file_name}")
        (history_dir / layout.history_file(stage.name, variant).name).write_text(
            history_csv(trained.fit.history)
        )
        save_keras_model(trained.model, model_dir / layout.model_file(stage.name, variant).name)
        logged = tracking.log_servable(stage.experiment.servable(exp_cfg, variant, trained.model, stage.data))
        return child.info.run_id, logged.model_id, result_line(trained)


def result_line(trained) -> str:
    """The last validation scores and what the experiment measured, for the progress line."""
    measured = {
        k: v for k, v in trained.metrics.items() if isinstance(v, float) and not k.startswith("grad_norm")
    }
    last = {k: v[-1] for k, v in trained.fit.history.items() if k.startswith("val_")}
    return (
        ", ".join(f"{k} {v:.4f}" for k, v in {**last, **measured}.items())
        + f" ({trained.fit.epochs} epochs, {trained.fit.seconds:.1f}s)"
    )


def history_csv(history: dict[str, list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(history)
    writer.writerow(["epoch", *keys])
    for epoch, row in enumerate(zip(*(history[k] for k in keys)), start=1):
        writer.writerow([epoch, *(f"{v:.6g}" for v in row)])
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
