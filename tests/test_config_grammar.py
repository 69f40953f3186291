"""One override grammar, Hydra's: what `pipeline.config.load` (every stage) accepts on top of
params.yaml, and what it refuses, always with a ConfigError naming the override, the rule and the
choices. Fast: no training, no TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import ListConfig, OmegaConf

from pipeline import config
from pipeline.errors import ConfigError

from conftest import ROOT

W = "experiments.wide_deep"
SGD = "optimizer@experiments.wide_deep.train.optimizer=sgd"


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    """A params.yaml that agrees with conf/ (the checkout's may be mid-edit by someone else)."""
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    config.write_params(config.compose(), path)
    return path


@pytest.fixture
def drifted(tmp_path):
    path = tmp_path / "params.yaml"
    config.write_params(config.compose([f"{W}.train.epochs=7"]), path)
    return path


def load(params, *overrides):
    return config.load(list(overrides), params_file=params)


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key, value",
    [
        (f"{W}.train.epochs=3", f"{W}.train.epochs", 3),
        (f"{W}.train.optimizer.learning_rate=1e-4", f"{W}.train.optimizer.learning_rate", 1e-4),
        (f"{W}.train.optimizer.learning_rate=1", f"{W}.train.optimizer.learning_rate", 1),  # int to float
        (f"{W}.model.wide_features=[1,4]", f"{W}.model.wide_features", [1, 4]),
        (f"{W}.model.activation='1e-4'", f"{W}.model.activation", "1e-4"),  # quoted: a string
        (f"{W}.variants.search.model.soft_clip=null", f"{W}.variants.search.model.soft_clip", None),
        ("tune.register=false", "tune.register", False),
        ("experiment=boston", "experiment", "boston"),
    ],
)
def test_key_value_is_parsed_by_hydras_grammar(params, override, key, value):
    selected = OmegaConf.select(load(params, override), key)
    if isinstance(selected, ListConfig):
        selected = OmegaConf.to_container(selected)
    assert selected == value and type(selected) is type(value)


def test_plus_adds_a_new_key_and_plus_plus_sets_or_adds(params):
    cfg = load(
        params, f"+{W}.model.note=hello", f"++{W}.model.tag=x", f"++{W}.train.epochs=5", "+tune.extra.depth=2"
    )
    assert cfg.experiments.wide_deep.model.note == "hello"
    assert cfg.experiments.wide_deep.model.tag == "x"
    assert cfg.experiments.wide_deep.train.epochs == 5
    assert cfg.tune.extra.depth == 2


def test_tilde_deletes_a_key_and_with_a_value_only_if_it_matches(params):
    cfg = load(params, f"~{W}.variants.two_inputs", f"~{W}.model.units=30")
    assert "two_inputs" not in cfg.experiments.wide_deep.variants
    assert "units" not in cfg.experiments.wide_deep.model


def test_group_override_composes_conf_with_all_overrides(params):
    cfg = load(params, SGD, f"{W}.train.optimizer.momentum=0.9", "tune@experiments.wide_deep.tune=boston")
    optimizer = cfg.experiments.wide_deep.train.optimizer
    assert optimizer.name == "sgd" and optimizer.momentum == 0.9
    assert cfg.experiments.wide_deep.tune.metric == "cv_mae_mean"  # conf/tune/boston.yaml
    assert cfg.experiments.boston == config.compose().experiments.boston  # only those packages changed


def test_a_drifted_params_yaml_still_takes_key_overrides(drifted):
    cfg = load(drifted, f"{W}.train.batch_size=64")
    assert cfg.experiments.wide_deep.train.epochs == 7 and cfg.experiments.wide_deep.train.batch_size == 64


