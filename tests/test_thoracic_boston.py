"""Cross-validated experiments (notes 001 thoracic, 002 Boston) on small made-up data."""

import contextlib
import warnings

import keras
import numpy as np
import optuna
import pytest
from omegaconf import OmegaConf
from optuna_integration import KerasPruningCallback
from sklearn.model_selection import KFold

from pipeline import config, training
from pipeline.data.splits import SPLITTERS
from pipeline.errors import ConfigError
from pipeline.experiments import get_experiment
from pipeline.experiments.boston import Boston
from pipeline.experiments.crossval import make_splitter, summarize
from pipeline.experiments.thoracic import Thoracic
from pipeline.models.dense import build_mlp
from pipeline.tune import search_space, suggest


@pytest.fixture(scope="module")
def composed():
    return config.compose()


def shrunk(composed, name, **splitter):
    """The experiment's config with 2 epochs and, if given, other splitter options."""
    cfg = config.experiment_config(composed, name).copy()
    cfg.train.epochs = 2
    cfg.train.cv.splitter.update(splitter)
    return cfg


@pytest.fixture(scope="module")
def patients():
    """120 'patients', 15 % positive, the first feature carries the signal."""
    rng = np.random.default_rng(0)
    y = (np.arange(120) % 20 < 3).astype("int64")
    x = rng.normal(50.0, 10.0, size=(120, 5)).astype("float32")
    x[:, 0] += 15.0 * y
    return {"x": x, "y": y}


@pytest.fixture(scope="module")
def houses():
    rng = np.random.default_rng(1)
    x = rng.normal(100.0, 30.0, size=(100, 4))
    y = 20 + 0.1 * x[:, 0] + rng.normal(0, 1, 100)
    return {"x_train": x[:80], "y_train": y[:80], "x_test": x[80:], "y_test": y[80:]}


class RecordingLogger:
    """A RunLogger that remembers where each metric went."""

    def __init__(self, run="variant", records=None):
        self.run, self.records = run, records if records is not None else []

    def log_metrics(self, metrics, step=None):
        self.records.append((self.run, dict(metrics), step))

    @contextlib.contextmanager
    def child(self, name):
        yield RecordingLogger(name, self.records)


