"""Figures people would rather look at than read: learning curves, predictions vs truth."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(history: Mapping[str, Sequence[float]], title: str):
    """One panel per metric, training and validation overlaid."""
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.3 * rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    for axis, name in zip(axes.flat, names):
        epochs = np.arange(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str):
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(actual, predicted, s=3, alpha=0.3)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def save(figure, path) -> None:
    from pipeline.io import atomic_path

    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
