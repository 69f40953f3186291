"""Per-experiment training speed: the seed note's plain ``model.fit`` against the pipeline's fit,
for each of the 14 source experiments, in one process.

    PIPELINE_DATA_MIRROR=../shared/data PYTHONPATH=src python bench/experiment_speed.py \\
        [--only wide_deep,imdb] [--seeds 1] [--epochs N] [--no-caps] [--floor]

For every experiment: ONE representative variant (``REPRESENTATIVE`` below, with why) and ONE
fit of it (``what`` in the output: for cross-validation one fold, for the ensemble one member,
for transfer model_A), trained twice per seed with the arms alternating (plain, pipeline, plain,
pipeline, ...) so drift in machine load hits both:

- plain: the seed's way. A fresh model from the experiment's own builder, compiled the same
  (loss, metrics, optimizer) but with ``steps_per_execution=1``, then ``model.fit`` on the NumPy
  arrays with the config's epochs, batch size and Keras callbacks (early stopping, LR on plateau,
  best checkpoint: the same stopping rule in both arms) and Keras' default validation batch size.
  ``verbose=0`` in both arms (a progress bar would time the terminal).
- pipeline: exactly what the train stage does for that fit: ``experiment.train_variant(...,
  fast=True)`` for the single-fit families, or the same lower-level call the family's
  train_variant makes for a fold, a member or model_A (an epoch and its validation per
  compiled call, validation in ``training.validation_batch`` rows, the NaN guard and learning-rate logger of ``training.fit``).
  The stage's tracking callbacks (MLflow's per-epoch logger, TensorBoard event files) are left
  out of both arms: they measure tracking, not fitting.

Both arms are seeded the same way (``training.seed_everything``: the same weights, the same
shuffled batches, deterministic ops, which once on stay on for the process), so a single run's
validation metric should agree between arms up to float round-off; over several seeds (--seeds)
the mean ± std shows the seed noise. Only the ``model.fit`` call is timed (data loading, text
vectorization, pair making and model building are not). Reported per experiment: median wall
seconds and samples/s (training samples x epochs run / seconds) of each arm over the seeds, the
ratio pipeline/plain of samples/s, and each arm's validation metric (the experiment's own
scoring of the trained model on its validation split; for a fold, on the held-out fold). At
the end a Markdown table for the README, the median ratio and the ratios below 1.0.

``--floor`` adds a third arm, the ceiling of any pipeline: the plain arm's fresh model trains
for as many epochs as the pipeline arm did, as ONE compiled function, traced before the timing:
per epoch its batches in order (contiguous slices of the training rows, held as tensors: the
rows are read as a fit must read them, without shuffling, tf.data or a Python round trip) through
``model.train_step``, then the validation rows in batches of the pipeline's size through
``model.test_step`` (where the arms validate every epoch). No callbacks, no Keras epoch loop.
Its samples/s over the plain arm's ("ceiling") bounds the ratio that removing overhead can reach
without changing the computation (the model, its optimizer, batch size, epochs, validation).

Epochs are the config's (the real fit) unless ``EPOCH_CAPS`` (printed, with the reason) or
``--epochs N`` (a cap for every experiment, for a quick run) shrink them; ``--no-caps`` ignores
``EPOCH_CAPS``.
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from omegaconf import OmegaConf  # noqa: E402

from pipeline.config import experiment_config, load  # noqa: E402

# experiment -> (variant, why it stands for the seed note's main fit)
REPRESENTATIVE: dict[str, tuple[str, str]] = {
    "wide_deep": ("two_outputs", "note 000's model 3, the one it scores on the test set"),
    "thoracic": ("mean_squared_logarithmic_error", "note 001's own loss (the others are only named)"),
    "boston": ("faithful", "note 002's protocol: batch 1, 100 epochs per fold"),
    "deep_training": (
        "act_leaky_relu",
        "note 004's first fit: Dense 300-100, LeakyReLU, he_normal, SGD(1e-3), 10 epochs",
    ),
    "mc_dropout": ("dropout_0_2", "the only variant (note 004's MC-dropout network)"),
    "transfer": ("transfer_comparison", "the only variant (note 004's model_A / model_B)"),
    "fashion_regularization": (
        "softmax_1epoch",
        "note 001's fit shown in full: softmax regression, batch 30, 1 epoch, EarlyStopping + checkpoint",
    ),
    "imdb": ("epochs_20", "note 002's fit: 20 epochs, batch 512, no early stopping"),
    "reuters": ("one_hot_labels", "note 002's fit: one-hot labels, categorical_crossentropy"),
    "siamese": ("dense_encoder", "no code in note 003; the first, baseline encoder"),
    "multi_io": ("both_outputs", "no code in note 003; its subject: two inputs, two outputs"),
    "residual": ("residual", "no code in note 003; its subject: the residual connections"),
    "inception": ("inception", "no code in note 003; its subject: Inception modules"),
    "ensemble": ("dense_members", "the only variant (no code in note 003)"),
}

# experiment -> the validation metric reported (a key of the experiment's own scores)
METRIC = {"wide_deep": "rmse", "thoracic": "auc", "boston": "mae", "multi_io": "sentiment_accuracy"}

# experiment -> (epochs, reason): a cap on the config's epochs to keep the whole benchmark within
# ~35 minutes on 2 CPU cores; printed with every capped row. Empty: every fit is the real one.
EPOCH_CAPS: dict[str, tuple[int, str]] = {}


@dataclass
class FitPlan:
    """One representative fit of an experiment, runnable both ways."""

    name: str
    variant: str
    why: str
    what: str  # short, for the table
    detail: str  # what exactly is timed, for the progress lines
    epochs: int
    batch_size: int
    n_train: int
    metric: str
    plain: Callable[[int], tuple[Any, float, int]]  # seed -> (model, seconds, epochs run)
    fresh: Callable[[int], tuple[Any, Any, Any]]  # seed -> the plain arm's (model, train rows, valid rows)
    pipeline: Callable[[int], tuple[Any, float, int]]
    score: Callable[[Any], float]  # trained model -> validation metric
    capped: str = ""


@dataclass
class Row:
    plan: FitPlan
    runs: dict[str, list[tuple[float, float, int]]] = field(
        default_factory=lambda: {"plain": [], "pipeline": []}
    )  # (seconds, metric, epochs)
    floor: list[tuple[float, int]] = field(default_factory=list)  # (seconds, epochs) per seed

    def seconds(self, arm: str) -> float:
        return statistics.median(r[0] for r in self.runs[arm])

    def speed(self, arm: str) -> float:
        return statistics.median(self.plan.n_train * r[2] / r[0] for r in self.runs[arm])

    def metric(self, arm: str) -> tuple[float, float]:
        values = [r[1] for r in self.runs[arm]]
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    def epochs(self, arm: str) -> str:
        counts = sorted({r[2] for r in self.runs[arm]})
        return "/".join(str(c) for c in counts)

    @property
    def ratio(self) -> float:
        return self.speed("pipeline") / self.speed("plain")

    def floor_seconds(self) -> float:
        return statistics.median(s for s, _ in self.floor)

    @property
    def ceiling(self) -> float | None:
        """The floor arm's samples/s over the plain arm's (None without ``--floor``)."""
        if not self.floor:
            return None
        return statistics.median(self.plan.n_train * e / s for s, e in self.floor) / self.speed("plain")


# --- the two arms ---------------------------------------------------------------------------


def n_rows(y: Any) -> int:
    import numpy as np

    return len(np.asarray(next(iter(y.values())) if isinstance(y, dict) else y))


def plain_fit(model, train, valid, *, epochs: int, batch_size: int, callbacks) -> tuple[Any, float, int]:
    """The seed notes' call: NumPy arrays straight into ``fit``, default validation batch."""
    x, y = train
    started = time.perf_counter()
    history = model.fit(
        x,
        y,
        validation_data=valid,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks),
        verbose=0,
    )
    seconds = time.perf_counter() - started
    return model, seconds, len(history.history.get("loss", []))


