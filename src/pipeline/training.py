"""The one fit loop: seeds, determinism, the fast path, NaN guard, pruning and tracking hooks.

On a CPU these models are small enough that per-step overhead dominates. The fast path
changes how often Python and tf.data are involved, not what is computed: the same seeded,
shuffled mini-batches as Keras' own array pipeline, their rows gathered inside the compiled
step (``GatheredBatches``), a whole epoch of them in one compiled call, and validation in large
batches (a mean over the same samples). Results are identical to the plain ``fit`` of the seed
notes; bench/experiment_speed.py measures the speed-up.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import shutil
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context

from pipeline import interrupts
from pipeline.errors import ConfigError, TrainingDiverged
from pipeline.models.factories import make_optimizer

# predict() on arrays of a new length retraces its graph; with a handful of calls per run that
# is expected, and TF's warning about it is noise.
tf.get_logger().setLevel("ERROR")

Arrays = Any  # an array, a tuple of arrays or a dict of arrays, as Keras accepts them
VALIDATION_BATCH = 4096  # rows: the most a fast fit's validation batch holds (validation_batch)
VALIDATION_BYTES = 64 * 2**20  # and the most activations it writes


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
    """Fits of one architecture on one model whose functions are traced once (the train function
    once for validating fits, once for the others): tracing is about 0.8 s of a 2 s thoracic
    fold, and cross-validation fits 16 alike.

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


class UntracedModel(TracedModel):
    """Every fit on its own fresh model, which traces its functions anew: what ``TracedModel``
    replaced (bench/traced_folds.py and the tests compare the two)."""

    def fit(self, fresh: keras.Model, *args: Any, **kwargs: Any) -> FitResult:
        return fit(fresh, *args, **kwargs)


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


class GatheredBatches:
    """The fast path's input pipeline: Keras' own shuffled batches, gathered inside the step.

    ``model.fit`` on arrays runs a tf.data element per batch (a ``map`` that gathers the
    batch's rows), which is most of a small network's step on a CPU. Here tf.data yields only
    row indices, made exactly as Keras' ``ArrayDataAdapter.get_tf_dataset`` makes them (the
    same seeded permutation per epoch, the same full batches and the same last partial one),
    one element per epoch from one iterator per fit (``index_batches``), and the compiled train
    step loops over the epoch's batches, gathering each one's rows from the training arrays,
    which it holds as variables. Then, given validation arrays, the same call validates: the
    training metrics are read, reset, and the validation rows run through ``test_step`` in
    ``validation_batch`` slices, in order, as Keras' ``evaluate`` would run them; the call
    returns both, the validation ones as ``val_*`` (what Keras' fit logs). An epoch and its
    validation are one compiled call, whatever ``steps_per_execution`` says, with no tf.data
    iterator per epoch. Same batches, same order, same numbers
    (tests/test_models_and_training.py compares it with the plain fit); bench/experiment_speed.py
    measures it. The arrays are variables, not captured constants, so a traced train function
    (``TracedModel``) trains on the next fold's rows without being traced again.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.rows: Any = None  # training (x, y) as Keras packs them, each array a tf.Variable
        self.valid_rows: Any = None  # validation (x, y) likewise
        self.validates = False  # whether this fit validates (the step reads it when traced)
        self.valid_batch = 0
        self.functions: dict[tuple[bool, int], Any] = {}  # (validates, valid_batch) -> train function
        self.compiled: Any = None  # the compile they were traced for (Keras' _compile_config)
        self.function: Any = None  # the train function the last fit ran
        step = model.train_step

        def train_step(data: Any) -> Any:
            if not (isinstance(data, tf.RaggedTensor) and data.dtype == tf.int64):
                return step(data)  # anything else (a plain model.fit on arrays) as Keras does it

            def one_batch(i: tf.Tensor) -> tf.Tensor:
                logs = step(tf.nest.map_structure(lambda rows: tf.gather(rows, data[i]), self.rows))
                with tf.control_dependencies(tf.nest.flatten(logs)):
                    return i + 1

            tf.while_loop(lambda i: i < data.nrows(), one_batch, [tf.constant(0, tf.int64)])
            logs = model.get_metrics_result()  # what Keras' train_step returns, after the last batch
            return {**logs, **self._validation_logs(after=logs)} if self.validates else logs

        model.train_step = train_step

    def _validation_logs(self, after: Any) -> dict[str, tf.Tensor]:
        """Keras' ``evaluate`` of the validation rows, in the compiled call: reset the metrics
        (once the training ones, ``after``, are read), run the rows through ``test_step`` in
        ``valid_batch`` slices, in order, and read the metrics as ``val_*``."""
        model, size = self.model, self.valid_batch
        with tf.control_dependencies(tf.nest.flatten(after)):
            model.reset_metrics()
        n_rows = tf.shape(tf.nest.flatten(self.valid_rows)[0], out_type=tf.int64)[0]

        def one_batch(start: tf.Tensor) -> tf.Tensor:
            batch = tf.nest.map_structure(lambda rows: rows[start : start + size], self.valid_rows)
            with tf.control_dependencies(tf.nest.flatten(model.test_step(batch))):
                return start + size

        tf.while_loop(lambda start: start < n_rows, one_batch, [tf.constant(0, tf.int64)])
        return {f"val_{name}": value for name, value in model.get_metrics_result().items()}

    @classmethod
    def of(cls, model: keras.Model) -> "GatheredBatches":
        """The model's own (made on its first fast fit; it lives as long as the model)."""
        if "_gathered_batches" not in vars(model):
            object.__setattr__(model, "_gathered_batches", cls(model))  # untracked: never saved
        return vars(model)["_gathered_batches"]

    @contextlib.contextmanager
    def loaded(
        self, x: Arrays, y: Arrays, batch_size: int, valid: tuple[Arrays, Arrays] | None = None
    ) -> Iterator[tf.data.Dataset]:
        """Hold ``(x, y)`` (and the validation arrays ``valid``, validated in the train call)
        for one fit and give the epochs' batches of row indices; on the way out free the rows
        (a copy of the data) but keep their variables, which a traced train function reads,
        for the next fit."""
        tensors = _sliceable(x, y)
        self.rows = self._hold(self.rows, tensors)
        self.validates = valid is not None
        if valid is not None:
            self.valid_rows = self._hold(self.valid_rows, _sliceable(*valid))
        self.valid_batch = validation_batch(self.model, batch_size)
        # the fit runs our train function, one step (an epoch) per call from an endless
        # dataset; Keras' own function and steps_per_execution come back for any other fit
        keras_own = (self.model.train_function, self.model.steps_per_execution)
        if self.compiled is not self.model._compile_config:
            # compiled again (a new optimizer, loss or trainable set, as transfer's unfreezing
            # does): Keras drops its train function then, and so does this
            self.functions.clear()
            self.compiled = self.model._compile_config
        key = (self.validates, self.valid_batch)
        self.model.train_function = self.functions.get(key)  # None: Keras traces a new one
        self.model.steps_per_execution = 1
        try:
            # Keras (without a distribution strategy) builds the optimizer and metrics inside
            # the first trace of the train function, and TF traces a function that made
            # variables a second time; built here, from a batch of real rows, it traces once
            self.model._symbolic_build(data_batch=tf.nest.map_structure(lambda t: t[:batch_size], tensors))
            yield index_batches(int(tf.nest.flatten(tensors)[0].shape[0]), batch_size)
        finally:
            self.function = self.model.train_function
            if self.function is not None:
                self.functions[key] = self.function
            self.model.train_function, self.model.steps_per_execution = keras_own
            for rows in (self.rows, self.valid_rows) if self.validates else (self.rows,):
                tf.nest.map_structure(lambda v: v.assign(tf.zeros([0, *v.shape[1:]], v.dtype)), rows)

    def _hold(self, variables: Any, tensors: Any) -> Any:
        """``tensors`` in ``variables`` if they fit them, else in new variables (and the train
        functions traced for the old ones are dropped: they read the old variables)."""
        if variables is not None and _same_layout(variables, tensors):
            tf.nest.map_structure(lambda variable, t: variable.assign(t), variables, tensors)
            return variables
        self.functions.clear()
        return tf.nest.map_structure(
            lambda t: tf.Variable(t, trainable=False, shape=[None, *t.shape[1:]]), tensors
        )


