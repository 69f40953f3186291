"""Small fully connected networks for tabular data: note 001's thoracic-surgery classifier and
note 002's Boston-housing regressor are both Normalization -> Dense stack -> one output unit."""

from __future__ import annotations

import keras
import numpy as np


def build_mlp(
    *,
    train_x: np.ndarray,
    units: int,
    depth: int,
    dropout: float = 0.0,
    output_activation: str | None = None,
    normalize: bool = True,
    name: str = "mlp",
) -> keras.Model:
    """Input -> [Normalization] -> ``depth`` x Dense(units, relu) -> Dense(1, output_activation).

    The Normalization layer is adapted on ``train_x`` (pass a fold's training part only, so the
    validation rows never leak into the statistics). ``dropout`` > 0 puts a Dropout layer between
    consecutive hidden layers, as note 001 does between its two Dense(30).
    """
    if depth < 1 or units < 1:
        raise ValueError(f"depth and units must be >= 1, got depth={depth}, units={units}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=train_x.shape[1:], name="features")
    hidden = inputs
    if normalize:
        normalization = keras.layers.Normalization(name="normalization")
        normalization.adapt(np.asarray(train_x, dtype="float32"))
        hidden = normalization(hidden)
    for index in range(depth):
        if index > 0 and dropout > 0:
            hidden = keras.layers.Dropout(dropout, name=f"dropout{index}")(hidden)
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden{index + 1}")(hidden)
    output = keras.layers.Dense(1, activation=output_activation, name="output")(hidden)
    return keras.Model(inputs, output, name=name)
