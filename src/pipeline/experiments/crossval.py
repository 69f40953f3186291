"""K-fold cross-validation for the experiments with a few hundred rows (notes 001 and 002).

A single holdout split of 400 rows says little, so these experiments are judged on folds: each
fold trains a fresh model whose preprocessing (its Normalization layer) is adapted on that fold's
training part only, and the folds' validation scores are summarized as mean and std. A final
model is then trained on all the training rows; it is what the stages save, log and evaluate.
The null model (predict the training part's mean) is scored on the very same folds, so every
cross-validated figure comes with the figure it has to beat.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import keras
import numpy as np
from omegaconf import DictConfig
from sklearn.dummy import DummyRegressor
from sklearn.model_selection import (
    BaseCrossValidator,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
)

from pipeline import training
from pipeline.errors import ConfigError
from pipeline.experiments.base import Experiment, NullLogger, RunLogger, TrainedVariant
from pipeline.models.ensemble import build_average_ensemble
from pipeline.serving import table, table_input

Scores = dict[str, float]

SPLITTERS = {
    "kfold": KFold,
    "stratified_kfold": StratifiedKFold,
    "repeated_kfold": RepeatedKFold,
    "repeated_stratified_kfold": RepeatedStratifiedKFold,
}

FINAL_MODELS = ("refit", "fold_ensemble")


def make_splitter(spec: Mapping[str, Any]) -> BaseCrossValidator:
    """``{name: kfold, n_splits: 4, shuffle: false}`` -> the scikit-learn splitter."""
    options = dict(spec)
    name = options.pop("name", None)
    if name not in SPLITTERS:
        raise ConfigError(
            f"Unknown cross-validation splitter {name!r}; valid choices: {', '.join(SPLITTERS)}."
        )
    try:
        return SPLITTERS[name](**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Bad options for the {name} splitter {options}: {error}") from error


def summarize(fold_scores: Sequence[Scores], per_fold: bool = False) -> Scores:
    """``[{"mae": 2.1}, {"mae": 2.9}]`` -> ``cv_mae_mean``, ``cv_mae_std`` (population std, as
    scikit-learn's cross_val_score(...).std()) and, if asked, ``cv_mae_fold1``, ``cv_mae_fold2``."""
    summary: Scores = {}
    for name in fold_scores[0]:
        values = np.array([scores[name] for scores in fold_scores], dtype="float64")
        summary[f"cv_{name}_mean"] = float(values.mean())
        summary[f"cv_{name}_std"] = float(values.std())
        if per_fold:
            summary.update({f"cv_{name}_fold{k}": float(v) for k, v in enumerate(values, start=1)})
    return summary


@contextlib.contextmanager
def fold_reporter(logger: RunLogger, fold: int, own_run: bool) -> Iterator[Callable[[Scores], None]]:
    """Where fold ``fold`` reports its validation scores: its own child run ``fold-<k>`` under
    the variant's run (``val_mae``), or the variant's run itself with the fold as step
    (``fold_val_mae``), which keeps 15 folds x 5 variants from flooding the run list."""
    if own_run:
        with logger.child(f"fold-{fold}") as child:
            yield lambda scores: child.log_metrics({f"val_{k}": v for k, v in scores.items()})
    else:
        yield lambda scores: logger.log_metrics({f"fold_val_{k}": v for k, v in scores.items()}, step=fold)


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=training.VALIDATION_BATCH, verbose=0).ravel()


