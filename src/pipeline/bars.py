"""An experiment's ``bar``: the figures a reproduction must reach, checked against its metrics.

Every key of ``experiments.<name>.bar`` is one rule, spelled ``[best_]<metric>_<test>``:

=======================================  ==========================================================
``<metric>_min: 0.85``                   the metric is at least 0.85 (``_max``: at most)
``<metric>_count_min: 5``                a list metric (one entry per seed or fold) has at least 5
                                         entries (``_count_max``: at most)
``<metric>_at_least: <reference>``       the metric is at least the reference figure
                                         (``_at_most``: at most; ``_above``/``_below``: strictly)
=======================================  ==========================================================

A reference is ``baseline`` (the null model's figure for the metric: ``baseline[<metric>]``, or
the same name without its ``test_``/``val_``/``train_`` prefix), the name of a variant (that
variant's same metric) or the name of another metric of the same variant.

Which variants a rule checks:

* one value (``test_accuracy_min: 0.9``): every variant that reports the metric;
* a mapping ``{<variant or group>: value}``: only those, each against its own value; a group
  stands for every variant whose ``group`` is that name (``{optimizers: 0.875}``); a rule
  naming a variant that did not run (``train.groups`` picked others) is reported not checked;
* the ``best_`` prefix: of those, only the best variant on the experiment's selection metric
  (the tune stage's metric and direction, never a test figure: the variant evaluate registers).
  A metric whose own name starts with ``best_`` cannot be named in a rule; ensemble's
  ``best_member_val_accuracy`` is also ``val_accuracy_best_member``.

``form_errors`` checks the names and values without metrics (the config schema runs it before
any work); ``check`` evaluates the rules on the variants' metrics and says per rule whether it
is met, the values, the thresholds and the failing variants, plus an overall ``bar_met``.
Importing this module is cheap (no TensorFlow, no OmegaConf).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Sequence

from pipeline.errors import ConfigError

BEST = "best_"
BASELINE = "baseline"
#: test suffix -> (comparison, symbol, kind of value); the longest suffix is matched first
TESTS: dict[str, tuple[Callable[[float, float], bool], str, str]] = {
    "count_min": (operator.ge, ">=", "count"),
    "count_max": (operator.le, "<=", "count"),
    "at_least": (operator.ge, ">=", "reference"),
    "at_most": (operator.le, "<=", "reference"),
    "above": (operator.gt, ">", "reference"),
    "below": (operator.lt, "<", "reference"),
    "min": (operator.ge, ">=", "number"),
    "max": (operator.le, "<=", "number"),
}
VALUES = {
    "number": "a number",
    "count": "a whole number >= 0",
    "reference": f"'{BASELINE}', a variant's name or another metric's name",
}
FORMS = (
    "valid forms: [best_]<metric>_min|_max: <number>; [best_]<metric>_count_min|_count_max: "
    "<whole number> (a list metric's entries); [best_]<metric>_at_least|_at_most|_above|_below: "
    f"{BASELINE} | <variant> | <other metric>; a value alone applies to every variant, "
    "{<variant or group>: value} to those only"
)
PREFIXES = ("test_", "val_", "train_")


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    test: str
    best: bool

    @property
    def compare(self) -> Callable[[float, float], bool]:
        return TESTS[self.test][0]

    @property
    def symbol(self) -> str:
        return TESTS[self.test][1]

    @property
    def kind(self) -> str:
        return TESTS[self.test][2]


def parse(name: str) -> Rule:
    """The rule a bar key spells; ConfigError naming it and the valid forms if it spells none."""
    best = name.startswith(BEST)
    rest = name[len(BEST) :] if best else name
    for test in sorted(TESTS, key=len, reverse=True):
        if rest.endswith("_" + test) and len(rest) > len(test) + 1:
            return Rule(name, rest[: -len(test) - 1], test, best)
    raise ConfigError(f"bar.{name}: not a rule; {FORMS}.")


def _plain(value: Any) -> Any:
    """Mappings and lists as dicts and lists (a DictConfig is a Mapping: no OmegaConf import)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_ok(kind: str, value: Any) -> bool:
    if kind == "number":
        return _number(value)
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return isinstance(value, str) and bool(value)


