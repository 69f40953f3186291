"""Thoracic (note 001) and Boston (note 002) end to end on the real data, shrunk epochs/folds."""

import json

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_module

pytestmark = pytest.mark.slow

THORACIC_VARIANTS = {
    "mean_squared_logarithmic_error",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "poisson",
}


def run_stages(name, overrides, tmp_path, env):
    for stage in ("prepare", "train", "evaluate"):
        args = [f"experiment={name}", *(overrides if stage != "prepare" else ())]
        result = run_module(f"pipeline.{stage}", *args, cwd=tmp_path, env=env)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    return json.loads((tmp_path / f"metrics/{name}.json").read_text())


def runs_by_name(tracking_store, name):
    client = MlflowClient(tracking_store)
    experiment = client.get_experiment_by_name(name)
    return client, client.search_runs(
        [experiment.experiment_id], filter_string="tags.`pipeline.stage` = 'train'"
    )


def test_thoracic(mirror, tmp_path, tracking_store):
    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    shrink = [
        "experiments.thoracic.train.epochs=2",
        "experiments.thoracic.train.cv.splitter.n_splits=2",
        "experiments.thoracic.train.cv.splitter.n_repeats=1",
    ]
    metrics = run_stages("thoracic", shrink, tmp_path, env)

    baseline = metrics["baseline"]
    assert baseline["cv_accuracy_mean"] == pytest.approx(400 / 470, abs=1e-3)
    assert baseline["cv_auc_mean"] == 0.5 and baseline["train_accuracy"] == pytest.approx(400 / 470)
    assert set(metrics["variants"]) == THORACIC_VARIANTS
    for scores in metrics["variants"].values():
        for metric in ("accuracy", "auc", "log_loss"):
            assert {f"cv_{metric}_mean", f"cv_{metric}_std", f"train_{metric}"} <= set(scores)
        assert 0 <= scores["cv_auc_mean"] <= 1 and scores["cv_log_loss_mean"] > 0
    noted = metrics["variants"]["mean_squared_logarithmic_error"]
    assert noted["note_train_accuracy"] == 0.8865 and "diff_train_accuracy" in noted
    assert "0.851" in noted["note_note"]
    # checked by evaluate (pipeline.bars): the best variant on cv_auc_mean against 0.6
    [(variant, auc)] = metrics["bar"]["rules"]["best_cv_auc_mean_min"]["value"].items()
    assert auc == metrics["variants"][variant]["cv_auc_mean"] and isinstance(metrics["bar"]["bar_met"], bool)

    client, runs = runs_by_name(tracking_store, "thoracic")
    variant_runs = [r for r in runs if "pipeline.variant" in r.data.tags]
    assert {r.data.tags["pipeline.variant"] for r in variant_runs} == THORACIC_VARIANTS
    history = client.get_metric_history(variant_runs[0].info.run_id, "fold_val_auc")
    assert sorted(m.step for m in history) == [1, 2]  # fold scores as steps, no fold runs
    assert not [r for r in runs if "pipeline.child" in r.data.tags]


def test_boston(mirror, tmp_path, tracking_store):
    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    metrics = run_stages("boston", ["experiments.boston.train.epochs=2"], tmp_path, env)

    assert {"cv_mae_mean", "cv_rmse_mean", "test_mae", "test_rmse"} <= set(metrics["baseline"])
    assert set(metrics["variants"]) == {"faithful", "fast"}
    for scores in metrics["variants"].values():
        folds = [scores[f"cv_mae_fold{k}"] for k in range(1, 5)]
        assert scores["cv_mae_mean"] == pytest.approx(sum(folds) / 4)
        assert scores["test_mae"] > 0 and scores["test_rmse"] >= scores["test_mae"]
    faithful = metrics["variants"]["faithful"]
    assert faithful["note_cv_mae_mean"] == 2.6436 and "diff_cv_mae_fold4" in faithful

    client, runs = runs_by_name(tracking_store, "boston")
    variants = {
        r.data.tags["pipeline.variant"]: r
        for r in runs
        if "pipeline.variant" in r.data.tags and "pipeline.child" not in r.data.tags
    }
    assert set(variants) == {"faithful", "fast"}
    for variant, parent in variants.items():
        folds = {
            r.data.tags["pipeline.child"]: r
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        }
        assert set(folds) == {"fold-1", "fold-2", "fold-3", "fold-4"}
        for k, fold in folds.items():
            assert fold.data.metrics["val_mae"] == pytest.approx(
                metrics["variants"][variant][f"cv_mae_fold{k[-1]}"]
            )
