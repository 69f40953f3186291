"""The logged model of every experiment: raw rows in, named columns out, and the same answer as
the trained network fed the way the stages feed it (small made-up data, no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import experiment_cfg
from pipeline.data.splits import split_imdb, split_reuters
from pipeline.experiments import REGISTRY, get_experiment
from pipeline.serving import FASHION_CLASSES

rng = np.random.default_rng(0)


def _images(n):
    y = np.arange(n) % 10
    return np.clip(rng.normal(y[:, None, None] * 20 + 30, 10, (n, 28, 28)), 0, 255).astype("uint8"), y


def _reviews():
    words = {9: "great", 8: "good", 3: "poor", 2: "bad"}

    def make(n):
        ratings = rng.choice(list(words), n)
        texts = [" ".join([words[r]] * 3 + ["film"] * int(rng.integers(1, 9))) + " é" for r in ratings]
        return np.array(texts, dtype=object), (ratings >= 7).astype("int64"), ratings.astype("int64")

    (t_train, y_train, r_train), (t_test, y_test, r_test) = make(60), make(20)
    return split_imdb(
        {
            "text_train": t_train,
            "y_train": y_train,
            "rating_train": r_train,
            "text_test": t_test,
            "y_test": y_test,
            "rating_test": r_test,
        },
        {"valid_size": 10, "random_state": 0},
    )


def _newswires():
    labels = rng.integers(0, 46, 80)
    rows = np.empty(80, dtype=object)
    rows[:] = [list(rng.integers(1, 10_000, int(rng.integers(3, 30)))) for _ in labels]
    return split_reuters(
        {"x_train": rows[:60], "y_train": labels[:60], "x_test": rows[60:], "y_test": labels[60:]},
        {"valid_size": 10, "random_state": None},
    )


def made_up(dataset: str) -> dict:
    """Arrays shaped like data/<dataset>/arrays.npz."""
    if dataset == "california_housing":
        x = {s: rng.normal(size=(n, 8)) * 3 + 30 for s, n in (("train", 200), ("valid", 40), ("test", 40))}
        return {
            **{f"x_{s}": v for s, v in x.items()},
            **{f"y_{s}": rng.uniform(0.5, 5, len(v)) for s, v in x.items()},
        }
    if dataset == "thoracic_surgery":
        return {"x": rng.integers(0, 5, (80, 17)).astype("float32"), "y": np.arange(80) % 6 == 0}
    if dataset == "boston_housing":
        return {
            "x_train": rng.normal(10, 3, (60, 13)),
            "y_train": rng.normal(22, 5, 60),
            "x_test": rng.normal(10, 3, (20, 13)),
            "y_test": rng.normal(22, 5, 20),
        }
    if dataset == "fashion_mnist":
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = _images(300), _images(60), _images(60)
        return dict(
            x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid, x_test=x_test, y_test=y_test
        )
    if dataset == "imdb_reviews":
        return _reviews()
    if dataset == "reuters":
        return _newswires()
    raise AssertionError(dataset)


def shrunk_cfg(name: str):
    cfg = experiment_cfg(name)
    if "max_tokens" in cfg.model:
        cfg.model.max_tokens = 50
    if name == "thoracic":
        cfg.train.cv.splitter.n_repeats = 1
    return cfg


def a_model(name: str):
    """(experiment, config, variant, data, an untrained model of the tune stage's variant)."""
    experiment, cfg = get_experiment(name), shrunk_cfg(name)
    variant = cfg.tune.variant
    data = made_up(cfg.dataset)
    model = experiment.build(experiment.resolve(cfg, variant), variant, data)
    return experiment, cfg, variant, data, model


@pytest.fixture
def mlflow_store(tracking_store):
    import mlflow

    mlflow.set_tracking_uri(tracking_store)
    yield mlflow
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_logged_model_answers_raw_rows_as_the_network_does(name, mlflow_store):
    from pipeline import tracking

    mlflow = mlflow_store
    experiment, cfg, variant, data, model = a_model(name)
    with mlflow.start_run() as run:
        info = tracking.log_servable(experiment.servable(cfg, variant, model, data))
    logged = mlflow.MlflowClient().search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.model_id for m in logged] == [info.model_id]
    assert logged[0].source_run_id == run.info.run_id

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    run_cfg = experiment.resolve(cfg, variant)
    split = experiment.serving_split
    raw = experiment.raw_inputs(run_cfg, variant, data, split)
    answer = loaded.predict(raw)
    network = model.predict(experiment.split(run_cfg, variant, data, split)[0], verbose=0)
    network = network if isinstance(network, dict) else {None: network}
    for entry in loaded.metadata.signature.outputs.inputs:
        assert entry.name in answer.columns
    for output in experiment.servable(cfg, variant, model, data).spec["outputs"]:
        values = np.asarray(network[output.get("output")], dtype="float64")
        column = (
            output["name"]
            if output["kind"] == "value"
            else (
                f"{output['name']}_probability"
                if output["kind"] == "binary"
                else f"probability_{output['labels'][0]}"
            )
        )
        expected = values.reshape(-1) if output["kind"] != "classes" else values[:, 0]
        np.testing.assert_allclose(answer[column].to_numpy(), expected, rtol=1e-5, atol=1e-6)
        if output["kind"] == "classes":
            assert set(answer[output["name"]]) <= set(output["labels"])
    assert loaded.metadata.get_input_schema() is not None
    targets = experiment.split(run_cfg, variant, data, split)[1]
    assert len(answer) == len(next(iter(targets.values())) if isinstance(targets, dict) else targets)


