"""Configuration: compose conf/ with Hydra, keep params.yaml in sync, read it back with overrides.

conf/ is the single source of truth. ``python -m pipeline.config [overrides]`` composes it into
params.yaml, the file DVC tracks (``dvc exp run`` does the same when hydra is enabled). Stages
read params.yaml, so the parameters DVC records are the ones that ran, and accept
``key=value`` overrides on top, checked against the keys and types that exist.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from pipeline import schema
from pipeline.errors import ConfigError



def find_project_root() -> Path:
    """The checkout the user works in: the nearest folder up from the working directory with
    conf/config.yaml (DVC runs stages from the repo root), else this package's own checkout."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[2]


PROJECT_ROOT = find_project_root()
CONF_DIR = PROJECT_ROOT / "conf"
PARAMS_FILE = PROJECT_ROOT / "params.yaml"
HEADER = "# Generated from conf/ by `python -m pipeline.config`: edit conf/, not this file.\n"


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides (group choices and values)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"Bad configuration override: {error}") from error
    OmegaConf.resolve(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return HEADER + OmegaConf.to_yaml(cfg, resolve=True, sort_keys=False)


def write_params(cfg: DictConfig, path: Path = PARAMS_FILE) -> None:
    from pipeline.io import atomic_write_text

    atomic_write_text(path, to_yaml(cfg))


def params_drift(path: Path = PARAMS_FILE) -> list[str]:
    """Dotted keys where params.yaml differs from a fresh composition of conf/ (empty: in sync)."""
    composed = OmegaConf.to_container(compose(), resolve=True)
    written = yaml.safe_load(path.read_text()) if path.exists() else {}
    return sorted(_diff(composed, written))


def _diff(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return set().union(*(_diff(a.get(k), b.get(k), f"{prefix}{k}.") for k in keys)) if keys else set()
    return set() if a == b else {prefix.rstrip(".") or "<root>"}


# --- reading params.yaml back, with overrides ---------------------------------------------


# YAML 1.1 (PyYAML) reads 1e-4 and 1.0e12 as strings; on a command line they are numbers (Hydra)
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _parse_value(text: str) -> Any:
    if text == "":
        return ""
    value = yaml.safe_load(text)
    if isinstance(value, str) and _FLOAT.fullmatch(text.strip()):
        return float(text)
    return value


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _check_type(key: str, old: Any, new: Any) -> None:
    if old is None or new is None:
        return
    if isinstance(old, bool) or isinstance(new, bool):
        ok = isinstance(old, bool) and isinstance(new, bool)
    elif isinstance(old, (int, float)):
        ok = isinstance(new, (int, float)) and not (isinstance(old, int) and isinstance(new, float))
    elif isinstance(old, (DictConfig, ListConfig)):
        ok = isinstance(new, (dict, list))
    else:
        ok = isinstance(new, type(old))
    if not ok:
        raise ConfigError(
            f"Override {key}={new!r} has the wrong type: {key} is {_a(type(old).__name__)} "
            f"(current value {old!r})."
        )


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``key=value`` overrides on existing keys only, with the existing value's type."""
    cfg = cfg.copy()
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip().lstrip("+")
        if not sep or not key:
            raise ConfigError(f"Override {override!r} is not of the form key=value.")
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig) or leaf not in parent:
            where = parent_key or "the top level"
            keys = sorted(map(str, parent.keys())) if isinstance(parent, DictConfig) else []
            nearest = difflib.get_close_matches(leaf, keys, n=1)
            hint = f" Did you mean {'.'.join(filter(None, (parent_key, nearest[0])))!r}?" if nearest else ""
            raise ConfigError(f"Unknown config key {key!r}.{hint} All valid keys under {where}: "
                              f"{', '.join(keys) or '-'}.")
        value = _parse_value(text)
        _check_type(key, parent[leaf], value)
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def load(overrides: Sequence[str] = (), params_file: Path = PARAMS_FILE) -> DictConfig:
    """params.yaml (composed from conf/ if it is missing) with overrides, experiment validated."""
    base = OmegaConf.load(params_file) if params_file.exists() else compose()
    cfg = apply_overrides(base, overrides)
    name = cfg.experiment
    if name not in cfg.experiments:
        raise ConfigError(
            f"Unknown experiment {name!r}; valid choices: {', '.join(sorted(cfg.experiments))}."
        )
    schema.check(cfg)  # ranges and choices, before anything is loaded
    return cfg


def experiment_config(cfg: DictConfig, name: str | None = None) -> DictConfig:
    return cfg.experiments[name or cfg.experiment]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.config",
        description="Compose conf/ into params.yaml (or check that they agree).",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. wide_deep/optimizer=sgd")
    parser.add_argument("--check", action="store_true", help="exit 1 if params.yaml drifted")
    args = parser.parse_args(argv)
    try:
        if args.check:
            drift = params_drift()
            if drift:
                print(f"params.yaml differs from conf/ at: {', '.join(drift)}. "
                      "Run `python -m pipeline.config` to regenerate it.", file=sys.stderr)
                return 1
            print("params.yaml agrees with conf/")
            return 0
        composed = compose(args.overrides)
        schema.check(composed)
        write_params(composed)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.relpath(PARAMS_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
