"""Prepared datasets: raw arrays split exactly as the seed notes split them (seeded, sklearn)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from sklearn.model_selection import train_test_split

Arrays = dict[str, np.ndarray]


def split_california(raw: Arrays, split: Mapping[str, Any]) -> Arrays:
    """Note 000: train_test_split(random_state=42) twice -> 11,610 / 3,870 / 5,160."""
    x_full, x_test, y_full, y_test = train_test_split(
        raw["x"], raw["y"], test_size=split["test_size"], random_state=split["random_state"]
    )
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_full, y_full, test_size=split["valid_size"], random_state=split["random_state"]
    )
    return {"x_train": x_train, "y_train": y_train, "x_valid": x_valid, "y_valid": y_valid,
            "x_test": x_test, "y_test": y_test}


# dataset source name -> how its prepared splits are made
SPLITTERS: dict[str, Callable[[Arrays, Mapping[str, Any]], Arrays]] = {
    "california_housing": split_california,
}


def summarize(arrays: Arrays) -> dict[str, Any]:
    """Shapes, and target statistics or class balance of every y_* array."""
    summary: dict[str, Any] = {"shapes": {k: list(v.shape) for k, v in arrays.items()}}
    for key, values in arrays.items():
        if not key.startswith("y"):
            continue
        if np.issubdtype(values.dtype, np.integer):
            labels, counts = np.unique(values, return_counts=True)
            summary[f"{key}_classes"] = {int(l): int(c) for l, c in zip(labels, counts)}
        else:
            summary[f"{key}_stats"] = {"mean": float(values.mean()), "std": float(values.std()),
                                       "min": float(values.min()), "max": float(values.max())}
    return summary
