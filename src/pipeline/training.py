"""The one fit loop: seeds, determinism, the fast input path, NaN guard, pruning and tracking hooks.

On a CPU these models are small enough that per-step Python overhead dominates. The fast path
changes how batches reach the model, not which batches: the same shuffled mini-batches of the
same size go through an in-memory ``tf.data`` pipeline with prefetch, and ``steps_per_execution``
runs many of them per call into the compiled graph (bench/train_speed.py measures the gain).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from pipeline.errors import TrainingDiverged
from pipeline.models.factories import make_optimizer

# predict() on arrays of a new length retraces its graph; with a handful of calls per run that
# is expected, and TF's warning about it is noise.
tf.get_logger().setLevel("ERROR")

Arrays = Any  # an array, a tuple of arrays or a dict of arrays, as Keras accepts them


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


def as_dataset(x: Arrays, y: Arrays, batch_size: int, *, shuffle_seed: int | None) -> tf.data.Dataset:
    """In-memory tf.data pipeline: (re)shuffled each epoch with a fixed seed, batched, prefetched."""
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        size = int(data.cardinality())
        data = data.shuffle(size, seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass
class FitResult:
    history: dict[str, list[float]]
    epochs: int
    seconds: float
    samples_per_second: float
    extra: dict[str, Any] = field(default_factory=dict)


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
    seed: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    fast: bool = True,
    verbose: int = 0,
) -> FitResult:
    """Train ``model`` (already compiled) and return its history; raise if the loss diverges."""
    x, y = train
    n_samples = len(np.asarray(y if not isinstance(y, dict) else next(iter(y.values()))))
    guard = _NanGuard()
    all_callbacks = [keras.callbacks.TerminateOnNaN(), guard, *callbacks]
    started = time.perf_counter()
    if fast:
        train_data = as_dataset(x, y, batch_size, shuffle_seed=seed)
        valid_data = as_dataset(*valid, batch_size=max(batch_size, 1024), shuffle_seed=None) if valid else None
        history = model.fit(train_data, validation_data=valid_data, epochs=epochs, shuffle=False,
                            callbacks=all_callbacks, verbose=verbose)  # shuffled by the dataset
    else:  # the seeds' plain call, kept for the benchmark
        history = model.fit(x, y, validation_data=valid, epochs=epochs, batch_size=batch_size,
                            callbacks=all_callbacks, verbose=verbose)
    seconds = time.perf_counter() - started
    if guard.diverged_at is not None or not all(
        math.isfinite(v) for v in history.history.get("loss", [])
    ):
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
