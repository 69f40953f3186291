"""The one fit loop: seeds, determinism, the fast path, NaN guard, pruning and tracking hooks.

On a CPU these models are small enough that per-step Python overhead dominates. The fast path
changes how often Python is involved, not what is computed: the same seeded, shuffled
mini-batches (Keras' own in-memory tf.data pipeline over the arrays, with prefetch) run
``steps_per_execution`` at a time inside one compiled call, and validation uses large batches
(a mean over the same samples). Results are identical to the plain ``fit`` of the seed notes;
bench/train_speed.py measures the speed-up.
"""

from __future__ import annotations

import inspect
import math
import shutil
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from pipeline import interrupts
from pipeline.errors import ConfigError, TrainingDiverged
from pipeline.models.factories import make_optimizer

# predict() on arrays of a new length retraces its graph; with a handful of calls per run that
# is expected, and TF's warning about it is noise.
tf.get_logger().setLevel("ERROR")

Arrays = Any  # an array, a tuple of arrays or a dict of arrays, as Keras accepts them
VALIDATION_BATCH = 4096


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Python, NumPy and TF seeds; deterministic TF ops (cheap for these dense models)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_model(
    model: keras.Model,
    *,
    optimizer: Mapping[str, Any],
    loss: Any,
    metrics: Any = None,
    loss_weights: Any = None,
    steps_per_execution: int = 1,
) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(optimizer),
        loss=loss,
        loss_weights=loss_weights,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )
    return model


def callbacks_from_config(train_cfg: Mapping[str, Any]) -> list[keras.callbacks.Callback]:
    """The Keras callbacks a ``train`` config section asks for (each optional):

    ``early_stopping: {monitor, patience, restore_best_weights}``,
    ``reduce_lr_on_plateau: {monitor, factor, patience}`` and ``checkpoint: {monitor, mode}``.
    """
    callbacks: list[keras.callbacks.Callback] = []
    if train_cfg.get("early_stopping"):
        callbacks.append(keras.callbacks.EarlyStopping(**dict(train_cfg["early_stopping"])))
    if train_cfg.get("reduce_lr_on_plateau"):
        callbacks.append(keras.callbacks.ReduceLROnPlateau(**dict(train_cfg["reduce_lr_on_plateau"])))
    if train_cfg.get("checkpoint"):
        callbacks.append(BestCheckpoint(**dict(train_cfg["checkpoint"])))
    return callbacks


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint(save_best_only=True)`` into a temporary file whose weights are loaded
    back when training ends, so the model the stage saves is the best epoch by ``monitor`` (the
    chapter's EarlyStopping + ModelCheckpoint pair). The file lives outside the stage's outputs,
    which are written atomically once training is over."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", **options: Any) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pipeline-checkpoint-"))
        super().__init__(
            str(self.folder / "best.weights.h5"),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            **options,
        )

    def on_train_end(self, logs: dict | None = None) -> None:
        try:
            if Path(self.filepath).exists():
                self.model.load_weights(self.filepath)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def tensorboard_callbacks(train_cfg: Mapping[str, Any], log_dir: Any) -> list[keras.callbacks.Callback]:
    """``train.tensorboard``: null/false (off), true (Keras' defaults) or a mapping of
    keras.callbacks.TensorBoard options, e.g. ``{histogram_freq: 1}`` -> a TensorBoard callback
    writing its event files into ``log_dir`` (the train stage logs them to the variant's run)."""
    spec = train_cfg.get("tensorboard")
    if not spec:
        return []
    options = {} if spec is True else dict(spec)
    valid = sorted(set(inspect.signature(keras.callbacks.TensorBoard).parameters) - {"log_dir"})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"Unknown train.tensorboard option(s) {unknown}; valid choices: {', '.join(valid)}."
        )
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), **options)]


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs (schedules included)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and "learning_rate" not in logs:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class GradientNorms(keras.callbacks.Callback):
    """Per-layer gradient norms of the loss on a fixed batch, at the start and the end of
    training: the vanishing/exploding-gradient story told with numbers.

    ``self.norms == {"start": {layer: norm}, "end": {...}}`` after training.
    """

    def __init__(self, x: Any, y: Any, loss: Any) -> None:
        super().__init__()
        self.x, self.y, self.loss = x, y, keras.losses.get(loss)
        self.norms: dict[str, dict[str, float]] = {}

    @classmethod
    def on_training_sample(cls, data: Mapping[str, Any], loss: Any, size: int = 256) -> "GradientNorms":
        """Measured on ``size`` training rows drawn with a fixed seed (the same rows for every
        variant, so their norms compare)."""
        rows = np.random.default_rng(0).choice(len(data["y_train"]), size, replace=False)
        return cls(data["x_train"][rows], data["y_train"][rows], loss)

    def metrics(self) -> dict[str, float]:
        """``{grad_norm_<start|end>_<layer>: norm}``, flat, for the metrics files and MLflow."""
        return {
            f"grad_norm_{moment}_{layer}": norm
            for moment, layers in self.norms.items()
            for layer, norm in layers.items()
        }

    def measure(self) -> dict[str, float]:
        with tf.GradientTape() as tape:
            loss = self.loss(self.y, self.model(self.x, training=True))
        kernels = [w for w in self.model.trainable_weights if w.path.endswith("kernel")]
        grads = tape.gradient(loss, kernels)
        return {w.path.split("/")[0]: float(tf.norm(g)) for w, g in zip(kernels, grads) if g is not None}

    def on_train_begin(self, logs=None) -> None:
        self.norms["start"] = self.measure()

    def on_train_end(self, logs=None) -> None:
        self.norms["end"] = self.measure()


