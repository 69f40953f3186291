"""The bars (pipeline.bars): each rule form met and not met, the refusals, the schema's form check,
and every bar of conf/ evaluated on the metrics of a real run (tests/fixtures/metrics: the 14
metrics/*.json of the fresh-clone run at f8ad315, whose hashes dvc.lock records; they still
carry the old seed_* names and the bar mappings as they were, neither of which this reads)."""

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline import bars, config, schema
from pipeline.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
VARIANTS = {
    "a": {
        "test_accuracy": 0.91,
        "val_accuracy": 0.90,
        "test_nll": 0.30,
        "test_nll_det": 0.35,
        "per_seed": [0.9, 0.91, 0.92],
        "group": "g1",
        "note": "text",
    },
    "b": {
        "test_accuracy": 0.85,
        "val_accuracy": 0.92,
        "test_nll": 0.40,
        "test_nll_det": 0.38,
        "per_seed": [0.8, 0.81],
        "group": "g1",
    },
    "c": {"test_accuracy": 0.70, "val_accuracy": 0.60, "test_rmse": 0.5, "group": "g2"},
}
BASELINE = {"accuracy": 0.5, "rmse": 0.9}
SELECT = {"metric": "val_accuracy", "direction": "maximize"}


def rule(name, value, variants=VARIANTS, baseline=BASELINE, select=SELECT):
    return bars.check({name: value}, variants, baseline, select)["rules"][name]


@pytest.mark.parametrize(
    "name, value, met, checked",
    [
        # one value: every variant that reports the metric
        ("test_accuracy_min", 0.7, True, {"a", "b", "c"}),
        ("test_accuracy_min", 0.8, False, {"a", "b", "c"}),
        ("test_rmse_max", 0.5, True, {"c"}),  # a and b report no test_rmse: not checked
        ("test_rmse_max", 0.4, False, {"c"}),
        # a mapping: those variants, each its own threshold; a group stands for its variants
        ("test_accuracy_min", {"a": 0.9, "b": 0.85}, True, {"a", "b"}),
        ("test_accuracy_min", {"a": 0.9, "b": 0.86}, False, {"a", "b"}),
        ("test_accuracy_min", {"g1": 0.85}, True, {"a", "b"}),
        ("test_accuracy_min", {"g2": 0.75}, False, {"c"}),
        # best_: the best on the selection metric (b: val 0.92), not the best on the rule's metric
        ("best_test_accuracy_min", 0.85, True, {"b"}),
        ("best_test_accuracy_min", 0.9, False, {"b"}),
        ("best_test_accuracy_min", {"a": 0.9, "c": 0.9}, True, {"a"}),  # the best of a and c
        ("best_test_accuracy_min", {"g2": 0.8}, False, {"c"}),
        # counts of a list metric
        ("per_seed_count_min", 2, True, {"a", "b"}),
        ("per_seed_count_min", 3, False, {"a", "b"}),
        ("per_seed_count_max", 3, True, {"a", "b"}),
        ("per_seed_count_max", 2, False, {"a", "b"}),
        # references: another metric of the same variant, another variant, the baseline
        ("test_nll_at_most", "test_nll_det", False, {"a", "b"}),
        ("test_nll_at_most", {"a": "test_nll_det"}, True, {"a"}),
        ("test_accuracy_at_least", {"a": "b"}, True, {"a"}),
        ("test_accuracy_at_least", {"b": "a"}, False, {"b"}),
        ("test_accuracy_above", "baseline", True, {"a", "b", "c"}),  # baseline[accuracy]
        ("test_accuracy_above", {"a": "a"}, False, {"a"}),  # strictly
        ("test_rmse_below", "baseline", True, {"c"}),
        ("test_rmse_below", {"c": "baseline"}, True, {"c"}),
        ("test_accuracy_below", "baseline", False, {"a", "b", "c"}),
    ],
)
def test_each_form_met_and_not_met(name, value, met, checked):
    result = rule(name, value)
    assert result["met"] is met and set(result["value"]) == set(result["threshold"]) == checked
    assert bool(result["failing"]) is not met and set(result["failing"]) <= checked