class CountingCallback(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.fits = 0

    def on_train_begin(self, logs=None):
        self.fits += 1


# --- builder ----------------------------------------------------------------------------


def test_thoracic_network_is_the_notes():
    x = np.random.default_rng(2).normal(size=(40, 17)).astype("float32")
    model = build_mlp(train_x=x, units=30, depth=2, dropout=0.5, output_activation="sigmoid")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Normalization", "Dense", "Dropout", "Dense", "Dense"]
    out = model.predict(x, verbose=0)
    assert out.shape == (40, 1) and ((out > 0) & (out < 1)).all()


def test_regressor_has_no_dropout_and_a_linear_output():
    x = np.random.default_rng(3).normal(size=(30, 13))
    model = build_mlp(train_x=x, units=64, depth=2)
    assert [l.units for l in model.layers if isinstance(l, keras.layers.Dense)] == [64, 64, 1]
    assert not any(isinstance(l, keras.layers.Dropout) for l in model.layers)
    assert model.get_layer("output").activation.__name__ == "linear"


def test_normalization_learns_from_the_given_rows_only():
    x = np.random.default_rng(4).normal(10.0, 5.0, size=(200, 3)).astype("float32")
    model = build_mlp(train_x=x[:100], units=2, depth=1)
    normalized = model.get_layer("normalization")(x[:100]).numpy()
    assert np.allclose(normalized.mean(axis=0), 0, atol=1e-4)


@pytest.mark.parametrize("bad", [{"depth": 0}, {"units": 0}, {"dropout": 1.0}])
def test_bad_builder_arguments_are_rejected(bad):
    with pytest.raises(ValueError):
        build_mlp(train_x=np.ones((3, 2)), **{"units": 2, "depth": 1, **bad})


# --- cross-validation machinery -----------------------------------------------------------


def test_splitter_from_config_and_clear_errors():
    assert isinstance(make_splitter({"name": "kfold", "n_splits": 4}), KFold)
    with pytest.raises(ConfigError, match="kfold.*repeated_stratified_kfold"):
        make_splitter({"name": "leave_one_out"})
    with pytest.raises(ConfigError, match="n_folds"):
        make_splitter({"name": "kfold", "n_folds": 4})


def test_note_002_folds_are_sequential_quarters(composed):
    splitter = make_splitter(config.experiment_config(composed, "boston").train.cv.splitter)
    folds = [val for _, val in splitter.split(np.zeros((404, 1)))]
    assert [(f[0], f[-1]) for f in folds] == [(0, 100), (101, 201), (202, 302), (303, 403)]


def test_fold_scores_are_summarized_as_mean_std_and_folds():
    folds = [{"mae": 2.0, "rmse": 3.0}, {"mae": 3.0, "rmse": 5.0}]
    assert summarize(folds) == {
        "cv_mae_mean": 2.5,
        "cv_mae_std": 0.5,
        "cv_rmse_mean": 4.0,
        "cv_rmse_std": 1.0,
    }
    per_fold = summarize(folds, per_fold=True)
    assert per_fold["cv_mae_fold1"] == 2.0 and per_fold["cv_rmse_fold2"] == 5.0


def test_each_fold_normalizes_with_its_training_part_only(composed, houses, monkeypatch):
    cfg = shrunk(composed, "boston")
    cfg.train.batch_size = 16
    seen = []
    original = Boston.build_model

    def spy(self, cfg, variant, train_x):
        model = original(self, cfg, variant, train_x)
        seen.append((train_x, model.get_layer("normalization").mean.numpy().ravel()))
        return model

    monkeypatch.setattr(Boston, "build_model", spy)
    Boston().train_variant(cfg, "faithful", houses, seed=1)
    x = houses["x_train"].astype("float32")
    expected = [x[fit] for fit, _ in KFold(4).split(x)] + [x]  # 4 folds, then the final model
    assert len(seen) == len(expected)
    for (rows, mean), fold_rows in zip(seen, expected):
        assert np.array_equal(rows, fold_rows)
        assert np.allclose(mean, fold_rows.mean(axis=0), rtol=1e-5)


def test_boston_logs_one_child_run_per_fold_and_reports_each_fold(composed, houses):
    cfg = shrunk(composed, "boston")
    cfg.train.batch_size = 16
    logger = RecordingLogger()
    stage_callback = CountingCallback()
    trained = get_experiment("boston").train_variant(
        cfg, "faithful", houses, seed=1, logger=logger, callbacks=[stage_callback]
    )
    assert [run for run, _, _ in logger.records] == ["fold-1", "fold-2", "fold-3", "fold-4"]
    assert all(set(metrics) == {"val_mae", "val_rmse"} for _, metrics, _ in logger.records)
    assert stage_callback.fits == 1  # the stage's callbacks watch the first fold only
    metrics = trained.metrics
    folds = [metrics[f"cv_mae_fold{k}"] for k in range(1, 5)]
    assert metrics["cv_mae_mean"] == pytest.approx(np.mean(folds))
    assert metrics["cv_mae_std"] == pytest.approx(np.std(folds))
    assert [m["val_mae"] for _, m, _ in logger.records] == pytest.approx(folds)
    assert len(trained.fit.history["val_mae"]) == 2  # the first fold's learning curve
    assert trained.model.predict(houses["x_test"], verbose=0).shape == (20, 1)


def test_thoracic_logs_fold_scores_as_steps_of_the_variant_run(composed, patients):
    cfg = shrunk(composed, "thoracic", n_splits=3, n_repeats=2)
    logger = RecordingLogger()
    trained = get_experiment("thoracic").train_variant(
        cfg, "binary_crossentropy", patients, seed=1, logger=logger
    )
    assert [(run, step) for run, _, step in logger.records] == [("variant", k) for k in range(1, 7)]
    assert set(logger.records[0][1]) == {"fold_val_accuracy", "fold_val_auc", "fold_val_log_loss"}
    assert set(trained.metrics) == {
        f"cv_{m}_{s}" for m in ("accuracy", "auc", "log_loss") for s in ("mean", "std")
    }


def test_pruner_sees_each_epoch_once(composed, patients):
    cfg = shrunk(composed, "thoracic", n_splits=3, n_repeats=1)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_experiment("thoracic").train_variant(
            cfg, "binary_crossentropy", patients, seed=1, callbacks=[KerasPruningCallback(trial, "val_auc")]
        )
    assert not [w for w in caught if "already reported" in str(w.message)]
    assert sorted(study.trials[0].intermediate_values) == [0, 1]


def test_early_stopping_validates_every_fold_and_sets_the_final_epochs(composed, houses):
    cfg = shrunk(composed, "boston")
    cfg.train.batch_size = 16
    cfg.train.epochs = 10
    OmegaConf.set_struct(cfg, False)
    # no epoch improves on the first by 100: every fold that validates stops after epoch 2
    cfg.train.early_stopping = {"monitor": "val_mae", "patience": 0, "min_delta": 100}
    trained = Boston().train_variant(cfg, "faithful", houses, seed=1)
    assert trained.fit.epochs == 2  # the median of the folds' epochs: all four stopped


def test_fold_ensemble_final_model_is_the_mean_of_the_fold_models(composed, houses, monkeypatch):
    cfg = shrunk(composed, "boston")
    cfg.train.batch_size = 16
    cfg.train.cv.final = "fold_ensemble"
    experiment = Boston()
    fold_models = []
    original_fit = Boston._fit

    def recording_fit(self, *args, **kwargs):
        model, fit = original_fit(self, *args, **kwargs)
        fold_models.append(model)
        return model, fit

    monkeypatch.setattr(Boston, "_fit", recording_fit)
    trained = experiment.train_variant(cfg, "faithful", houses, seed=1)
    assert len(fold_models) == 4  # the four folds; no refit on every row
    x = houses["x_test"].astype("float32")
    members = np.mean([m.predict(x, verbose=0) for m in fold_models], axis=0)
    assert trained.model.predict(x, verbose=0) == pytest.approx(members, rel=1e-5)


def test_unknown_final_model_is_a_config_error_before_training(composed, houses):
    cfg = shrunk(composed, "boston")
    cfg.train.cv.final = "average"
    with pytest.raises(ConfigError, match="refit, fold_ensemble"):
        Boston().train_variant(cfg, "faithful", houses, seed=1)


# --- scores and baselines -------------------------------------------------------------------


def test_thoracic_scores_clip_certain_predictions():
    scores = Thoracic().metrics_of(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 0.2]))
    assert scores["accuracy"] == 0.75 and scores["auc"] == 0.625
    assert np.isfinite(scores["log_loss"]) and scores["log_loss"] > 3  # one confident miss