def floor_fit(model, train, valid, *, batch_size: int, epochs: int) -> float:
    """Seconds of ``epochs`` epochs of ``model`` as one compiled function: the training rows'
    batches in order through ``train_step``, then (``valid`` not None) the validation rows in
    the pipeline's validation batches through ``test_step``. Traced outside the timing."""
    import keras
    import tensorflow as tf

    from pipeline import training

    def held(arrays):
        return keras.tree.lists_to_tuples(tf.nest.map_structure(tf.constant, tuple(arrays)))

    def batch(rows, start, size):
        return tf.nest.map_structure(lambda t: t[start : start + size], rows)

    train_rows = held(train)
    n_train = n_rows(train[1])
    valid_rows = held(valid) if valid is not None else None
    n_valid = n_rows(valid[1]) if valid is not None else 0
    valid_batch = training.validation_batch(model, batch_size)  # as the pipeline arm validates
    model.train_on_batch(*batch(train_rows, 0, batch_size))  # builds the optimizer and metrics
    if valid_rows is not None:
        model.test_on_batch(*batch(valid_rows, 0, valid_batch))

    @tf.function
    def run(epochs):
        for _ in tf.range(epochs):
            for start in tf.range(0, n_train, batch_size):
                model.train_step(batch(train_rows, start, batch_size))
            if valid_rows is not None:
                for start in tf.range(0, n_valid, valid_batch):
                    model.test_step(batch(valid_rows, start, valid_batch))

    run(tf.constant(0))  # traced outside the timing
    started = time.perf_counter()
    run(tf.constant(epochs))
    return time.perf_counter() - started


