"""Image inputs: a CSV's pixel columns, or a column of nested or flat lists, as arrays of the
shape and dtype the model's tensor signature names, checked pixel by pixel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.batch.layout import ID_COLUMN, IMAGE_COLUMN, LABEL_COLUMN, Layout
from pipeline.batch.messages import shorten
from pipeline.errors import BadInput


def pixel_columns(columns: list[str], layout: Layout, path: Path) -> dict[str, list[str]]:
    """A CSV's pixel columns per image input: all of them for one input, else by name prefix."""
    pixel_names = [c for c in columns if c not in layout.ignored()]
    if layout.unnamed or len(layout.specs) == 1:
        groups = {layout.names[0]: pixel_names}
    else:
        groups = {name: [c for c in pixel_names if str(c).startswith(name)] for name in layout.names}
        unknown = [c for c in pixel_names if not any(str(c).startswith(name) for name in layout.names)]
        if unknown:
            raise BadInput(
                f"{path}: column {unknown[0]!r} is not a pixel of the model's images "
                f"{' or '.join(layout.names)} (columns named {layout.names[0]}1, "
                f"{layout.names[0]}2, ...; an {ID_COLUMN!r} or {LABEL_COLUMN!r} column "
                "is allowed)."
            )
    for name, group in groups.items():
        shape = tuple(layout.specs[name].shape[1:])
        size = math.prod(shape)
        if len(group) != size:
            found = f"{len(group)} ({group[0]} ... {group[-1]})" if group else "none"
            raise BadInput(
                f"{path}: a CSV of images needs {size} pixel columns for "
                f"{name if not layout.unnamed else 'each image'} "
                f"({'x'.join(map(str, shape))} images, e.g. pixel1..pixel{size}); it has "
                f"{found}, besides {ID_COLUMN!r} and {LABEL_COLUMN!r}."
            )
    return groups


def pixels(frame, name: str, spec, first_row: int):
    """A CSV's pixel columns as (rows, *shape) images of the model's dtype."""
    numeric = frame.apply(
        lambda column: column if column.dtype.kind in "biuf" else pd.to_numeric(column, errors="coerce")
    )
    wrong = numeric.isna().to_numpy() & frame.notna().to_numpy()
    if wrong.any():
        index, column = np.argwhere(wrong)[0]
        raise BadInput(
            f"Column {frame.columns[column]!r} takes pixel values (whole numbers "
            f"0-255), but row {first_row + index + 1} holds "
            f"{shorten(frame.iat[index, column])}."
        )
    values = numeric.to_numpy(dtype="float64")
    return checked_pixels(values.reshape(len(frame), *spec.shape[1:]), name, spec, first_row)


def image_rows(values, name: str, spec, first_row: int):
    """A column of nested lists (or flat lists) as (rows, *shape) images of the model's dtype."""
    shape = tuple(spec.shape[1:])
    size = math.prod(shape)
    images = np.empty((len(values), *shape), dtype="float64")
    for index, value in enumerate(values):
        row = first_row + index + 1
        array = to_array(value)
        if array is None:
            raise BadInput(
                f"Column {name!r} row {row} holds no image ({shorten(value)}); the "
                f"model takes {'x'.join(map(str, shape))} images (nested lists) or "
                f"{size} values in one list."
            )
        if array.size != size or (array.ndim > 1 and array.shape != shape):
            raise BadInput(
                f"Column {name!r} row {row} holds an image of shape "
                f"{'x'.join(map(str, array.shape)) or 'scalar'}; the model takes "
                f"{'x'.join(map(str, shape))} images (nested lists) or {size} values "
                "in one list."
            )
        images[index] = array.reshape(shape)
    return checked_pixels(images, name, spec, first_row)


def to_array(value):
    """A (nested) list or array as a float array; None for no value, a ragged or a text one."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or isinstance(value, str):
        return None
    try:
        if isinstance(value, np.ndarray) and value.dtype == object:  # Parquet's nested lists
            parts = [to_array(part) for part in value]
            if any(part is None for part in parts):
                return None
            return np.stack(parts) if parts else np.zeros(0)
        return np.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        return None


def checked_pixels(images, name: str, spec, first_row: int):
    """Images as the model's dtype; for integer dtypes only whole numbers in its range."""
    dtype = np.dtype(spec.type)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        flat = images.reshape(len(images), -1)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(flat) | (flat < info.min) | (flat > info.max) | (flat % 1 != 0)
        if bad.any():
            index, pixel = np.argwhere(bad)[0]
            raise BadInput(
                f"{'The image' if name == IMAGE_COLUMN else f'Image {name!r}'} in row "
                f"{first_row + index + 1} has pixel {pixel + 1} = {flat[index, pixel]}: "
                f"the model takes whole numbers {info.min}-{info.max} ({dtype} images; "
                "images scaled to 0-1 must be multiplied by 255)."
            )
    return images.astype(dtype)
