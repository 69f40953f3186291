"""Prepared datasets: raw arrays split exactly as the seed notes split them (seeded, sklearn)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.data.text import pack_ragged, pack_texts

Arrays = dict[str, np.ndarray]


def split_california(raw: Arrays, split: Mapping[str, Any]) -> Arrays:
    """Note 000: train_test_split(random_state=42) twice -> 11,610 / 3,870 / 5,160."""
    x_full, x_test, y_full, y_test = train_test_split(
        raw["x"], raw["y"], test_size=split["test_size"], random_state=split["random_state"]
    )
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_full, y_full, test_size=split["valid_size"], random_state=split["random_state"]
    )
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_valid": x_valid,
        "y_valid": y_valid,
        "x_test": x_test,
        "y_test": y_test,
    }


def split_as_shipped(raw: Arrays, split: Mapping[str, Any]) -> Arrays:
    """The arrays as the source gives them: Keras' 404/102 split of Boston housing (note 002),
    all 470 thoracic-surgery rows as x/y (note 001). Those experiments cut their own folds."""
    return dict(raw)


def hold_out_validation(
    raw: Arrays, split: Mapping[str, Any], x: str = "x", also: Sequence[str] = ()
) -> Arrays:
    """Keep the source's train/test split; take ``valid_size`` training rows for validation:
    the first ones (``random_state: null``, as Chollet and Géron do) or a seeded, stratified
    sample. Works on any row-indexable array (images, object arrays of sequences or texts).
    ``also`` names further per-row arrays (``<name>_train``, ``<name>_test``) split the same way."""
    y = raw["y_train"]
    rows = np.arange(len(y))
    if split.get("random_state") is None:
        valid, train = rows[: split["valid_size"]], rows[split["valid_size"] :]
    else:
        train, valid = train_test_split(
            rows, test_size=split["valid_size"], random_state=split["random_state"], stratify=y
        )
    arrays = {
        f"{x}_train": raw[f"{x}_train"][train],
        "y_train": y[train],
        f"{x}_valid": raw[f"{x}_train"][valid],
        "y_valid": y[valid],
        f"{x}_test": raw[f"{x}_test"],
        "y_test": raw["y_test"],
    }
    for name in also:
        arrays.update(
            {
                f"{name}_train": raw[f"{name}_train"][train],
                f"{name}_valid": raw[f"{name}_train"][valid],
                f"{name}_test": raw[f"{name}_test"],
            }
        )
    return arrays


def split_reuters(raw: Arrays, split: Mapping[str, Any]) -> Arrays:
    """Newswires are ragged lists of word ids: packed flat (values + row splits) for np.savez."""
    arrays = hold_out_validation(raw, split)
    for part in ("train", "valid", "test"):
        arrays.update(pack_ragged(f"x_{part}", arrays.pop(f"x_{part}")))
    return arrays


def split_imdb(raw: Arrays, split: Mapping[str, Any]) -> Arrays:
    """Reviews are packed as UTF-8 bytes: a fixed-width str array would pad each to the longest.
    The star ratings (``rating_<split>``, when the source has them) follow their reviews."""
    also = ("rating",) if "rating_train" in raw else ()
    arrays = hold_out_validation(raw, split, x="text", also=also)  # object arrays of str
    for part in ("train", "valid", "test"):
        arrays.update(pack_texts(f"text_{part}", arrays.pop(f"text_{part}")))
    return arrays


# dataset source name -> how its prepared splits are made
SPLITTERS: dict[str, Callable[[Arrays, Mapping[str, Any]], Arrays]] = {
    "california_housing": split_california,
    "fashion_mnist": hold_out_validation,
    "reuters": split_reuters,
    "imdb_reviews": split_imdb,
    "boston_housing": split_as_shipped,
    "thoracic_surgery": split_as_shipped,
}


def summarize(arrays: Arrays) -> dict[str, Any]:
    """Shapes, and target statistics or class balance of every y_* and rating_* array."""
    summary: dict[str, Any] = {"shapes": {k: list(v.shape) for k, v in arrays.items()}}
    for key, values in arrays.items():
        if not key.startswith(("y", "rating_")):
            continue
        if np.issubdtype(values.dtype, np.integer):
            labels, counts = np.unique(values, return_counts=True)
            summary[f"{key}_classes"] = {int(l): int(c) for l, c in zip(labels, counts)}
        else:
            summary[f"{key}_stats"] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
            }
    return summary
