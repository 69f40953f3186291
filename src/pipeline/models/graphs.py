"""Note 003 (Chollet ch. 7): networks that are graphs of layers, built with the functional API.

- a deep Dense network, plain or with residual connections (a linear Dense projection on the
  shortcut where the width changes);
- three small convolutional networks of similar size: a plain Conv2D stack, Inception-style
  modules (parallel 1x1, 1x1 -> 3x3, 1x1 -> 3x3 -> 3x3 and pooled branches, concatenated) and
  an Xception-style stack of depthwise separable convolutions;
- small ensemble members (models/ensemble.py averages them into one model).

Every network takes raw uint8 pixels and scales them itself (Rescaling 1/255), so a saved model
takes the data as stored. Batch normalization follows the chapter's advice: after each Dense or
convolution (whose bias it makes redundant), before the activation.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras

from pipeline.models.dense import dense_stack

CONV_ARCHITECTURES = ("conv_baseline", "inception", "xception")
MEMBER_KINDS = ("dense", "conv")


def _pixels(input_shape: Sequence[int], channels: bool) -> tuple[keras.KerasTensor, Any]:
    """The input and its rescaled tensor, with a channel axis added for convolutions."""
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    if channels and len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1), name="add_channel")(x)
    return inputs, x


# --- a deep Dense network, plain or residual ----------------------------------------------


def deep_widths(widths: Sequence[int], layers_per_width: int) -> list[int]:
    """``[256, 128], 2`` -> ``[256, 256, 256, 128, 128]``: the hidden layers' widths, a stem
    layer of the first width followed by ``layers_per_width`` layers of each width."""
    return [int(widths[0])] + [int(w) for w in widths for _ in range(int(layers_per_width))]


def build_deep_dense(
    *,
    input_shape: Sequence[int],
    n_outputs: int,
    widths: Sequence[int] = (256, 128, 64),
    layers_per_width: int = 8,
    block_size: int = 2,
    residual: bool = False,
    batch_norm: bool = True,
    activation: str = "relu",
    initializer: Any = "he_normal",
    name: str = "deep_dense",
) -> keras.Model:
    """Pixels -> Flatten -> hidden Dense layers ``hidden1..hiddenN`` -> softmax ``output``.

    Each hidden layer is Dense -> [BatchNormalization] -> activation; ``hidden1`` is a stem
    (pixels -> the first width), then come ``layers_per_width`` layers of each width. With
    ``residual`` the layers after the stem are grouped into blocks of ``block_size``; a block's
    input is added to the output of its last Dense (after its batch norm, before its
    activation), through a linear Dense projection ``proj<k>`` (no activation, no bias) where
    the widths differ. The plain network has the very same layers without the additions and
    projections.
    """
    hidden = deep_widths(widths, layers_per_width)
    if len(hidden) < 2 or block_size < 1:
        raise ValueError(
            f"need at least one layer per width and block_size >= 1; got widths="
            f"{list(widths)}, layers_per_width={layers_per_width}, block_size={block_size}"
        )
    inputs, x = _pixels(input_shape, channels=False)
    x = keras.layers.Flatten(name="flatten")(x)
    shortcut, block = None, 0
    for index, units in enumerate(hidden, start=1):
        # one layer at a time: a block's addition goes between its batch norm and activation
        x = dense_stack(
            x,
            [units],
            start=index,
            activation=None,
            use_bias=not batch_norm,
            initializer=initializer,
            batch_norm=batch_norm,
        )
        ends_block = residual and index > 1 and ((index - 1) % block_size == 0 or index == len(hidden))
        if ends_block:
            block += 1
            if shortcut.shape[-1] != units:
                shortcut = keras.layers.Dense(units, use_bias=False, name=f"proj{block}")(shortcut)
            x = keras.layers.Add(name=f"add{block}")([x, shortcut])
        x = keras.layers.Activation(activation, name=f"{activation}{index}")(x)
        if index == 1 or ends_block:
            shortcut = x
    outputs = keras.layers.Dense(n_outputs, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


# --- small convolutional networks ---------------------------------------------------------


def conv_bn(x, filters: int, size: int, name: str, *, separable: bool = False, strides: int = 1):
    """(Separable)Conv2D without bias -> BatchNormalization -> ReLU."""
    layer = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    x = layer(filters, size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def inception_module(x, b1: int, b3: tuple[int, int], b5: tuple[int, int], pool: int, name: str):
    """Four parallel branches over the same input, concatenated along the channels: 1x1;
    1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a 5x5 receptive field, as Inception V3 factorizes it);
    3x3 average pooling -> 1x1. The 1x1 convolutions mix channels only, the 3x3 ones space."""
    branch1 = conv_bn(x, b1, 1, f"{name}_1x1")
    branch3 = conv_bn(conv_bn(x, b3[0], 1, f"{name}_3x3_reduce"), b3[1], 3, f"{name}_3x3")
    branch5 = conv_bn(x, b5[0], 1, f"{name}_5x5_reduce")
    branch5 = conv_bn(conv_bn(branch5, b5[1], 3, f"{name}_5x5a"), b5[1], 3, f"{name}_5x5b")
    pooled = keras.layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    pooled = conv_bn(pooled, pool, 1, f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch3, branch5, pooled])


def build_conv_net(
    *,
    architecture: str,
    input_shape: Sequence[int],
    n_outputs: int,
    filters: int = 32,
    dropout: float = 0.0,
    name: str | None = None,
) -> keras.Model:
    """One of three small networks for 28x28 images, sized by ``filters`` (f) so that their
    parameter counts are close (about 50 k at f = 24, 85-95 k at f = 32). Each starts with a
    stride-2 3x3 convolution (28 -> 14 pixels, which halves the CPU time of a full-resolution
    first layer) and ends in global average pooling, [Dropout] and a softmax Dense:

    - ``conv_baseline``: Conv f /2 -> Conv 2f -> pool -> Conv 4f (3x3, stacked);
    - ``inception``: Conv f /2 -> Inception module -> pool -> Inception module;
    - ``xception``: Conv f /2 -> SepConv 3f, 3f -> pool -> SepConv 4f, 4f, 8f (depthwise 3x3
      then pointwise 1x1: space and channels learned apart, the extreme of Inception's idea).
    """
    if architecture not in CONV_ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}; valid choices: {', '.join(CONV_ARCHITECTURES)}"
        )
    f = int(filters)

    def part(ratio: float) -> int:
        return max(1, round(f * ratio))

    inputs, x = _pixels(input_shape, channels=True)
    if architecture == "conv_baseline":
        x = conv_bn(x, f, 3, "conv1", strides=2)
        x = conv_bn(x, 2 * f, 3, "conv2")
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = conv_bn(x, 4 * f, 3, "conv3")
    elif architecture == "inception":
        x = conv_bn(x, f, 3, "conv1", strides=2)
        x = inception_module(x, part(0.5), (part(0.75), f), (part(0.5), part(0.5)), part(0.5), "mixed1")
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = inception_module(x, f, (part(1.5), 3 * f), (part(0.75), f), f, "mixed2")
    else:
        x = conv_bn(x, f, 3, "conv1", strides=2)
        x = conv_bn(x, 3 * f, 3, "sepconv1", separable=True)
        x = conv_bn(x, 3 * f, 3, "sepconv2", separable=True)
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = conv_bn(x, 4 * f, 3, "sepconv3", separable=True)
        x = conv_bn(x, 4 * f, 3, "sepconv4", separable=True)
        x = conv_bn(x, 8 * f, 3, "sepconv5", separable=True)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(n_outputs, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name or architecture)


# --- ensembles ----------------------------------------------------------------------------


def build_member(
    spec: Mapping[str, Any],
    *,
    input_shape: Sequence[int],
    n_outputs: int,
    dropout: float = 0.0,
    name: str = "member",
) -> keras.Model:
    """A small ensemble member: ``{kind: dense, hidden: [300, 100]}`` (Dense relu layers, each
    followed by Dropout) or ``{kind: conv, filters: 16}`` (Conv f -> pool -> Conv 2f -> pool ->
    Dense 64 -> Dropout)."""
    kind = spec.get("kind")
    if kind not in MEMBER_KINDS:
        raise ValueError(f"Unknown ensemble member kind {kind!r}; valid choices: {', '.join(MEMBER_KINDS)}")
    inputs, x = _pixels(input_shape, channels=kind == "conv")
    if kind == "dense":
        x = keras.layers.Flatten(name="flatten")(x)
        x = dense_stack(x, spec.get("hidden", [100]), initializer="he_normal", dropout=dropout)
    else:
        f = int(spec.get("filters", 16))
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name="conv1")(x)
        x = keras.layers.MaxPooling2D(2, name="pool1")(x)
        x = keras.layers.Conv2D(2 * f, 3, padding="same", activation="relu", name="conv2")(x)
        x = keras.layers.MaxPooling2D(2, name="pool2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = dense_stack(x, [64], dropout=dropout)
    outputs = keras.layers.Dense(n_outputs, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)
