"""Texts and token sequences as arrays: ragged packing that np.savez stores without pickle, and
multi-hot bag-of-words vectors made by Keras preprocessing layers.

Ragged rows (reviews, newswires) are stored as two flat arrays, the way tf.RaggedTensor holds
them: ``<name>_values`` (every row end to end) and ``<name>_splits`` (row ``i`` is
``values[splits[i]:splits[i + 1]]``). Texts are packed as their UTF-8 bytes: IMDB takes 65 MB
so, against 2.7 GB as a fixed-width numpy str array (which pads every review to the longest).

Keras is imported inside the vectorizing functions only: prepare does not need TensorFlow.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

Arrays = dict[str, np.ndarray]
MULTI_HOT_BATCH = 2048  # rows vectorized at a time: Keras returns int64/float32, we keep uint8


def pack_ragged(name: str, rows: Sequence[Sequence[int]], dtype="int32") -> Arrays:
    """Rows of different lengths as ``{<name>_values, <name>_splits}``."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = (
        np.concatenate([np.asarray(row, dtype=dtype) for row in rows])
        if len(rows)
        else np.zeros(0, dtype=dtype)
    )
    return {f"{name}_values": values, f"{name}_splits": splits}


def ragged_parts(arrays: Arrays, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, splits) of a packed ragged array."""
    return arrays[f"{name}_values"], arrays[f"{name}_splits"]


def pack_texts(name: str, texts: Iterable[str]) -> Arrays:
    """Texts as their UTF-8 bytes, packed as a ragged uint8 array."""
    encoded = [np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for text in texts]
    return pack_ragged(name, encoded, dtype=np.uint8)


def unpack_texts(arrays: Arrays, name: str) -> np.ndarray:
    """The texts packed by :func:`pack_texts`, as a 1-D object array of str."""
    values, splits = ragged_parts(arrays, name)
    buffer = values.tobytes()
    return np.array(
        [buffer[start:end].decode("utf-8") for start, end in zip(splits[:-1], splits[1:])], dtype=object
    )


def _multi_hot_rows(layer, inputs, batch_size: int = MULTI_HOT_BATCH) -> np.ndarray:
    """Apply a multi-hot Keras layer batch by batch into one uint8 matrix (0/1 needs no more;
    the layer's own int64 output for 50,000 reviews x 10,000 words would take 4 GB)."""
    parts = [
        np.asarray(layer(inputs[start : start + batch_size]), dtype=np.uint8)
        for start in range(0, int(inputs.shape[0]), batch_size)
    ]
    return np.concatenate(parts)


def text_vectorizer(train_texts: np.ndarray, max_tokens: int):
    """A multi-hot TextVectorization whose vocabulary (the ``max_tokens`` most frequent words,
    [UNK] included) is learned from ``train_texts`` only: never from validation or test texts."""
    import keras

    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="multi_hot")
    vectorizer.adapt(np.asarray(train_texts, dtype=object), batch_size=MULTI_HOT_BATCH)
    return vectorizer


def texts_to_multi_hot(vectorizer, texts: np.ndarray) -> np.ndarray:
    """(len(texts), vocabulary size) uint8 multi-hot matrix."""
    return _multi_hot_rows(vectorizer, np.asarray(texts, dtype=object))


def sequences_to_multi_hot(values: np.ndarray, splits: np.ndarray, num_tokens: int) -> np.ndarray:
    """Ragged token ids -> (rows, num_tokens) uint8 multi-hot matrix (Chollet's
    ``vectorize_sequences``). Ids must be below ``num_tokens``."""
    import keras
    import tensorflow as tf

    if len(values) and (values.min() < 0 or values.max() >= num_tokens):
        raise ValueError(
            f"token ids must lie in [0, {num_tokens}); found {int(values.min())}..{int(values.max())}"
        )
    rows = tf.RaggedTensor.from_row_splits(values, splits)
    encoder = keras.layers.CategoryEncoding(num_tokens=num_tokens, output_mode="multi_hot")
    return _multi_hot_rows(encoder, rows)
