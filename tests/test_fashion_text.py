"""Fashion-MNIST regularization, IMDB and Reuters (notes 001, 002) on small made-up data."""

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import experiment_cfg
from pipeline import config
from pipeline.data.splits import hold_out_validation, split_imdb, split_reuters
from pipeline.data.text import (
    pack_ragged,
    pack_texts,
    ragged_parts,
    sequences_to_multi_hot,
    text_vectorizer,
    texts_to_multi_hot,
    unpack_texts,
)
from pipeline.errors import ConfigError
from pipeline.experiments import get_experiment
from pipeline.experiments.classification import class_labels, null_accuracies
from pipeline.io import load_arrays, save_arrays
from pipeline.models.dense import build_dense_classifier
from pipeline.tune import search_space

EXPERIMENTS = ("fashion_regularization", "imdb", "reuters")


# --- data: packing and splits ------------------------------------------------------------


def test_ragged_rows_and_texts_survive_npz_without_pickle(tmp_path):
    rows = [[1, 5, 5], [], [9999]]
    texts = ["a great film", "", "déjà vu — 영화 👍"]
    arrays = {**pack_ragged("x", rows), **pack_texts("text", texts)}
    save_arrays(tmp_path / "a.npz", arrays)
    loaded = load_arrays(tmp_path / "a.npz")  # allow_pickle=False
    values, splits = ragged_parts(loaded, "x")
    assert [values[a:b].tolist() for a, b in zip(splits[:-1], splits[1:])] == rows
    assert unpack_texts(loaded, "text").tolist() == texts
    assert all(array.dtype != object for array in loaded.values())


def test_first_rows_hold_out_keeps_order_and_test_set():
    raw = {
        "x_train": np.arange(10) * 10,
        "y_train": np.arange(10) % 2,
        "x_test": np.array([7, 8]),
        "y_test": np.array([0, 1]),
    }
    arrays = hold_out_validation(raw, {"valid_size": 3, "random_state": None})
    assert arrays["x_valid"].tolist() == [0, 10, 20]  # the first rows, as notes 002 and 004
    assert arrays["x_train"].tolist() == [30, 40, 50, 60, 70, 80, 90]
    assert arrays["x_test"].tolist() == [7, 8] and arrays["y_train"].tolist() == [1, 0, 1, 0, 1, 0, 1]


def test_seeded_hold_out_is_stratified_disjoint_and_repeatable():
    y = np.repeat([0, 1], 50)  # sorted, like the IMDB archive
    raw = {"x_train": np.arange(100), "y_train": y, "x_test": np.arange(3), "y_test": np.zeros(3)}
    split = {"valid_size": 20, "random_state": 42}
    first, again = hold_out_validation(raw, split), hold_out_validation(raw, split)
    assert np.array_equal(first["x_valid"], again["x_valid"])
    assert sorted([*first["x_train"], *first["x_valid"]]) == list(range(100))
    assert np.bincount(first["y_valid"]).tolist() == [10, 10]
    assert np.array_equal(y[first["x_valid"]], first["y_valid"])


def test_reuters_split_packs_ragged_word_ids():
    sequences = np.empty(5, dtype=object)
    sequences[:] = [[1, 2], [3], [4, 5, 6], [7], [8, 9]]
    raw = {"x_train": sequences, "y_train": np.arange(5), "x_test": sequences[:2], "y_test": np.arange(2)}
    arrays = split_reuters(raw, {"valid_size": 2, "random_state": None})
    assert not any(array.dtype == object for array in arrays.values())
    values, splits = ragged_parts(arrays, "x_valid")
    assert values.tolist() == [1, 2, 3] and splits.tolist() == [0, 2, 3]
    assert arrays["y_train"].tolist() == [2, 3, 4]


def test_imdb_split_packs_review_texts():
    raw = {
        "text_train": np.array(["bad", "awful", "good", "great"]),
        "y_train": np.array([0, 0, 1, 1]),
        "text_test": np.array(["fine"]),
        "y_test": np.array([1]),
    }
    arrays = split_imdb(raw, {"valid_size": 2, "random_state": 0})
    train, valid = unpack_texts(arrays, "text_train"), unpack_texts(arrays, "text_valid")
    assert sorted([*train, *valid]) == ["awful", "bad", "good", "great"]
    assert sorted(arrays["y_valid"].tolist()) == [0, 1]
    assert unpack_texts(arrays, "text_test").tolist() == ["fine"]


