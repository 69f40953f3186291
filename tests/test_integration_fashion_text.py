"""Fashion-MNIST regularization, IMDB and Reuters end to end on the real data (shrunk epochs)."""

import json

import pytest

from conftest import run_stages

pytestmark = pytest.mark.slow


def test_fashion_regularization(tmp_path, env):
    key = "experiments.fashion_regularization.train"
    # larger batches and 2 epochs for the early-stopped runs: seconds instead of minutes
    metrics = run_stages("fashion_regularization", tmp_path, env, f"{key}.epochs=2", f"{key}.batch_size=256")
    info = json.loads((tmp_path / "data/fashion_mnist/info.json").read_text())
    assert info["shapes"]["x_train"] == [55000, 28, 28] and info["shapes"]["x_valid"] == [5000, 28, 28]
    assert info["shapes"]["x_test"] == [10000, 28, 28]
    assert metrics["baseline"]["accuracy"] == 0.1  # 1,000 test images per class
    variants = metrics["variants"]
    assert len(variants) == 8
    for name, scores in variants.items():
        assert 0.6 < scores["test_accuracy"] <= 1 and 0.6 < scores["val_accuracy"] <= 1, name
        assert scores["epochs"] == (1 if name.endswith("_1epoch") else 2)
    softmax = variants["softmax_1epoch"]
    assert softmax["note_test_accuracy"] == 0.8221 and "diff_test_accuracy" in softmax
    assert metrics["bar"]["rules"]["test_accuracy_min"]["threshold"]["softmax_early_stopped"] == 0.84
    assert (tmp_path / "plots/fashion_regularization/evaluate/dropout_1epoch.png").is_file()


def test_imdb(tmp_path, env):
    metrics = run_stages("imdb", tmp_path, env, "experiments.imdb.train.epochs=2")
    info = json.loads((tmp_path / "data/imdb_reviews/info.json").read_text())
    assert info["y_valid_classes"] == {"0": 5000, "1": 5000}  # seeded, stratified
    assert info["shapes"]["y_train"] == [15000] and info["shapes"]["y_test"] == [25000]
    assert metrics["baseline"]["accuracy"] == 0.5
    for name, scores in metrics["variants"].items():
        assert scores["test_accuracy"] > 0.8, name
        assert scores["epochs"] == 2
    assert metrics["variants"]["early_stopped"]["note_val_accuracy"] == 0.8924
    history = (tmp_path / "plots/imdb/history/epochs_20.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and "val_accuracy" in history[0] and len(history) == 3


def test_reuters(tmp_path, env):
    metrics = run_stages("reuters", tmp_path, env, "experiments.reuters.train.epochs=4")
    info = json.loads((tmp_path / "data/reuters/info.json").read_text())
    assert info["shapes"]["y_train"] == [7982] and info["shapes"]["y_valid"] == [1000]
    assert len(info["y_test_classes"]) == 46
    baseline = metrics["baseline"]
    assert 0.3 < baseline["accuracy"] < 0.4 and 0.1 < baseline["chance_accuracy"] < 0.25
    variants = metrics["variants"]
    assert set(variants) == {"one_hot_labels", "integer_labels"}
    for scores in variants.values():
        assert scores["test_accuracy"] > baseline["accuracy"] + 0.2
    # the same network, seed and loss: the label encoding does not change what is learned
    assert (
        abs(variants["one_hot_labels"]["test_accuracy"] - variants["integer_labels"]["test_accuracy"]) < 0.01
    )
