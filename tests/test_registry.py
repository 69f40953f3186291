"""The registry's promotion rule and the tune stage's warm start (no training)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import experiment_cfg
from pipeline import tracking
from pipeline.tuning.space import configured_point, search_space


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture
def logged(tracking_store):
    """A function that logs a trivial model on a new run and returns its models:/ URI."""
    mlflow.set_tracking_uri(tracking_store)

    def log() -> str:
        with mlflow.start_run():
            return mlflow.pyfunc.log_model(name="model", python_model=Constant()).model_uri

    yield log
    mlflow.set_tracking_uri(None)


def promote(uri, value, metric="val_accuracy", direction="maximize"):
    return tracking.register_and_promote(
        uri, "exp", metric=metric, value=value, direction=direction, tags={"variant": "v"}
    )


def champion() -> str:
    return str(MlflowClient().get_model_version_by_alias("exp", "champion").version)


def test_only_a_better_version_becomes_champion(logged):
    assert promote(logged(), 0.80)["alias"] == "champion"  # the first version
    worse = promote(logged(), 0.70)
    assert worse["alias"] == "challenger" and champion() == "1"
    assert worse["previous"] == {"version": "1", "metric": "val_accuracy", "value": 0.80}
    assert promote(logged(), 0.80)["alias"] == "challenger"  # a tie keeps the champion
    assert promote(logged(), 0.85)["alias"] == "champion" and champion() == "4"
    version = MlflowClient().get_model_version("exp", "4")
    assert version.tags["selection.metric"] == "val_accuracy"
    assert float(version.tags["selection.value"]) == 0.85 and version.tags["variant"] == "v"
    assert str(MlflowClient().get_model_version_by_alias("exp", "challenger").version) == "3"


def test_lower_is_better_for_a_minimized_metric(logged):
    promote(logged(), 0.50, metric="val_rmse", direction="minimize")
    assert promote(logged(), 0.45, metric="val_rmse", direction="minimize")["alias"] == "champion"
    assert promote(logged(), 0.47, metric="val_rmse", direction="minimize")["alias"] == "challenger"


def test_a_version_scored_on_another_metric_is_not_compared(logged):
    promote(logged(), 0.80)
    other = promote(logged(), 0.99, metric="val_auc")
    assert other["alias"] == "challenger" and not other["comparable"] and champion() == "1"


def test_a_champion_without_a_recorded_score_is_replaced(logged):
    """Versions registered before they carried their score cannot be compared with."""
    version = mlflow.register_model(logged(), "exp")
    MlflowClient().set_registered_model_alias("exp", "champion", version.version)
    assert promote(logged(), 0.1)["alias"] == "champion"


def test_rollback_is_moving_the_alias(logged):
    promote(logged(), 0.80)
    promote(logged(), 0.90)
    MlflowClient().set_registered_model_alias("exp", "champion", "1")
    assert champion() == "1"
    assert mlflow.pyfunc.load_model("models:/exp@champion").metadata.model_uuid


def test_warm_start_point_is_what_the_variant_trains_with():
    cfg = experiment_cfg("imdb")
    point, outside = configured_point(cfg, "early_stopped")
    assert outside == [] and set(point) == set(search_space(cfg.tune.space))
    assert point["model.units"] == cfg.model.units
    cfg.model.units = 10_000  # outside the space: left to the sampler
    point, outside = configured_point(cfg, "early_stopped")
    assert outside == ["model.units"] and "model.units" not in point
    # Boston's fast variant trains with batch 16 (its own), not the base config's 1
    point, outside = configured_point(experiment_cfg("boston"), "fast")
    assert point["train.batch_size"] == 16 and outside == []


def test_a_trial_value_wins_over_the_variants_own():
    """Boston's fast variant sets its batch size; a trial's batch size must still be the one
    that trains (it was silently replaced by the variant's 16 before)."""
    import optuna

    from pipeline.experiments import get_experiment
    from pipeline.tuning.space import suggest

    cfg = experiment_cfg("boston")
    trial_cfg = suggest(
        optuna.trial.FixedTrial(
            {
                "model.units": 32,
                "model.depth": 2,
                "train.optimizer.learning_rate": 1e-3,
                "train.batch_size": 32,
            }
        ),
        cfg,
        "fast",
    )
    assert get_experiment("boston").resolve(trial_cfg, "fast").train.batch_size == 32
    cfg = experiment_cfg("deep_training")  # opt_nadam brings its own optimizer and rate
    space = search_space(cfg.tune.space)
    values = {
        path: (spec["choices"][0] if spec["type"] == "categorical" else spec["low"])
        for path, spec in space.items()
    }
    trial_cfg = suggest(optuna.trial.FixedTrial(values), cfg, "opt_nadam")
    resolved = get_experiment("deep_training").resolve(trial_cfg, "opt_nadam")
    assert resolved.train.optimizer.learning_rate == values["train.optimizer.learning_rate"]
