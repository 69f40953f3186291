"""One trial: the experiment's config with the trial's values, trained and scored the way the
evaluate stage scores it, as an MLflow child run of the invocation's parent run.

A trial that fails on its own (the loss diverges, the builder rejects a sampled config) is
recorded FAILED with its reason (``fail_reason`` user attr and MLflow tag) and the study goes
on; a ConfigError (a wrong metric name, a space key that does not exist) would fail every
trial alike, so it stops the study loudly instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from pipeline.errors import ConfigError, TrainingDiverged
from pipeline.stage import StageContext
from pipeline.tuning.recovery import process_tags, this_process
from pipeline.tuning.space import suggest

REASON_CHARS = 2000


class TrialFailed(Exception):
    """This trial failed (reason in the message); the study catches it and goes on."""


@dataclass
class Context:
    """What every trial of a process shares: the tune stage's context (config, data, experiment
    code, MLflow ids and tags) and the invocation's tune settings."""

    stage: StageContext
    settings: dict[str, Any]

    @classmethod
    def load(cls, cfg: DictConfig, settings: dict[str, Any]) -> "Context":
        """The stage context (tracking checked first, data, tags) and the variant to search."""
        stage = StageContext.open("tune", cfg)
        stage.experiment.variant_config(stage.exp_cfg, settings["variant"])  # it exists
        return cls(stage, settings)

    @property
    def tags(self) -> dict[str, str]:
        """The stage's tags and the study's name, on every run of the search."""
        return {**self.stage.tags, "optuna.study": self.settings["study_name"]}

    @property
    def variant(self) -> str:
        return self.settings["variant"]

    def train(self, trial_cfg: DictConfig, callbacks=()):
        """Train the variant with the trial's config; (trained, resolved config, scores)."""
        trained = self.stage.experiment.train_variant(
            trial_cfg, self.variant, self.stage.data, seed=self.stage.seed, callbacks=list(callbacks)
        )
        run_cfg = self.stage.experiment.resolve(trial_cfg, self.variant)
        scores = {
            **trained.metrics,
            **self.stage.experiment.evaluation(run_cfg, self.variant, trained.model, self.stage.data),
            **self.costs(trained.model, run_cfg),
        }
        return trained, run_cfg, scores

    def costs(self, model, run_cfg: DictConfig) -> dict[str, float]:
        """Size always (free); prediction latency only when it is an objective (it costs)."""
        costs = {"n_params": float(model.count_params())}
        if "latency_ms" in self.settings["objectives"]:
            example = self.stage.experiment.input_example(run_cfg, self.variant, self.stage.data, rows=1000)
            model.predict(example, batch_size=1000, verbose=0)  # warm-up: tracing
            times = []
            for _ in range(3):
                started = time.perf_counter()
                model.predict(example, batch_size=1000, verbose=0)
                times.append(time.perf_counter() - started)
            costs["latency_ms"] = 1000 * min(times)
        return costs


@dataclass
class Kept:
    """The best complete trial's model, kept (as the file its worker saved) so that the
    champion is not trained again."""

    number: int
    value: float  # its first objective, the one the champion is chosen by
    model_file: str
    run_cfg: DictConfig
    scores: dict[str, Any]
    model: Any = None  # loaded from model_file on first use

    def load_model(self):
        import keras

        if self.model is None:
            self.model = keras.models.load_model(self.model_file)
        return self.model


class Objective:
    """Optuna's objective: returns one value per objective; raises TrialPruned or TrialFailed.
    ``result`` is the last complete trial's (trained, resolved config, scores)."""

    def __init__(self, context: Context, parent_run_id: str) -> None:
        self.context, self.parent_run_id = context, parent_run_id
        settings = context.settings
        # Optuna cannot prune a multi-objective trial (Trial.report is single-objective only)
        self.prunes = len(settings["objectives"]) == 1 and settings["pruner"] != "none"
        self.result: tuple | None = None

    def __call__(self, trial):
        import optuna

        # first: who runs this trial, so a later invocation can tell if it was orphaned
        trial.set_user_attr("worker", this_process())
        trial.set_user_attr("tune_run", self.parent_run_id)
        try:
            return self.run(trial)
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, ConfigError) as error:  # not caught: they stop the study
            trial.set_user_attr("fail_reason", reason_of(error))
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", reason_of(error))
            raise TrialFailed(reason_of(error)) from error

    def run(self, trial):
        """The trial as an MLflow child run that ends FINISHED (complete, pruned), FAILED or
        KILLED (Ctrl-C), tagged with its state and, if it failed, the reason."""
        import keras
        import mlflow
        import optuna

        from pipeline import tracking

        ctx = self.context
        keras.backend.clear_session()
        pruned = None
        tags = {
            **ctx.tags,
            **process_tags(),
            "optuna.trial": str(trial.number),
            "mlflow.parentRunId": self.parent_run_id,
        }
        with tracking.run(
            f"trial-{trial.number}",
            experiment_id=ctx.stage.experiment_id,
            nested=mlflow.active_run() is not None,
            tags=tags,
        ) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            if "retry_of" in trial.user_attrs:
                mlflow.set_tag("optuna.retry_of", str(trial.user_attrs["retry_of"]))
            try:
                values = self.evaluate(trial)
            except optuna.TrialPruned as signal:
                pruned = signal
            except BaseException as error:
                mlflow.set_tags({"optuna.state": "FAILED", "fail_reason": reason_of(error)})
                raise
            mlflow.set_tag("optuna.state", "PRUNED" if pruned else "COMPLETE")
        if pruned is not None:
            raise pruned  # after the run ended FINISHED: a pruned trial is no failure
        return values

    def evaluate(self, trial) -> float | list[float]:
        import mlflow.keras

        from pipeline import tracking

        ctx = self.context
        trial_cfg = suggest(trial, ctx.stage.exp_cfg, ctx.variant)
        tracking.log_params(trial.params)
        callbacks = [mlflow.keras.MlflowCallback()]
        if self.prunes:
            from optuna_integration import KerasPruningCallback

            callbacks.insert(0, KerasPruningCallback(trial, ctx.stage.experiment.monitor))
        trained, run_cfg, scores = ctx.train(trial_cfg, callbacks)
        for key, value in scores.items():
            if key.startswith("test_"):  # reported for the best trial, never optimized
                trial.set_user_attr(key, value)
        trial.set_user_attr("epochs", trained.fit.epochs)
        tracking.log_metrics(scores)
        values = objective_values(scores, ctx.settings["objectives"])
        self.result = trained, run_cfg, scores  # complete: the values are valid
        return values[0] if len(values) == 1 else values


def reason_of(error: BaseException) -> str:
    """Why a trial failed, for its ``fail_reason`` (user attr and MLflow tag)."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(error, ConfigError):
        return str(error)[:REASON_CHARS]
    return f"{type(error).__name__}: {error}"[:REASON_CHARS]


def objective_values(scores: dict[str, Any], objectives: list[str]) -> list[float]:
    missing = [name for name in objectives if name not in scores]
    if missing:
        numeric = sorted(k for k, v in scores.items() if isinstance(v, (int, float)))
        raise ConfigError(
            f"Tune objective {', '.join(missing)} is not measured; measured: {', '.join(numeric)}."
        )
    values = [float(scores[name]) for name in objectives]
    for name, value in zip(objectives, values):
        if not math.isfinite(value):
            raise TrainingDiverged(f"{name} is {value}")
    return values