def set_train(cfg, variant: str, key: str, value) -> None:
    """Set ``train.<key>`` in a resolved config and in the variant's own override (if it has
    one), so that train_variant, which resolves the variant again, keeps the value."""
    OmegaConf.update(cfg, f"train.{key}", value, force_add=True)
    spec = cfg.variants[variant]
    if OmegaConf.select(spec, f"train.{key}") is not None:
        OmegaConf.update(spec, f"train.{key}", value)


def configs(experiment, exp_cfg, variant: str, epochs: int | None):
    """(pipeline config, plain config): the variant resolved, epochs capped; the plain one
    with ``steps_per_execution=1``."""
    run_cfg = experiment.resolve(copy.deepcopy(exp_cfg), variant)
    run_cfg = copy.deepcopy(run_cfg)
    OmegaConf.set_struct(run_cfg, False)
    if epochs is not None:
        set_train(run_cfg, variant, "epochs", epochs)
    plain_cfg = copy.deepcopy(run_cfg)
    set_train(plain_cfg, variant, "steps_per_execution", 1)
    return run_cfg, plain_cfg


def plan_for(
    name: str, exp_cfg, data, *, epochs_cap: int | None = None, capped: str = "", variant: str | None = None
) -> FitPlan:
    """The representative fit of experiment ``name`` (its config ``exp_cfg``, its data)."""
    from pipeline import training
    from pipeline.experiments import get_experiment
    from pipeline.experiments.crossval import CrossValidated, make_splitter, predict
    from pipeline.experiments.ensemble import Ensemble
    from pipeline.experiments.transfer import Transfer

    experiment = get_experiment(name)
    default_variant, why = REPRESENTATIVE.get(name, (None, "the first variant"))
    if variant and variant != default_variant:
        why = "asked for"
    variant = variant or default_variant or experiment.variants(exp_cfg)[0]
    configured = int(experiment.resolve(exp_cfg, variant).train.epochs)
    epochs = min(configured, epochs_cap) if epochs_cap else configured
    if epochs < configured:
        capped = capped or f"capped from {configured} epochs"
    run_cfg, plain_cfg = configs(experiment, exp_cfg, variant, epochs)
    batch_size = int(run_cfg.train.batch_size)
    metric = METRIC.get(name, "accuracy")

    def callbacks(cfg):
        return training.callbacks_from_config(cfg.train)

    common = dict(
        name=name,
        variant=variant,
        why=why,
        epochs=epochs,
        batch_size=batch_size,
        metric=metric,
        capped=capped,
    )

    if isinstance(experiment, CrossValidated):
        # One fold as the stage fits it (CrossValidated.train_variant): fold 3, a typical fold.
        # Fold 1 is validated every epoch for the stage's history; the others (3 of 4 in boston,
        # 14 of 15 in thoracic) are scored once after training, as the notes' own fold fits
        # (model.fit without validation_data, then evaluate) are. A fast fit validates inside
        # its train function, so the variant's model traces two: fold 1's (validating) and
        # fold 2's (not), which folds 3+ and the final fit reuse.
        fold = 3
        x, y = experiment.split(run_cfg, variant, data, "train")
        folds = list(make_splitter(run_cfg.train.cv.splitter).split(x, y))
        fit_rows, val_rows = folds[fold - 1]
        every_epoch = bool(callbacks(run_cfg))
        valid = (x[val_rows], y[val_rows]) if every_epoch else None

        def pipeline(seed):
            # as the stage: folds 1 and 2 (untimed; fold 1 validated every epoch) trace the
            # variant's model, fold 3 trains on it with a fresh model's starting state
            # (training.TracedModel)
            traced = training.TracedModel()
            for before, (before_fit, before_val) in enumerate(folds[: fold - 1], start=1):
                experiment._fit(
                    run_cfg,
                    variant,
                    (x[before_fit], y[before_fit]),
                    (x[before_val], y[before_val]) if before == 1 or every_epoch else None,
                    seed=seed + before,
                    epochs=epochs,
                    callbacks=callbacks(run_cfg),
                    fast=True,
                    traced=traced,
                )
            model, fit = experiment._fit(
                run_cfg,
                variant,
                (x[fit_rows], y[fit_rows]),
                valid,
                seed=seed + fold,
                epochs=epochs,
                callbacks=callbacks(run_cfg),
                fast=True,
                traced=None if run_cfg.train.cv.get("final") == "fold_ensemble" else traced,
            )
            return model, fit.seconds, fit.epochs

        def fresh(seed):
            training.seed_everything(seed + fold)
            model = experiment.build_model(plain_cfg, variant, x[fit_rows])
            column = None if valid is None else (valid[0], valid[1].reshape(-1, 1))
            return model, (x[fit_rows], y[fit_rows].reshape(-1, 1)), column

        def plain(seed):
            model, rows, column = fresh(seed)
            return plain_fit(
                model,
                rows,
                column,
                epochs=epochs,
                batch_size=batch_size,
                callbacks=callbacks(plain_cfg),
            )

        def score(model):
            return experiment.metrics_of(y[val_rows], predict(model, x[val_rows]))[metric]

        what = f"fold {fold} of {len(folds)}"
        detail = (
            f"fold {fold} of the {len(folds)} folds the stage fits before its final model, "
            f"on the variant's model that folds 1 and 2 traced (untimed, as in the stage), "
            f"scored on its {len(val_rows)} held-out rows after training"
            + ("" if every_epoch else " (no per-epoch validation, as the stage's folds 2+)")
        )
        return FitPlan(
            what=what,
            detail=detail,
            n_train=len(fit_rows),
            plain=plain,
            fresh=fresh,
            pipeline=pipeline,
            score=score,
            **common,
        )

    train = experiment.split(run_cfg, variant, data, "train")
    valid = experiment.split(run_cfg, variant, data, "valid")

    def score(model):
        return experiment.score(run_cfg, variant, model, data, "valid")[metric]

    if isinstance(experiment, Ensemble):
        # member 1 exactly as Ensemble.train_variant fits it; the members are fit alike, one
        # after the other, so no single one dominates: member 1 is the one whose curve is the
        # variant's history
        specs = experiment.member_specs(run_cfg)
        member, spec = specs[0]

        def pipeline(seed):
            training.seed_everything(seed)
            model = experiment.build_member(run_cfg, data, member, spec)
            fit = training.fit(
                model,
                train,
                valid,
                epochs=epochs,
                batch_size=batch_size,
                fast=True,
                callbacks=callbacks(run_cfg),
            )
            return model, fit.seconds, fit.epochs

        def fresh(seed):
            training.seed_everything(seed)
            return experiment.build_member(plain_cfg, data, member, spec), train, valid

        def plain(seed):
            model, _, _ = fresh(seed)
            return plain_fit(
                model, train, valid, epochs=epochs, batch_size=batch_size, callbacks=callbacks(plain_cfg)
            )

        hidden = "-".join(str(u) for u in spec.get("hidden", [])) or spec.get("kind")
        what = f"member 1 of {len(specs)}"
        detail = (
            f"member 1 of {len(specs)} ({spec.get('kind')} {hidden}); the stage fits the "
            f"{len(specs)} members alike, one after the other, then averages them"
        )
        return FitPlan(
            what=what,
            detail=detail,
            n_train=n_rows(train[1]),
            plain=plain,
            fresh=fresh,
            pipeline=pipeline,
            score=score,
            **common,
        )

    if isinstance(experiment, Transfer):
        # model_A, the fit that dominates (20 epochs on ~44,000 images), as Transfer.train_variant
        # trains it (train_model_a). The 2 x seeds model_B fits on 200 images are not timed.
        def pipeline(seed):
            trained = experiment.train_model_a(run_cfg, variant, data, seed=seed, fast=True)
            return trained.model, trained.fit.seconds, trained.fit.epochs

        transfer = run_cfg.train.transfer
        what = "model_A"
        detail = (
            f"model_A (task A, 8 classes), the fit that dominates; the "
            f"{2 * int(transfer.seeds)} model_B fits on {int(transfer.b_train_size)} "
            f"images are not timed"
        )
    else:

        def pipeline(seed):
            trained = experiment.train_variant(run_cfg, variant, data, seed=seed, fast=True)
            return trained.model, trained.fit.seconds, trained.fit.epochs

        what = "the one fit"
        detail = "the variant's one fit (train_variant)"
        if name == "siamese":
            what = "the one fit (pairs)"
            detail = "the variant's one fit, on the training pairs (pair making not timed)"
        elif name == "multi_io":
            detail = "the variant's one fit (2 inputs, 2 outputs)"
        elif name in ("deep_training", "residual"):
            detail = (
                "the variant's one fit (the pipeline arm includes the stage's gradient norms at start and end"
            )
            if name == "residual":
                # GradientNorms runs the model with training=True on 256 fixed images at the
                # start and the end of the fit, which also moves BatchNormalization's moving
                # statistics: the two arms' validation scores can differ a little
                detail += (
                    "; their training-mode passes also move the BatchNorm moving "
                    "statistics, so the arms' scores may differ slightly"
                )
            detail += ")"

    def fresh(seed):
        training.seed_everything(seed)
        return experiment.build(plain_cfg, variant, data), train, valid

    def plain(seed):
        model, _, _ = fresh(seed)
        return plain_fit(
            model, train, valid, epochs=epochs, batch_size=batch_size, callbacks=callbacks(plain_cfg)
        )

    return FitPlan(
        what=what,
        detail=detail,
        n_train=n_rows(train[1]),
        plain=plain,
        fresh=fresh,
        pipeline=pipeline,
        score=score,
        **common,
    )


