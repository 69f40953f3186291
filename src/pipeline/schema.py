"""The rules a config value must follow beyond its type: ranges and choices.

``check(cfg)`` runs on every stage's config (params.yaml with the command line's overrides, or a
fresh composition of conf/) before anything is loaded or written, and before TensorFlow is
imported: a batch size of 0, a negative learning rate or a dropout of 1.5 stops the stage with
exit code 2 and one line per bad value naming the key, the value and the rule, instead of a
silent fallback or a traceback from deep inside Keras.

A rule is keyed by the name of the leaf it governs (``batch_size``, wherever it stands under an
experiment: its ``train``, a variant's ``train``), so a new experiment is covered without a line
here. The tune search spaces (``tune.space``) have rules of their own: bounds in order, log
scales only over positive bounds, choices not empty; so have the bars (``bar``): each key a rule
of pipeline.bars' grammar, its mappings naming variants or groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

from pipeline import bars
from pipeline.errors import ConfigError

#: names pipeline.models.factories.OPTIMIZERS accepts (a test keeps the two equal; importing
#: that module would import TensorFlow)
OPTIMIZER_NAMES = ("adagrad", "adam", "adamax", "nadam", "rmsprop", "sgd")
DIRECTIONS = ("minimize", "maximize")
SPACE_TYPES = ("int", "float", "categorical")
MAX_ERRORS = 8  # lines printed; the rest are counted


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    says: str  # completes "must be ..."


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_at_least(low: int) -> Rule:
    return Rule(lambda v: _whole(v) and v >= low, f"a whole number >= {low}")


def positive(optional: bool = False) -> Rule:
    return Rule(
        lambda v: (optional and v is None) or (_number(v) and v > 0),
        "a number > 0" + (" (or null)" if optional else ""),
    )


def non_negative() -> Rule:
    return Rule(lambda v: _number(v) and v >= 0, "a number >= 0")


def in_range(low: float, high: float, high_included: bool = False) -> Rule:
    bracket = "]" if high_included else ")"
    return Rule(
        lambda v: _number(v) and low <= v and (v <= high if high_included else v < high),
        f"a number in [{low}, {high}{bracket}",
    )


def one_of(*choices: Any, optional: bool = False) -> Rule:
    shown = ", ".join(map(str, choices)) + (", null" if optional else "")
    return Rule(lambda v: (optional and v is None) or v in choices, f"one of: {shown}")


def widths() -> Rule:
    return Rule(
        lambda v: isinstance(v, (list, ListConfig)) and all(_whole(w) and w >= 1 for w in v),
        "a list of whole numbers >= 1",
    )


def fraction_or_count() -> Rule:
    return Rule(
        lambda v: (_whole(v) and v >= 1) or (isinstance(v, float) and 0 < v < 1),
        "a fraction in (0, 1) or a whole number of rows >= 1",
    )


#: leaf name -> rule, for every key under ``experiments.<name>`` and ``datasets.<name>``
RULES: dict[str, Rule] = {
    "epochs": whole_at_least(1),
    "batch_size": whole_at_least(1),
    "steps_per_execution": whole_at_least(1),
    "learning_rate": positive(),
    "unfrozen_learning_rate": positive(),
    "dropout": in_range(0.0, 1.0),
    "momentum": in_range(0.0, 1.0),
    "units": whole_at_least(1),
    "depth": whole_at_least(1),
    "embedding": whole_at_least(1),
    "head_units": whole_at_least(1),
    "members": whole_at_least(1),
    "seeds": whole_at_least(1),
    "passes": whole_at_least(1),
    "b_train_size": whole_at_least(1),
    "frozen_epochs": whole_at_least(0),
    "unfrozen_epochs": whole_at_least(0),
    "n_splits": whole_at_least(2),
    "n_repeats": whole_at_least(1),
    "patience": whole_at_least(0),
    "factor": Rule(lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    "max_tokens": whole_at_least(2),
    "num_words": whole_at_least(2),
    "kernel_l2": non_negative(),
    "activity_l1": non_negative(),
    "l2": non_negative(),
    "max_norm": positive(optional=True),
    "soft_clip": positive(optional=True),
    "clipnorm": positive(),
    "clipvalue": positive(),
    "cross_bins": Rule(lambda v: _whole(v) and (v == 0 or v >= 2), "0 (none) or a whole number >= 2"),
    "hidden": widths(),
    "widths": widths(),
    "dense_hidden": widths(),
    "conv_hidden": widths(),
    "valid_size": fraction_or_count(),
    "test_size": fraction_or_count(),
}
#: leaf rules that hold only under a given parent key (the same name means other things elsewhere)
PARENT_RULES: dict[tuple[str, str], Rule] = {
    ("optimizer", "name"): one_of(*OPTIMIZER_NAMES),
}


def check(cfg: DictConfig) -> None:
    """Raise ConfigError listing every value that breaks a rule (nothing if all is well)."""
    errors = [*_experiment_errors(cfg), *_tune_errors(cfg), *_train_errors(cfg)]
    if errors:
        shown = errors[:MAX_ERRORS]
        more = len(errors) - len(shown)
        raise ConfigError(
            "Invalid configuration (params.yaml and the command line's overrides):\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )


def _experiment_errors(cfg: DictConfig) -> Iterator[str]:
    for section in ("experiments", "datasets"):
        tree = _plain(cfg.get(section))
        for path, parent, leaf, value in _leaves(tree, (section,)):
            rule = PARENT_RULES.get((parent, leaf)) or RULES.get(leaf)
            if "note_figures" in path or "bar" in path or "space" in path:
                continue  # the notes' figures and the bars are measurements, not settings
            if rule is not None and not rule.check(value):
                yield f"{'.'.join(path)}={value!r}: must be {rule.says}"
        for name, experiment in tree.items() if section == "experiments" else ():
            yield from _space_errors(f"experiments.{name}.tune", experiment.get("tune") or {})
            yield from _bar_errors(f"experiments.{name}.bar", experiment)


def _bar_errors(where: str, experiment: Mapping[str, Any]) -> list[str]:
    """The bar's rules in the grammar of pipeline.bars, their mappings naming variants or groups
    (whether the metrics exist is known only to the evaluate stage)."""
    variants = experiment.get("variants") or {}
    groups = {
        v["group"] for v in variants.values() if isinstance(v, Mapping) and isinstance(v.get("group"), str)
    }
    return bars.form_errors(experiment.get("bar"), variants, groups, where=where)


def _tune_errors(cfg: DictConfig) -> Iterator[str]:
    """The invocation's ``tune.*`` settings (null: the experiment's default)."""
    from pipeline.tuning.study import PRUNERS, SAMPLERS  # here: that module imports pipeline.config

    tune = _plain(cfg.get("tune"))
    rules = {
        "n_trials": whole_at_least(1),
        "n_workers": whole_at_least(1),
        "timeout": positive(),
        "pruner": one_of(*PRUNERS),
        "sampler": one_of(*SAMPLERS),
    }
    for key, rule in rules.items():
        value = tune.get(key)
        if value is not None and not rule.check(value):
            yield f"tune.{key}={value!r}: must be {rule.says}"


def _train_errors(cfg: DictConfig) -> Iterator[str]:
    """The invocation's ``train.*`` settings (``workers``: null means one per core)."""
    workers = _plain(cfg.get("train")).get("workers")
    if workers is not None and not whole_at_least(1).check(workers):
        yield f"train.workers={workers!r}: must be {whole_at_least(1).says} (or null: one per core)"


