"""Optimizers, layers and schedules built from config dicts: one place that knows Keras names."""

from __future__ import annotations

from typing import Any, Mapping

import keras

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}


def make_optimizer(spec: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    """``{name: adam, learning_rate: 1e-3, ...}`` -> a Keras optimizer (Keras 3 argument names)."""
    options = dict(spec)
    name = str(options.pop("name")).lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; valid choices: {', '.join(sorted(OPTIMIZERS))}")
    for legacy in ("lr", "decay"):  # removed in Keras 3; the seeds still use them
        if legacy in options:
            raise ValueError(
                f"Optimizer option {legacy!r} no longer exists in Keras 3: use learning_rate "
                f"and a learning-rate schedule instead."
            )
    return OPTIMIZERS[name](**options)