class TracedModel:
    """Fits of one architecture on one model whose train, test and predict functions are traced
    once: tracing is about 0.8 s of a 2 s thoracic fold, and cross-validation fits 16 alike.

    ``fit(fresh, ...)`` trains as ``fit(fresh, ...)`` would. ``fresh``, built, compiled and
    seeded as usual, gives its starting state (weights, Normalization statistics, dropout
    generators, optimizer step and slots) to the traced model, which trains, and ``fresh`` gets
    the trained state back. The first ``fresh`` becomes the traced model itself, so a later fit
    overwrites it: keep only models of later fits. tests/test_thoracic_boston.py checks that
    the weights are those of a fit of ``fresh`` itself, bit for bit.

    Keras 3's Normalization holds its adapted mean and variance as constant tensors
    (``finalize_state``), which a traced function captures by value; in the traced model they
    become variables, refreshed from the adapted statistics before every fit.
    """

    def __init__(self) -> None:
        self.model: keras.Model | None = None

    def fit(self, fresh: keras.Model, *args: Any, **kwargs: Any) -> FitResult:
        """``training.fit``'s arguments after the model; the traced model holds the result too."""
        if self.model is None:
            self.model = fresh
            _normalization_as_variables(fresh)
        else:
            _copy_state(fresh, self.model)
        result = fit(self.model, *args, **kwargs)
        if fresh is not self.model:
            _copy_state(self.model, fresh)
        return result


def _normalizations(model: keras.Model) -> list[keras.layers.Normalization]:
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None  # adapted
    ]


def _normalization_as_variables(model: keras.Model) -> None:
    for layer in _normalizations(model):
        layer.mean = tf.Variable(layer.mean, trainable=False)
        layer.variance = tf.Variable(layer.variance, trainable=False)


def _copy_state(source: keras.Model, target: keras.Model) -> None:
    """Every variable of ``source`` and its optimizer into ``target`` (same architecture)."""
    for model in (source, target):
        if not model.optimizer.built:  # its slots are made on the first step
            model.optimizer.build(model.trainable_variables)
    pairs = [
        *zip(source.variables, target.variables, strict=True),
        *zip(source.optimizer.variables, target.optimizer.variables, strict=True),
    ]
    for origin, copy in pairs:
        if origin.shape != copy.shape:
            raise ValueError(f"Not the same architecture: {origin.path} {origin.shape} vs {copy.shape}")
        copy.assign(origin)
    for layer in _normalizations(target):
        if isinstance(layer.mean, tf.Variable):  # the traced model's: as finalize_state makes them
            shape, dtype = layer._broadcast_shape, layer.compute_dtype
            layer.mean.assign(tf.cast(tf.reshape(layer.adapt_mean, shape), dtype))
            layer.variance.assign(tf.cast(tf.reshape(layer.adapt_variance, shape), dtype))


@dataclass
class FitResult:
    history: dict[str, list[float]]
    epochs: int
    seconds: float
    samples_per_second: float


class _NanGuard(keras.callbacks.Callback):
    """Stop at the first non-finite loss and remember it (TerminateOnNaN only checks batches)."""

    def __init__(self) -> None:
        super().__init__()
        self.diverged_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.diverged_at = epoch
            self.model.stop_training = True


def fit(
    model: keras.Model,
    train: tuple[Arrays, Arrays],
    valid: tuple[Arrays, Arrays] | None,
    *,
    epochs: int,
    batch_size: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    fast: bool = True,
    verbose: int = 0,
) -> FitResult:
    """Train ``model`` (compiled with its ``steps_per_execution``) and return its history; raise
    if the loss diverges. ``fast=False`` is the seed notes' plain call (for the benchmark)."""
    x, y = train
    n_samples = len(np.asarray(y if not isinstance(y, dict) else next(iter(y.values()))))
    guard = _NanGuard()
    all_callbacks = [
        keras.callbacks.TerminateOnNaN(),
        guard,
        LearningRateLogger(),
        interrupts.keras_callback(),
        *callbacks,
    ]
    started = time.perf_counter()
    with interrupts.deferred():  # Ctrl-C ends the fit between two batches
        history = model.fit(
            x,
            y,
            validation_data=valid,
            epochs=epochs,
            batch_size=batch_size,
            # validation is a mean over the same samples whatever the batch; big batches are cheaper
            validation_batch_size=max(batch_size, VALIDATION_BATCH) if fast else None,
            callbacks=all_callbacks,
            verbose=verbose,
        )
    seconds = time.perf_counter() - started
    if guard.diverged_at is not None or not all(math.isfinite(v) for v in history.history.get("loss", [])):
        raise TrainingDiverged(
            f"Training diverged: the loss became non-finite at epoch "
            f"{(guard.diverged_at or 0) + 1}. Lower the learning rate or add gradient clipping."
        )
    epochs_run = len(history.history.get("loss", []))
    return FitResult(
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        epochs=epochs_run,
        seconds=seconds,
        samples_per_second=n_samples * epochs_run / seconds if seconds > 0 else float("nan"),
    )