def test_inputs_are_what_a_user_has():
    """Tables with named columns in original units, uint8 images, texts, word-id lists."""
    wide, cfg, variant, data, _ = a_model("wide_deep")
    table = wide.raw_inputs(wide.resolve(cfg, variant), variant, data, "test")
    assert list(table.columns)[:2] == ["MedInc", "HouseAge"] and np.allclose(table, data["x_test"])
    imdb, cfg, variant, data, _ = a_model("imdb")
    texts = imdb.raw_inputs(cfg, variant, data, "test")
    assert list(texts.columns) == ["text"] and texts["text"].str.contains("film").all()
    reuters, cfg, variant, data, _ = a_model("reuters")
    sequences = reuters.raw_inputs(cfg, variant, data, "test")
    assert isinstance(sequences["word_ids"][0], list)
    fashion, cfg, variant, data, _ = a_model("fashion_regularization")
    assert fashion.raw_inputs(cfg, variant, data, "test").dtype == np.uint8


def test_outputs_are_named_by_what_they_mean(mlflow_store):
    from pipeline.serving.raw_model import RawInputModel

    experiment, cfg, variant, data, model = a_model("fashion_regularization")
    servable = experiment.servable(cfg, variant, model, data)
    answer = RawInputModel().setup(servable.spec, model).predict(None, servable.raw_test)
    assert set(answer["class"]) <= set(FASHION_CLASSES)
    assert np.allclose(answer[[f"probability_{c}" for c in FASHION_CLASSES]].sum(axis=1), 1, atol=1e-5)
    experiment, cfg, variant, data, model = a_model("imdb")
    servable = experiment.servable(cfg, variant, model, data)
    answer = (
        RawInputModel()
        .setup(servable.spec, model, servable.vocabulary)
        .predict(None, pd.DataFrame({"text": ["a great great film", "bad"]}))
    )
    assert list(answer.columns) == ["sentiment_probability", "sentiment"]
    assert set(answer["sentiment"]) <= {"negative", "positive"}


def test_a_spec_that_feeds_the_network_wrongly_is_refused(mlflow_store):
    from pipeline import tracking
    from pipeline.errors import ServingMismatch

    experiment, cfg, variant, data, model = a_model("wide_deep")
    servable = experiment.servable(cfg, variant, model, data)
    routing = servable.spec["input"]["routing"]
    routing["deep"] = list(reversed(routing["deep"]))  # the deep path's columns in another order
    with mlflow_store.start_run(), pytest.raises(ServingMismatch, match="wide_deep/search"):
        tracking.log_servable(servable)


def test_keras_flavor_input_example_bug_is_still_there(tmp_path, mlflow_store):
    """mlflow/mlflow#16183: mlflow.keras.log_model(input_example=...) fails on MLflow 3.17, so
    tracking.log_servable logs a pyfunc instead. When this test fails, the bug is fixed: the
    Keras flavor could be logged beside the pyfunc with its example."""
    import keras

    mlflow = mlflow_store
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    example = np.zeros((2, 3), dtype="float32")
    with mlflow.start_run(), pytest.raises(Exception):
        mlflow.keras.log_model(model, name="keras_model", input_example=example)