def measure(plan: FitPlan, seeds: list[int], log=print, floor: bool = False) -> Row:
    """Both arms once per seed, alternating (plain first); with ``floor``, then the floor arm
    for as many epochs as the pipeline arm ran."""
    row = Row(plan)
    for seed in seeds:
        for arm in ("plain", "pipeline"):
            model, seconds, epochs = getattr(plan, arm)(seed)
            value = float(plan.score(model))
            row.runs[arm].append((seconds, value, epochs))
            log(
                f"    seed {seed} {arm:8s}: {seconds:7.1f} s, {epochs:3d} epochs, "
                f"{plan.n_train * epochs / seconds:9.0f} samples/s, val {plan.metric} {value:.4f}"
                + (
                    f"  (steps_per_execution {model.steps_per_execution})"
                    if arm == "plain"
                    else "  (an epoch and its validation per compiled call)"
                )
            )
            del model
        if floor:
            model, train, valid = plan.fresh(seed)
            seconds = floor_fit(model, train, valid, batch_size=plan.batch_size, epochs=epochs)
            row.floor.append((seconds, epochs))
            log(
                f"    seed {seed} floor   : {seconds:7.1f} s, {epochs:3d} epochs as one compiled function"
                f"{'' if valid is None else ' (validation included)'}, "
                f"{plan.n_train * epochs / seconds:9.0f} samples/s"
            )
            del model
    return row


