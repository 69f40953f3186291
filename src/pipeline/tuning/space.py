"""Search spaces: ``conf/tune/<experiment>.yaml`` mirrors the experiment config; each leaf with a
``type`` is a distribution for the key at that path."""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError


def search_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, dict]:
    """Flatten the nested space: {"model.units": {"type": "int", ...}, ...}."""
    flat: dict[str, dict] = {}
    for key, value in space.items():
        if isinstance(value, Mapping) and "type" in value:
            flat[f"{prefix}{key}"] = dict(value)
        elif isinstance(value, Mapping):
            flat.update(search_space(value, f"{prefix}{key}."))
        else:
            raise ConfigError(f"Search-space entry {prefix}{key} must be a mapping with a 'type'.")
    return flat


def suggest(trial, exp_cfg: DictConfig, variant: str | None = None) -> DictConfig:
    """A copy of the experiment config with every search-space key set by the trial. Where
    ``variant`` sets that key itself (Boston's ``fast`` its batch size), the trial's value is
    written there too: the variant's own value would otherwise win when it is resolved."""
    trial_cfg = exp_cfg.copy()
    for path, spec in search_space(OmegaConf.to_container(exp_cfg.tune.space)).items():
        kind = spec["type"]
        if OmegaConf.select(trial_cfg, path, default="__missing__") == "__missing__":
            raise ConfigError(f"Search-space key {path} is not a key of the experiment's config.")
        if kind == "int":
            value = trial.suggest_int(path, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "float":
            value = trial.suggest_float(path, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "categorical":
            value = trial.suggest_categorical(path, list(spec["choices"]))
        else:
            raise ConfigError(f"Search-space type {kind!r} of {path}; valid: int, float, categorical.")
        OmegaConf.update(trial_cfg, path, value, merge=False)
        if variant is not None and OmegaConf.select(trial_cfg.variants[variant], path) is not None:
            OmegaConf.update(trial_cfg, f"variants.{variant}.{path}", value, merge=False)
    return trial_cfg


def configured_point(exp_cfg: DictConfig, variant: str) -> tuple[dict[str, Any], list[str]]:
    """The values the variant trains with (the untuned config) of the search-space keys, as
    trial params; and the keys whose value lies outside the space (left to the sampler)."""
    point, outside = {}, []
    spec_of = OmegaConf.select  # a variant's own value wins, as when it is resolved
    for path, spec in search_space(OmegaConf.to_container(exp_cfg.tune.space)).items():
        value = spec_of(exp_cfg.variants[variant], path)
        value = spec_of(exp_cfg, path) if value is None else value
        if spec["type"] == "categorical":
            inside = value in list(spec["choices"])
        else:
            inside = isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]
            inside = inside and (spec["type"] == "float" or float(value).is_integer())
        if inside:
            point[path] = value
        else:
            outside.append(path)
    return point, outside
