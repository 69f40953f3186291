"""Note 000: Wide & Deep on California housing (single input, two inputs, two outputs), and the
tune stage's variant of it (see conf/experiments/wide_deep.yaml, variant ``search``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig
from sklearn.metrics import root_mean_squared_error

from pipeline.experiments.base import Experiment
from pipeline.models.wide_deep import build_wide_deep
from pipeline.plots import predicted_vs_actual
from pipeline.serving import table, table_input, value_output
from pipeline.training import compile_model


#: California housing's columns, in the order of sklearn.datasets.fetch_california_housing
FEATURES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")


class WideDeep(Experiment):
    name = "wide_deep"

    def _inputs(self, cfg: DictConfig, variant: str, x: np.ndarray) -> dict[str, np.ndarray]:
        cfg = self.resolve(cfg, variant)  # a variant may change the features (idempotent)
        x = x.astype("float32")
        crossed = self._crossed(cfg, x)
        if self.variant_config(cfg, variant).inputs == "single":
            return {"wide": x, **crossed}
        (w0, w1), (d0, d1) = cfg.model.wide_features, cfg.model.deep_features
        return {"wide": x[:, w0:w1], "deep": x[:, d0:d1], **crossed}

    @staticmethod
    def _crossed(cfg: DictConfig, x: np.ndarray) -> dict[str, np.ndarray]:
        """The columns crossed into the wide path (an input each), if ``model.cross_bins``."""
        if not cfg.model.get("cross_bins"):
            return {}
        return {FEATURES[i].lower(): x[:, i : i + 1] for i in cfg.model.cross_features}

    def serving_input(self, cfg, variant, data):
        """The 8 columns in their original units, routed as _inputs() slices them."""
        routing = {"wide": list(FEATURES)}
        if self.variant_config(cfg, variant).inputs != "single":
            (w0, w1), (d0, d1) = cfg.model.wide_features, cfg.model.deep_features
            routing = {"wide": list(FEATURES[w0:w1]), "deep": list(FEATURES[d0:d1])}
        if cfg.model.get("cross_bins"):
            routing.update({FEATURES[i].lower(): [FEATURES[i]] for i in cfg.model.cross_features})
        return table_input(FEATURES, routing)

    def serving_outputs(self, cfg, variant, data):
        """Median house value in $100,000s: the main output, and the auxiliary one if any."""
        outputs = ["main", "aux"] if self.variant_config(cfg, variant).aux_output else ["main"]
        return [value_output(name, output=name) for name in outputs]

    def raw_inputs(self, cfg, variant, data, split):
        return table(data[f"x_{split}"], FEATURES)

    def variants(self, cfg: DictConfig) -> list[str]:
        """The variants the train and evaluate stages run: not the tune stage's own model."""
        return [name for name, spec in cfg.variants.items() if not spec.get("tune_only", False)]

    def split(self, cfg, variant, data, split):
        y = data[f"y_{split}"].astype("float32").reshape(-1, 1)
        targets = {"main": y}
        if self.variant_config(cfg, variant).aux_output:
            targets["aux"] = y  # the auxiliary output predicts the same target from the deep path
        return self._inputs(cfg, variant, data[f"x_{split}"]), targets

    def build(self, cfg, variant, data):
        spec = self.variant_config(cfg, variant)
        train_inputs = self._inputs(cfg, variant, data["x_train"])
        model = build_wide_deep(
            wide_train=train_inputs["wide"],
            deep_train=train_inputs.get("deep"),
            units=int(cfg.model.units),
            depth=int(cfg.model.depth),
            activation=cfg.model.activation,
            aux_output=bool(spec.aux_output),
            soft_clip=cfg.model.get("soft_clip"),
            crossed_train={k: v for k, v in train_inputs.items() if k not in ("wide", "deep")},
            cross_bins=int(cfg.model.get("cross_bins") or 0),
        )
        outputs = ["main", "aux"] if spec.aux_output else ["main"]
        weights = dict(zip(outputs, spec.loss_weights)) if spec.loss_weights else None
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss={name: cfg.train.loss for name in outputs},
            loss_weights=weights,
            metrics={name: [keras.metrics.RootMeanSquaredError(name="rmse")] for name in outputs},
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def score(self, cfg, variant, model, data, split) -> dict[str, float]:
        inputs, targets = self.split(cfg, variant, data, split)
        predictions = model.predict(inputs, batch_size=4096, verbose=0)
        scores = {"rmse": float(root_mean_squared_error(targets["main"], predictions["main"]))}
        if "aux" in predictions:
            scores["rmse_aux"] = float(root_mean_squared_error(targets["aux"], predictions["aux"]))
            weights = self.variant_config(cfg, variant).loss_weights
            scores["loss"] = float(weights[0] * scores["rmse"] ** 2 + weights[1] * scores["rmse_aux"] ** 2)
        return scores

    def figure(self, cfg, variant, model, data):
        inputs, targets = self.split(cfg, variant, data, "test")
        predicted = model.predict(inputs, batch_size=4096, verbose=0)["main"]
        return predicted_vs_actual(
            targets["main"].ravel(), predicted.ravel(), f"wide_deep / {variant}: test set"
        )

    def baseline(self, cfg, data) -> dict[str, Any]:
        """Predict the training mean for every house."""
        mean = float(data["y_train"].mean())
        return {"rmse": float(root_mean_squared_error(data["y_test"], np.full_like(data["y_test"], mean)))}
