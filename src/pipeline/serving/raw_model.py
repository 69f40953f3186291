"""The logged model every experiment ends in: raw rows in, named columns out.

An MLflow "model from code" (``mlflow.pyfunc.log_model(python_model=<this file>)``): MLflow
stores this file with the model and runs it to load it, so the model needs numpy, pandas, Keras
and MLflow only, never this project. What it learned from the training split travels as
artifacts beside it:

- ``keras_model``: the trained network (Normalization / Discretization layers hold the feature
  statistics and bins learned from the training split);
- ``spec``: how raw inputs become the network's inputs (table columns routed to its wide/deep
  inputs, images, review texts, word-id sequences) and how its outputs become named columns
  (values, a probability with its label, class probabilities with the class name);
- ``vocabulary`` (text experiments): the training reviews' vocabulary, one token a line.

Nothing here imports ``pipeline``: keep it that way (the file is copied into every model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

SPEC, KERAS_MODEL, VOCABULARY = "spec", "keras_model", "vocabulary"
BATCH = 4096


class RawInputModel(PythonModel):
    """See the module docstring. ``setup`` builds it in-process (what the train stage uses to
    check the model before logging it); ``load_context`` does the same from the artifacts."""

    def load_context(self, context) -> None:
        import keras

        artifacts = context.artifacts
        vocabulary = None
        if VOCABULARY in artifacts:
            vocabulary = Path(artifacts[VOCABULARY]).read_text(encoding="utf-8").split("\n")
        self.setup(
            json.loads(Path(artifacts[SPEC]).read_text()),
            keras.models.load_model(artifacts[KERAS_MODEL], compile=False),
            vocabulary,
        )

    def setup(self, spec: dict[str, Any], keras_model, vocabulary: list[str] | None = None):
        self.spec, self.keras_model = spec, keras_model
        self.vectorizer = None
        if vocabulary is not None:
            import keras

            self.vectorizer = keras.layers.TextVectorization(vocabulary=vocabulary, output_mode="multi_hot")
        return self

    # --- MLflow's entry point -------------------------------------------------------------
    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        outputs = self.keras_model.predict(self.network_inputs(model_input), batch_size=BATCH, verbose=0)
        return self.named_outputs(outputs)

    # --- raw rows -> the network's inputs ---------------------------------------------------
    def network_inputs(self, raw: Any) -> Any:
        spec = self.spec["input"]
        kind = spec["kind"]
        if kind == "table":
            frame = pd.DataFrame(raw)
            _refuse_missing(frame, spec["columns"])
            return {
                name: frame[list(columns)].to_numpy(dtype="float32")
                for name, columns in spec["routing"].items()
            }
        if kind == "image":
            names = spec["inputs"]
            images = {name: np.asarray(raw[name] if isinstance(raw, dict) else raw) for name in names}
            for name, array in images.items():
                if array.ndim != 1 + len(spec["shape"]) or list(array.shape[1:]) != spec["shape"]:
                    raise _bad_request(
                        f"{name}: expected images of shape {spec['shape']} "
                        f"(rows x {' x '.join(map(str, spec['shape']))}), got "
                        f"an array of shape {list(array.shape)}"
                    )
            images = {name: array.astype("uint8") for name, array in images.items()}
            return images[names[0]] if len(names) == 1 else images
        if kind == "text":
            frame = pd.DataFrame(raw)
            _refuse_missing(frame, [spec["column"]])
            texts = [str(text) for text in frame[spec["column"]]]
            features = {
                name: self._text_feature(feature, texts) for name, feature in spec["features"].items()
            }
            return next(iter(features.values())) if len(features) == 1 else features
        if kind == "sequence":
            return self._multi_hot_ids(
                pd.DataFrame(raw)[spec["column"]], int(spec["num_tokens"]), int(spec["oov_id"])
            )
        raise ValueError(f"unknown input kind {kind!r} in the model's spec")

    def _text_feature(self, feature: str, texts: list[str]) -> np.ndarray:
        if feature == "multi_hot":
            parts = [
                np.asarray(
                    self.vectorizer(np.asarray(texts[start : start + BATCH], dtype=object)), dtype="uint8"
                )
                for start in range(0, len(texts), BATCH)
            ]
            width = self.vectorizer.vocabulary_size()
            return np.concatenate(parts) if parts else np.zeros((0, width), dtype="uint8")
        if feature == "log_word_count":
            # words as the training code counts them: split on ASCII whitespace of the UTF-8 bytes
            counts = np.array([len(text.encode("utf-8").split()) for text in texts], dtype="float64")
            return np.log1p(counts).astype("float32").reshape(-1, 1)
        raise ValueError(f"unknown text feature {feature!r} in the model's spec")

    @staticmethod
    def _multi_hot_ids(rows, num_tokens: int, oov_id: int) -> np.ndarray:
        """Word-id sequences -> multi-hot rows; ids outside the vocabulary count as ``oov_id``,
        as keras.datasets.reuters.load_data(num_words=...) maps them."""
        matrix = np.zeros((len(rows), num_tokens), dtype="uint8")
        for row, ids in enumerate(rows):
            ids = np.asarray(ids, dtype="int64").reshape(-1)
            ids = np.where((ids < 0) | (ids >= num_tokens), oov_id, ids)
            matrix[row, ids] = 1
        return matrix

    # --- the network's outputs -> named columns ---------------------------------------------
    def named_outputs(self, outputs: Any) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for entry in self.spec["outputs"]:
            values = outputs[entry["output"]] if entry.get("output") else outputs
            values = np.asarray(values, dtype="float64")
            name, kind = entry["name"], entry["kind"]
            if kind == "value":
                columns[name] = values.reshape(-1)
            elif kind == "binary":
                probability = values.reshape(-1)
                columns[f"{name}_probability"] = probability
                columns[name] = np.asarray(entry["labels"], dtype=object)[(probability > 0.5).astype(int)]
            elif kind == "classes":
                labels = np.asarray(entry["labels"], dtype=object)
                columns[name] = labels[values.argmax(axis=1)] if len(values) else labels[:0]
                for index, label in enumerate(entry["labels"]):
                    columns[f"probability_{label}"] = values[:, index]
            else:
                raise ValueError(f"unknown output kind {kind!r} in the model's spec")
        return pd.DataFrame(columns)


def _bad_request(message: str):
    """An error MLflow's scoring server answers with 400 and this message (not a 500)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _refuse_missing(frame: pd.DataFrame, columns) -> None:
    """A missing value would come back as a NaN prediction; say which instead."""
    for column in columns:
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            raise _bad_request(
                f"column {column!r} has no value in row(s) "
                f"{', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''}"
            )


mlflow.models.set_model(RawInputModel())