def _sliceable(x: Arrays, y: Arrays) -> Any:
    """``(x, y)`` packed and converted to tensors as Keras' array adapter does."""
    from keras.src.trainers.data_adapters import array_slicing, data_adapter_utils

    packed = data_adapter_utils.pack_x_y_sample_weight(x, y)
    return keras.tree.lists_to_tuples(array_slicing.convert_to_sliceable(packed, "tensorflow"))


def _same_layout(variables: Any, tensors: Any) -> bool:
    try:
        tf.nest.assert_same_structure(variables, tensors)
    except (ValueError, TypeError):
        return False
    return all(
        v.dtype == t.dtype and v.shape[1:] == t.shape[1:]
        for v, t in zip(tf.nest.flatten(variables), tf.nest.flatten(tensors))
    )


def index_batches(n_samples: int, batch_size: int) -> tf.data.Dataset:
    """Keras 3.15's ``ArrayDataAdapter.get_tf_dataset(shuffle=True)`` without its last step (the
    ``map`` that gathers rows): a ``tf.random.shuffle`` permutation, cut into full batches and a
    last partial one. One element per epoch, a ragged tensor with a row of indices per batch,
    so the step runs an epoch's batches in one compiled loop (``GatheredBatches``), with no
    tf.data element per batch. Endless: with ``steps_per_epoch=1`` Keras keeps one iterator
    for the whole fit, where a fresh one per epoch cost a few ms to make and up to 90 ms to
    tear down.

    Keras' fit makes a fresh iterator every epoch, and a fresh iterator's shuffle op starts
    from its seed again: under a global seed (``seed_everything``) every epoch of Keras' own
    fit draws the same permutation, so here the first one is replayed (``cache``); without one
    each epoch draws its own, as each fresh Keras iterator does."""
    full, rest = divmod(n_samples, batch_size)
    lengths = tf.constant([batch_size] * full + ([rest] if rest else []), tf.int64)

    def permutation(_):
        return tf.random.shuffle(tf.range(n_samples, dtype=tf.int64))

    def cut(indices):
        return tf.RaggedTensor.from_row_lengths(indices, lengths, validate=False)

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    # nothing here to tune, and autotuning's thread, alive as long as the fit's one iterator,
    # competed with the steps for 2 cores (ensemble's member: 3.5 s without it, 3.4-5.7 s with)
    options.autotune.enabled = False
    epochs = tf.data.Dataset.range(1).map(permutation).map(cut)
    if context.global_seed() is not None:
        epochs = epochs.cache()
    return epochs.repeat().with_options(options)


