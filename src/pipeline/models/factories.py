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


def make_initializer(spec: Any) -> Any:
    """A Keras initializer from a name (``he_normal``) or ``{class_name, config}``."""
    if isinstance(spec, Mapping):
        return keras.initializers.get(
            {"class_name": spec["class_name"], "config": dict(spec.get("config", {}))}
        )
    return keras.initializers.get(spec)


def make_schedule(spec: Mapping[str, Any] | None, steps_per_epoch: int) -> Any:
    """A learning-rate schedule from config, in epochs (converted to optimizer steps):

    - ``{kind: power, initial: 0.01, decay: 1e-4}``: lr / (1 + decay * step), what the seeds'
      ``SGD(decay=1e-4)`` meant before Keras 3 removed ``decay``;
    - ``{kind: exponential, initial: 0.01, s: 20}``: lr0 * 0.1 ** (epoch / s);
    - ``{kind: piecewise, boundaries: [5, 15], values: [0.01, 0.005, 0.001]}``.
    ``null`` (or ``kind: plateau``, handled by a callback) keeps the optimizer's own rate.
    """
    if not spec or spec.get("kind") in (None, "plateau"):
        return None
    kind = spec["kind"]
    schedules = keras.optimizers.schedules
    if kind == "power":
        return schedules.InverseTimeDecay(spec["initial"], decay_steps=1, decay_rate=spec["decay"])
    if kind == "exponential":
        return schedules.ExponentialDecay(
            spec["initial"], decay_steps=spec["s"] * steps_per_epoch, decay_rate=0.1
        )
    if kind == "piecewise":
        return schedules.PiecewiseConstantDecay(
            [int(b * steps_per_epoch) for b in spec["boundaries"]], list(spec["values"])
        )
    raise ValueError(f"Unknown schedule {kind!r}; valid choices: power, exponential, piecewise, plateau")
