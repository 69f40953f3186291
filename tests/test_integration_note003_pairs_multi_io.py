"""Note 003 on the real data: the Siamese pairs of Fashion-MNIST and the two-input, two-output
IMDB model, prepare -> train -> evaluate with shrunk training and data."""

import json

import pytest

from conftest import run_stages

pytestmark = pytest.mark.slow


def logged_signatures(tmp_path, name: str) -> dict[str, tuple[list, list]]:
    """{variant: (input names, output names)} of the models the train stage logged to MLflow."""
    import mlflow

    runs = json.loads((tmp_path / f"models/{name}/runs.json").read_text())["variants"]
    signatures = {}
    for variant, run_id in runs.items():
        signature = mlflow.models.get_model_info(f"runs:/{run_id}/model").signature
        signatures[variant] = (
            sorted(signature.inputs.input_names()),
            sorted(signature.outputs.input_names()),
        )
    return signatures


def test_siamese(tmp_path, env):
    key = "experiments.siamese.train"
    # 1 epoch on 11,000 training pairs (a fifth of the default), 5,000 test pairs; batches of 32,
    # so that BatchNorm's moving statistics settle within the epoch (~340 steps)
    metrics = run_stages(
        "siamese",
        tmp_path,
        env,
        f"{key}.epochs=1",
        f"{key}.batch_size=32",
        f"{key}.pairs.per_image.train=0.2",
        f"{key}.pairs.per_image.valid=0.5",
        f"{key}.pairs.per_image.test=0.5",
    )
    baseline = metrics["baseline"]
    assert baseline["accuracy"] == 0.5  # balanced test pairs
    assert 0.55 < baseline["pixel_distance_accuracy"] < 0.85
    assert set(metrics["variants"]) == {"dense_encoder", "conv_encoder"}
    for name, scores in metrics["variants"].items():
        assert scores["epochs"] == 1, name
        assert 0.8 < scores["test_accuracy"] <= 1 and 0.85 < scores["test_auc"] <= 1, name
        assert scores["test_accuracy"] > baseline["pixel_distance_accuracy"], name
        assert not any(key.startswith(("note_", "diff_")) for key in scores), name  # no figures
    assert metrics["bar"]["rules"]["test_accuracy_min"]["threshold"] == {
        "dense_encoder": 0.9,
        "conv_encoder": 0.9,
    }
    assert (tmp_path / "plots/siamese/evaluate/conv_encoder.png").is_file()
    for inputs, _ in logged_signatures(tmp_path, "siamese").values():
        assert inputs == ["image_a", "image_b"]


def test_multi_io(tmp_path, env):
    # 2 epochs, and the 2,000 most frequent words (vectorizing 10,000 takes longer than training)
    metrics = run_stages(
        "multi_io",
        tmp_path,
        env,
        "experiments.multi_io.train.epochs=2",
        "experiments.multi_io.model.max_tokens=2000",
    )
    info = json.loads((tmp_path / "data/imdb_reviews/info.json").read_text())
    assert info["shapes"]["rating_train"] == [15000] and info["shapes"]["rating_test"] == [25000]
    assert set(info["rating_test_classes"]) == {"1", "2", "3", "4", "7", "8", "9", "10"}
    baseline = metrics["baseline"]
    assert baseline["sentiment_accuracy"] == 0.5 and 2.5 < baseline["rating_mae"] < 4
    variants = metrics["variants"]
    assert set(variants) == {"both_outputs", "sentiment_only"}
    both, alone = variants["both_outputs"], variants["sentiment_only"]
    for scores in (both, alone):
        assert scores["test_sentiment_accuracy"] > 0.8 and scores["epochs"] == 2
    assert both["test_rating_mae"] < baseline["rating_mae"] - 0.5
    assert not any("rating" in key for key in alone)
    # the logged models take the review's text (words and length are computed inside them)
    assert logged_signatures(tmp_path, "multi_io") == {
        "both_outputs": (["text"], ["rating", "sentiment", "sentiment_probability"]),
        "sentiment_only": (["text"], ["sentiment", "sentiment_probability"]),
    }
