"""Atomic writes, search spaces and tune settings."""

import optuna
import pytest
from omegaconf import OmegaConf

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.evaluate import compare_with_note
from pipeline.io import atomic_dir, atomic_path, write_json, read_json
from pipeline.tune import search_space, settings_of, suggest


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_the_old_output_on_failure(tmp_path):
    target = tmp_path / "models"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise KeyboardInterrupt
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def test_json_roundtrip(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1.5})
    assert read_json(tmp_path / "m.json") == {"a": 1.5}


def test_note_comparison():
    assert compare_with_note({"test_rmse": 0.57}, {"test_rmse": 0.56, "test_loss": 0.3}) == {
        "note_test_rmse": 0.56,
        "diff_test_rmse": 0.01,
        "note_test_loss": 0.3,
    }


def wide_deep():
    return config.experiment_config(config.compose(), "wide_deep")


def test_search_space_is_flattened_to_config_paths():
    space = search_space(OmegaConf.to_container(wide_deep().tune.space))
    assert "model.units" in space and "train.optimizer.learning_rate" in space
    assert space["train.batch_size"]["type"] == "categorical"


def test_suggest_writes_trial_values_into_a_copy():
    cfg = wide_deep()
    trial = optuna.trial.FixedTrial(
        {"model.units": 64, "model.depth": 3, "train.optimizer.learning_rate": 0.002, "train.batch_size": 64}
    )
    tuned = suggest(trial, cfg)
    assert (tuned.model.units, tuned.model.depth, tuned.train.batch_size) == (64, 3, 64)
    assert tuned.train.optimizer.learning_rate == 0.002
    assert cfg.model.units == 30  # the original is untouched


def test_space_key_that_is_not_in_the_config_fails():
    cfg = wide_deep()
    cfg.tune.space = {"model": {"unitz": {"type": "int", "low": 1, "high": 2}}}
    with pytest.raises(ConfigError, match="model.unitz"):
        suggest(optuna.trial.FixedTrial({"model.unitz": 1}), cfg)


def test_cli_settings_override_experiment_defaults():
    cfg = config.apply_overrides(config.compose(), ["tune.n_trials=3", "tune.pruner=hyperband"])
    settings = settings_of(cfg)
    assert settings["n_trials"] == 3 and settings["pruner"] == "hyperband"
    assert settings_of(config.compose())["n_trials"] == wide_deep().tune.n_trials


def test_unknown_pruner_lists_choices():
    cfg = config.apply_overrides(config.compose(), ["tune.pruner=random"])
    with pytest.raises(ConfigError, match="median, successive_halving, hyperband, none"):
        settings_of(cfg)


def test_the_default_sampler_models_the_space_after_a_quarter_of_the_budget():
    """Budgets of 3-12 trials: Optuna's TPESampler() would sample all of them at random."""
    from pipeline.tuning.study import make_sampler

    settings = settings_of(config.compose())
    assert settings["sampler"] == "tpe_budget"
    sampler = make_sampler(settings["sampler"], 0, 12, parallel=False)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == 3 and sampler._multivariate  # no public getter
    assert make_sampler("tpe_budget", 0, 3, parallel=False)._n_startup_trials == 1
    assert make_sampler("tpe", 0, 12, parallel=False)._n_startup_trials == 10  # Optuna's default
    assert isinstance(make_sampler("random", 0, 12, parallel=False), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("qmc", 0, 12, parallel=False), optuna.samplers.QMCSampler)
    with pytest.raises(ConfigError, match="tpe_budget, tpe, random, qmc"):
        make_sampler("grid", 0, 12, parallel=False)


def test_tune_sampler_picks_the_sampler_of_the_study():
    from pipeline.tuning import study

    cfg = config.apply_overrides(config.compose(), ["tune.sampler=random"])
    opened = study.open_study(settings_of(cfg), optuna.storages.InMemoryStorage(), pruner=None, seed=0)
    assert isinstance(opened.sampler, optuna.samplers.RandomSampler)
    with pytest.raises(ConfigError, match="Unknown sampler 'grid'"):
        settings_of(config.apply_overrides(config.compose(), ["tune.sampler=grid"]))


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """mkstemp's temporary file is owner-only; the output it becomes must not be."""
    import os

    from pipeline.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