def _column_targets(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Targets shaped (n, 1) like the model's single output unit."""
    x, y = pair
    return x, y.reshape(-1, 1)


class CrossValidated(Experiment):
    """An experiment trained and judged by k-fold cross-validation on its "train" split.

    Config: ``train.cv: {splitter: {name, ...scikit-learn options}, fold_runs, per_fold, final}``
    (under ``train``, so variants may override it and MLflow records it with the other params).
    ``final`` says what the stages keep: ``refit`` (the default; one more model on every
    training row, as the notes do) or ``fold_ensemble`` (the mean of the fold models, each
    checked on its held-out fold: no refit, and a variance the folds have already averaged).
    Subclasses give the array keys of their splits, the model and the scoring of predictions.
    """

    #: split -> (inputs key, targets key) in the prepared arrays; folds are cut from "train"
    splits: Mapping[str, tuple[str, str]] = {}
    #: the splits evaluation() scores the final model on
    evaluated_splits: tuple[str, ...] = ()
    #: the names of the feature columns, in the order of the prepared arrays
    columns: tuple[str, ...] = ()

    # --- to implement -------------------------------------------------------------------
    def build_model(self, cfg: DictConfig, variant: str, train_x: np.ndarray) -> keras.Model:
        """A compiled model whose preprocessing is fit on ``train_x`` (a fold's training part)."""
        raise NotImplementedError

    def metrics_of(self, y_true: np.ndarray, predicted: np.ndarray) -> Scores:
        """Scores of predictions (scikit-learn metrics), e.g. ``{"mae": ...}``."""
        raise NotImplementedError

    # --- the Experiment contract ----------------------------------------------------------
    def split(self, cfg, variant, data, split):
        if split not in self.splits:
            raise ConfigError(f"{self.name} has no {split!r} split; it has: {', '.join(self.splits)}.")
        x_key, y_key = self.splits[split]
        return data[x_key].astype("float32"), data[y_key].astype("float32")

    def build(self, cfg, variant, data):
        return self.build_model(cfg, variant, self.split(cfg, variant, data, "train")[0])

    def score(self, cfg, variant, model, data, split) -> Scores:
        x, y = self.split(cfg, variant, data, split)
        return self.metrics_of(y, predict(model, x))

    def evaluation(self, cfg, variant, model, data) -> Scores:
        """The final model's scores on ``evaluated_splits`` (its cross-validated scores were
        measured during training and come from the metrics of the train stage)."""
        return {
            f"{split}_{name}": value
            for split in self.evaluated_splits
            for name, value in self.score(cfg, variant, model, data, split).items()
        }

    def baseline(self, cfg, data) -> Scores:
        """The null model, scored like a variant (same folds, same evaluated splits): it
        predicts the training part's mean, i.e. the average price for a regression and the
        positive rate as a probability for a 0/1 target (thresholded: the majority class)."""
        x, y = self.split(cfg, None, data, "train")
        splitter = make_splitter(cfg.train.cv.splitter)
        folds = [
            self.metrics_of(y[val], DummyRegressor().fit(x[fit], y[fit]).predict(x[val]))
            for fit, val in splitter.split(x, y)
        ]
        scores = summarize(folds)
        null = DummyRegressor().fit(x, y)
        for split in self.evaluated_splits:
            x_eval, y_eval = self.split(cfg, None, data, split)
            scores.update(
                {f"{split}_{k}": v for k, v in self.metrics_of(y_eval, null.predict(x_eval)).items()}
            )
        return scores

    def serving_input(self, cfg, variant, data):
        return table_input(self.columns)  # the network's one input is named "features"

    def raw_inputs(self, cfg, variant, data, split):
        return table(self.split(cfg, variant, data, split)[0], self.columns)

    @property
    def serving_split(self) -> str:
        return self.evaluated_splits[0]

    def input_example(self, cfg, variant, data, rows: int = 5):
        return self.split(cfg, variant, data, "train")[0][:rows]

    def train_variant(
        self, cfg, variant, data, *, seed, callbacks=(), fast=True, logger=None
    ) -> TrainedVariant:
        """Cross-validate the variant, then make its final model (``cv.final``).

        The stage's ``callbacks`` (the tune stage's pruner, MLflow's per-epoch logger) are made
        for one fit per run: the pruner must not see epoch 1 again with every fold. They watch
        the first fold, whose learning curve is also the variant's history. Validating every
        epoch nearly doubles a fit on these small sets, so the other folds are scored once,
        after training, unless the config's callbacks (early stopping...) need every epoch.
        """
        cfg = self.resolve(cfg, variant)
        logger = logger or NullLogger()
        cv = cfg.train.cv
        final_kind = cv.get("final", "refit")
        if final_kind not in FINAL_MODELS:  # before any fold trains
            raise ConfigError(
                f"Unknown train.cv.final {final_kind!r}; valid choices: {', '.join(FINAL_MODELS)}."
            )
        every_epoch = bool(training.callbacks_from_config(cfg.train))
        x, y = self.split(cfg, variant, data, "train")
        started = time.perf_counter()
        fold_fits, fold_scores, fold_models = [], [], []
        # one traced model for the folds and the refit; a fold ensemble keeps every fold's model
        traced = None if final_kind == "fold_ensemble" else training.TracedModel()
        folds = make_splitter(cv.splitter).split(x, y)
        for fold, (fit_rows, val_rows) in enumerate(folds, start=1):
            watched = fold == 1
            with fold_reporter(logger, fold, bool(cv.fold_runs)) as report:
                model, fit = self._fit(
                    cfg,
                    variant,
                    (x[fit_rows], y[fit_rows]),
                    (x[val_rows], y[val_rows]) if watched or every_epoch else None,
                    seed=seed + fold,
                    epochs=int(cfg.train.epochs),
                    fast=fast,
                    callbacks=[*training.callbacks_from_config(cfg.train), *(callbacks if watched else ())],
                    traced=traced,
                )
                fold_scores.append(self.metrics_of(y[val_rows], predict(model, x[val_rows])))
                report(fold_scores[-1])
            fold_fits.append(fit)
            model.name = f"{self.name}_fold{fold}"  # unique names inside an ensemble
            fold_models.append(model)
        if final_kind == "fold_ensemble":
            final = build_average_ensemble(fold_models, name=self.name, input_name="features")
            fits = fold_fits
        else:
            # As many epochs as the folds ran (the median, should early stopping end them
            # sooner); no validation rows are left, so no config callbacks either.
            epochs = int(np.median([fit.epochs for fit in fold_fits]))
            final, final_fit = self._fit(
                cfg, variant, (x, y), None, seed=seed, epochs=epochs, fast=fast, callbacks=(), traced=traced
            )
            fits = [*fold_fits, final_fit]
        seconds = time.perf_counter() - started
        summary = training.FitResult(
            history=fold_fits[0].history,
            epochs=fits[-1].epochs,
            seconds=seconds,  # all folds and the final model
            samples_per_second=sum(f.samples_per_second * f.seconds for f in fits) / seconds,
        )
        return TrainedVariant(final, summary, summarize(fold_scores, per_fold=bool(cv.per_fold)))

    def _fit(
        self,
        cfg: DictConfig,
        variant: str,
        train: tuple[np.ndarray, np.ndarray],
        valid: tuple[np.ndarray, np.ndarray] | None,
        *,
        seed: int,
        epochs: int,
        callbacks: Sequence[keras.callbacks.Callback],
        fast: bool,
        traced: training.TracedModel | None = None,
    ) -> tuple[keras.Model, training.FitResult]:
        """A model built for ``train`` and fitted, on ``traced`` if given (the same result,
        without tracing the model's functions again)."""
        training.seed_everything(seed)
        model = self.build_model(cfg, variant, train[0])
        fit = (traced.fit if traced else training.fit)(
            model,
            _column_targets(train),
            _column_targets(valid) if valid else None,
            epochs=epochs,
            batch_size=int(cfg.train.batch_size),
            callbacks=callbacks,
            fast=fast,
        )
        return model, fit
