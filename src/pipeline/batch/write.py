"""Predictions appended chunk by chunk to one CSV, JSON lines or Parquet file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ChunkWriter:
    """Appends DataFrames to one CSV, JSON lines or Parquet file."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.handle = self.parquet = None
        self.first = True

    def __enter__(self) -> Self:
        if self.fmt != "parquet":
            self.handle = open(self.path, "w", encoding="utf-8", newline="")
        return self

    def write(self, frame) -> None:
        if self.fmt == "csv":
            frame.to_csv(self.handle, index=False, header=self.first)
        elif self.fmt == "jsonl":
            self.handle.write(to_jsonl(frame))
        else:
            self._write_parquet(frame)
        self.first = False

    def _write_parquet(self, frame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self.parquet.schema, check_metadata=False):
            # one schema for the whole file; a later chunk's inferred types may differ
            table = table.cast(self.parquet.schema)
        self.parquet.write_table(table)

    def __exit__(self, *exc_info) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.parquet is not None:
            self.parquet.close()


def to_jsonl(frame) -> str:
    """Records, one a line; floats exact (pandas' to_json rounds to 15 digits), NaN as null."""
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return "".join(json.dumps(record, ensure_ascii=False, default=json_default) + "\n" for record in records)


def json_default(value):
    """numpy scalars and arrays, which json.dumps does not take, as Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