def test_thoracic_baseline_is_the_majority_class_on_the_same_folds(composed, patients):
    cfg = config.experiment_config(composed, "thoracic")
    baseline = Thoracic().baseline(cfg, patients)
    assert baseline["cv_accuracy_mean"] == pytest.approx(102 / 120)
    assert baseline["cv_auc_mean"] == 0.5 and baseline["train_auc"] == 0.5
    prevalence = 18 / 120
    entropy = -(prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence))
    assert baseline["cv_log_loss_mean"] == pytest.approx(entropy, rel=2e-2)


def test_boston_baseline_predicts_the_training_mean(composed, houses):
    baseline = Boston().baseline(config.experiment_config(composed, "boston"), houses)
    mean = houses["y_train"].mean()
    assert baseline["test_mae"] == pytest.approx(np.abs(houses["y_test"] - mean).mean(), rel=1e-5)
    assert {"cv_mae_mean", "cv_mae_std", "cv_rmse_mean", "test_rmse"} <= set(baseline)


def test_evaluation_names_the_split_it_scores(composed, houses, patients):
    model = build_mlp(train_x=houses["x_train"], units=2, depth=1)
    model.compile(loss="mse")
    boston = config.experiment_config(composed, "boston")
    assert set(Boston().evaluation(boston, "fast", model, houses)) == {"test_mae", "test_rmse"}
    example = Thoracic().input_example(config.experiment_config(composed, "thoracic"), "poisson", patients)
    assert example.shape == (5, 5) and example.dtype == np.float32


# --- registry, configs, errors ----------------------------------------------------------------


@pytest.mark.parametrize("name, cls", [("thoracic", Thoracic), ("boston", Boston)])
def test_registered_and_configured(composed, name, cls):
    cfg = config.experiment_config(composed, name)
    assert isinstance(get_experiment(name), cls)
    assert SPLITTERS[composed.datasets[cfg.dataset].source].__name__ == "split_as_shipped"
    assert set(cfg.note_figures) <= set(cfg.variants)
    space = search_space(OmegaConf.to_container(cfg.tune.space))
    values = {
        path: spec["choices"][0] if spec["type"] == "categorical" else spec["low"]
        for path, spec in space.items()
    }
    tuned = suggest(optuna.trial.FixedTrial(values), cfg)  # raises if a path is not a config key
    assert OmegaConf.select(tuned, "model.depth") == 1
    assert cfg.tune.metric.startswith("cv_") and cfg.tune.variant in cfg.variants