# --- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, phrases",
    [
        (
            [f"{W}.train.epoch=3"],
            [
                "Unknown config key",
                f"{W}.train.epoch=3",
                "+key=value adds one",
                f"Did you mean '{W}.train.epochs'",
                f"valid keys under {W}.train: ",
                "batch_size, epochs",
            ],
        ),
        ([f"{W}.trian.epochs=3"], [f"Did you mean '{W}.train'", f"valid keys under {W}:"]),
        ([f"{W}.train.epochs=ten"], ["epochs='ten' has the wrong type", "is an int", "current value 20"]),
        ([f"{W}.train.epochs=1e3"], ["epochs=1000.0 has the wrong type", "is an int"]),
        ([f"{W}.train.epochs='3'"], ["epochs='3' has the wrong type"]),
        (["tune.register=1"], ["tune.register=1 has the wrong type", "is a bool"]),
        ([f"++{W}.train.epochs=ten"], ["wrong type"]),
        (
            [f"+{W}.train.epochs=3"],
            [
                f"'+{W}.train.epochs=3' adds",
                "it exists (value 20)",
                f"'{W}.train.epochs=3'",
                f"'++{W}.train.epochs=3'",
            ],
        ),
        ([f"+{W}.model.units.x=1"], [f"under {W}.model.units", "an int", "not a mapping"]),
        (
            [f"~{W}.train.nope"],
            ["Unknown config key", f"'~{W}.train.nope'", "~key deletes an existing key", "valid keys under"],
        ),
        ([f"~{W}.model.units=31"], ["only if its value is 31", "but it is 30", f"~{W}.model.units deletes"]),
        (
            [f"{W}.train.epochs=1,2,3"],
            [
                "epochs=1,2,3' is a sweep",
                "a stage runs one config",
                "python -m pipeline.tune",
                "dvc exp run --queue -S",
            ],
        ),
        ([f"{W}.train.epochs=range(1,4)"], ["is a sweep"]),
        ([f"{W}.train.batch_size=choice(32,64)"], ["is a sweep"]),
        (
            ["a.b=[1,"],
            ["Cannot parse override 'a.b=[1,'", "Hydra's grammar", "+key=value", "~key", "group=option"],
        ),
        (["seed"], ["Cannot parse override 'seed'", "missing EQUAL"]),
        (
            ["optimzer@experiments.wide_deep.train.optimizer=sgd"],
            ["config group 'optimzer'", "groups: datasets, experiments, optimizer, tune"],
        ),
        (["optimizer@experiments.wide_deep.train.optimizer=nadamx"], ["nadamx", "adam", "rmsprop", "sgd"]),
        (["experiment=nope"], ["Unknown experiment 'nope'", "wide_deep"]),
        ([f"{W}.train.batch_size=0"], ["batch_size=0", "whole number >= 1"]),  # schema.check still runs
    ],
)
def test_refusals_name_the_override_the_rule_and_the_choices(params, overrides, phrases):
    with pytest.raises(ConfigError) as error:
        load(params, *overrides)
    for phrase in phrases:
        assert phrase in str(error.value), str(error.value)


def test_group_override_on_a_drifted_params_yaml_is_refused(drifted):
    with pytest.raises(ConfigError) as error:
        load(drifted, f"{W}.train.batch_size=64", SGD)
    message = str(error.value)
    for phrase in (
        SGD,
        "differs from conf/ at: experiments.wide_deep.train.epochs",
        "python -m pipeline.config",
        "plain key=value",
    ):
        assert phrase in message, message


def test_apply_overrides_takes_the_same_grammar_but_no_group_choice():
    base = config.compose()
    cfg = config.apply_overrides(base, [f"{W}.train.optimizer.learning_rate=1e-4", f"+{W}.x=1"])
    assert (
        cfg.experiments.wide_deep.train.optimizer.learning_rate == 1e-4 and cfg.experiments.wide_deep.x == 1
    )
    assert "x" not in base.experiments.wide_deep  # a copy
    with pytest.raises(ConfigError, match="config-group option"):
        config.apply_overrides(base, [SGD])


def test_the_grammar_imports_no_tensorflow(params):
    code = (
        "import sys; from pipeline import config; "
        f"config.load([{SGD!r}, 'experiments.wide_deep.train.epochs=3'], params_file=__import__('pathlib').Path({str(params)!r})); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.stdout.split() == ["False"], result.stderr
