"""Note 002 (Chollet, ch. 3): Boston house prices, 4-fold cross-validation on the 404 training
houses, then a final model on all of them scored on the 102 test houses.

The note normalizes with ``train_data -= std`` where it means ``/= std``: its features are
centred but not scaled, and its mean validation MAE (2.64) comes from that. Here each fold's
Normalization layer learns mean and std from the fold's training part only.
"""

from __future__ import annotations

import keras
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from pipeline.experiments.crossval import CrossValidated, predict
from pipeline.models.dense import build_mlp
from pipeline.plots import predicted_vs_actual
from pipeline.serving import value_output
from pipeline.training import compile_model


class Boston(CrossValidated):
    name = "boston"
    monitor = "val_mae"  # lower is better, like the tune study's cv_mae_mean (direction minimize)
    splits = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
    evaluated_splits = ("test",)
    # the 13 features of Harrison & Rubinfeld (1978), in keras.datasets.boston_housing's order
    columns = (
        "CRIM",
        "ZN",
        "INDUS",
        "CHAS",
        "NOX",
        "RM",
        "AGE",
        "DIS",
        "RAD",
        "TAX",
        "PTRATIO",
        "B",
        "LSTAT",
    )

    def build_model(self, cfg, variant, train_x):
        model = build_mlp(
            train_x=train_x,
            units=int(cfg.model.units),
            depth=int(cfg.model.depth),
            name="boston",
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss=cfg.train.loss,
            metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def serving_outputs(self, cfg, variant, data):
        return [value_output("MEDV")]  # median value of owner-occupied homes, in $1000s

    def metrics_of(self, y_true, predicted):
        return {
            "mae": float(mean_absolute_error(y_true, predicted)),
            "rmse": float(root_mean_squared_error(y_true, predicted)),
        }

    def figure(self, cfg, variant, model, data):
        x, y = self.split(cfg, variant, data, "test")
        return predicted_vs_actual(y, predict(model, x), f"boston / {variant}: test houses")
