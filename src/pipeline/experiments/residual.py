"""Note 003 (Chollet ch. 7), residual connections: a deep Dense network on Fashion-MNIST with
and without them.

Both variants have the same 25 hidden Dense layers (a stem, then 8 layers of each width
256 -> 128 -> 64), each followed by batch normalization, as the chapter recommends, and ReLU;
the ``residual`` variant adds every block's input to its output, through a linear Dense
projection where the width changes. Per-layer gradient norms on a fixed training batch are
recorded at the start and the end of training: the vanishing-gradient story the note tells,
in numbers (first layer / output layer, and residual / plain for the first layer).
"""

from __future__ import annotations

import re

import numpy as np
from omegaconf import OmegaConf

from pipeline import training
from pipeline.experiments.classification import ArchitectureChoiceExperiment, n_classes
from pipeline.models.graphs import build_deep_dense
from pipeline.training import compile_model

ARCHITECTURES = ("plain", "residual")
MOMENTS = ("start", "end")


def layer_order(names) -> list[str]:
    """``hidden1..hiddenN`` in depth order, then ``output`` (projections left out)."""
    hidden = sorted((n for n in names if re.fullmatch(r"hidden\d+", n)), key=lambda n: int(n[6:]))
    return hidden + (["output"] if "output" in names else [])


def gradient_profile(entry: dict, moment: str) -> dict[str, float]:
    """{layer: norm} of one variant's ``grad_norm_<moment>_<layer>`` metrics, in depth order."""
    prefix = f"grad_norm_{moment}_"
    norms = {k[len(prefix) :]: v for k, v in entry.items() if k.startswith(prefix)}
    return {layer: norms[layer] for layer in layer_order(norms)}


class Residual(ArchitectureChoiceExperiment):
    name = "residual"

    architectures = ARCHITECTURES

    def build(self, cfg, variant, data):
        model = build_deep_dense(
            input_shape=data["x_train"].shape[1:],
            n_outputs=n_classes(data),
            residual=self.architecture(cfg, variant) == "residual",
            name=f"deep_{variant}",
            **OmegaConf.to_container(cfg.model, resolve=True),
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def extra_callbacks(self, cfg, variant, data):
        return [training.GradientNorms.on_training_sample(data, "sparse_categorical_crossentropy")]

    def after_training(self, cfg, variant, data, trained, callbacks):
        (norms,) = callbacks
        metrics = {
            "params": int(trained.model.count_params()),
            "dense_layers": len(layer_order(norms.norms["start"])),
            **norms.metrics(),
        }
        for moment in MOMENTS:
            layers = norms.norms.get(moment, {})
            if layers.get("hidden1") and layers.get("output"):
                # < 1: the first layer learns slower than the last (vanishing gradients)
                metrics[f"grad_ratio_first_last_{moment}"] = layers["hidden1"] / layers["output"]
        return metrics

    def summary(self, cfg, results, histories):
        """A comparison table (accuracy, gradient ratios, residual / plain first-layer gradient)
        and per-layer gradient norms of both variants at the start and end of training."""
        import matplotlib.pyplot as plt

        rows = [
            {
                "variant": variant,
                "params": entry.get("params"),
                "val_accuracy": entry.get("val_accuracy"),
                "test_accuracy": entry.get("test_accuracy"),
                "epochs": entry.get("epochs"),
                "train_seconds": entry.get("train_seconds"),
                **{f"grad_ratio_first_last_{m}": entry.get(f"grad_ratio_first_last_{m}") for m in MOMENTS},
            }
            for variant, entry in results.items()
        ]
        tables: dict = {"comparison": rows}
        by_architecture = {self.architecture(cfg, v): e for v, e in results.items()}
        if set(by_architecture) == set(ARCHITECTURES):
            plain, residual = by_architecture["plain"], by_architecture["residual"]
            tables["residual_vs_plain"] = {
                **{
                    f"first_layer_grad_ratio_{m}": residual[f"grad_norm_{m}_hidden1"]
                    / plain[f"grad_norm_{m}_hidden1"]
                    for m in MOMENTS
                    if f"grad_norm_{m}_hidden1" in residual and f"grad_norm_{m}_hidden1" in plain
                },
                "val_accuracy_diff": residual.get("val_accuracy", np.nan) - plain.get("val_accuracy", np.nan),
                "test_accuracy_diff": residual.get("test_accuracy", np.nan)
                - plain.get("test_accuracy", np.nan),
            }
        figure, axes = plt.subplots(1, len(MOMENTS), figsize=(11, 4), sharey=True)
        for axis, moment in zip(axes, MOMENTS):
            for variant, entry in results.items():
                profile = gradient_profile(entry, moment)
                axis.plot(
                    range(1, len(profile) + 1),
                    list(profile.values()),
                    marker="o",
                    markersize=3,
                    label=variant,
                )
            axis.set_yscale("log")
            axis.set_xlabel("Dense layer (1 = first hidden, last = output)")
            axis.set_title(f"gradient norm per layer, {moment} of training")
            axis.grid(alpha=0.3, which="both")
            axis.legend()
        axes[0].set_ylabel("||dL/dW|| of the kernel")
        figure.tight_layout()
        return tables, {"gradient_norms.png": figure}