# --- output ---------------------------------------------------------------------------------


def fmt_metric(row: Row, arm: str) -> str:
    mean, std = row.metric(arm)
    return f"{mean:.4f}" + (f" ± {std:.4f}" if len(row.runs[arm]) > 1 else "")


def summary_line(row: Row) -> str:
    p = row.plan
    epochs = row.epochs("plain")
    if row.epochs("pipeline") != epochs:
        epochs = f"{epochs} plain / {row.epochs('pipeline')} pipeline"
    return (
        f"  => {p.name} / {p.variant}: {p.detail}; {epochs} epochs, batch {p.batch_size}, "
        f"{p.n_train} training samples\n"
        f"     plain {row.seconds('plain'):.1f} s ({row.speed('plain'):.0f} samples/s)   "
        f"pipeline {row.seconds('pipeline'):.1f} s ({row.speed('pipeline'):.0f} samples/s)   "
        f"ratio {row.ratio:.2f}x   val {p.metric} plain {fmt_metric(row, 'plain')} / "
        f"pipeline {fmt_metric(row, 'pipeline')}"
        + (f"\n     floor {row.floor_seconds():.1f} s, ceiling {row.ceiling:.2f}x" if row.floor else "")
        + (f"   [{p.capped}]" if p.capped else "")
    )


