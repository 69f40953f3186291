"""Plain stacks of Dense layers, as notes 001 and 002 build them with Sequential."""

from __future__ import annotations

from typing import Sequence

import keras


def build_dense_classifier(
    *,
    input_shape: Sequence[int],
    n_outputs: int,
    output_activation: str,
    depth: int,
    units: int = 64,
    activation: str | None = "relu",
    kernel_l2: float = 0.0,
    activity_l1: float = 0.0,
    max_norm: float | None = None,
    dropout: float = 0.0,
    scale: float | None = None,
    name: str = "mlp",
) -> keras.Model:
    """Input → [Rescaling(scale)] → [Flatten] → depth × (Dense(units) [→ Dropout]) → Dense(n_outputs).

    ``depth=0`` is a (softmax or logistic) regression. The hidden layers get the note-001
    regularizers when their strength is > 0: an L2 kernel penalty, an L1 activity penalty, a
    max-norm constraint on the kernel, dropout after the layer. ``scale`` rescales raw inputs
    inside the model (pixels / 255), so the saved model takes the data as stored.
    """
    if depth < 0 or units < 1 or n_outputs < 1:
        raise ValueError(f"need depth >= 0, units >= 1, n_outputs >= 1; got depth={depth}, "
                         f"units={units}, n_outputs={n_outputs}")
    layers: list[keras.layers.Layer] = [keras.Input(shape=tuple(input_shape), name="inputs")]
    if scale is not None:
        layers.append(keras.layers.Rescaling(scale, name="rescale"))
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    for index in range(1, depth + 1):
        layers.append(keras.layers.Dense(
            units,
            activation=activation,
            kernel_regularizer=keras.regularizers.L2(kernel_l2) if kernel_l2 else None,
            activity_regularizer=keras.regularizers.L1(activity_l1) if activity_l1 else None,
            kernel_constraint=keras.constraints.MaxNorm(max_norm) if max_norm else None,
            name=f"hidden{index}",
        ))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout{index}"))
    layers.append(keras.layers.Dense(n_outputs, activation=output_activation, name="output"))
    return keras.Sequential(layers, name=name)