def _space_errors(prefix: str, tune: Mapping[str, Any]) -> Iterator[str]:
    from pipeline.tuning.study import PRUNERS, SAMPLERS

    for key, rule in (
        ("n_trials", whole_at_least(1)),
        ("direction", one_of(*DIRECTIONS)),
        ("pruner", one_of(*PRUNERS, optional=True)),
        ("sampler", one_of(*SAMPLERS, optional=True)),
    ):
        if key in tune and not rule.check(tune[key]):
            yield f"{prefix}.{key}={tune[key]!r}: must be {rule.says}"
    for path, spec in _distributions(tune.get("space") or {}, (f"{prefix}.space",)):
        where = ".".join(path)
        kind = spec.get("type")
        if kind not in SPACE_TYPES:
            yield f"{where}.type={kind!r}: must be one of: {', '.join(SPACE_TYPES)}"
        elif kind == "categorical":
            if not spec.get("choices"):
                yield f"{where}.choices: must be a list of at least one value"
        else:
            low, high = spec.get("low"), spec.get("high")
            number = _whole if kind == "int" else _number
            if not (number(low) and number(high)):
                yield f"{where}: low and high must be {'whole ' if kind == 'int' else ''}numbers"
            elif not low < high:
                yield f"{where}: low={low!r} must be below high={high!r}"
            elif spec.get("log") and low <= 0:
                yield f"{where}: a log scale needs low > 0 (low={low!r})"


def _plain(node: Any) -> dict:
    """A config section as plain containers ({} when the section is absent)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else {}


def _leaves(tree: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str, str, Any]]:
    """(path, parent key, leaf key, value) of every non-mapping value."""
    for key, value in tree.items():
        here = (*path, str(key))
        if isinstance(value, Mapping):
            yield from _leaves(value, here)
        else:
            yield here, path[-1], str(key), value


def _distributions(space: Mapping[str, Any], path: tuple[str, ...]):
    for key, value in space.items():
        if isinstance(value, Mapping) and "type" in value:
            yield (*path, str(key)), value
        elif isinstance(value, Mapping):
            yield from _distributions(value, (*path, str(key)))
