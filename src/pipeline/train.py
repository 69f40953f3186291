"""Train every variant of an experiment and track it in MLflow.

    python -m pipeline.train experiment=wide_deep [key=value ...]

One MLflow parent run ``train`` per invocation, one child run per variant with its params,
per-epoch metrics, learning-curve PNG and the logged Keras model (signature + input example),
and TensorBoard event files under ``tensorboard/`` when the variant's ``train.tensorboard`` asks.
Writes models/<experiment>/<variant>.keras, models/<experiment>/runs.json (variant -> run id,
read by evaluate) and plots/<experiment>/history/<variant>.csv (DVC plots), all atomically.
"""

from __future__ import annotations

import csv
import io
import sys

from pipeline import cli
from pipeline.config import experiment_config, load


def history_csv(history: dict[str, list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(history)
    writer.writerow(["epoch", *keys])
    for epoch, row in enumerate(zip(*(history[k] for k in keys)), start=1):
        writer.writerow([epoch, *(f"{v:.6g}" for v in row)])
    return buffer.getvalue()


def main(args: list[str]) -> int:
    cfg = load(args)
    name = cfg.experiment
    exp_cfg = experiment_config(cfg)

    # heavy imports only once the arguments are known to be good
    import mlflow.keras

    from pipeline import plots, tracking, training
    from pipeline.data.sources import get_source
    from pipeline.data.store import load_info, load_prepared
    from pipeline.experiments import get_experiment
    from pipeline.io import atomic_dir, save_keras_model, write_json

    tracking.configure(cfg)  # an unreachable tracking server fails before any work is done
    experiment = get_experiment(exp_cfg.family)
    data = load_prepared(exp_cfg.dataset)
    info = load_info(exp_cfg.dataset)
    hashes, origin = info["sha256"], get_source(info["source"]).origin
    experiment_id = tracking.get_experiment_id(cfg, name)
    tags = tracking.standard_tags("train", name, hashes)
    variants = experiment.variants(exp_cfg)
    runs: dict[str, str] = {}
    logged_models: dict[str, str] = {}
    history_dir = f"plots/{name}/history"

    with atomic_dir(f"models/{name}") as model_dir, atomic_dir(history_dir) as curves_dir:
        with tracking.run("train", experiment_id=experiment_id, tags=tags) as parent:
            for index, variant in enumerate(variants, start=1):
                cli.progress(f"train {name} [{index}/{len(variants)}] {variant} ...")
                variant_tags = {**tags, "pipeline.variant": variant}
                with tracking.run(variant, experiment_id=experiment_id, nested=True,
                                  tags=variant_tags) as child, \
                        tracking.artifact_dir("tensorboard") as tensorboard_dir:
                    tracking.log_params(experiment.flat_params(exp_cfg, variant))
                    tracking.log_dataset(info, origin)
                    run_train_cfg = experiment.resolve(exp_cfg, variant).train
                    trained = experiment.train_variant(
                        exp_cfg, variant, data, seed=int(cfg.seed),
                        callbacks=[mlflow.keras.MlflowCallback(),
                                   *training.tensorboard_callbacks(run_train_cfg, tensorboard_dir)],
                        logger=tracking.MlflowLogger(experiment_id, variant_tags),
                    )
                    summary = {**trained.metrics, "epochs": trained.fit.epochs,
                               "train_seconds": round(trained.fit.seconds, 2),
                               "samples_per_second": round(trained.fit.samples_per_second, 1)}
                    tracking.log_metrics(summary)
                    write_json(model_dir / f"{variant}.metrics.json", summary)
                    for file_name, extra_figure in trained.figures.items():
                        tracking.log_figure(extra_figure, file_name)
                        plots.save(extra_figure, model_dir / f"{variant}_{file_name}")
                    figure = plots.learning_curves(trained.fit.history, f"{name} / {variant}")
                    tracking.log_figure(figure, "learning_curves.png")
                    plots.save(figure, model_dir / f"{variant}_learning_curves.png")
                    (curves_dir / f"{variant}.csv").write_text(history_csv(trained.fit.history))
                    save_keras_model(trained.model, model_dir / f"{variant}.keras")
                    logged = tracking.log_servable(
                        experiment.servable(exp_cfg, variant, trained.model, data))
                    runs[variant], logged_models[variant] = child.info.run_id, logged.model_id
                measured = {k: v for k, v in trained.metrics.items() if isinstance(v, float)
                            and not k.startswith("grad_norm")}
                last = {k: v[-1] for k, v in trained.fit.history.items() if k.startswith("val_")}
                cli.progress(
                    f"train {name} [{index}/{len(variants)}] {variant}: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in {**last, **measured}.items())
                    + f" ({trained.fit.epochs} epochs, {trained.fit.seconds:.1f}s)"
                )
            write_json(model_dir / "runs.json",
                       {"parent_run_id": parent.info.run_id, "variants": runs,
                        "models": logged_models})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
