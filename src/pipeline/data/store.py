"""The prepared-data layout that DVC tracks: data/<dataset>/arrays.npz + info.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import layout
from pipeline.errors import MissingInput
from pipeline.io import load_arrays, read_json

DATA_DIR = layout.DATA


def dataset_dir(name: str, root: Path = DATA_DIR) -> Path:
    return root / name


def load_prepared(name: str, root: Path = DATA_DIR) -> dict[str, np.ndarray]:
    path = dataset_dir(name, root) / "arrays.npz"
    if not path.exists():
        raise MissingInput(
            f"Prepared dataset {path} is missing: run `dvc repro prepare@{name}` "
            f"(or `python -m pipeline.prepare dataset={name}`) first."
        )
    return load_arrays(path)


def load_info(name: str, root: Path = DATA_DIR) -> dict[str, Any]:
    return read_json(dataset_dir(name, root) / "info.json")