def test_the_result_holds_values_thresholds_and_the_failing_variants():
    checked = bars.check(
        {"test_accuracy_min": 0.8, "test_nll_at_most": "test_nll_det", "per_seed_count_min": 2},
        VARIANTS,
        BASELINE,
        SELECT,
    )
    assert checked["bar_met"] is False
    assert checked["rules"]["test_accuracy_min"] == {
        "met": False,
        "value": {"a": 0.91, "b": 0.85, "c": 0.70},
        "threshold": {"a": 0.8, "b": 0.8, "c": 0.8},
        "failing": ["c"],
    }
    assert checked["rules"]["test_nll_at_most"]["threshold"] == {"a": 0.35, "b": 0.38}
    assert checked["rules"]["per_seed_count_min"]["value"] == {"a": 3, "b": 2}
    json.dumps(checked)  # it goes into metrics/<name>.json as it is
    assert bars.summary(checked) == (
        "not met: test_accuracy_min (c 0.7: needs >= 0.8); test_nll_at_most (b 0.4: needs <= 0.38)"
    )
    two = bars.check({"test_accuracy_min": {"b": 0.9, "c": 0.8}}, VARIANTS)
    assert bars.summary(two) == "not met: test_accuracy_min (b 0.85 needs >= 0.9, c 0.7 needs >= 0.8)"
    met = bars.check({"test_accuracy_min": 0.7}, VARIANTS, BASELINE)
    assert met["bar_met"] is True and bars.summary(met) == "met"


def test_no_bar_is_neither_met_nor_missed_and_a_nan_misses():
    assert bars.check({}, VARIANTS) == {"bar_met": None, "rules": {}}
    assert bars.check(None, VARIANTS)["bar_met"] is None
    assert bars.summary({"bar_met": None, "rules": {}}) == "–"
    assert bars.summary({"test_accuracy_min": 0.9}) == "–"  # a metrics file from before the check
    nan = {"a": {"test_rmse": math.nan}}
    assert rule("test_rmse_max", 1.0, variants=nan)["met"] is False


def test_a_variant_that_did_not_run_leaves_its_rule_unchecked_and_a_misspelt_one_is_refused():
    bar = {
        "test_accuracy_min": {"a": 0.9, "zz": 0.5},
        "best_val_accuracy_min": {"g3": 0.5},
        "val_accuracy_min": 0.5,
    }
    checked = bars.check(bar, VARIANTS, BASELINE, SELECT)
    assert checked["rules"]["test_accuracy_min"] == {
        "met": None,
        "value": {},
        "threshold": {},
        "failing": [],
        "not_run": ["zz"],
    }
    assert checked["rules"]["best_val_accuracy_min"]["not_run"] == ["g3"]
    assert checked["bar_met"] is None  # not all checked, none missed
    assert bars.summary(checked) == (
        "not checked: test_accuracy_min (zz did not run); best_val_accuracy_min (g3 did not run)"
    )
    checked = bars.check({**bar, "test_accuracy_max": 0.8}, VARIANTS, BASELINE, SELECT)
    assert checked["bar_met"] is False
    assert bars.summary(checked).startswith("not met: test_accuracy_max (a 0.91, b 0.85: needs <= 0.8); ")
    assert bars.summary(checked).endswith(
        "; not checked: test_accuracy_min (zz did not run); best_val_accuracy_min (g3 did not run)"
    )
    # the config's own variants and groups are known before any work: a misspelt key is refused
    zz, g3 = bars.form_errors(bar, VARIANTS, {"g1", "g2"})
    assert zz == (
        "bar.test_accuracy_min.zz: 'zz' is neither a variant nor a group; variants: a, b, c; groups: g1, g2"
    )
    assert g3.startswith("bar.best_val_accuracy_min.g3: 'g3' is neither")
    assert bars.form_errors({"best_val_accuracy_min": {"g1": 0.5}}, VARIANTS, {"g1"}) == []


def test_a_config_mapping_is_read_like_a_dict():
    bar = OmegaConf.create({"test_accuracy_min": {"a": 0.9}, "best_test_accuracy_min": 0.8})
    checked = bars.check(bar, VARIANTS, BASELINE, OmegaConf.create(SELECT))
    assert checked["bar_met"] is True and checked["rules"]["best_test_accuracy_min"]["value"] == {"b": 0.85}


def test_a_minimized_selection_metric_picks_the_lowest():
    select = {"metric": "test_nll", "direction": "minimize"}
    assert set(rule("best_test_accuracy_min", 0.5, select=select)["value"]) == {"a"}


@pytest.mark.parametrize(
    "bar, says",
    [
        (
            {"test_accuracy_above_best_member": True},
            "bar.test_accuracy_above_best_member: not a rule; valid forms",
        ),
        ({"seeds": 5}, "bar.seeds: not a rule; valid forms: [best_]<metric>_min|_max"),
        ({"_min": 5}, "bar._min: not a rule"),
        ({"test_accuracy_min": "high"}, "bar.test_accuracy_min='high': must be a number"),
        ({"test_accuracy_min": True}, "must be a number"),
        ({"per_seed_count_min": 2.5}, "must be a whole number >= 0"),
        (
            {"test_rating_mae_below": True},
            "must be 'baseline', a variant's name or another metric's name (say what: test_rating_mae_below: baseline, not true)",
        ),
        ({"test_accuracy_min": {}}, "an empty mapping"),
        ({"best_best_member_min": 0.5}, "the metric 'best_member' starts with 'best_'"),
    ],
)
def test_a_rule_off_the_grammar_is_refused_by_name(bar, says):
    errors = bars.form_errors(bar, VARIANTS, {"g1", "g2"})
    assert len(errors) == 1 and says in errors[0]
    with pytest.raises(ConfigError, match="cannot be checked") as raised:
        bars.check(bar, VARIANTS, BASELINE, SELECT)
    assert says in str(raised.value)