def form_errors(
    bar: Mapping[str, Any] | None,
    variants: Collection[str] | None = None,
    groups: Collection[str] = (),
    where: str = "bar",
) -> list[str]:
    """One line per rule of ``bar`` whose name or value breaks the grammar (no metrics needed).

    With ``variants`` (and the ``groups`` their configs name), a mapping's keys must be among
    them."""
    known = None if variants is None else {*variants, *groups}
    errors = []
    for name, value in (_plain(bar) or {}).items():
        try:
            rule = parse(name)
        except ConfigError:
            errors.append(f"{where}.{name}: not a rule; {FORMS}")
            continue
        if rule.metric.startswith(BEST):
            errors.append(
                f"{where}.{name}: the metric {rule.metric!r} starts with {BEST!r}, which "
                "the rule would read as 'the best variant'; name the same figure otherwise"
            )
        says = VALUES[rule.kind]
        values = value if isinstance(value, Mapping) else {None: value}
        if not values:
            errors.append(f"{where}.{name}: an empty mapping; give {says} or {{<variant>: {says}}}")
        for key, each in values.items():
            at = f"{where}.{name}" + (f".{key}" if key is not None else "")
            if not _value_ok(rule.kind, each):
                hint = (
                    f" (say what: {name}: {BASELINE}, not true)"
                    if rule.kind == "reference" and isinstance(each, bool)
                    else ""
                )
                errors.append(f"{at}={each!r}: must be {says}{hint}")
            if key is not None and known is not None and key not in known:
                errors.append(
                    f"{at}: {key!r} is neither a variant nor a group; variants: "
                    + ", ".join(sorted(set(variants or ())))
                    + (f"; groups: {', '.join(sorted(set(groups)))}" if groups else "")
                )
    return errors


def _raise(errors: list[str]) -> None:
    if errors:
        raise ConfigError("The experiment's bar cannot be checked:\n  " + "\n  ".join(errors))


