"""Note 003 (Chollet ch. 7), directed acyclic graphs of layers: a plain Conv2D network, an
Inception-style network and an Xception-style network of depthwise separable convolutions,
of similar size, on Fashion-MNIST; parameters, accuracy and training time side by side."""

from __future__ import annotations

from pipeline.experiments.classification import ArchitectureChoiceExperiment, n_classes
from pipeline.models.graphs import CONV_ARCHITECTURES, build_conv_net
from pipeline.training import compile_model


class Inception(ArchitectureChoiceExperiment):
    name = "inception"

    architectures = tuple(CONV_ARCHITECTURES)

    def build(self, cfg, variant, data):
        model = build_conv_net(
            architecture=self.architecture(cfg, variant),
            input_shape=data["x_train"].shape[1:],
            n_outputs=n_classes(data),
            filters=int(cfg.model.filters),
            dropout=float(cfg.model.dropout),
            name=variant,
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def after_training(self, cfg, variant, data, trained, callbacks):
        model, fit = trained.model, trained.fit
        return {
            "params": int(model.count_params()),
            "trainable_params": int(sum(w.numpy().size for w in model.trainable_weights)),
            "seconds_per_epoch": round(fit.seconds / max(fit.epochs, 1), 2),
        }

    def summary(self, cfg, results, histories):
        """Parameters, accuracy and time per variant; test accuracy against parameters and the
        validation curves in one figure."""
        import matplotlib.pyplot as plt

        rows = [
            {
                "variant": variant,
                "params": entry.get("params"),
                "test_accuracy": entry.get("test_accuracy"),
                "val_accuracy": entry.get("val_accuracy"),
                "epochs": entry.get("epochs"),
                "train_seconds": entry.get("train_seconds"),
                "seconds_per_epoch": entry.get("seconds_per_epoch"),
            }
            for variant, entry in results.items()
        ]
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for row in rows:
            if row["params"] is not None and row["test_accuracy"] is not None:
                left.scatter(row["params"], row["test_accuracy"])
                left.annotate(
                    row["variant"],
                    (row["params"], row["test_accuracy"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
            curve = histories.get(row["variant"], {}).get("val_accuracy", [])
            right.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=row["variant"])
        left.set_xlabel("parameters")
        left.set_ylabel("test accuracy")
        left.set_title("size vs accuracy")
        right.set_xlabel("epoch")
        right.set_ylabel("validation accuracy")
        right.xaxis.get_major_locator().set_params(integer=True)
        right.set_title("learning curves")
        right.legend(fontsize=8)
        for axis in (left, right):
            axis.grid(alpha=0.3)
        figure.tight_layout()
        return {"comparison": rows}, {"comparison.png": figure}
