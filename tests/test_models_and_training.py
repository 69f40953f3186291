"""Builders, the fit loop and the experiment contract on small made-up data."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from pipeline import config, training
from pipeline.errors import TrainingDiverged
from pipeline.experiments import REGISTRY, get_experiment
from pipeline.models.dense import dense_layers
from pipeline.models.factories import make_optimizer
from pipeline.models.wide_deep import build_wide_deep


@pytest.fixture(scope="module")
def housing_like():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(300, 8)).astype("float64")
    y = x[:, 0] * 0.5 + np.sin(x[:, 3]) + rng.normal(0, 0.1, 300)
    parts = np.split(np.arange(300), [180, 240])
    return {
        f"{k}_{s}": a[idx]
        for s, idx in zip(("train", "valid", "test"), parts)
        for k, a in (("x", x), ("y", y))
    }


@pytest.fixture(scope="module")
def wide_deep_cfg():
    cfg = config.experiment_config(config.compose(), "wide_deep")
    cfg.train.epochs = 2
    return cfg


def test_single_input_model_has_one_output():
    x = np.random.default_rng(1).normal(size=(50, 8)).astype("float32")
    model = build_wide_deep(wide_train=x, deep_train=None, units=4, depth=2)
    assert [i.name for i in model.inputs] == ["wide"]
    out = model.predict({"wide": x}, verbose=0)
    assert set(out) == {"main"} and out["main"].shape == (50, 1)


def test_two_output_model_labels_predictions_by_output_name():
    rng = np.random.default_rng(2)
    wide, deep = rng.normal(size=(40, 5)), rng.normal(size=(40, 6))
    model = build_wide_deep(wide_train=wide, deep_train=deep, units=8, depth=3, aux_output=True)
    out = model.predict({"wide": wide, "deep": deep}, verbose=0)
    assert set(out) == {"main", "aux"}  # the note-000 slip (metric names as labels) cannot happen
    assert len([l for l in model.layers if l.name.startswith("hidden")]) == 3


def test_normalization_is_adapted_on_the_training_array_only():
    train = np.random.default_rng(3).normal(10.0, 5.0, size=(500, 5))
    model = build_wide_deep(wide_train=train, deep_train=None, units=2, depth=1)
    normalized = model.get_layer("wide_norm")(train.astype("float32")).numpy()
    assert abs(normalized.mean()) < 1e-3 and abs(normalized.std() - 1) < 1e-2


def test_soft_clip_bounds_outliers_and_keeps_ordinary_values():
    train = np.random.default_rng(4).normal(0.0, 1.0, size=(500, 3))
    model = build_wide_deep(wide_train=train, deep_train=None, units=2, depth=1, soft_clip=3.0)
    clip = keras.Model(model.inputs, model.get_layer("wide_clip_out").output)
    x = np.array([[0.5, -1.0, 500.0]], dtype="float32")  # the last: a z = 500 district
    squashed = clip.predict({"wide": x}, verbose=0)[0]
    z = model.get_layer("wide_norm")(x).numpy()[0]
    assert np.allclose(squashed[:2], z[:2], atol=0.05) and 2.99 < squashed[2] <= 3.0


def test_crossed_feature_is_an_input_per_column_and_survives_saving(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 8)).astype("float32")
    columns = {"latitude": x[:, 6:7], "longitude": x[:, 7:8]}
    model = build_wide_deep(
        wide_train=x[:, :5],
        deep_train=x,
        units=4,
        depth=1,
        aux_output=True,
        crossed_train=columns,
        cross_bins=4,
    )
    assert sorted(i.name for i in model.inputs) == ["deep", "latitude", "longitude", "wide"]
    assert model.get_layer("latitude_bins").get_config()["num_bins"] == 4
    inputs = {"wide": x[:, :5], "deep": x, **columns}
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        again.predict(inputs, verbose=0)["main"], model.predict(inputs, verbose=0)["main"], rtol=1e-6
    )


def test_tune_only_variant_is_tuned_not_trained(housing_like, wide_deep_cfg):
    experiment = get_experiment("wide_deep")
    tuned = wide_deep_cfg.tune.variant
    assert wide_deep_cfg.variants[tuned].tune_only
    assert tuned not in experiment.variants(wide_deep_cfg)  # the train stage skips it
    assert set(experiment.variants(wide_deep_cfg)) == {"single_input", "two_inputs", "two_outputs"}
    cfg = wide_deep_cfg.copy()
    cfg.variants[tuned].train.epochs = 2
    trained = experiment.train_variant(cfg, tuned, housing_like, seed=1)
    inputs, _ = experiment.split(cfg, tuned, housing_like, "test")
    assert set(inputs) == {"wide", "deep", "latitude", "longitude"} and inputs["deep"].shape[1] == 8
    assert trained.fit.epochs == 2
    assert experiment.score(cfg, tuned, trained.model, housing_like, "test")["rmse"] > 0


def test_invalid_depth_is_rejected():
    with pytest.raises(ValueError, match="depth"):
        build_wide_deep(wide_train=np.ones((3, 2)), deep_train=None, units=2, depth=0)


def test_a_dense_stack_refuses_an_order_it_would_silently_ignore():
    with pytest.raises(ValueError, match="order"):
        dense_layers([4], batch_norm=True, order=("dense", "batchnorm"))


def test_legacy_optimizer_arguments_are_refused_with_the_keras3_name():
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimizer({"name": "sgd", "lr": 0.1})
    with pytest.raises(ValueError, match="valid choices"):
        make_optimizer({"name": "adamw2"})


@pytest.mark.parametrize("variant", ["single_input", "two_inputs", "two_outputs"])
def test_every_variant_trains_and_scores(variant, housing_like, wide_deep_cfg):
    experiment = get_experiment("wide_deep")
    trained = experiment.train_variant(wide_deep_cfg, variant, housing_like, seed=1)
    assert trained.fit.epochs == 2 and len(trained.fit.history["val_loss"]) == 2
    scores = experiment.score(wide_deep_cfg, variant, trained.model, housing_like, "test")
    assert scores["rmse"] > 0 and ("rmse_aux" in scores) == (variant == "two_outputs")
    assert experiment.baseline(wide_deep_cfg, housing_like)["rmse"] > 0


def test_train_variant_runs_the_experiment_hooks_around_its_one_fit(
    housing_like, wide_deep_cfg, fit_callbacks
):
    """The config's callbacks, then the experiment's own, then the stage's; best_epoch, then the
    after-training metrics, which see the experiment's callbacks after the fit."""

    class Recorded(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.ended = True

    class HookedWideDeep(type(get_experiment("wide_deep"))):
        reports_best_epoch = True

        def extra_callbacks(self, cfg, variant, data):
            return [Recorded()]

        def after_training(self, cfg, variant, data, trained, callbacks):
            return {"recorded": [c.ended for c in callbacks], "params": trained.model.count_params()}

    cfg = wide_deep_cfg.copy()
    with open_dict(cfg):
        cfg.train.early_stopping = {"monitor": "val_loss", "patience": 5}
    stage = keras.callbacks.Callback()
    trained = HookedWideDeep().train_variant(cfg, "single_input", housing_like, seed=0, callbacks=[stage])
    [callbacks] = fit_callbacks
    assert [type(c) for c in callbacks] == [keras.callbacks.EarlyStopping, Recorded, type(stage)]
    assert callbacks[-1] is stage
    assert list(trained.metrics) == ["best_epoch", "recorded", "params"]
    assert trained.metrics["recorded"] == [True]
    assert trained.metrics["best_epoch"] == int(np.argmin(trained.fit.history["val_loss"])) + 1
    assert (
        "best_epoch"
        not in get_experiment("wide_deep")
        .train_variant(wide_deep_cfg, "single_input", housing_like, seed=0)
        .metrics
    )  # regressions do not report it


def test_same_seed_same_result(housing_like, wide_deep_cfg):
    experiment = get_experiment("wide_deep")
    runs = [experiment.train_variant(wide_deep_cfg, "two_inputs", housing_like, seed=5) for _ in range(2)]
    assert runs[0].fit.history == runs[1].fit.history


def test_diverging_loss_raises(housing_like, wide_deep_cfg):
    cfg = wide_deep_cfg.copy()
    cfg.train.optimizer = {"name": "sgd", "learning_rate": 1.0e6}
    cfg.train.epochs = 3
    with pytest.raises(TrainingDiverged, match="non-finite"):
        get_experiment("wide_deep").train_variant(cfg, "single_input", housing_like, seed=0)


def test_fast_path_gives_the_plain_fit_result(housing_like, wide_deep_cfg):
    """steps_per_execution and big validation batches change speed, not the numbers."""
    experiment = get_experiment("wide_deep")
    plain_cfg = wide_deep_cfg.copy()
    plain_cfg.train.steps_per_execution = 1
    plain = experiment.train_variant(plain_cfg, "two_outputs", housing_like, seed=3, fast=False)
    fast = experiment.train_variant(wide_deep_cfg, "two_outputs", housing_like, seed=3, fast=True)
    for key, values in plain.fit.history.items():
        if not key.startswith("val_"):  # Keras averages per-output val losses over batches
            np.testing.assert_allclose(fast.fit.history[key], values, rtol=1e-5, err_msg=key)
    scores = [
        experiment.score(wide_deep_cfg, "two_outputs", run.model, housing_like, "valid")
        for run in (plain, fast)
    ]
    assert scores[0] == pytest.approx(scores[1], rel=1e-5)


def test_registry_covers_every_configured_experiment():
    for name, cfg in config.compose().experiments.items():
        assert name in REGISTRY, name


def test_best_checkpoint_restores_the_best_epoch_and_cleans_up():
    """train.checkpoint: the weights kept are the best epoch's by the monitored metric, not the
    last epoch's, and the temporary checkpoint file is gone afterwards."""
    from pipeline.training import BestCheckpoint, callbacks_from_config

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 1))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")

    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 4:  # spoil the weights: the last epoch ends worse than the best one
                self.model.set_weights([w + 5.0 for w in self.model.get_weights()])

        def on_epoch_end(self, epoch, logs=None):
            snapshots.append((logs["val_loss"], [w.copy() for w in self.model.get_weights()]))

    (checkpoint,) = callbacks_from_config({"checkpoint": {"monitor": "val_loss"}})
    assert isinstance(checkpoint, BestCheckpoint)
    model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=[checkpoint, Snapshot()])
    best_loss, best_weights = min(snapshots, key=lambda pair: pair[0])
    assert best_loss < snapshots[-1][0]
    for kept, best in zip(model.get_weights(), best_weights):
        np.testing.assert_allclose(kept, best, rtol=1e-6)
    assert not checkpoint.folder.exists()


