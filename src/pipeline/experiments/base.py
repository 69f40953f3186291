"""What every source experiment provides to the stages, and the shared train-one-variant flow."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ContextManager, Mapping, Protocol, Sequence

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline import training
from pipeline.errors import ConfigError
from pipeline.serving import CHECK_ROWS, Servable, head

Arrays = dict[str, np.ndarray]


class RunLogger(Protocol):
    """Where an experiment reports what it measures while training (MLflow in the stages,
    nothing in tests and benchmarks). Experiments never import MLflow themselves."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def child(self, name: str) -> ContextManager["RunLogger"]:
        """A nested run, e.g. one per cross-validation fold."""
        ...

    def log_model(self, servable: Servable, name: str = "model") -> None:
        """Log a model the experiment trained besides the variant's own (e.g. transfer's
        model_B of each seed) as a logged model of the current run."""
        ...


class NullLogger:
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    @contextlib.contextmanager
    def child(self, name: str):
        yield self

    def log_model(self, servable: Servable, name: str = "model") -> None:
        pass


@dataclass
class TrainedVariant:
    model: keras.Model
    fit: training.FitResult
    #: results measured during training (e.g. cross-validation mean/std), reported by evaluate
    metrics: dict[str, Any] = field(default_factory=dict)
    #: figures made during training ({file name: matplotlib figure}), logged by the train stage
    figures: dict[str, Any] = field(default_factory=dict)


