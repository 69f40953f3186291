"""Note 001, second part: softmax regression and a regularized Dense(64) on Fashion-MNIST."""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.experiments.classification import FashionClassifier, n_classes
from pipeline.models.dense import build_dense_classifier
from pipeline.training import compile_model

# The note's networks in order; each keeps the regularization of the one before it and adds one:
# no hidden layer; Dense(64) with L2 kernel + L1 activity penalties; + max-norm; + dropout.
NETWORKS = ("softmax", "l2_l1", "max_norm", "dropout")


class FashionRegularization(FashionClassifier):
    name = "fashion_regularization"

    def network_layers(self, cfg, variant) -> dict:
        """Layer arguments of a variant's network; their strengths come from ``model``."""
        network = self.variant_config(cfg, variant).network
        if network not in NETWORKS:
            raise ConfigError(
                f"Unknown network {network!r} in variant {variant!r}; valid choices: {', '.join(NETWORKS)}."
            )
        level, model = NETWORKS.index(network), cfg.model
        return {
            "depth": 1 if level >= 1 else 0,
            "units": int(model.units),
            "activation": model.activation,
            "kernel_l2": float(model.kernel_l2),
            "activity_l1": float(model.activity_l1),
            "max_norm": float(model.max_norm) if level >= 2 else None,
            "dropout": float(model.dropout) if level >= 3 else 0.0,
        }

    def build(self, cfg, variant, data):
        model = build_dense_classifier(
            input_shape=data["x_train"].shape[1:],
            n_outputs=n_classes(data),
            output_activation="softmax",
            scale=1 / 255,
            name=f"fashion_{variant}",
            **self.network_layers(cfg, variant),
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )
