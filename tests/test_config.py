import re

import pytest
from omegaconf import OmegaConf

from pipeline import config
from pipeline.errors import ConfigError

from conftest import run_module


def test_params_yaml_agrees_with_conf():
    assert config.params_drift() == [], "run `python -m pipeline.config` and commit params.yaml"


def test_drift_is_detected(tmp_path):
    cfg = config.compose(["experiments.wide_deep.train.epochs=7"])
    stale = tmp_path / "params.yaml"
    config.write_params(cfg, stale)
    assert config.params_drift(stale) == ["experiments.wide_deep.train.epochs"]


def test_compose_has_one_section_per_experiment_and_dataset():
    cfg = config.compose()
    assert "wide_deep" in cfg.experiments
    for name, experiment in cfg.experiments.items():
        assert experiment.dataset in cfg.datasets, name
        assert experiment.tune.space, name


OPTIMIZER = "optimizer@experiments.wide_deep.train.optimizer"


def test_group_override_changes_optimizer():
    cfg = config.compose([f"{OPTIMIZER}=sgd"])
    assert cfg.experiments.wide_deep.train.optimizer.name == "sgd"


def test_unknown_group_option_lists_choices():
    with pytest.raises(ConfigError, match=r"nadamx(.|\n)*adam(.|\n)*rmsprop(.|\n)*sgd"):
        config.compose([f"{OPTIMIZER}=nadamx"])


def test_override_sets_typed_value():
    cfg = config.apply_overrides(
        config.compose(), ["experiments.wide_deep.train.epochs=3", "tune.n_trials=5"]
    )
    assert cfg.experiments.wide_deep.train.epochs == 3
    assert cfg.tune.n_trials == 5


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("1.0e12", 1e12), ("3E+2", 300.0), ("0.5", 0.5)])
def test_float_overrides_in_exponent_notation_are_numbers(text, value):
    """PyYAML alone reads 1e-4 as a string (YAML 1.1): a learning rate typed that way must work."""
    key = "experiments.wide_deep.train.optimizer.learning_rate"
    cfg = config.apply_overrides(config.compose(), [f"{key}={text}"])
    assert OmegaConf.select(cfg, key) == value


def test_exponent_notation_is_still_no_int():
    with pytest.raises(ConfigError, match=r"epochs=1000.0 has the wrong type: .*epochs is an int"):
        config.apply_overrides(config.compose(), ["experiments.wide_deep.train.epochs=1e3"])


def test_override_with_wrong_type_names_the_value():
    with pytest.raises(ConfigError, match=r"epochs='ten'.*int"):
        config.apply_overrides(config.compose(), ["experiments.wide_deep.train.epochs=ten"])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"valid keys under experiments.wide_deep.train: .*epochs"):
        config.apply_overrides(config.compose(), ["experiments.wide_deep.train.epoch=3"])


def test_unknown_experiment_lists_choices(tmp_path):
    params = tmp_path / "params.yaml"
    config.write_params(config.compose(), params)
    with pytest.raises(ConfigError, match="valid choices: .*wide_deep"):
        config.load(["experiment=nope"], params_file=params)


@pytest.mark.parametrize("stage", ["prepare", "train", "evaluate", "tune"])
def test_stage_rejects_unknown_experiment_without_writing(stage, tmp_path):
    result = run_module(f"pipeline.{stage}", "experiment=nope", cwd=tmp_path)
    assert result.returncode == 2
    assert re.search(r"Unknown experiment 'nope'; valid choices: .*wide_deep", result.stderr)
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_stage_rejects_wrong_typed_override(tmp_path):
    result = run_module(
        "pipeline.train", "experiment=wide_deep", "experiments.wide_deep.train.epochs=ten", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "epochs='ten'" in result.stderr and "int" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_config_cli_check(tmp_path):
    result = run_module("pipeline.config", "--check")
    assert result.returncode == 0, result.stderr
    assert OmegaConf.load(config.PARAMS_FILE).experiment == "wide_deep"