class Experiment:
    """The code of a source experiment (registered by its name in the registry).

    Subclasses say how to build a variant's model, what its inputs/targets are and how it is
    scored; the stages (train, evaluate, tune) do the rest the same way for every experiment.
    """

    name: str = ""  # the experiment it runs: conf/experiments/<name>.yaml
    #: the Keras history key the pruner and early stopping watch
    monitor: str = "val_loss"
    #: whether train_variant reports ``best_epoch``, the epoch of the lowest ``monitor``: where
    #: overfitting starts, what early stopping restores
    reports_best_epoch: bool = False
    #: the tune stage runs this experiment's trials one after another in its own process, as
    #: they reuse what it trained for an earlier trial (transfer's model_A): in workers, each
    #: would train it again
    tune_in_one_process: bool = False

    # --- to implement -------------------------------------------------------------------
    def build(self, cfg: DictConfig, variant: str, data: Arrays) -> keras.Model:
        """A compiled model for ``variant``; preprocessing learns from the training split only."""
        raise NotImplementedError

    def split(self, cfg: DictConfig, variant: str, data: Arrays, split: str) -> tuple[Any, Any]:
        """(inputs, targets) of ``split`` ("train", "valid", "test") in the form the model takes."""
        raise NotImplementedError

    def score(
        self, cfg: DictConfig, variant: str, model: keras.Model, data: Arrays, split: str
    ) -> dict[str, float]:
        """Metrics of the model on a split, named without the split prefix (e.g. {"rmse": ...})."""
        raise NotImplementedError

    def baseline(self, cfg: DictConfig, data: Arrays) -> dict[str, float]:
        """The null model's test metrics (what a model must beat to mean anything)."""
        return {}

    def figure(self, cfg: DictConfig, variant: str, model: keras.Model, data: Arrays):
        """A matplotlib figure of the test predictions, or None."""
        return None

    def extra_callbacks(self, cfg: DictConfig, variant: str, data: Arrays) -> list[keras.callbacks.Callback]:
        """Callbacks of the experiment's own for one fit of train_variant (e.g. gradient norms);
        they run after the config's callbacks and before the stage's."""
        return []

    def after_training(
        self,
        cfg: DictConfig,
        variant: str,
        data: Arrays,
        trained: TrainedVariant,
        callbacks: list[keras.callbacks.Callback],
    ) -> dict[str, Any]:
        """Metrics measured once train_variant's fit is done, e.g. from ``trained.model`` or
        from ``callbacks``, the ones ``extra_callbacks`` gave that fit."""
        return {}

    def serving_input(self, cfg: DictConfig, variant: str, data: Arrays) -> dict:
        """The logged model's raw input (``serving.table_input``, ``image_input``, ...)."""
        raise NotImplementedError

    def serving_outputs(self, cfg: DictConfig, variant: str, data: Arrays) -> list[dict]:
        """The logged model's named outputs (``serving.value_output``, ``classes_output``...)."""
        raise NotImplementedError

    def raw_inputs(self, cfg: DictConfig, variant: str, data: Arrays, split: str) -> Any:
        """A split's inputs as a user has them (a table with named columns, uint8 images,
        review texts): what the logged model takes. By default what the network takes."""
        return self.split(cfg, variant, data, split)[0]

    def vocabulary(self, cfg: DictConfig, data: Arrays) -> list[str] | None:
        """The vocabulary learned from the training texts, for experiments that read text."""
        return None

    def summary(
        self, cfg: DictConfig, results: dict[str, dict], histories: dict[str, dict[str, list[float]]]
    ) -> tuple[dict, dict[str, Any]]:
        """Across variants, after evaluation: (tables for the metrics file, {file: figure})."""
        return {}, {}

    # --- shared -------------------------------------------------------------------------
    def variants(self, cfg: DictConfig) -> list[str]:
        return list(cfg.variants)

    def variant_config(self, cfg: DictConfig, variant: str) -> DictConfig:
        if variant not in cfg.variants:
            raise ConfigError(f"Unknown variant {variant!r}; valid choices: {', '.join(cfg.variants)}.")
        return cfg.variants[variant]

    def resolve(self, cfg: DictConfig, variant: str) -> DictConfig:
        """The experiment config as this variant runs it: a variant may override any key of
        ``model`` or ``train`` (e.g. ``{train: {epochs: 30, early_stopping: {...}}}``)."""
        spec = self.variant_config(cfg, variant)
        overrides = {key: spec[key] for key in ("model", "train") if key in spec}
        if not overrides:
            return cfg
        base = cfg.copy()
        OmegaConf.set_struct(base, False)  # a variant may add keys (e.g. a callback)
        merged = OmegaConf.merge(base, overrides)
        optimizer = OmegaConf.select(spec, "train.optimizer.name")
        if optimizer and optimizer != cfg.train.optimizer.name:
            # another optimizer replaces the base one; merging would mix their arguments
            merged.train.optimizer = spec.train.optimizer
        return merged

    def evaluation(self, cfg: DictConfig, variant: str, model: keras.Model, data: Arrays) -> dict[str, float]:
        """What the evaluate stage reports for a trained variant: test and validation scores."""
        return {
            **{f"test_{k}": v for k, v in self.score(cfg, variant, model, data, "test").items()},
            **{f"val_{k}": v for k, v in self.score(cfg, variant, model, data, "valid").items()},
        }

    def train_variant(
        self,
        cfg: DictConfig,
        variant: str,
        data: Arrays,
        *,
        seed: int,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        fast: bool = True,
        logger: RunLogger | None = None,
    ) -> TrainedVariant:
        """Train one variant on the train split, validated on the valid split. Experiments that
        only add to this fit do it through ``extra_callbacks`` and ``after_training``; those with
        another protocol (k-fold, several members) override this and may open ``logger.child``
        runs; ``cfg`` is the experiment config, resolved here with the variant's overrides."""
        cfg = self.resolve(cfg, variant)
        training.seed_everything(seed)
        model = self.build(cfg, variant, data)
        own_callbacks = self.extra_callbacks(cfg, variant, data)
        result = training.fit(
            model,
            self.split(cfg, variant, data, "train"),
            self.split(cfg, variant, data, "valid"),
            epochs=int(cfg.train.epochs),
            batch_size=int(cfg.train.batch_size),
            # this order matters: each callback sees what the ones before it changed (the
            # learning rate, the weights early stopping restores)
            callbacks=[*training.callbacks_from_config(cfg.train), *own_callbacks, *callbacks],
            fast=fast,
        )
        trained = TrainedVariant(model, result)
        # a model with one output names its validation loss val_loss, whatever ``monitor`` says
        curve = result.history.get(self.monitor) or result.history.get("val_loss")
        if self.reports_best_epoch and curve:
            trained.metrics["best_epoch"] = int(np.argmin(curve)) + 1
        trained.metrics.update(self.after_training(cfg, variant, data, trained, own_callbacks))
        return trained

    def input_example(self, cfg: DictConfig, variant: str, data: Arrays, rows: int = 5) -> Any:
        inputs, _ = self.split(cfg, variant, data, "test")
        if isinstance(inputs, Mapping):
            return {k: np.asarray(v[:rows]) for k, v in inputs.items()}
        return np.asarray(inputs[:rows])

    #: the split whose rows check (and exemplify) the logged model
    serving_split: str = "test"

    def servable(self, cfg: DictConfig, variant: str, model: keras.Model, data: Arrays) -> Servable:
        """The trained variant as a model that takes raw inputs and names its outputs."""
        cfg = self.resolve(cfg, variant)
        spec = {
            "experiment": self.name,
            "variant": variant,
            "input": self.serving_input(cfg, variant, data),
            "outputs": self.serving_outputs(cfg, variant, data),
        }
        split = self.serving_split
        return Servable(
            model,
            spec,
            raw_test=head(self.raw_inputs(cfg, variant, data, split), CHECK_ROWS),
            network_test=head(self.split(cfg, variant, data, split)[0], CHECK_ROWS),
            vocabulary=self.vocabulary(cfg, data),
        )

    def flat_params(self, cfg: DictConfig, variant: str) -> dict[str, Any]:
        """The parameters of one variant as MLflow params (dotted keys)."""
        plain = OmegaConf.to_container(self.resolve(cfg, variant), resolve=True)
        chosen = {
            "model": plain.get("model", {}),
            "train": plain.get("train", {}),
            "variant": plain["variants"][variant],
        }
        return dict(_flatten(chosen))


def _flatten(tree: Mapping[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
