"""Note 004 (Géron ch. 11): training deep networks on Fashion-MNIST, one variant per technique.

Every variant is the seed's Dense 300 -> 100 -> 10 network trained with SGD(1e-3) for 10
epochs, changed in one respect (initializer, activation, batch norm, clipping, optimizer,
learning-rate schedule, regularization). Variants carry a ``group``; ``train.groups``
chooses which families run (``[all]`` or e.g. ``[optimizers]``). Per-layer gradient norms at
the start and end of training and the learning rate per epoch are recorded for every variant.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf

from pipeline import training
from pipeline.errors import ConfigError
from pipeline.experiments.classification import FashionClassifier, n_classes
from pipeline.models.dense import build_deep_mlp
from pipeline.models.factories import make_schedule
from pipeline.training import compile_model


class DeepTraining(FashionClassifier):
    name = "deep_training"

    def variants(self, cfg) -> list[str]:
        groups = list(cfg.train.groups)
        known = {spec.group for spec in cfg.variants.values()}
        unknown = set(groups) - known - {"all"}
        if unknown:
            raise ConfigError(
                f"Unknown technique group(s) {sorted(unknown)}; valid choices: "
                f"all, {', '.join(sorted(known))}."
            )
        return [name for name, spec in cfg.variants.items() if "all" in groups or spec.group in groups]

    def build(self, cfg, variant, data):
        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
        model = build_deep_mlp(
            x_train=data["x_train"], n_outputs=n_classes(data), name=f"deep_{variant}", **model_cfg
        )
        optimizer = dict(cfg.train.optimizer)
        steps_per_epoch = math.ceil(len(data["y_train"]) / int(cfg.train.batch_size))
        schedule = make_schedule(cfg.train.get("schedule"), steps_per_epoch)
        if schedule is not None:
            optimizer["learning_rate"] = schedule
        return compile_model(
            model,
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def extra_callbacks(self, cfg, variant, data):
        return [training.GradientNorms.on_training_sample(data, "sparse_categorical_crossentropy")]

    def after_training(self, cfg, variant, data, trained, callbacks):
        (norms,) = callbacks
        metrics = norms.metrics()
        start = norms.norms.get("start", {})
        if start.get("hidden1") and start.get("output"):
            # < 1: the first layer learns slower than the last (vanishing gradients)
            metrics["grad_ratio_first_to_last_start"] = start["hidden1"] / start["output"]
        metrics["group"] = self.variant_config(cfg, variant).group
        return metrics

    def summary(self, cfg, results, histories):
        """One table and one overlaid validation-accuracy plot per technique group."""
        import matplotlib.pyplot as plt

        tables: dict[str, list[dict]] = {}
        for variant, entry in results.items():
            tables.setdefault(entry.get("group", "all"), []).append(
                {
                    "variant": variant,
                    "val_accuracy": entry.get("val_accuracy"),
                    "test_accuracy": entry.get("test_accuracy"),
                    "epochs": entry.get("epochs"),
                    "train_seconds": entry.get("train_seconds"),
                    "grad_ratio_first_to_last_start": entry.get("grad_ratio_first_to_last_start"),
                }
            )
        figures = {}
        for group, rows in tables.items():
            figure, axis = plt.subplots(figsize=(6, 4))
            for row in rows:
                curve = histories.get(row["variant"], {}).get("val_accuracy", [])
                axis.plot(range(1, len(curve) + 1), curve, label=row["variant"])
            axis.set_xlabel("epoch")
            axis.set_ylabel("validation accuracy")
            axis.set_title(f"{self.name}: {group}")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
            figure.tight_layout()
            figures[f"{group}.png"] = figure
        return tables, figures
