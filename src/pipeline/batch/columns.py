"""A table's columns checked and converted to the types the model's signature names.

A wrong value is refused with its column and its row in the file (rows count from 1, a header
not counted) before the model sees the chunk.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.batch.layout import ID_COLUMN, Layout, is_number
from pipeline.batch.messages import first_bad, shorten
from pipeline.errors import BadInput


def check_columns(columns: list[str], layout: Layout, path: Path) -> None:
    takes = f"the model takes {layout.describe()}"
    extra = f" (and an optional {ID_COLUMN!r} column, copied to the output)"
    unknown = [c for c in columns if c not in layout.specs and c not in layout.ignored()]
    if unknown:
        listed = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        what = f"column {unknown[0]!r} is" if len(unknown) == 1 else f"columns {listed} are"
        raise BadInput(f"{path}: {what} not an input of the model; {takes}{extra}.")
    missing = [name for name in layout.required if name not in columns]
    if missing:
        raise BadInput(f"{path} has no column {', '.join(map(repr, missing))}; {takes}.")


def column_values(values, spec, first_row: int):
    """One column converted to the model's type, or BadInput naming the first bad row."""
    from mlflow.types import DataType
    from mlflow.types.schema import Array

    if is_number(spec):
        return numbers(values, spec.name, spec.type, first_row)
    if spec.type == DataType.string:
        return strings(values, spec.name, first_row)
    if isinstance(spec.type, Array) and spec.type.dtype in (DataType.long, DataType.integer):
        return sequences(values, spec.name, first_row)
    return values  # another type: MLflow's schema check judges it


def numbers(values, name: str, dtype, first_row: int):
    from mlflow.types import DataType

    if values.dtype.kind in "biuf":
        numeric = values.astype("float64")
    else:
        numeric = pd.Series([to_number(v) for v in values], index=values.index, dtype="float64")
        wrong = numeric.isna() & values.notna()
        if wrong.any():
            row, value = first_bad(wrong, values)
            raise BadInput(
                f"Column {name!r} takes numbers, but row {first_row + row} holds {shorten(value)}."
            )
    finite = np.isfinite(numeric.to_numpy())
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0]) + 1
        value = numeric.iloc[row - 1]
        raise BadInput(
            f"Column {name!r} has no value in row {first_row + row}"
            + ("" if math.isnan(value) else f" (it holds {value})")
            + ": the model needs a number in every row."
        )
    whole = dtype in (DataType.long, DataType.integer)
    if whole and (numeric % 1 != 0).any():
        row, value = first_bad(numeric % 1 != 0, values)
        raise BadInput(
            f"Column {name!r} takes whole numbers, but row {first_row + row} holds {shorten(value)}."
        )
    return numeric.to_numpy(dtype=dtype.to_numpy())


def to_number(value) -> float:
    """float(value), NaN when it is no number (a text, a list)."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def strings(values, name: str, first_row: int):
    missing = values.isna()
    if not missing.any():
        wrong = ~values.map(lambda v: isinstance(v, str)).astype(bool)
        if wrong.any():
            row, value = first_bad(wrong, values)
            raise BadInput(
                f"Column {name!r} takes text, but row {first_row + row} holds "
                f"{shorten(value)} ({type(value).__name__})."
            )
        missing = ~values.str.strip().astype(bool)
    if missing.any():
        row, _ = first_bad(missing, values)
        raise BadInput(f"Column {name!r} has no text in row {first_row + row}.")
    return values


def sequences(values, name: str, first_row: int):
    """Lists of whole numbers (or, in a CSV, a string of them) as int64 arrays."""
    out = []
    for row, value in enumerate(values, start=first_row + 1):
        ids = to_ids(value)
        if ids is None:
            raise BadInput(
                f"Column {name!r} takes lists of whole numbers (word ids; in a CSV, "
                f"numbers separated by spaces), but row {row} holds {shorten(value)}."
            )
        out.append(ids)
    return pd.Series(out, index=values.index, dtype=object)


def to_ids(value):
    if isinstance(value, str):
        try:
            return np.array([int(t) for t in re.split(r"[\s,\[\]]+", value) if t], dtype="int64")
        except ValueError:
            return None
    if not isinstance(value, (list, tuple, np.ndarray)):
        return None
    try:
        array = np.asarray(value if len(value) else [], dtype="float64")
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or not np.isfinite(array).all() or (array % 1 != 0).any():
        return None
    return array.astype("int64")
