"""Configuration: compose conf/ with Hydra, keep params.yaml in sync, read it back with overrides.

conf/ is the single source of truth. ``python -m pipeline.config [overrides]`` composes it into
params.yaml, the file DVC tracks (``dvc exp run -S`` does the same when hydra is enabled). Stages
read params.yaml, so the parameters DVC records are the ones that ran, and take overrides on top.

One grammar everywhere, Hydra's, parsed by Hydra (see GRAMMAR):
``key=value`` sets an existing key to a value of its type (``1e-4`` is a float, ``[1,2]`` a list,
``null`` None, a quoted value a string), ``+key=value`` adds a new key, ``++key=value`` sets or
adds, ``~key`` (``~key=value``: only if it has that value) deletes one. ``group=option`` or
``group@package=option`` chooses a config of a group of conf/: a stage then composes conf/ anew,
which it does only while params.yaml agrees with conf/. Sweeps are refused (a stage runs one
config). Every mistake is a ConfigError naming the override, the rule and the choices.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from pipeline import schema
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


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
    except (HydraException, OmegaConfBaseException, ValueError) as error:  # ValueError: optimizer@x=1
        reason = str(error).split("\nConfig search path:")[0].strip()  # the paths say nothing here
        raise ConfigError(f"Bad configuration override: {reason}") from error
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


# --- reading params.yaml back, with overrides (Hydra's grammar) ----------------------------

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Parse with Hydra's own parser; refuse sweeps (a stage runs one config)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as error:  # Hydra's message ends with a link to old docs
        reason = "; ".join(
            line
            for line in error.message.splitlines()
            if not line.startswith(("See ", "Error parsing override"))
        )
        raise ConfigError(
            f"Cannot parse override {error.override!r}: {reason or error.message}. "
            "Hydra's grammar: key=value, +key=value, ++key=value, ~key, "
            f"group=option ({GRAMMAR})."
        ) from error
    for override in parsed:
        if not override.key_or_group:
            raise ConfigError(f"Override {override.input_line!r} has no key; the form is key=value.")
        if override.is_sweep_override():
            raise ConfigError(
                f"Override {override.input_line!r} is a sweep; a stage runs one config. To search "
                "a space, use Optuna: `python -m pipeline.tune` (spaces in conf/tune/); for a grid "
                "of runs, `dvc exp run --queue -S '<key>=1,2,3'` and `dvc queue start`."
            )
    return parsed


def config_groups() -> list[str]:
    return sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*") if p.is_dir())


def is_group_override(override: Override) -> bool:
    """Hydra's own rule (hydra/_internal/defaults_list.py): an override whose key names a config
    group is a choice of that group, unless its value is a dict. conf/ is our only config
    source, and a group of a file source is a folder, so a folder under conf/ is the test."""
    if (CONF_DIR / override.key_or_group).is_dir() and not isinstance(override.value(), dict):
        return True
    if override.package is not None:  # group@package=option, but no such group
        raise ConfigError(
            f"Override {override.input_line!r} chooses an option of config group "
            f"{override.key_or_group!r}, which conf/ does not have; its groups: "
            f"{', '.join(config_groups())}."
        )
    return False


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _kind(node: Any) -> str:
    return "a list" if isinstance(node, ListConfig) else _a(type(node).__name__)


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


_ABSENT = object()


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except OmegaConfBaseException:  # e.g. a name used as a list index
        return _ABSENT


def _nearest(cfg: DictConfig, key: str) -> tuple[str, Any]:
    """The deepest node that exists on the way to key (key excluded), and its dotted path."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        node = _get(cfg, ".".join(parts[:n]))
        if node is not _ABSENT:
            return ".".join(parts[:n]), node
    return "", cfg


def _unknown_key(cfg: DictConfig, override: Override, rule: str) -> ConfigError:
    key = override.key_or_group
    where, node = _nearest(cfg, key)
    said = f"Unknown config key {key!r} in override {override.input_line!r} ({rule})."
    if not isinstance(node, DictConfig):
        return ConfigError(f"{said} {where} is {_kind(node)}, it has no keys.")
    keys = sorted(map(str, node.keys()))
    missing = key.split(".")[where.count(".") + 1 if where else 0]
    nearest = difflib.get_close_matches(missing, keys, n=1)
    hint = f" Did you mean {'.'.join(filter(None, (where, nearest[0])))!r}?" if nearest else ""
    return ConfigError(
        f"{said}{hint} All valid keys under {where or 'the top level'}: {', '.join(keys) or '-'}."
    )


