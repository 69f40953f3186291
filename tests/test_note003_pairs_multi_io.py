"""Note 003: the Siamese network on image pairs and the multi-input/multi-output IMDB model, on
small made-up data."""

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import experiment_cfg
from pipeline import config
from pipeline.data.splits import split_imdb
from pipeline.errors import ConfigError, DataError
from pipeline.experiments import get_experiment
from pipeline.experiments.multi_io import log_word_counts
from pipeline.experiments.siamese import make_pairs
from pipeline.models.multi_io import build_multi_io
from pipeline.models.siamese import build_encoder, build_siamese
from pipeline.tune import search_space

EXPERIMENTS = ("siamese", "multi_io")


# --- pairs ----------------------------------------------------------------------------------


def test_pairs_are_balanced_seeded_and_never_an_image_with_itself():
    labels = np.repeat(np.arange(4), [3, 5, 7, 9])
    a, b, same = make_pairs(labels, 1000, seed=5)
    assert same.sum() == 500 and len(same) == 1000
    assert np.array_equal(same, (labels[a] == labels[b]).astype(int))  # the target tells the truth
    assert not np.any(a == b)
    again = make_pairs(labels, 1000, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, same), again))
    other = make_pairs(labels, 1000, seed=6)
    assert not np.array_equal(a, other[0])
    # every class appears as anchor and as partner, and all 4 x 3 different-class combinations
    assert set(labels[a]) == set(labels[b]) == {0, 1, 2, 3}
    different = same == 0
    assert len(set(zip(labels[a][different], labels[b][different]))) == 12


def test_pairs_need_two_images_of_a_class():
    with pytest.raises(ValueError, match="at least two"):
        make_pairs(np.array([0, 1, 1]), 10, seed=0)


@pytest.fixture(scope="module")
def images():
    """Fashion-MNIST-like splits whose images carry their split and index: pixel [0, 0] is the
    split's code (1 train, 2 valid, 3 test), pixels [0, 1:3] the index within the split."""
    rng = np.random.default_rng(0)
    data = {}
    for code, (split, n) in enumerate((("train", 60), ("valid", 20), ("test", 30)), start=1):
        labels = np.arange(n) % 3
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        x += (labels * 70).astype(np.uint8)[:, None, None]  # a class is a brightness level
        x[:, 0, 0] = code
        x[:, 0, 1], x[:, 0, 2] = np.arange(n) // 256, np.arange(n) % 256
        data[f"x_{split}"], data[f"y_{split}"] = x, labels
    return data


def test_test_pairs_come_from_the_test_images_only(images):
    cfg = experiment_cfg("siamese")
    experiment = get_experiment("siamese")
    for split, code, n_images in (("train", 1, 60), ("valid", 2, 20), ("test", 3, 30)):
        inputs, same = experiment.split(cfg, "dense_encoder", images, split)
        expected = round(float(cfg.train.pairs.per_image[split]) * n_images)
        assert set(inputs) == {"image_a", "image_b"} and len(same) == expected
        assert same.mean() == 0.5 and same.dtype == np.float32
        for side in ("image_a", "image_b"):
            assert set(inputs[side][:, 0, 0].tolist()) == {code}, (split, side)
        index = {side: inputs[side][:, 0, 1].astype(int) * 256 + inputs[side][:, 0, 2] for side in inputs}
        labels = images[f"y_{split}"]
        assert np.array_equal(same == 1, labels[index["image_a"]] == labels[index["image_b"]])
    first, _ = experiment.split(cfg, "dense_encoder", images, "test")
    again, _ = experiment.split(cfg, "conv_encoder", images, "test")  # evaluate rebuilds the same
    assert np.array_equal(first["image_a"], again["image_a"])


# --- the Siamese network --------------------------------------------------------------------


