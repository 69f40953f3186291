"""The deep Dense networks of note 004 (Géron ch. 11): one builder, every technique a switch."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import keras
import numpy as np

from pipeline.models.factories import make_initializer

# Activations that are layers of their own (with state or parameters) rather than a string.
ACTIVATION_LAYERS = {"leaky_relu": keras.layers.LeakyReLU, "prelu": keras.layers.PReLU}


def build_deep_mlp(
    *,
    x_train: np.ndarray,
    n_outputs: int,
    hidden: Sequence[int] = (300, 100),
    activation: str = "relu",
    initializer: Any = "glorot_uniform",
    batch_norm: bool = False,
    l2: float = 0.0,
    dropout: float = 0.0,
    max_norm: float | None = None,
    standardize: bool = False,
    output_activation: str = "softmax",
    name: str = "deep_mlp",
) -> keras.Model:
    """Pixels -> (Rescaling 1/255 | per-pixel standardization) -> Flatten -> hidden Dense layers.

    Options in the note's order: the kernel initializer; the activation (a name, or LeakyReLU /
    PReLU layers); BatchNormalization before every hidden layer and the output; an L2 penalty
    and a max-norm constraint on every Dense (one partial-style factory); Dropout before every
    Dense. ``standardize`` adapts a Normalization layer on ``x_train`` (SELU wants mean 0, std 1).
    """
    inputs = keras.Input(shape=x_train.shape[1:], name="pixels")
    if standardize:
        norm = keras.layers.Normalization(name="standardize")  # per pixel, from training data
        norm.adapt(x_train.reshape(len(x_train), -1).astype("float32"))
        x = norm(keras.layers.Flatten(name="flatten")(inputs))
    else:
        x = keras.layers.Flatten(name="flatten")(keras.layers.Rescaling(1 / 255, name="rescale")(inputs))
    dense = functools.partial(
        keras.layers.Dense,
        kernel_initializer=make_initializer(initializer),
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        kernel_constraint=keras.constraints.MaxNorm(max_norm) if max_norm else None,
    )
    layer_activation = None if activation in ACTIVATION_LAYERS else activation
    for index, units in enumerate(hidden, start=1):
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{index}")(x)
        x = dense(units, activation=layer_activation, name=f"hidden{index}")(x)
        if activation in ACTIVATION_LAYERS:
            x = ACTIVATION_LAYERS[activation](name=f"{activation}{index}")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"bn{len(hidden) + 1}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"dropout{len(hidden) + 1}")(x)
    outputs = dense(n_outputs, activation=output_activation, name="output")(x)
    return keras.Model(inputs, outputs, name=name)