def _apply(cfg: DictConfig, override: Override) -> None:
    """One key override, in place. Hydra's semantics for =, +, ++ and ~, plus our checks: a plain
    key=value only sets a key that exists, and (like ++ on an existing key) only to a value of the
    type it has; + and ++ only add a key under a mapping."""
    key, value, line = override.key_or_group, override.value(), override.input_line
    old = _get(cfg, key)
    if override.is_add() and old is not _ABSENT:
        raise ConfigError(
            f"Override {line!r} adds {key!r}, but it exists (value {old!r}); + only "
            f"adds a new key. To change it: {line[1:]!r}; to set it either way: "
            f"'+{line}'."
        )
    if old is _ABSENT:
        if not (override.is_add() or override.is_force_add()):
            raise _unknown_key(
                cfg,
                override,
                "~key deletes an existing key"
                if override.is_delete()
                else "key=value sets an existing key; +key=value adds one",
            )
        where, node = _nearest(cfg, key)
        if not isinstance(node, DictConfig):  # OmegaConf would replace that value with a dict
            raise ConfigError(
                f"Override {line!r} adds a key under {where}, which is "
                f"{_kind(node)} (value {node!r}), not a mapping."
            )
    if override.is_delete():
        current = OmegaConf.to_container(old) if isinstance(old, (DictConfig, ListConfig)) else old
        if value is not None and value != current:
            raise ConfigError(
                f"Override {line!r} deletes {key!r} only if its value is {value!r}, "
                f"but it is {current!r}; ~{key} deletes it whatever its value."
            )
        parent_key, _, leaf = key.rpartition(".")
        parent = _get(cfg, parent_key) if parent_key else cfg
        with open_dict(cfg):  # a fresh composition is in struct mode
            del parent[int(leaf) if isinstance(parent, ListConfig) else leaf]
        return
    if old is not _ABSENT:
        _check_type(key, old, value)
    try:
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"Override {line!r} cannot be applied: {error}") from error


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Key overrides (Hydra's grammar: key=value, +key=value, ++key=value, ~key) on a copy."""
    cfg = cfg.copy()
    for override in parse_overrides(overrides):
        if is_group_override(override):
            raise ConfigError(
                f"Override {override.input_line!r} chooses a config-group option; "
                "only composing conf/ can apply it (`pipeline.config.load`)."
            )
        _apply(cfg, override)
    return cfg


def _compose_groups(groups: list[Override], params_file: Path) -> DictConfig:
    """conf/ composed with the group choices, if params.yaml is what conf/ composes to: a group
    override cannot be applied to params.yaml, and composing anew would drop its edits."""
    drift = params_drift(params_file) if params_file.exists() else []
    if drift:
        shown = ", ".join(drift[:6]) + (f" ... ({len(drift)} keys)" if len(drift) > 6 else "")
        raise ConfigError(
            f"Config-group override {groups[0].input_line!r} composes conf/ anew, but "
            f"{params_file.name} differs from conf/ at: {shown}; composing would lose that. "
            "Either regenerate it from conf/ with `python -m pipeline.config` (edit conf/ to keep "
            "a change), or set the values with plain key=value overrides instead."
        )
    return compose([o.input_line for o in groups])


def load(overrides: Sequence[str] = (), params_file: Path = PARAMS_FILE) -> DictConfig:
    """params.yaml (composed from conf/ if it is missing) with overrides, experiment validated.

    Key overrides apply to params.yaml. Group overrides (``optimizer@<package>=sgd``) need
    conf/: it is composed with them, then the key overrides apply to that, with the same checks
    (Hydra too applies key overrides after the defaults list; conf/ has no interpolations)."""
    groups, keys = [], []
    for override in parse_overrides(overrides):
        (groups if is_group_override(override) else keys).append(override)
    if groups:
        cfg = _compose_groups(groups, params_file)
    else:
        cfg = OmegaConf.load(params_file) if params_file.exists() else compose()
    for override in keys:
        _apply(cfg, override)
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
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. optimizer@experiments.wide_deep.train.optimizer=sgd",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if params.yaml drifted")
    args = parser.parse_args(argv)
    try:
        if args.check:
            drift = params_drift()
            if drift:
                print(
                    f"params.yaml differs from conf/ at: {', '.join(drift)}. "
                    "Run `python -m pipeline.config` to regenerate it.",
                    file=sys.stderr,
                )
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