def randomize(model, seed=0):
    """Random weights: kernels as initialized (random), and random biases and BatchNorm
    parameters and statistics instead of their constant starting values."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("gamma", "moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        elif name in ("beta", "moving_mean", "bias"):
            weight.assign(rng.normal(0, 0.2, weight.shape))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_siamese_score_is_symmetric_and_the_encoder_shared(kind):
    encoder = build_encoder(
        image_shape=(28, 28),
        kind=kind,
        filters=[4, 8],
        hidden=[16],
        embedding=8,
        batch_norm=True,
        dropout=0.0,
    )
    model = build_siamese(encoder=encoder, head_units=8)
    randomize(model)
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (16, 28, 28)).astype(np.uint8) for _ in range(2))
    forward = model.predict({"image_a": a, "image_b": b}, verbose=0)
    backward = model.predict({"image_a": b, "image_b": a}, verbose=0)
    np.testing.assert_array_equal(forward, backward)
    assert forward.shape == (16, 1) and 0 < forward.min() and forward.max() < 1
    assert not np.allclose(forward, forward.mean())  # not symmetric by being constant
    # training mode too: BatchNorm normalizes each image batch with its own statistics
    on = model({"image_a": a, "image_b": b}, training=True)
    off = model({"image_a": b, "image_b": a}, training=True)
    np.testing.assert_allclose(np.asarray(on), np.asarray(off), rtol=0, atol=1e-6)
    # one encoder, called twice: its weights exist once
    head = sum(int(np.prod(w.shape)) for l in model.layers if l.name in ("head", "same") for w in l.weights)
    assert model.count_params() == encoder.count_params() + head
    assert [l.name for l in model.layers].count("encoder") == 1


def test_siamese_model_saves_and_loads_without_custom_code(tmp_path):
    encoder = build_encoder(image_shape=(28, 28), kind="conv", filters=[4], hidden=[8], embedding=4)
    model = build_siamese(encoder=encoder, head_units=0)
    x = {"image_a": np.zeros((2, 28, 28), np.uint8), "image_b": np.full((2, 28, 28), 255, np.uint8)}
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # safe_mode: built-in layers only
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_unknown_encoder_lists_choices(images):
    cfg = experiment_cfg("siamese")
    cfg.variants.dense_encoder.encoder = "lstm"
    with pytest.raises(ConfigError, match="dense, conv"):
        get_experiment("siamese").build(cfg, "dense_encoder", images)


def test_siamese_trains_scores_and_gives_an_input_example(images):
    cfg = experiment_cfg("siamese", epochs=2, batch_size=16)
    cfg.model.filters, cfg.model.conv_hidden = [4], [8]
    experiment = get_experiment("siamese")
    trained = experiment.train_variant(cfg, "conv_encoder", images, seed=0)
    assert trained.fit.epochs >= 1 and "val_accuracy" in trained.fit.history
    scores = experiment.evaluation(
        experiment.resolve(cfg, "conv_encoder"), "conv_encoder", trained.model, images
    )
    assert set(scores) == {"test_accuracy", "test_auc", "val_accuracy", "val_auc"}
    assert all(0 <= v <= 1 for v in scores.values())
    example = experiment.input_example(cfg, "conv_encoder", images, rows=3)
    assert set(example) == {"image_a", "image_b"} and example["image_a"].shape == (3, 28, 28)
    assert trained.model.predict(example, verbose=0).shape == (3, 1)
    baseline = experiment.baseline(cfg, images)
    assert baseline["accuracy"] == 0.5  # balanced test pairs
    assert baseline["pixel_distance_accuracy"] > 0.6  # classes differ by brightness here
    assert experiment.figure(cfg, "conv_encoder", trained.model, images) is not None


# --- the multi-input, multi-output IMDB model -------------------------------------------------


@pytest.fixture(scope="module")
def reviews():
    """Positive reviews (ratings 7-10) and negative ones (1-4), of different lengths; the test
    reviews are much longer than the training ones."""
    rng = np.random.default_rng(0)
    words = {10: "superb", 9: "great", 8: "good", 7: "fine", 4: "dull", 3: "poor", 2: "bad", 1: "awful"}

    def make(n, length):
        ratings = rng.choice(list(words), n)
        texts = [" ".join([words[r]] * 3 + ["film"] * int(rng.integers(*length))) for r in ratings]
        return np.array(texts, dtype=object), (ratings >= 7).astype("int64"), ratings.astype("int64")

    text_train, y_train, r_train = make(120, (1, 20))
    text_test, y_test, r_test = make(30, (200, 400))
    raw = {
        "text_train": text_train,
        "y_train": y_train,
        "rating_train": r_train,
        "text_test": text_test,
        "y_test": y_test,
        "rating_test": r_test,
    }
    return split_imdb(raw, {"valid_size": 30, "random_state": 0})


def test_ratings_follow_their_reviews_through_the_split(reviews):
    from pipeline.data.text import unpack_texts

    for split in ("train", "valid", "test"):
        texts, ratings = unpack_texts(reviews, f"text_{split}"), reviews[f"rating_{split}"]
        assert len(texts) == len(ratings) == len(reviews[f"y_{split}"])
        assert np.array_equal(reviews[f"y_{split}"], (ratings >= 7).astype(int))
        first_words = {text.split()[0] for text, r in zip(texts, ratings) if r == 10}
        assert first_words <= {"superb"}


def multi_io_cfg(**train):
    cfg = experiment_cfg("multi_io", **train)
    cfg.model.max_tokens = 20
    return cfg


def test_multi_io_predictions_are_keyed_by_output_name(reviews):
    cfg = multi_io_cfg()
    experiment = get_experiment("multi_io")
    for variant, names in (("both_outputs", {"sentiment", "rating"}), ("sentiment_only", {"sentiment"})):
        run_cfg = experiment.resolve(cfg, variant)
        model = experiment.build(run_cfg, variant, reviews)
        inputs, targets = experiment.split(run_cfg, variant, reviews, "test")
        assert set(inputs) == {"words", "log_words"} and set(targets) == names
        predicted = model.predict(inputs, verbose=0)
        assert isinstance(predicted, dict) and set(predicted) == names  # not metric names
        assert all(values.shape == (30, 1) for values in predicted.values())
        assert set(model.output_names) == names


def test_multi_io_loss_weights_and_losses_come_from_config(reviews):
    experiment = get_experiment("multi_io")
    cfg = multi_io_cfg()
    cfg.train.loss_weights = {"sentiment": 1.0, "rating": 0.25}
    model = experiment.build(cfg, "both_outputs", reviews)
    inputs, targets = experiment.split(cfg, "both_outputs", reviews, "valid")
    scores = model.evaluate(inputs, targets, batch_size=1000, return_dict=True, verbose=0)
    assert scores["loss"] == pytest.approx(scores["sentiment_loss"] + 0.25 * scores["rating_loss"], rel=1e-4)
    predicted = model.predict(inputs, verbose=0)
    assert scores["rating_loss"] == pytest.approx(  # the rating's loss is the configured mse
        float(np.mean((predicted["rating"] - targets["rating"]) ** 2)), rel=1e-4
    )
    cfg.train.loss_weights.rating = 0.0
    model = experiment.build(cfg, "both_outputs", reviews)
    scores = model.evaluate(inputs, targets, batch_size=1000, return_dict=True, verbose=0)
    assert scores["loss"] == pytest.approx(scores["sentiment_loss"], rel=1e-5)


def test_length_is_standardized_with_training_statistics_only(reviews):
    experiment = get_experiment("multi_io")
    cfg = multi_io_cfg()
    model = experiment.build(cfg, "both_outputs", reviews)
    norm = model.get_layer("log_words_norm")
    train = log_word_counts(reviews, "train")
    everything = np.concatenate([log_word_counts(reviews, s) for s in ("train", "valid", "test")])
    assert float(np.ravel(norm.mean)[0]) == pytest.approx(float(train.mean()), rel=1e-5)
    assert float(np.ravel(norm.variance)[0]) == pytest.approx(float(train.var()), rel=1e-4)
    assert abs(float(everything.mean()) - float(train.mean())) > 0.5  # test reviews are longer
    inputs, _ = experiment.split(cfg, "both_outputs", reviews, "train")
    standardized = np.asarray(norm(inputs["log_words"]))
    assert abs(standardized.mean()) < 1e-4 and standardized.std() == pytest.approx(1, rel=1e-3)
    assert log_word_counts(reviews, "test").min() > np.log1p(200)


def test_multi_io_trains_scores_and_beats_its_baselines(reviews):
    cfg = multi_io_cfg(epochs=12, batch_size=8)
    cfg.train.optimizer.learning_rate = 0.02
    experiment = get_experiment("multi_io")
    results, models = {}, {}
    for variant in experiment.variants(cfg):
        trained = experiment.train_variant(cfg, variant, reviews, seed=0)
        assert trained.metrics["best_epoch"] >= 1
        models[variant] = trained.model
        results[variant] = experiment.evaluation(
            experiment.resolve(cfg, variant), variant, trained.model, reviews
        )
        example = experiment.input_example(cfg, variant, reviews, rows=2)
        assert set(example) == {"words", "log_words"} and example["log_words"].shape == (2, 1)
    assert set(results["both_outputs"]) == {
        f"{s}_{m}" for s in ("test", "val") for m in ("sentiment_accuracy", "rating_mae", "rating_rmse")
    }
    assert set(results["sentiment_only"]) == {"test_sentiment_accuracy", "val_sentiment_accuracy"}
    baseline = experiment.baseline(cfg, reviews)
    train_mean = reviews["rating_train"].mean()
    assert baseline["rating_mae"] == pytest.approx(np.abs(reviews["rating_test"] - train_mean).mean())
    for scores in results.values():
        assert scores["test_sentiment_accuracy"] > 0.9  # one word gives the sentiment away
    assert results["both_outputs"]["test_rating_mae"] < baseline["rating_mae"]
    for variant, has_figure in (("both_outputs", True), ("sentiment_only", False)):
        figure = experiment.figure(experiment.resolve(cfg, variant), variant, models[variant], reviews)
        assert (figure is not None) == has_figure, variant


def test_unprepared_ratings_and_unknown_outputs_are_clear_errors(reviews):
    experiment = get_experiment("multi_io")
    cfg = multi_io_cfg()
    old = {k: v for k, v in reviews.items() if not k.startswith("rating_")}  # prepared before
    with pytest.raises(DataError, match="pipeline.prepare dataset=imdb_reviews"):
        experiment.split(cfg, "both_outputs", old, "train")
    inputs, targets = experiment.split(
        experiment.resolve(cfg, "sentiment_only"), "sentiment_only", old, "train"
    )  # the sentiment alone needs no ratings
    assert set(targets) == {"sentiment"}
    cfg.model.outputs = ["sentiment", "stars"]
    with pytest.raises(ConfigError, match="sentiment, rating"):
        experiment.outputs(cfg)
    with pytest.raises(ValueError, match="subset"):
        build_multi_io(n_words=3, log_words_train=np.ones(2), outputs=[])


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_config_is_registered_and_its_tune_space_names_real_keys(composed, name):
    cfg = config.experiment_config(composed, name)
    assert get_experiment(name).name == name and cfg.dataset in composed.datasets
    assert f"experiments/{name}@experiments.{name}" in (config.CONF_DIR / "config.yaml").read_text()
    assert cfg.tune.variant in cfg.variants and cfg.bar
    assert list(cfg.note_figures) == ["note"] and not set(cfg.note_figures) & set(cfg.variants)
    assert cfg.tune.n_trials <= 4
    for path in search_space(OmegaConf.to_container(cfg.tune.space)):
        assert OmegaConf.select(cfg, path, default="missing") != "missing", path
        assert OmegaConf.select(cfg.variants[cfg.tune.variant], path) is None, path


def test_siamese_uses_the_callbacks_of_its_config(composed):
    from pipeline.training import callbacks_from_config

    cfg = config.experiment_config(composed, "siamese")
    kinds = {type(c).__name__ for c in callbacks_from_config(cfg.train)}
    assert kinds == {"EarlyStopping", "ReduceLROnPlateau"}