def gathers(*arrays: Any) -> bool:
    """Whether a fast fit gathers its batches in the compiled step (``GatheredBatches``): for
    NumPy arrays (what the stages pass), not for datasets or lists, which go to Keras as given.
    bench/experiment_speed.py, gathering at every batch size against Keras' pipeline above 32
    rows (2026-12-07, the epoch in one call): siamese 1.13 -> 1.82, multi_io 1.11 -> 1.40,
    Reuters 1.06 -> 1.26, inception 0.97 -> 1.05, residual and IMDB within their noise."""
    leaves = [leaf for structure in arrays for leaf in tf.nest.flatten(structure)]
    return bool(leaves) and all(isinstance(leaf, np.ndarray) for leaf in leaves)


def activation_bytes(model: keras.Model) -> int:
    """Bytes one row's forward pass writes, as float32: the model's inputs and the outputs of its
    layers (those of nested models too). A dimension unknown before the data comes (``None``)
    counts as 1: such a model gets the ``VALIDATION_BATCH`` cap, not an error."""

    def per_row(tensors: Any) -> int:
        return sum(math.prod(d or 1 for d in t.shape[1:]) for t in tf.nest.flatten(tensors))

    total = per_row(model.inputs)
    for layer in model.layers:
        total += per_row(layer.output)
        if isinstance(layer, keras.Model):
            total += activation_bytes(layer) // 4
    return 4 * total


def validation_batch(model: keras.Model, batch_size: int) -> int:
    """Rows per validation batch of a fast fit. The validation loss and metrics are means over
    the same rows whatever the batch, and for small networks fewer, bigger batches are cheaper.
    But a batch whose activations outgrow the caches slows the training steps after it:
    inception (541 KB of activations per image) trained 15 % slower validating 4,096 images at a
    time than the plain fit did with 64 (bench/experiment_speed.py, ratio 0.85). So at most
    ``VALIDATION_BYTES`` of activations and ``VALIDATION_BATCH`` rows, never fewer rows than a
    training batch."""
    rows = VALIDATION_BYTES // max(1, activation_bytes(model))
    return max(batch_size, min(VALIDATION_BATCH, rows))


@dataclass
class FitResult:
    history: dict[str, list[float]]
    epochs: int
    seconds: float
    samples_per_second: float


class _ValidationEvents(keras.callbacks.Callback):
    """A fast fit validates inside its train call, where no callback runs. Placed first, this
    tells the others at the end of each epoch that a validation ran, as Keras' ``evaluate``
    does (``on_test_begin``, then ``on_test_end`` with the validation logs unprefixed, before
    any ``on_epoch_end``): MLflow's callback logs its ``validation_*`` metrics there, and
    TensorBoard its ``evaluation_*_vs_iterations``."""

    def __init__(self, callbacks: Sequence[keras.callbacks.Callback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        validation = {k.removeprefix("val_"): v for k, v in (logs or {}).items() if k.startswith("val_")}
        if not validation:
            return
        for callback in self.callbacks:
            callback.on_test_begin()
        for callback in self.callbacks:
            callback.on_test_end(dict(validation))


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
    # the fast path: the same batches, gathered inside the compiled step, NumPy arrays only
    # (and their validation, in the same compiled call)
    gathered = GatheredBatches.of(model) if fast and gathers(x, y, *(valid or ())) else None
    if gathered and valid is not None:
        all_callbacks.insert(0, _ValidationEvents(all_callbacks))
    started = time.perf_counter()
    # inside interrupts.deferred(): a Ctrl-C while tf.data traces its functions is deferred too
    with interrupts.deferred(), contextlib.ExitStack() as stack:  # Ctrl-C ends the fit between two epochs
        if gathered:
            epochs_of_indices = gathered.loaded(x, y, batch_size, valid)
            data = {
                "x": stack.enter_context(epochs_of_indices),
                "batch_size": None,
                "shuffle": False,
                "steps_per_epoch": 1,  # one element an epoch, from one iterator for the whole fit
            }
        else:
            data = {"x": x, "y": y, "batch_size": batch_size}
        history = model.fit(
            **data,
            validation_data=None if gathered else valid,
            epochs=epochs,
            # a gathered fit validates in its own call, in GatheredBatches.valid_batch rows
            validation_batch_size=validation_batch(model, batch_size) if fast and not gathered else None,
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