def markdown_table(rows: list[Row]) -> str:
    floors = any(row.floor for row in rows)
    lines = [
        "| experiment | variant | timed | epochs | batch | train samples | plain s | "
        "pipeline s | plain samples/s | pipeline samples/s | ratio | "
        + ("floor s | ceiling | " if floors else "")
        + "val metric | plain | pipeline |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|---:|" if floors else "")
        + "---|---:|---:|",
    ]
    for row in rows:
        p = row.plan
        epochs = row.epochs("plain")
        if row.epochs("pipeline") != epochs:
            epochs += f" / {row.epochs('pipeline')}"
        if p.capped:
            epochs += "*"
        lines.append(
            f"| {p.name} | {p.variant} | {p.what} | {epochs} | {p.batch_size} | {p.n_train:,} | "
            f"{row.seconds('plain'):.1f} | {row.seconds('pipeline'):.1f} | "
            f"{row.speed('plain'):,.0f} | {row.speed('pipeline'):,.0f} | {row.ratio:.2f} | "
            + (f"{row.floor_seconds():.1f} | {row.ceiling:.2f} | " if floors else "")
            + f"{p.metric} | {fmt_metric(row, 'plain')} | {fmt_metric(row, 'pipeline')} |"
        )
    return "\n".join(lines)


LEGEND = (
    "plain: a fresh model from the experiment's builder, steps_per_execution=1, `model.fit` on "
    "the NumPy arrays (default validation batch); pipeline: the train stage's own call for that "
    "fit (an epoch and its validation per compiled call, validation batches of "
    "training.validation_batch). Same seed, epochs, batch "
    "size and config callbacks (early stopping...) in both; no MLflow/TensorBoard callbacks in "
    "either; only `fit` is timed. Seconds and samples/s: median over the seeds; ratio: pipeline "
    "/ plain samples/s; val metric: the experiment's own score of the trained model on its "
    "validation split (for a fold: its held-out rows). With --floor: floor s, the pipeline "
    "arm's epochs as one compiled function (batches in order, then the validation batches); "
    "ceiling: its samples/s over plain's, the most any removal of overhead could give."
)


def verdict(rows: list[Row]) -> list[str]:
    if not rows:
        return ["no experiment measured"]
    ratios = [row.ratio for row in rows]
    slow = [f"{row.plan.name} ({row.ratio:.2f}x)" for row in rows if row.ratio < 1.0]
    lines = [
        f"median ratio {statistics.median(ratios):.2f}x over {len(rows)} experiments "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)",
        f"below 1.0: {', '.join(slow) if slow else 'none'}",
    ]
    ceilings = [row.ceiling for row in rows if row.ceiling is not None]
    if ceilings:
        lines.append(
            f"median ceiling {statistics.median(ceilings):.2f}x over {len(ceilings)} experiments "
            f"(min {min(ceilings):.2f}x, max {max(ceilings):.2f}x)"
        )
    capped = [f"{row.plan.name} ({row.plan.capped})" for row in rows if row.plan.capped]
    if capped:
        lines.append("* epochs capped: " + "; ".join(capped))
    return lines