def _two_in_two_out(dropout: float) -> keras.Model:
    wide, deep = keras.Input((3,), name="wide"), keras.Input((5,), name="deep")
    hidden = keras.layers.Dropout(dropout)(keras.layers.Dense(8, activation="relu")(deep))
    merged = keras.layers.Concatenate()([wide, hidden])
    outputs = {
        "main": keras.layers.Dense(1, name="main")(merged),
        "aux": keras.layers.Dense(1, name="aux")(hidden),
    }
    return keras.Model({"wide": wide, "deep": deep}, outputs)


@pytest.mark.parametrize("validated", [False, True], ids=["unvalidated", "validated"])
@pytest.mark.parametrize("shape", ["one_array", "dicts"])
def test_gathered_batches_train_as_keras_own_batches(shape, validated):
    """The fast path's batches (row indices from tf.data, rows gathered in the compiled step)
    give the weights of Keras' own shuffled array batches bit for bit: dropout masks, a last
    partial batch (203 rows, batch 16) and several epochs included; and its validation, in
    the same compiled call, gives Keras' own ``val_*`` history bit for bit (validation
    batches of ``training.validation_batch`` rows in both, 50 validation rows: a partial last
    one). The day Keras changes how it shuffles or validates, this fails
    (training.index_batches and GatheredBatches copy its recipe)."""
    rng = np.random.default_rng(0)
    n = 203 + 50
    if shape == "one_array":
        x, y = rng.normal(size=(n, 5)).astype("float32"), rng.integers(0, 3, n)
        metrics = ["accuracy"]

        def build():
            return keras.Sequential(
                [
                    keras.Input((5,)),
                    keras.layers.Dense(8, activation="relu"),
                    keras.layers.Dropout(0.3),
                    keras.layers.Dense(3, activation="softmax"),
                ]
            )

        loss = "sparse_categorical_crossentropy"
    else:
        x = {"wide": rng.normal(size=(n, 3)), "deep": rng.normal(size=(n, 5))}  # float64, as NumPy makes them
        y = {"main": rng.normal(size=(n, 1)), "aux": rng.normal(size=(n, 1))}

        def build():
            return _two_in_two_out(0.3)

        loss = {"main": "mse", "aux": "mse"}
        metrics = {"main": ["mae"]}
    train, valid = (
        tuple(keras.tree.map_structure(lambda a: a[rows], part) for part in (x, y))
        for rows in (slice(0, 203), slice(203, n))
    )
    valid = valid if validated else None
    weights, histories = [], []
    for gathered in (True, False):
        training.seed_everything(7)
        model = build()
        model.compile(optimizer="adam", loss=loss, metrics=metrics, steps_per_execution=4)
        if gathered:
            history = training.fit(model, train, valid, epochs=3, batch_size=16).history
        else:
            history = model.fit(
                *train,
                validation_data=valid,
                validation_batch_size=training.validation_batch(model, 16),
                epochs=3,
                batch_size=16,
                shuffle=True,
                verbose=0,
            ).history
        weights.append(model.get_weights())
        histories.append({key: [float(v) for v in values] for key, values in history.items()})
    for ours, keras_own in zip(*weights, strict=True):
        np.testing.assert_array_equal(ours, keras_own)
    ours, keras_own = histories
    ours.pop("learning_rate")  # training.fit's LearningRateLogger
    assert ours == keras_own
    assert any(key.startswith("val_") for key in ours) == validated


