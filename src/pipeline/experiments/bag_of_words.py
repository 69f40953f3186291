"""Note 002 (Chollet ch. 3): IMDB sentiment and Reuters topics from multi-hot word vectors."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from pipeline.data.sources import array_sha256
from pipeline.data.text import (
    ragged_parts,
    sequences_to_multi_hot,
    text_vectorizer,
    texts_to_multi_hot,
    unpack_texts,
)
from pipeline.errors import ConfigError
from pipeline.experiments.base import Arrays
from pipeline.experiments.classification import ClassificationExperiment, n_classes
from pipeline.models.dense import build_dense_classifier
from pipeline.serving import binary_output, classes_output, sequence_input, text_input
from pipeline.training import compile_model

SPLITS = ("train", "valid", "test")


class MultiHotExperiment(ClassificationExperiment):
    """Multi-hot vectors -> Dense stack. Vectorizing is the expensive part (seconds to tens of
    seconds), so it happens once per process and data: every variant and tuning trial reuses it."""

    #: model keys that change the vectors (the cache key)
    vector_keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._vectors: tuple[tuple, dict[str, np.ndarray]] | None = None  # one entry: IMDB's is 0.5 GB

    def vectorize(self, cfg, data: Arrays) -> dict[str, np.ndarray]:
        """{split: uint8 multi-hot matrix} for the train, valid and test splits."""
        raise NotImplementedError

    def output_layer(self, cfg, variant, data) -> tuple[int, str, str]:
        """(units, activation, loss) of the output layer."""
        raise NotImplementedError

    def targets(self, cfg, variant, data, split) -> np.ndarray:
        return data[f"y_{split}"]

    def vectors(self, cfg, data: Arrays) -> dict[str, np.ndarray]:
        inputs = sorted(key for key in data if not key.startswith("y_"))
        key = (tuple(cfg.model[k] for k in self.vector_keys), array_sha256(*(data[k] for k in inputs)))
        if self._vectors is None or self._vectors[0] != key:
            self._vectors = None  # free the old matrices before making new ones
            self._vectors = (key, self.vectorize(cfg, data))
        return self._vectors[1]

    def split(self, cfg, variant, data, split):
        return self.vectors(cfg, data)[split], self.targets(cfg, variant, data, split)

    def build(self, cfg, variant, data):
        units, activation, loss = self.output_layer(cfg, variant, data)
        model = build_dense_classifier(
            input_shape=self.vectors(cfg, data)["train"].shape[1:],
            n_outputs=units,
            output_activation=activation,
            depth=int(cfg.model.depth),
            units=int(cfg.model.units),
            activation=cfg.model.activation,
            dropout=float(cfg.model.dropout),
            name=f"{self.name}_{variant}",
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss=loss,
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )


class Imdb(MultiHotExperiment):
    """Raw reviews -> the 10,000 most frequent words of the training reviews -> 16-16-1."""

    name = "imdb"
    vector_keys = ("max_tokens",)

    def vectorize(self, cfg, data):
        texts = {split: unpack_texts(data, f"text_{split}") for split in SPLITS}
        vectorizer = text_vectorizer(texts["train"], max_tokens=int(cfg.model.max_tokens))
        vectors = {split: texts_to_multi_hot(vectorizer, texts[split]) for split in SPLITS}
        return {**vectors, "vocabulary": vectorizer.get_vocabulary()}

    def vocabulary(self, cfg, data):
        return list(self.vectors(cfg, data)["vocabulary"])

    def serving_input(self, cfg, variant, data):
        return text_input({"words": "multi_hot"})

    def serving_outputs(self, cfg, variant, data):
        return [binary_output("sentiment", ["negative", "positive"])]

    def raw_inputs(self, cfg, variant, data, split):
        return pd.DataFrame({"text": unpack_texts(data, f"text_{split}")})

    def output_layer(self, cfg, variant, data):
        return 1, "sigmoid", "binary_crossentropy"

    def targets(self, cfg, variant, data, split):
        return data[f"y_{split}"].astype("float32")


# the id keras.datasets.reuters.load_data gives words outside its num_words (its oov_char)
OOV_ID = 2


def reuters_topics() -> tuple[str, ...]:
    """The 46 topic names in label order (they ship with Keras: no download)."""
    return tuple(keras.datasets.reuters.get_label_names())


# label encoding -> the loss that reads it; both train the same model (the note's closing remark)
LABEL_LOSSES = {"one_hot": "categorical_crossentropy", "integer": "sparse_categorical_crossentropy"}


class Reuters(MultiHotExperiment):
    """Newswires as word ids (Keras' top 10,000 words) -> multi-hot -> 64-64-46."""

    name = "reuters"
    vector_keys = ("num_words",)

    def vectorize(self, cfg, data):
        num_words = int(cfg.model.num_words)
        try:
            return {
                split: sequences_to_multi_hot(*ragged_parts(data, f"x_{split}"), num_words)
                for split in SPLITS
            }
        except ValueError as error:
            raise ConfigError(
                f"model.num_words={num_words} does not fit the prepared newswires "
                f"({error}); it must match the source's vocabulary."
            ) from error

    def serving_input(self, cfg, variant, data):
        return sequence_input(int(cfg.model.num_words), OOV_ID)

    def serving_outputs(self, cfg, variant, data):
        return [classes_output(reuters_topics()[: n_classes(data)], name="topic")]

    def raw_inputs(self, cfg, variant, data, split):
        values, splits = ragged_parts(data, f"x_{split}")
        return pd.DataFrame(
            {"word_ids": [values[start:end].tolist() for start, end in zip(splits[:-1], splits[1:])]}
        )

    def labels(self, cfg, variant) -> str:
        labels = self.variant_config(cfg, variant).labels
        if labels not in LABEL_LOSSES:
            raise ConfigError(
                f"Unknown label encoding {labels!r} in variant {variant!r}; "
                f"valid choices: {', '.join(LABEL_LOSSES)}."
            )
        return labels

    def output_layer(self, cfg, variant, data):
        return n_classes(data), "softmax", LABEL_LOSSES[self.labels(cfg, variant)]

    def targets(self, cfg, variant, data, split):
        y = data[f"y_{split}"]
        if self.labels(cfg, variant) == "one_hot":
            return keras.utils.to_categorical(y, n_classes(data))
        return y
