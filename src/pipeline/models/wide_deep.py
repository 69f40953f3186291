"""Wide & Deep networks (Cheng et al. 2016) as in note 000: one or two inputs, one or two outputs."""

from __future__ import annotations

import keras
import numpy as np


def build_wide_deep(
    *,
    wide_train: np.ndarray,
    deep_train: np.ndarray | None,
    units: int,
    depth: int,
    activation: str = "relu",
    aux_output: bool = False,
) -> keras.Model:
    """Build the network; Normalization layers are adapted on the training arrays given here.

    ``deep_train=None`` is the single-input model of the note: the same (normalized) features
    feed both the wide path and the deep path.
    """
    if depth < 1 or units < 1:
        raise ValueError(f"depth and units must be >= 1, got depth={depth}, units={units}")
    wide_input = keras.Input(shape=wide_train.shape[1:], name="wide")
    wide_norm = keras.layers.Normalization(name="wide_norm")
    wide_norm.adapt(wide_train)
    normalized_wide = wide_norm(wide_input)
    if deep_train is None:
        inputs, normalized_deep = [wide_input], normalized_wide
    else:
        deep_input = keras.Input(shape=deep_train.shape[1:], name="deep")
        deep_norm = keras.layers.Normalization(name="deep_norm")
        deep_norm.adapt(deep_train)
        inputs, normalized_deep = [wide_input, deep_input], deep_norm(deep_input)

    hidden = normalized_deep
    for index in range(depth):
        hidden = keras.layers.Dense(units, activation=activation, name=f"hidden{index + 1}")(hidden)
    concat = keras.layers.Concatenate(name="concat")([normalized_wide, hidden])
    outputs = {"main": keras.layers.Dense(1, name="main")(concat)}
    if aux_output:
        outputs["aux"] = keras.layers.Dense(1, name="aux")(hidden)
    # Outputs are named: predictions come back as {"main": ..., "aux": ...}, never mislabelled.
    return keras.Model(inputs=inputs, outputs=outputs, name="wide_deep")