def command_line(argv: list[str]) -> str:
    mirror = os.environ.get("PIPELINE_DATA_MIRROR", "")
    env = f"PIPELINE_DATA_MIRROR={shlex.quote(mirror)} " if mirror else ""
    return f"{env}PYTHONPATH=src python bench/experiment_speed.py {shlex.join(argv)}".rstrip()


# --- data -----------------------------------------------------------------------------------


def load_data(cfg, dataset: str):
    """The prepared arrays: data/<dataset> if this checkout has it (what the stages read),
    else fetched from the source (mirror) and split as the prepare stage splits them."""
    from pipeline.data.sources import get_source
    from pipeline.data.splits import SPLITTERS
    from pipeline.data.store import DATA_DIR, dataset_dir, load_prepared

    if (dataset_dir(dataset, DATA_DIR) / "arrays.npz").exists():
        return load_prepared(dataset), f"{DATA_DIR / dataset}"
    spec = cfg.datasets[dataset]
    raw, _ = get_source(spec.source).load()
    return SPLITTERS[spec.source](raw, spec.split), f"source {spec.source}, split as prepare does"


def warm_up() -> None:
    """One tiny fit before anything is timed: TF's process-wide start-up (thread pools, first
    graph) would otherwise land on the first plain arm."""
    import keras
    import numpy as np

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=1, batch_size=16, verbose=0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated experiments (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per arm (default 1)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="cap every experiment's epochs (default: the config's)"
    )
    parser.add_argument("--no-caps", action="store_true", help="ignore EPOCH_CAPS")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="add the floor arm: the epochs as one compiled function (the ceiling)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    cfg = load()
    names = list(cfg.experiments)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown experiment(s) {unknown}; valid choices: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    seeds = list(range(int(cfg.seed), int(cfg.seed) + args.seeds))
    print(
        f"experiment speed: {len(names)} experiment(s), seeds {seeds}, arms alternate "
        f"plain/pipeline; load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )

    warm_up()
    datasets: dict[str, Any] = {}
    remaining = [experiment_config(cfg, n).dataset for n in names]
    rows: list[Row] = []
    skipped: list[str] = []
    for index, name in enumerate(names, start=1):
        exp_cfg = experiment_config(cfg, name)
        dataset = remaining.pop(0)
        cap, reason = (None, "")
        if name in EPOCH_CAPS and not args.no_caps:
            cap, reason = EPOCH_CAPS[name]
        if args.epochs is not None:
            cap = min(cap, args.epochs) if cap else args.epochs
            reason = reason or "--epochs"
        try:
            if dataset not in datasets:
                loading = time.perf_counter()
                datasets[dataset], origin = load_data(cfg, dataset)
                print(f"  data {dataset}: {origin} ({time.perf_counter() - loading:.1f} s)", flush=True)
            plan = plan_for(name, exp_cfg, datasets[dataset], epochs_cap=cap)
            if plan.capped and reason:
                plan.capped = f"{plan.capped}: {reason}"
            print(
                f"[{index}/{len(names)}] {name} / {plan.variant} ({plan.why}): "
                f"{plan.detail}; {plan.epochs} epochs, batch {plan.batch_size}, "
                f"{plan.n_train} training samples" + (f" [{plan.capped}]" if plan.capped else ""),
                flush=True,
            )
            fitting = time.perf_counter()
            row = measure(plan, seeds, log=lambda line: print(line, flush=True), floor=args.floor)
        except Exception as error:  # a benchmark reports what it could not measure, goes on
            skipped.append(f"{name}: {type(error).__name__}: {error}")
            print(f"[{index}/{len(names)}] {name}: SKIPPED ({skipped[-1]})", flush=True)
            continue
        rows.append(row)
        print(
            summary_line(row) + f"   ({time.perf_counter() - fitting:.0f} s, load average "
            f"{os.getloadavg()[0]:.2f})",
            flush=True,
        )
        if dataset not in remaining:
            datasets.pop(dataset, None)  # free it: no later experiment reads it

    print("\n" + markdown_table(rows))
    print("\n" + LEGEND + "\n")
    for line in verdict(rows):
        print(line)
    if skipped:
        print("skipped: " + "; ".join(skipped))
    print(f"\ncommand: {command_line(argv)}")
    print(
        f"total {time.perf_counter() - started:.0f} s; load average at the end "
        f"{os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)",
        flush=True,
    )
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