def test_a_recompiled_model_trains_as_keras_trains_it():
    """Fit, freeze a layer, compile again with another learning rate, fit again (transfer's
    model_B_on_A): the second fit trains what the second compile says, as Keras' own fit does,
    not on with the train function traced for the first compile (its optimizer and trainable
    variables). Keras' compile drops its functions; GatheredBatches drops its own then too."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    weights = []
    for gathered in (True, False):
        training.seed_everything(3)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8), keras.layers.Dense(1)])
        for frozen, learning_rate in ((False, 1e-2), (True, 1e-3)):
            model.layers[0].trainable = not frozen
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
            if gathered:
                training.fit(model, (x, y), (x[:16], y[:16]), epochs=2, batch_size=16)
            else:
                model.fit(
                    x,
                    y,
                    validation_data=(x[:16], y[:16]),
                    validation_batch_size=training.validation_batch(model, 16),
                    epochs=2,
                    batch_size=16,
                    verbose=0,
                )
        weights.append(model.get_weights())
    for ours, keras_own in zip(*weights, strict=True):
        np.testing.assert_array_equal(ours, keras_own)


def test_gathered_validation_tells_callbacks_as_keras_evaluate_does():
    """Validated inside the train call, a fast fit still gives the callbacks Keras' validation
    events: on_test_begin, on_test_end with the unprefixed validation logs, then on_epoch_end,
    with the values of Keras' own fit (MLflow's callback logs ``validation_*`` on test end)."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(120, 5)).astype("float32"), rng.normal(size=(120, 1)).astype("float32")

    class Events(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_test_begin(self, logs=None):
            self.seen.append(("test_begin", None))

        def on_test_end(self, logs=None):
            self.seen.append(("test_end", {k: float(v) for k, v in logs.items()}))

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(("epoch_end", sorted(logs)))

    seen = []
    for gathered in (True, False):
        training.seed_everything(5)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        events = Events()
        if gathered:
            training.fit(
                model, (x[:80], y[:80]), (x[80:], y[80:]), epochs=2, batch_size=16, callbacks=[events]
            )
        else:
            model.fit(
                x[:80],
                y[:80],
                validation_data=(x[80:], y[80:]),
                validation_batch_size=training.validation_batch(model, 16),
                epochs=2,
                batch_size=16,
                callbacks=[training.LearningRateLogger(), events],
                verbose=0,
            )
        seen.append(events.seen)
    assert seen[0] == seen[1]
    assert [name for name, _ in seen[0]] == ["test_begin", "test_end", "epoch_end"] * 2
    assert set(seen[0][1][1]) == {"loss", "mae"}


def test_keras_fit_shuffles_every_epoch_alike_under_a_global_seed():
    """What training.index_batches replays (``cache``): Keras 3's array pipeline makes a fresh
    tf.data iterator each epoch, whose seeded ``tf.random.shuffle`` starts again, so under
    ``keras.utils.set_random_seed`` every epoch sees the same permutation (the seed notes' own
    fits too; like tensorflow/tensorflow#29558 for datasets). The day this fails, Keras
    reshuffles per epoch: drop the ``cache`` (the bit-for-bit test above fails too)."""
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    training.seed_everything(7)
    rows = np.arange(50, dtype="float32")
    epochs = ArrayDataAdapter(rows, rows, batch_size=50, shuffle=True).get_tf_dataset()
    first, second = (next(iter(epochs))[0].numpy() for _ in range(2))
    assert not np.array_equal(first, rows) and np.array_equal(first, second)


def test_gathered_model_still_fits_arrays_the_keras_way():
    """A model trained on the fast path is still an ordinary Keras model: a plain ``model.fit``
    on arrays afterwards trains it (the installed step passes non-index batches through)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    training.fit(model, (x, y), None, epochs=1, batch_size=8)
    rows = tf.nest.flatten(training.GatheredBatches.of(model).rows)
    assert [int(tf.shape(r)[0]) for r in rows] == [0, 0]  # the copy of the data is freed after the fit
    before = model.get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(before, model.get_weights()[0])


def test_gathered_model_fits_data_of_another_layout():
    """A second fast fit on rows of another dtype (y float32, then int64) makes new row
    variables; the train function traced for the old ones is traced again, not left reading
    the old, emptied ones."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    for y in (rng.normal(size=(40, 1)).astype("float32"), rng.integers(0, 2, (40, 1))):
        assert training.fit(model, (x, y), None, epochs=1, batch_size=8).epochs == 1


def test_gathered_fit_runs_an_epoch_per_call_and_traces_its_step_once():
    """The fast path hands the step an epoch's row indices at once (training.index_batches,
    endless: one iterator for the fit) and builds the optimizer and metrics before the first
    trace: Keras' own fit traces its train step twice (the first trace makes variables), the
    gathered one once, validation included, whatever steps_per_execution says; and the model's
    own steps_per_execution and train function are back after the fit."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(203, 5)).astype("float32"), rng.normal(size=(203, 1)).astype("float32")
    epochs = training.index_batches(203, 16)
    assert epochs.cardinality() == tf.data.INFINITE_CARDINALITY
    (batches,) = list(epochs.take(1))
    assert batches.row_lengths().numpy().tolist() == [16] * 12 + [11]
    assert sorted(batches.flat_values.numpy().tolist()) == list(range(203))
    traces = []
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], steps_per_execution=4)
    gathered = training.GatheredBatches.of(model)  # installs its step
    gathered_step = model.train_step

    def counting(data):
        traces.append(data)
        return gathered_step(data)

    model.train_step = counting
    fit = training.fit(model, (x, y), (x[:50], y[:50]), epochs=3, batch_size=16)
    assert len(traces) == 1
    assert fit.epochs == 3 and len(fit.history["val_mae"]) == 3
    assert model.steps_per_execution == 4 and model.train_function is None
    assert list(gathered.functions) == [(True, training.validation_batch(model, 16))]


def test_activation_bytes_counts_an_unknown_dimension_as_one():
    """A layer whose output has a dimension known only from the data (None) does not break the
    validation batch rule."""
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert 0 < training.activation_bytes(model) <= 4 * (4 + 4 + 2)  # per row: inputs, layers
    assert training.validation_batch(model, 32) == training.VALIDATION_BATCH


def test_validation_batches_hold_a_bounded_amount_of_activations():
    """A fast fit validates small networks in batches of VALIDATION_BATCH rows, and networks
    with big activations (convolutions) in batches of at most VALIDATION_BYTES of them, never
    fewer rows than a training batch."""
    dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
    assert training.activation_bytes(dense) == 4 * (8 + 16 + 1)
    assert training.validation_batch(dense, 32) == training.VALIDATION_BATCH
    conv = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(64, 3, padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    per_row = training.activation_bytes(conv)
    assert per_row == 4 * (28 * 28 + 28 * 28 * 64 + 64 + 10)
    assert training.validation_batch(conv, 16) == training.VALIDATION_BYTES // per_row < 4096
    assert training.validation_batch(conv, 4000) == 4000


def test_only_numpy_arrays_are_gathered():
    """The fast path gathers the rows of NumPy arrays (what the stages pass) at any batch size;
    anything else (lists, datasets) goes to Keras' own fit as given (training.gathers)."""
    x, y = np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")
    assert training.gathers(x, y)
    assert training.gathers({"a": x, "b": x}, y)
    assert not training.gathers(x.tolist(), y)
    assert not training.gathers(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