@pytest.mark.parametrize(
    "bar, says",
    [
        (
            {"test_mae_min": 1.0},
            "bar.test_mae_min: no variant reports 'test_mae'; metrics of a: test_accuracy",
        ),
        (
            {"test_rmse_min": {"a": 1.0}},
            "bar.test_rmse_min.a: a does not report 'test_rmse'; its metrics: test_accuracy,",
        ),
        ({"note_min": 1.0}, "a's note is 'text', not a number"),
        ({"per_seed_min": 1.0}, "not a number; use per_seed_count_min/_count_max to count it"),
        ({"test_accuracy_count_min": 1}, "not a list to count"),
        ({"test_nll_at_most": "test_nll_nope"}, "the reference 'test_nll_nope' is no figure of a"),
        (
            {"test_nll_below": "baseline"},
            "the baseline has no 'test_nll' or 'nll'; its figures: accuracy, rmse",
        ),
    ],
)
def test_a_metric_the_variants_do_not_have_is_refused_by_name(bar, says):
    with pytest.raises(ConfigError) as raised:
        bars.check(bar, VARIANTS, BASELINE, SELECT)
    assert says in str(raised.value)


def test_every_problem_is_named_at_once_and_best_needs_the_selection_metric():
    with pytest.raises(ConfigError) as raised:
        bars.check({"test_mae_min": 1.0, "test_rmse_min": {"a": 1.0}}, VARIANTS, BASELINE, SELECT)
    assert "test_mae_min" in str(raised.value) and "test_rmse_min.a" in str(raised.value)
    with pytest.raises(ConfigError, match="needs the experiment's selection metric"):
        bars.check({"best_test_accuracy_min": 0.5}, VARIANTS, BASELINE)
    with pytest.raises(ConfigError, match="reports the selection metric 'val_auc'"):
        bars.check({"best_test_accuracy_min": 0.5}, VARIANTS, BASELINE, {"metric": "val_auc"})


def test_the_schema_checks_the_rule_forms_before_any_work():
    cfg = config.compose(["experiment=residual"])
    schema.check(cfg)  # the bars of conf/ are in the grammar
    cfg.experiments.residual.bar = {
        "residual_val_accuracy_at_least_plain": True,
        "val_accuracy_min": {"resdual": 0.86},
    }
    with pytest.raises(ConfigError) as raised:
        schema.check(cfg)
    message = str(raised.value)
    assert "experiments.residual.bar.residual_val_accuracy_at_least_plain: not a rule; valid forms" in message
    assert "experiments.residual.bar.val_accuracy_min.resdual: 'resdual' is neither a variant" in message
    # a group a variant's config names is a valid key
    cfg = config.compose(["experiment=deep_training"])
    assert cfg.experiments.deep_training.bar.best_val_accuracy_min == {"optimizers": 0.875}
    schema.check(cfg)


#: per experiment of the f8ad315 run: the rules missed (residual's 0.8514 is short of 0.86, as
#: the README's table of that run says)
MISSED = {"residual": {"val_accuracy_min"}}


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="no metrics fixtures")
def test_every_bar_of_conf_is_evaluated_on_the_metrics_of_a_real_run():
    composed = config.compose()
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(composed.experiments)
    for name, exp_cfg in composed.experiments.items():
        metrics = json.loads((FIXTURES / f"{name}.json").read_text())
        checked = bars.check(exp_cfg.bar, metrics["variants"], metrics["baseline"], exp_cfg.tune)
        missed = {r for r, result in checked["rules"].items() if not result["met"]}
        assert checked["rules"] and missed == MISSED.get(name, set()), (name, checked)
        assert checked["bar_met"] is (not missed)
    boston = json.loads((FIXTURES / "boston.json").read_text())
    checked = bars.check(
        composed.experiments.boston.bar,
        boston["variants"],
        boston["baseline"],
        composed.experiments.boston.tune,
    )
    # the variant best on the folds' MAE (the one evaluate registers), and its test MAE
    assert checked["rules"]["best_cv_mae_mean_max"]["value"] == {
        "fast": boston["variants"]["fast"]["cv_mae_mean"]
    }
    assert checked["rules"]["best_test_mae_max"]["value"] == {"fast": boston["variants"]["fast"]["test_mae"]}
