"""The chunk loop: read a chunk, check and convert it, predict, write, until the file ends."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.batch.columns import check_columns, column_values
from pipeline.batch.images import image_rows, pixel_columns, pixels
from pipeline.batch.layout import ID_COLUMN, IMAGE_COLUMN, Layout
from pipeline.batch.messages import shorten
from pipeline.batch.read import read_chunks
from pipeline.batch.write import ChunkWriter
from pipeline.errors import BadInput


def predict_file(
    model,
    layout: Layout,
    source: Path,
    source_format: str,
    target: Path,
    target_format: str,
    *,
    chunk_size: int,
    total: int | None,
    desc: str,
) -> int:
    """Read, check, predict and write chunk by chunk; the output appears only at the end
    (atomic_path: after an error or Ctrl-C nothing is left at ``target``). Returns the rows."""
    from tqdm import tqdm

    from pipeline.io import atomic_path

    rows = 0
    with (
        atomic_path(target) as tmp,
        ChunkWriter(tmp, target_format) as writer,
        tqdm(total=total, unit=" rows", desc=desc, file=sys.stderr, mininterval=0.5, delay=0.5) as bar,
    ):
        for frame in read_chunks(source, source_format, layout, chunk_size):
            if not len(frame):
                continue
            inputs = model_input(frame, layout, source, source_format, first_row=rows)
            writer.write(with_ids(frame, predict_chunk(model, inputs, rows, len(frame))))
            rows += len(frame)
            bar.update(len(frame))
        if rows == 0:
            raise BadInput(f"The input file {source} has no rows to predict.")
    return rows


def model_input(frame, layout: Layout, source: Path, source_format: str, first_row: int) -> Any:
    """A chunk as the model takes it, after checking its columns and values."""
    if not layout.tensors:
        check_columns(list(frame.columns), layout, source)
        return pd.DataFrame(
            {
                name: column_values(frame[name], spec, first_row)
                for name, spec in layout.specs.items()
                if name in frame.columns
            }
        )
    if source_format == "csv":  # a CSV cell holds no list: one column per pixel
        groups = pixel_columns(list(frame.columns), layout, source)
        arrays = {
            name: pixels(frame[columns], name, layout.specs[name], first_row)
            for name, columns in groups.items()
        }
    else:
        check_columns(list(frame.columns), layout, source)
        arrays = {name: image_rows(frame[name], name, spec, first_row) for name, spec in layout.specs.items()}
    return arrays[IMAGE_COLUMN] if layout.unnamed else arrays


def predict_chunk(model, inputs, first_row: int, rows: int):
    """The model's answer for a chunk; MLflow's schema errors become BadInput."""
    import mlflow

    try:
        return model.predict(inputs)
    except mlflow.exceptions.MlflowException as error:
        reason = error.message.rsplit("Error: ", 1)[-1]  # not the whole chunk MLflow prints
        raise BadInput(
            f"The model refused rows {first_row + 1}-{first_row + rows}: {shorten(reason, 500, quote=False)}"
        ) from error


def with_ids(frame, predictions):
    """The predictions, with the input's id column first if it has one."""
    predictions = predictions.reset_index(drop=True)
    if ID_COLUMN in frame.columns and ID_COLUMN not in predictions.columns:
        predictions.insert(0, ID_COLUMN, frame[ID_COLUMN].to_numpy())
    return predictions