# --- vectorization ------------------------------------------------------------------------


def test_vocabulary_is_learned_from_the_training_texts_only():
    vectorizer = text_vectorizer(np.array(["good film", "bad film", "good acting"]), max_tokens=10)
    vocabulary = vectorizer.get_vocabulary()
    assert "zebra" not in vocabulary and {"good", "film", "bad", "acting"} <= set(vocabulary)
    vectors = texts_to_multi_hot(vectorizer, np.array(["zebra zebra", "good good film"]))
    assert vectors.dtype == np.uint8 and vectors.shape == (2, len(vocabulary))
    assert vectors[0].tolist() == [1] + [0] * (len(vocabulary) - 1)  # only [UNK]
    assert vectors[1].sum() == 2  # multi-hot: presence, not counts


def test_sequences_become_multi_hot_rows():
    values, splits = np.array([1, 3, 3, 0, 4]), np.array([0, 3, 3, 5])
    vectors = sequences_to_multi_hot(values, splits, num_tokens=5)
    assert vectors.dtype == np.uint8
    assert vectors.tolist() == [[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        sequences_to_multi_hot(values, splits, num_tokens=4)


# --- models -------------------------------------------------------------------------------


def layer(model, name):
    return model.get_layer(name)


def test_fashion_networks_have_the_notes_layers():
    cfg = experiment_cfg("fashion_regularization")
    experiment = get_experiment("fashion_regularization")
    data = {"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.arange(10)}
    models = {
        v: experiment.build(cfg, v, data)
        for v in ("softmax_1epoch", "l2_l1_1epoch", "max_norm_1epoch", "dropout_early_stopped")
    }
    assert models["softmax_1epoch"].count_params() == 7850  # the note's model.summary()
    assert models["l2_l1_1epoch"].count_params() == 50890
    dense = layer(models["l2_l1_1epoch"], "hidden1")
    assert float(dense.kernel_regularizer.l2) == pytest.approx(0.01)
    assert float(dense.activity_regularizer.l1) == pytest.approx(0.01)
    assert dense.kernel_constraint is None
    assert layer(models["max_norm_1epoch"], "hidden1").kernel_constraint.max_value == 2.0
    assert not any(isinstance(l, keras.layers.Dropout) for l in models["max_norm_1epoch"].layers)
    assert layer(models["dropout_early_stopped"], "dropout1").rate == 0.5
    scaled = models["softmax_1epoch"].get_layer("rescale")(np.full((1, 28, 28), 255, np.uint8))
    assert float(np.max(scaled)) == pytest.approx(1.0)  # pixels / 255 inside the model


def test_unknown_fashion_network_lists_choices():
    cfg = experiment_cfg("fashion_regularization")
    cfg.variants.softmax_1epoch.network = "batchnorm"
    with pytest.raises(ConfigError, match="softmax, l2_l1, max_norm, dropout"):
        get_experiment("fashion_regularization").network_layers(cfg, "softmax_1epoch")


def test_fashion_variants_run_as_the_note_and_early_stopped():
    cfg = experiment_cfg("fashion_regularization")
    experiment = get_experiment("fashion_regularization")
    for variant in experiment.variants(cfg):
        train = experiment.resolve(cfg, variant).train
        note_run = variant.endswith("_1epoch")  # the note's own: 1 epoch of batches of 30
        assert train.early_stopping.restore_best_weights
        assert (train.epochs, train.batch_size) == ((1, 30) if note_run else (30, 128))


def test_dense_classifier_rejects_bad_shapes():
    with pytest.raises(ValueError, match="depth"):
        build_dense_classifier(input_shape=(3,), n_outputs=2, output_activation="softmax", depth=-1)


def test_class_labels_and_null_models():
    assert class_labels(np.array([[0.1, 0.9], [0.8, 0.2]])).tolist() == [1, 0]
    assert class_labels(np.array([[0.7], [0.2]], dtype="float32")).tolist() == [1, 0]
    assert class_labels(np.array([3, 1])).tolist() == [3, 1]
    scores = null_accuracies(np.array([0, 0, 0, 1]), np.array([0, 1, 0, 0]))
    assert scores["accuracy"] == 0.75 and 0 <= scores["chance_accuracy"] <= 1


# --- experiments on made-up data ------------------------------------------------------------


@pytest.fixture(scope="module")
def reviews():
    rng = np.random.default_rng(0)
    good, bad = ["good great fine lovely", "bad awful poor dull"]
    words = lambda pool, n: [" ".join(rng.choice(pool.split(), 4)) + " film" for _ in range(n)]
    raw = {
        "text_train": np.array(words(good, 40) + words(bad, 40)),
        "y_train": np.repeat([1, 0], 40),
        "text_test": np.array(words(good, 10) + words(bad, 10)),
        "y_test": np.repeat([1, 0], 10),
    }
    return split_imdb(raw, {"valid_size": 20, "random_state": 0})


@pytest.fixture(scope="module")
def newswires():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 60)
    rows = np.empty(60, dtype=object)
    rows[:] = [list(rng.integers(0, 20, 5) + 20 * label) for label in labels]  # topic k: ids 20k..
    raw = {"x_train": rows[:50], "y_train": labels[:50], "x_test": rows[50:], "y_test": labels[50:]}
    return split_reuters(raw, {"valid_size": 10, "random_state": None})


def test_imdb_vectorizes_once_for_every_variant(reviews, monkeypatch):
    cfg = experiment_cfg("imdb", epochs=3, batch_size=16)
    cfg.model.max_tokens = 50
    experiment = get_experiment("imdb")
    calls = []
    vectorize = experiment.vectorize
    monkeypatch.setattr(experiment, "vectorize", lambda *a: calls.append(1) or vectorize(*a))
    monkeypatch.setattr(experiment, "_vectors", None)
    for variant in experiment.variants(cfg):
        trained = experiment.train_variant(cfg, variant, reviews, seed=1)
        scores = experiment.evaluation(experiment.resolve(cfg, variant), variant, trained.model, reviews)
        assert set(scores) == {"test_accuracy", "val_accuracy"} and trained.metrics["best_epoch"] >= 1
    assert len(calls) == 1
    inputs, targets = experiment.split(cfg, "epochs_20", reviews, "train")
    assert inputs.shape == (60, 10) and inputs.dtype == np.uint8  # 9 words + [UNK]
    assert targets.dtype == np.float32


def test_reuters_label_encodings_train_the_same_model(newswires):
    cfg = experiment_cfg("reuters", epochs=3, batch_size=16)
    cfg.model.num_words = 60
    experiment = get_experiment("reuters")
    _, one_hot = experiment.split(cfg, "one_hot_labels", newswires, "train")
    _, integer = experiment.split(cfg, "integer_labels", newswires, "train")
    assert one_hot.shape == (40, 3) and np.array_equal(one_hot.argmax(1), integer)
    runs = {v: experiment.train_variant(cfg, v, newswires, seed=3) for v in experiment.variants(cfg)}
    assert runs["one_hot_labels"].model.loss == "categorical_crossentropy"
    assert runs["integer_labels"].model.loss == "sparse_categorical_crossentropy"
    np.testing.assert_allclose(
        runs["one_hot_labels"].fit.history["loss"], runs["integer_labels"].fit.history["loss"], rtol=1e-4
    )
    assert experiment.figure(cfg, "integer_labels", runs["integer_labels"].model, newswires) is not None


def test_reuters_vocabulary_smaller_than_the_data_is_a_config_error(newswires):
    cfg = experiment_cfg("reuters")
    cfg.model.num_words = 10
    experiment = get_experiment("reuters")
    experiment._vectors = None
    with pytest.raises(ConfigError, match="num_words=10"):
        experiment.split(cfg, "integer_labels", newswires, "train")


def test_unknown_label_encoding_lists_choices(newswires):
    cfg = experiment_cfg("reuters")
    cfg.variants.integer_labels.labels = "ordinal"
    with pytest.raises(ConfigError, match="one_hot, integer"):
        get_experiment("reuters").targets(cfg, "integer_labels", newswires, "train")


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_config_is_registered_and_its_tune_space_names_real_keys(composed, name):
    cfg = config.experiment_config(composed, name)
    assert get_experiment(name).name == name and cfg.dataset in composed.datasets
    assert cfg.tune.variant in cfg.variants and set(cfg.note_figures) <= set(cfg.variants)
    for path in search_space(OmegaConf.to_container(cfg.tune.space)):
        assert OmegaConf.select(cfg, path, default="missing") != "missing", path
        # a variant's own value would win over the trial's suggestion
        assert OmegaConf.select(cfg.variants[cfg.tune.variant], path) is None, path