def check(
    bar: Mapping[str, Any] | None,
    variants: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Any] | None = None,
    select: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every rule of ``bar`` on the variants' metrics, and whether all are met.

    ``select`` is the experiment's selection setting (``{"metric": ..., "direction": ...}``, as
    ``tuning.study.settings_of`` returns it), needed by ``best_`` rules. Returns
    ``{"bar_met": bool | None, "rules": {rule: {"met", "value", "threshold", "failing"}}}`` where
    value and threshold map each checked variant to its figure (a count for ``_count_*``) and
    failing lists the variants that miss. A rule whose mapping names a variant (or group) that
    did not run (``train.groups`` picked others) is not checked: ``met`` None and ``not_run``
    naming them. ``bar_met`` is False if a rule is missed, else None if one was not checked (or
    there is no bar), else True. Refuses (ConfigError, every problem at once) a rule off the
    grammar, a metric no variant in its scope reports, a figure that is not a number, a
    reference that names nothing. Which names a config's variants and groups are, the schema
    checks before any work (``form_errors``).
    """
    bar = _plain(bar) or {}
    _raise(form_errors(bar))
    results, errors = {}, []
    for name, value in bar.items():
        try:
            results[name] = _check_rule(parse(name), value, variants, baseline or {}, select)
        except ConfigError as error:
            errors.append(str(error))
    _raise(errors)
    outcomes = [r["met"] for r in results.values()]
    met = False if False in outcomes else None if None in outcomes or not outcomes else True
    return {"bar_met": met, "rules": results}


def _scope(
    rule: Rule, value: Any, variants: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """{variant: its threshold or reference} for the variants the rule checks, and the keys of
    its mapping that name no variant or group of these metrics (they did not run)."""
    if not isinstance(value, Mapping):
        scope = {v: value for v, entry in variants.items() if rule.metric in entry}
        if not scope:
            raise ConfigError(
                f"bar.{rule.name}: no variant reports {rule.metric!r}; metrics of {_example(variants)}"
            )
        return scope, []
    scope, not_run = {}, []
    for key, each in value.items():
        members = [key] if key in variants else [v for v, e in variants.items() if e.get("group") == key]
        if not members:
            not_run.append(key)
        for variant in members:
            if rule.metric not in variants[variant]:
                raise ConfigError(
                    f"bar.{rule.name}.{key}: {variant} does not report "
                    f"{rule.metric!r}; its metrics: {_names(variants[variant])}"
                )
            scope[variant] = each
    return scope, not_run


def _best(
    rule: Rule,
    scope: dict[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    select: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not select or not select.get("metric"):
        raise ConfigError(
            f"bar.{rule.name}: a best_ rule needs the experiment's selection metric "
            "(tune.metric and tune.direction)"
        )
    metric, direction = select["metric"], select.get("direction", "maximize")
    scored = {
        v: variants[v][metric]
        for v in scope
        if _number(variants[v].get(metric)) and not math.isnan(variants[v][metric])
    }
    if not scored:
        raise ConfigError(
            f"bar.{rule.name}: no variant of {', '.join(scope)} reports the selection "
            f"metric {metric!r}, so none is the best"
        )
    pick = max if direction == "maximize" else min
    best = pick(scored, key=scored.get)
    return {best: scope[best]}


def _figure(rule: Rule, entry: Mapping[str, Any], variant: str) -> float:
    value = entry[rule.metric]
    if rule.kind == "count":
        if not isinstance(value, list):
            raise ConfigError(
                f"bar.{rule.name}: {variant}'s {rule.metric} is {value!r}, not a list "
                f"to count; use {rule.metric}_min/_max for a figure"
            )
        return len(value)
    if not _number(value):
        hint = f"; use {rule.metric}_count_min/_count_max to count it" if isinstance(value, list) else ""
        raise ConfigError(f"bar.{rule.name}: {variant}'s {rule.metric} is {value!r}, not a number{hint}")
    return value


def _reference(
    rule: Rule,
    reference: str,
    variant: str,
    variants: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Any],
) -> float:
    if reference == BASELINE:
        names = [rule.metric] + [rule.metric[len(p) :] for p in PREFIXES if rule.metric.startswith(p)]
        found = [baseline[n] for n in names if _number(baseline.get(n))]
        if not found:
            raise ConfigError(
                f"bar.{rule.name}: the baseline has no {' or '.join(map(repr, names))}; "
                f"its figures: {', '.join(baseline) or 'none'}"
            )
        return found[0]
    source, metric = (reference, rule.metric) if reference in variants else (variant, reference)
    value = variants[source].get(metric)
    if not _number(value):
        raise ConfigError(
            f"bar.{rule.name}: the reference {reference!r} is no figure of {variant} "
            f"(nor a variant reporting {rule.metric!r}, nor {BASELINE!r}); "
            f"{variant}'s metrics: {_names(variants[variant])}"
        )
    return value


def _check_rule(
    rule: Rule,
    value: Any,
    variants: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Any],
    select: Mapping[str, Any] | None,
) -> dict[str, Any]:
    scope, not_run = _scope(rule, value, variants)
    if not_run:
        return {"met": None, "value": {}, "threshold": {}, "failing": [], "not_run": not_run}
    if rule.best:
        scope = _best(rule, scope, variants, select)
    values, thresholds = {}, {}
    for variant, limit in scope.items():
        values[variant] = _figure(rule, variants[variant], variant)
        thresholds[variant] = (
            _reference(rule, limit, variant, variants, baseline) if rule.kind == "reference" else limit
        )
    failing = [v for v in scope if not rule.compare(values[v], thresholds[v])]  # NaN fails
    return {"met": not failing, "value": values, "threshold": thresholds, "failing": failing}


def summary(checked: Mapping[str, Any] | None) -> str:
    """``met``; ``not met: <rule> (<variant> <value>: needs >= <threshold>); ...``; ``not
    checked: <rule> (<variant> did not run)``; or ``–`` (no bar, or metrics from before bars
    were checked)."""
    if (
        not isinstance(checked, Mapping)
        or not isinstance(checked.get("rules"), Mapping)
        or not checked["rules"]
    ):
        return "–"
    if checked.get("bar_met"):
        return "met"
    missed, unchecked = [], []
    for name, result in checked["rules"].items():
        if result["met"] is False:
            symbol, failing = parse(name).symbol, result["failing"]
            limits = {_short(result["threshold"][v]) for v in failing}
            shown = ", ".join(
                f"{v} {_short(result['value'][v])}"
                + ("" if len(limits) == 1 else f" needs {symbol} {_short(result['threshold'][v])}")
                for v in failing
            )
            missed.append(
                f"{name} ({shown}" + (f": needs {symbol} {limits.pop()})" if len(limits) == 1 else ")")
            )
        elif result["met"] is None:
            unchecked.append(f"{name} ({', '.join(result.get('not_run', []))} did not run)")
    return "; ".join(
        ([f"not met: {'; '.join(missed)}"] if missed else [])
        + ([f"not checked: {'; '.join(unchecked)}"] if unchecked else [])
    )


def _short(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _names(entry: Mapping[str, Any]) -> str:
    return ", ".join(k for k, v in entry.items() if _number(v) or isinstance(v, list))


def _example(variants: Mapping[str, Mapping[str, Any]]) -> str:
    if not variants:
        return "no variant"
    first = next(iter(variants))
    return f"{first}: {_names(variants[first])}"
