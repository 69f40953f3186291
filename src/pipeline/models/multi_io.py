"""Note 003, multi-input and multi-output models: a review's words and its length in, its
sentiment and its star rating out. Inputs and outputs are named, so a caller passes dicts and
gets predictions back keyed by output name (never by position or metric name)."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from pipeline.models.dense import dense_stack

OUTPUTS = ("sentiment", "rating")


def build_multi_io(
    *,
    n_words: int,
    log_words_train: np.ndarray,
    outputs: Sequence[str] = OUTPUTS,
    units: int = 16,
    dropout: float = 0.0,
    rating_mean: float = 0.0,
    name: str = "multi_io",
) -> keras.Model:
    """Inputs ``words`` (multi-hot, ``n_words`` wide) and ``log_words`` (log word count, one
    column) -> the outputs named in ``outputs``: ``sentiment`` (sigmoid) and/or ``rating``
    (linear, its bias started at the training mean ``rating_mean``).

    words -> Dense(units) -> [Dropout] -> concatenated with the standardized length (a
    Normalization layer adapted here on ``log_words_train``, the training split only) ->
    Dense(units) -> [Dropout] -> one Dense head per output.
    """
    unknown = [output for output in outputs if output not in OUTPUTS]
    if unknown or not outputs:
        raise ValueError(f"outputs must be a non-empty subset of {', '.join(OUTPUTS)}; got {list(outputs)}")
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}")
    words = keras.Input(shape=(int(n_words),), name="words")
    log_words = keras.Input(shape=(1,), name="log_words")
    standardize = keras.layers.Normalization(name="log_words_norm")
    standardize.adapt(np.asarray(log_words_train, dtype="float32").reshape(-1, 1))
    x = dense_stack(
        words, [units], dropout=dropout, names={"dense": "words_dense", "dropout": "words_dropout"}
    )
    x = keras.layers.Concatenate(name="concat")([x, standardize(log_words)])
    x = dense_stack(x, [units], dropout=dropout, names={"dense": "shared", "dropout": "shared_dropout"})
    heads = {
        "sentiment": lambda: keras.layers.Dense(1, activation="sigmoid", name="sentiment")(x),
        "rating": lambda: keras.layers.Dense(
            1, bias_initializer=keras.initializers.Constant(float(rating_mean)), name="rating"
        )(x),
    }
    return keras.Model(
        inputs={"words": words, "log_words": log_words},
        outputs={output: heads[output]() for output in outputs},
        name=name,
    )
