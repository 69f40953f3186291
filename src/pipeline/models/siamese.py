"""Note 003, layer weight sharing: a Siamese network that scores whether two images show the same
class. One encoder (a model used as a layer) embeds both images with the same weights; the head
sees only |e_a - e_b| and e_a * e_b, so f(a, b) == f(b, a) by construction."""

from __future__ import annotations

from typing import Sequence

import keras

from pipeline.models.dense import dense_stack

ENCODERS = ("dense", "conv")


def build_encoder(
    *,
    image_shape: Sequence[int],
    kind: str = "conv",
    filters: Sequence[int] = (32, 64),
    hidden: Sequence[int] = (256,),
    embedding: int = 64,
    batch_norm: bool = True,
    dropout: float = 0.0,
    name: str = "encoder",
) -> keras.Model:
    """Raw uint8 pixels -> an ``embedding``-dimensional vector.

    ``conv``: per entry of ``filters``, Conv2D(3x3, stride 2) -> [BatchNorm] -> ReLU, then
    Flatten (strided convolutions halve the map as max-pooling would, at a quarter of the cost:
    a CPU budget choice). ``dense``: Flatten. Both then: per entry of ``hidden``, Dense -> [BatchNorm] -> ReLU
    -> [Dropout], and a linear Dense(embedding). Pixels are scaled by 1/255 inside the model.
    """
    if kind not in ENCODERS:
        raise ValueError(f"Unknown encoder {kind!r}; valid choices: {', '.join(ENCODERS)}")
    if embedding < 1:
        raise ValueError(f"embedding must be >= 1, got {embedding}")
    inputs = keras.Input(shape=tuple(image_shape), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    if kind == "conv":
        if len(image_shape) == 2:  # (height, width) grey images: add the channel axis
            x = keras.layers.Reshape((*image_shape, 1), name="channel")(x)
        for index, n_filters in enumerate(filters, start=1):
            x = keras.layers.Conv2D(
                int(n_filters), 3, strides=2, padding="same", use_bias=not batch_norm, name=f"conv{index}"
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"conv{index}_bn")(x)
            x = keras.layers.ReLU(name=f"conv{index}_relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_stack(
        x,
        hidden,
        activation=keras.layers.ReLU,
        use_bias=not batch_norm,
        batch_norm=batch_norm,
        dropout=dropout,
        names={"dense": "dense{i}", "batch_norm": "dense{i}_bn", "activation": "dense{i}_relu"},
    )
    outputs = keras.layers.Dense(int(embedding), name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_siamese(
    *,
    encoder: keras.Model,
    head_units: int = 64,
    name: str = "siamese",
) -> keras.Model:
    """Inputs ``image_a`` and ``image_b`` -> the probability that they show the same class.

    The encoder is called on both inputs (one set of weights). |e_a - e_b| is built from
    built-in layers as relu(e_a - e_b) + relu(e_b - e_a), so the saved model needs no custom
    code; both it and e_a * e_b are unchanged when the inputs are swapped, and so is the rest.
    """
    shape = tuple(encoder.input_shape[1:])
    image_a = keras.Input(shape=shape, name="image_a", dtype=encoder.inputs[0].dtype)
    image_b = keras.Input(shape=shape, name="image_b", dtype=encoder.inputs[0].dtype)
    e_a, e_b = encoder(image_a), encoder(image_b)
    relu = keras.layers.ReLU(name="relu_diff")
    a_minus_b = keras.layers.Subtract(name="a_minus_b")([e_a, e_b])
    b_minus_a = keras.layers.Subtract(name="b_minus_a")([e_b, e_a])
    abs_diff = keras.layers.Add(name="abs_diff")([relu(a_minus_b), relu(b_minus_a)])
    product = keras.layers.Multiply(name="product")([e_a, e_b])
    x = keras.layers.Concatenate(name="pair_features")([abs_diff, product])
    if head_units:
        x = keras.layers.Dense(int(head_units), activation="relu", name="head")(x)
    same = keras.layers.Dense(1, activation="sigmoid", name="same")(x)
    return keras.Model(inputs={"image_a": image_a, "image_b": image_b}, outputs=same, name=name)
