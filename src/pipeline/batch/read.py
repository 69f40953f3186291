"""Input files as DataFrames of at most ``chunk_size`` rows, so a file may be larger than memory.

Whatever cannot be parsed (not UTF-8, a broken CSV or Parquet file) is a BadInput naming the
file, not a parser's traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pipeline.batch.layout import Layout, is_number
from pipeline.errors import BadInput

INPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON lines", "txt": "text"}


def count_rows(path: Path, fmt: str) -> int | None:
    """The input's rows, for the progress bar (None for a CSV with quoted fields, whose lines
    may hold newlines); raises BadInput when there are none."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            raise BadInput(f"{path} is not a readable Parquet file: {error}") from error
    else:
        lines, quoted = 0, False
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    lines += 1
                    quoted = quoted or b'"' in line
        total = None if fmt == "csv" and quoted else lines - (fmt == "csv" and lines > 0)
    if total == 0:
        raise BadInput(
            f"The input file {path} has no rows to predict" + (" (only a header)." if fmt == "csv" else ".")
        )
    return total


def read_chunks(path: Path, fmt: str, layout: Layout, chunk_size: int) -> Iterator:
    """DataFrames of up to ``chunk_size`` rows; a file that cannot be parsed is BadInput."""
    import pyarrow as pa

    chunks = {"csv": csv_chunks, "parquet": parquet_chunks, "jsonl": jsonl_chunks, "txt": txt_chunks}[fmt](
        path, layout, chunk_size
    )
    while True:
        try:
            frame = next(chunks)
        except StopIteration:
            return
        except pd.errors.EmptyDataError as error:
            raise BadInput(f"The input file {path} has no rows to predict.") from error
        except UnicodeDecodeError as error:
            raise BadInput(f"{path} is not UTF-8 text: {error}") from error
        except (ValueError, pa.ArrowException) as error:  # pandas' ParserError is a ValueError
            raise BadInput(f"{path} is not a readable {FORMAT_NAMES[fmt]} file: {error}") from error
        yield frame


def csv_chunks(path: Path, layout: Layout, chunk_size: int) -> Iterator:
    if layout.tensors:
        yield from pd.read_csv(path, chunksize=chunk_size, encoding="utf-8")
        return
    # texts and word-id lists stay strings ("NA" is a review); an empty number is missing
    as_text = {name: str for name, spec in layout.specs.items() if not is_number(spec)}
    empty = {name: [""] for name, spec in layout.specs.items() if is_number(spec)}
    yield from pd.read_csv(
        path, chunksize=chunk_size, dtype=as_text, keep_default_na=False, na_values=empty, encoding="utf-8"
    )


def jsonl_chunks(path: Path, layout: Layout, chunk_size: int) -> Iterator:
    yield from pd.read_json(
        path, lines=True, chunksize=chunk_size, dtype=False, precise_float=True, encoding="utf-8"
    )


def parquet_chunks(path: Path, layout: Layout, chunk_size: int) -> Iterator:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        yield batch.to_pandas()


def txt_chunks(path: Path, layout: Layout, chunk_size: int) -> Iterator:
    column = layout.text_column()
    if column is None:
        raise BadInput(
            f"A .txt input (one review a line) is for text models; this model takes "
            f"{layout.describe()}: give a .csv, .parquet or .jsonl file."
        )
    lines: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
            if len(lines) == chunk_size:
                yield pd.DataFrame({column: lines})
                lines = []
    if lines:
        yield pd.DataFrame({column: lines})
