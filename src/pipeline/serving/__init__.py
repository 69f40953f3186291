"""What the logged model of a variant takes and returns: raw inputs in, named columns out.

An experiment describes its model's raw inputs and named outputs with the helpers below (a
JSON-able spec); ``serving.raw_model.RawInputModel`` applies that spec around the trained Keras
network, and ``tracking.log_servable`` checks and logs the result as an MLflow pyfunc model.
Nothing here imports MLflow or trains anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

#: Fashion-MNIST's classes, in label order (zalandoresearch/fashion-mnist README)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: rows of the test split checked and logged as the input example
CHECK_ROWS, EXAMPLE_ROWS = 256, 5


# --- raw inputs ----------------------------------------------------------------------------
def table_input(columns: Sequence[str], routing: Mapping[str, Sequence[str]] | None = None) -> dict:
    """A table of named numeric columns; ``routing`` maps each network input to its columns
    (default: one input ``features`` with every column)."""
    return {
        "kind": "table",
        "columns": list(columns),
        "routing": {k: list(v) for k, v in (routing or {"features": columns}).items()},
    }


def image_input(inputs: Sequence[str] = ("image",), shape: Sequence[int] = (28, 28)) -> dict:
    """uint8 images; several named images for a network with several image inputs."""
    return {"kind": "image", "inputs": list(inputs), "shape": list(shape)}


def text_input(features: Mapping[str, str], column: str = "text") -> dict:
    """Review texts in ``column``; ``features`` maps each network input to ``multi_hot`` (the
    training vocabulary) or ``log_word_count``."""
    return {"kind": "text", "column": column, "features": dict(features)}


def sequence_input(num_tokens: int, oov_id: int, column: str = "word_ids") -> dict:
    """Word-id sequences (lists of ints) in ``column``, multi-hot over ``num_tokens`` ids."""
    return {"kind": "sequence", "column": column, "num_tokens": int(num_tokens), "oov_id": int(oov_id)}


def table(array: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a prepared feature matrix as the table a user has (float64, named columns)."""
    return pd.DataFrame(np.asarray(array, dtype="float64"), columns=list(columns))


# --- named outputs -------------------------------------------------------------------------
def value_output(name: str, output: str | None = None) -> dict:
    """A number per row (a regression output), column ``name``."""
    return {"kind": "value", "name": name, "output": output}


def binary_output(name: str, labels: Sequence[str], output: str | None = None) -> dict:
    """A sigmoid unit: ``<name>_probability`` (of ``labels[1]``) and ``<name>`` (the label)."""
    return {"kind": "binary", "name": name, "labels": list(labels), "output": output}


def classes_output(labels: Sequence[str], name: str = "class", output: str | None = None) -> dict:
    """A softmax: ``<name>`` (the most probable label) and ``probability_<label>`` for each."""
    return {"kind": "classes", "name": name, "labels": list(labels), "output": output}


@dataclass
class Servable:
    """A trained variant as a model people can use: the network, its spec, the learned
    vocabulary (if any), and test rows both raw and as the network takes them (to check)."""

    model: Any  # keras.Model
    spec: dict[str, Any]
    raw_test: Any
    network_test: Any
    vocabulary: list[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


def head(inputs: Any, rows: int) -> Any:
    """The first ``rows`` rows of an array, a DataFrame or a dict of arrays."""
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[:rows].reset_index(drop=True)
    if isinstance(inputs, Mapping):
        return {key: np.asarray(value[:rows]) for key, value in inputs.items()}
    return np.asarray(inputs[:rows])