def test_thoracic_variants_are_the_notes_losses(composed):
    cfg = config.experiment_config(composed, "thoracic")
    losses = {v: Thoracic().resolve(cfg, v).train.loss for v in cfg.variants}
    assert losses == {
        name: name
        for name in (
            "mean_squared_logarithmic_error",
            "binary_crossentropy",
            "mean_squared_error",
            "mean_absolute_error",
            "poisson",
        )
    }


def test_bad_variant_split_and_loss_are_config_errors(composed, patients):
    cfg = config.experiment_config(composed, "thoracic").copy()
    with pytest.raises(ConfigError, match="valid choices: mean_squared_logarithmic_error"):
        Thoracic().train_variant(cfg, "hinge", patients, seed=1)
    with pytest.raises(ConfigError, match="has no 'test' split"):
        Thoracic().split(cfg, "poisson", patients, "test")
    cfg.train.loss = "mean_squared_logarithmic_errr"
    with pytest.raises(ConfigError, match="Unknown Keras loss"):
        Thoracic().build_model(cfg, "mean_squared_logarithmic_error", patients["x"])


# --- one traced model per variant ----------------------------------------------------------


def fitted_functions(monkeypatch) -> list:
    """The train function each fit ran, in order."""
    seen = []
    original = training.fit

    def recording(model, *args, **kwargs):
        result = original(model, *args, **kwargs)
        seen.append(training.GatheredBatches.of(model).function)
        return result

    monkeypatch.setattr(training, "fit", recording)
    return seen


@pytest.mark.parametrize(
    "name, variant, data, splitter",
    [
        # dropout 0.5 and a Normalization layer: generators and statistics change with every fold
        ("thoracic", "binary_crossentropy", "patients", {"n_splits": 3, "n_repeats": 1}),
        ("boston", "faithful", "houses", {}),
    ],
)
def test_folds_on_one_traced_model_give_the_weights_of_fresh_models(
    composed, request, monkeypatch, name, variant, data, splitter
):
    cfg = shrunk(composed, name, **splitter)
    cfg.train.epochs, cfg.train.batch_size = 3, 16
    data = request.getfixturevalue(data)
    with monkeypatch.context() as patched:
        functions = fitted_functions(patched)
        traced = get_experiment(name).train_variant(cfg, variant, data, seed=1)
    # traced twice (fold 1 validates every epoch, in its train function; the rest do not),
    # then fitted on
    assert len(functions) > 3 and len({id(f) for f in functions}) == 2
    with monkeypatch.context() as patched:
        patched.setattr(training, "TracedModel", training.UntracedModel)
        functions = fitted_functions(patched)
        fresh = get_experiment(name).train_variant(cfg, variant, data, seed=1)
    assert len({id(f) for f in functions}) == len(functions)  # the old way: a model per fit
    assert traced.metrics == fresh.metrics
    assert traced.fit.history == fresh.fit.history
    for ours, theirs in zip(traced.model.get_weights(), fresh.model.get_weights(), strict=True):
        assert np.array_equal(ours, theirs)
    # the final model is an ordinary one: it saves and loads with the adapted statistics
    x = data["x"] if "x" in data else data["x_test"]
    assert np.array_equal(traced.model.predict(x, verbose=0), fresh.model.predict(x, verbose=0))


def test_keras_normalization_still_bakes_its_statistics_into_traced_functions():
    """Why TracedModel turns the traced model's Normalization statistics into variables: a
    traced function of a stock Keras 3 layer keeps the statistics it was traced with, even after
    its adapted variables change. When this fails, Keras reads them at run time and
    training._normalization_as_variables can go."""
    import tensorflow as tf

    layer = keras.layers.Normalization()
    layer.adapt(np.array([[0.0], [2.0]], dtype="float32"))  # mean 1, variance 1
    apply = tf.function(lambda x: layer(x))
    assert float(apply(tf.constant([[3.0]]))[0, 0]) == pytest.approx(2.0)
    layer.adapt_mean.assign([3.0])
    assert float(apply(tf.constant([[3.0]]))[0, 0]) == pytest.approx(2.0)  # still mean 1
