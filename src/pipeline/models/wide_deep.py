"""Wide & Deep networks (Cheng et al. 2016) as in note 000: one or two inputs, one or two outputs."""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np

from pipeline.models.dense import dense_stack


def build_wide_deep(
    *,
    wide_train: np.ndarray,
    deep_train: np.ndarray | None,
    units: int,
    depth: int,
    activation: str = "relu",
    aux_output: bool = False,
    soft_clip: float | None = None,
    crossed_train: Mapping[str, np.ndarray] | None = None,
    cross_bins: int = 0,
) -> keras.Model:
    """Build the network; Normalization layers are adapted on the training arrays given here.

    ``deep_train=None`` is the single-input model of the note: the same (normalized) features
    feed both the wide path and the deep path.

    ``soft_clip=c`` squashes every standardized feature into (-c, c) with ``c * tanh(z / c)``
    (about the identity for |z| < c/2). California housing has districts whose AveOccup or
    AveRooms lie tens to hundreds of training standard deviations out (z = 525 in the
    validation split); the linear wide path extrapolates them into absurd prices. ``None``
    (the note's model) leaves the standardized features as they are.

    ``crossed_train={input name: (n, 1) training column, ...}`` with ``cross_bins=b`` adds the
    paper's crossed feature to the wide path: each column (an extra model input of that name)
    is cut into ``b`` quantile bins of its training values, and the combination of bins is
    one-hot encoded (hashed into 2 b^2 slots), so the wide path learns one offset per cell,
    e.g. per latitude x longitude cell of California.
    """
    if depth < 1 or units < 1:
        raise ValueError(f"depth and units must be >= 1, got depth={depth}, units={units}")
    if soft_clip is not None and soft_clip <= 0:
        raise ValueError(f"soft_clip must be a positive number of standard deviations, got {soft_clip}")
    wide_input = keras.Input(shape=wide_train.shape[1:], name="wide")
    wide_norm = keras.layers.Normalization(name="wide_norm")
    wide_norm.adapt(wide_train)
    normalized_wide = _squash(wide_norm(wide_input), soft_clip, "wide")
    if deep_train is None:
        inputs, normalized_deep = [wide_input], normalized_wide
    else:
        deep_input = keras.Input(shape=deep_train.shape[1:], name="deep")
        deep_norm = keras.layers.Normalization(name="deep_norm")
        deep_norm.adapt(deep_train)
        inputs = [wide_input, deep_input]
        normalized_deep = _squash(deep_norm(deep_input), soft_clip, "deep")

    wide_parts = [normalized_wide]
    if crossed_train:
        if cross_bins < 2 or len(crossed_train) < 2:
            raise ValueError(
                f"a crossed feature needs >= 2 columns and cross_bins >= 2, got "
                f"{len(crossed_train)} columns and cross_bins={cross_bins}"
            )
        bucketized = []
        for name, column in crossed_train.items():
            column_input = keras.Input(shape=(1,), name=name)
            bins = keras.layers.Discretization(num_bins=cross_bins, name=f"{name}_bins")
            bins.adapt(np.asarray(column, dtype="float32").reshape(-1, 1))
            inputs.append(column_input)
            bucketized.append(bins(column_input))
        wide_parts.append(
            keras.layers.HashedCrossing(
                num_bins=2 * cross_bins ** len(crossed_train), output_mode="one_hot", name="crossed"
            )(bucketized)
        )

    hidden = dense_stack(normalized_deep, [units] * depth, activation=activation)
    concat = keras.layers.Concatenate(name="concat")([*wide_parts, hidden])
    outputs = {"main": keras.layers.Dense(1, name="main")(concat)}
    if aux_output:
        outputs["aux"] = keras.layers.Dense(1, name="aux")(hidden)
    # Outputs are named: predictions come back as {"main": ..., "aux": ...}, never mislabelled.
    return keras.Model(inputs=inputs, outputs=outputs, name="wide_deep")


def _squash(z, limit: float | None, name: str):
    """``limit * tanh(z / limit)`` from built-in layers (saved and reloaded without custom code)."""
    if limit is None:
        return z
    z = keras.layers.Rescaling(1.0 / limit, name=f"{name}_clip_in")(z)
    z = keras.layers.Activation("tanh", name=f"{name}_clip")(z)
    return keras.layers.Rescaling(float(limit), name=f"{name}_clip_out")(z)
