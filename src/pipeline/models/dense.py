"""Stacks of Dense layers: the one builder every network here makes its Dense layers with, and
the networks of notes 001, 002 and 004 that are little more than such a stack.

A stack is a list of widths. Each width becomes a Dense layer with, where asked, its batch
normalization, an activation layer of its own and dropout, in the order ``order`` names.
Layers are named from templates with their position ``{i}``: the names are what saved models,
gradient-norm metrics and transfer learning (``get_layer("hidden3")``) find layers by.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import numpy as np

from pipeline.models.factories import make_initializer

#: each layer's Dense first, then what acts on its output (the usual placement)
DENSE_FIRST = ("dense", "batch_norm", "activation", "dropout")
#: batch normalization and dropout on each Dense layer's input (note 004, after Géron ch. 11)
NORMALIZE_FIRST = ("batch_norm", "dropout", "dense", "activation")

#: name templates of the layers of a stack; a builder overrides those its network names otherwise
NAMES = {"dense": "hidden{i}", "batch_norm": "bn{i}", "activation": "activation{i}", "dropout": "dropout{i}"}

# Activations that are layers of their own (with state or parameters) rather than a string.
ACTIVATION_LAYERS = {"leaky_relu": keras.layers.LeakyReLU, "prelu": keras.layers.PReLU}


def dense_layers(
    widths: Sequence[int],
    *,
    activation: str | type[keras.layers.Layer] | None = "relu",
    initializer: Any = "glorot_uniform",
    kernel_l2: float = 0.0,
    activity_l1: float = 0.0,
    max_norm: float | None = None,
    use_bias: bool = True,
    batch_norm: bool = False,
    dropout: float = 0.0,
    order: Sequence[str] = DENSE_FIRST,
    names: Mapping[str, str] | None = None,
    start: int = 1,
) -> list[keras.layers.Layer]:
    """The layers of a stack, in order; made in that order too, so that a seeded build draws
    its initializers' and dropouts' seeds as the networks always have.

    ``activation`` is the Dense layers' own (a name, None for linear), or a layer class
    (``keras.layers.ReLU``, ``LeakyReLU``...): then the Dense layers are linear and each is
    followed by one such layer. ``initializer`` is a name or ``{class_name, config}`` (a new
    initializer per layer) or an initializer object (shared by every layer). The L2 kernel
    penalty, the L1 activity penalty and the max-norm constraint are left out at 0 / None.
    ``names`` overrides templates of ``NAMES``; ``start`` is the first layer's ``{i}``.
    """
    unknown = set(order) - set(NAMES)
    if unknown or "dense" not in order:
        raise ValueError(f"order must name 'dense' and only {', '.join(NAMES)}; got {list(order)}")
    names = {**NAMES, **(names or {})}
    activation_layer = activation if isinstance(activation, type) else None
    layers: list[keras.layers.Layer] = []
    for index, units in enumerate(widths, start=start):
        name = {kind: template.format(i=index) for kind, template in names.items()}
        for kind in order:
            if kind == "dense":
                layers.append(
                    keras.layers.Dense(
                        int(units),
                        activation=None if activation_layer else activation,
                        use_bias=use_bias,
                        kernel_initializer=make_initializer(initializer),
                        kernel_regularizer=keras.regularizers.L2(kernel_l2) if kernel_l2 else None,
                        activity_regularizer=keras.regularizers.L1(activity_l1) if activity_l1 else None,
                        kernel_constraint=keras.constraints.MaxNorm(max_norm) if max_norm else None,
                        name=name["dense"],
                    )
                )
            elif kind == "batch_norm" and batch_norm:
                layers.append(keras.layers.BatchNormalization(name=name["batch_norm"]))
            elif kind == "activation" and activation_layer:
                layers.append(activation_layer(name=name["activation"]))
            elif kind == "dropout" and dropout:
                layers.append(keras.layers.Dropout(dropout, name=name["dropout"]))
    return layers


def dense_stack(x: Any, widths: Sequence[int], **options: Any) -> Any:
    """``x`` through the stack :func:`dense_layers` makes of ``widths`` and ``options``."""
    for layer in dense_layers(widths, **options):
        x = layer(x)
    return x


# --- the networks that are a Dense stack between their inputs and an output layer -------------


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
    """Input → [Rescaling(scale)] → [Flatten] → depth × (Dense(units) [→ Dropout]) → Dense(n_outputs),
    a Sequential model as notes 001 and 002 build it.

    ``depth=0`` is a (softmax or logistic) regression. The hidden layers get the note-001
    regularizers when their strength is > 0: an L2 kernel penalty, an L1 activity penalty, a
    max-norm constraint on the kernel, dropout after the layer. ``scale`` rescales raw inputs
    inside the model (pixels / 255), so the saved model takes the data as stored.
    """
    if depth < 0 or units < 1 or n_outputs < 1:
        raise ValueError(
            f"need depth >= 0, units >= 1, n_outputs >= 1; got depth={depth}, "
            f"units={units}, n_outputs={n_outputs}"
        )
    layers: list[keras.layers.Layer] = [keras.Input(shape=tuple(input_shape), name="inputs")]
    if scale is not None:
        layers.append(keras.layers.Rescaling(scale, name="rescale"))
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    layers += dense_layers(
        [units] * depth,
        activation=activation,
        kernel_l2=kernel_l2,
        activity_l1=activity_l1,
        max_norm=max_norm,
        dropout=dropout,
    )
    layers.append(keras.layers.Dense(n_outputs, activation=output_activation, name="output"))
    return keras.Sequential(layers, name=name)


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
    """Input -> [Normalization] -> ``depth`` x Dense(units, relu) -> Dense(1, output_activation):
    note 001's thoracic-surgery classifier and note 002's Boston-housing regressor.

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
    hidden = dense_stack(hidden, [units] * (depth - 1), dropout=dropout)
    hidden = dense_stack(hidden, [units], start=depth)  # the last hidden layer: no dropout after it
    output = keras.layers.Dense(1, activation=output_activation, name="output")(hidden)
    return keras.Model(inputs, output, name=name)


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
    """Pixels -> (Rescaling 1/255 | per-pixel standardization) -> Flatten -> hidden Dense layers:
    the deep networks of note 004 (Géron ch. 11), every technique a switch.

    Options in the note's order: the kernel initializer; the activation (a name, or LeakyReLU /
    PReLU layers); BatchNormalization before every hidden layer and the output; an L2 penalty
    and a max-norm constraint on every Dense; Dropout before every Dense. ``standardize``
    adapts a Normalization layer on ``x_train`` (SELU wants mean 0, std 1).
    """
    inputs = keras.Input(shape=x_train.shape[1:], name="pixels")
    if standardize:
        norm = keras.layers.Normalization(name="standardize")  # per pixel, from training data
        norm.adapt(x_train.reshape(len(x_train), -1).astype("float32"))
        x = norm(keras.layers.Flatten(name="flatten")(inputs))
    else:
        x = keras.layers.Flatten(name="flatten")(keras.layers.Rescaling(1 / 255, name="rescale")(inputs))
    # every Dense, the output too, gets these; each its own initializer: a Keras 3 initializer
    # object draws its seed once, so one shared object gave same-shaped layers equal kernels
    every_dense = dict(
        initializer=initializer,
        kernel_l2=l2,
        max_norm=max_norm,
        batch_norm=batch_norm,
        dropout=dropout,
        order=NORMALIZE_FIRST,
    )
    x = dense_stack(
        x,
        hidden,
        activation=ACTIVATION_LAYERS.get(activation, activation),
        names={"activation": f"{activation}{{i}}"},
        **every_dense,
    )
    outputs = dense_stack(
        x,
        [n_outputs],
        activation=output_activation,
        start=len(hidden) + 1,
        names={"dense": "output"},
        **every_dense,
    )
    return keras.Model(inputs, outputs, name=name)
