"""One Keras model that averages several: an ensemble that saves, loads, logs and predicts like
any single model (one .keras file, one MLflow model)."""

from __future__ import annotations

from typing import Sequence

import keras


def build_average_ensemble(
    members: Sequence[keras.Model], name: str = "ensemble", input_name: str = "inputs"
) -> keras.Model:
    """A model whose output is the mean of its members' outputs; the members (uniquely named,
    one input each, same shapes) become its layers."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"ensemble members need unique names, got {names}")
    inputs = keras.Input(shape=tuple(members[0].input_shape[1:]), name=input_name)
    outputs = [member(inputs) for member in members]
    averaged = keras.layers.Average(name="average")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, averaged, name=name)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member networks inside a model made by :func:`build_average_ensemble`."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
