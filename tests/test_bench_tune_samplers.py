"""bench/tune_samplers.py: its samplers are the ones its docstring names, and the way an arm
replaces the tune stage's sampler still reaches the study the stage opens (no training)."""

import importlib.util

import optuna
import pytest

from conftest import ROOT
from pipeline.tuning import study


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("tune_samplers", ROOT / "bench" / "tune_samplers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_budget_tpe_starts_modelling_after_a_quarter_of_the_budget(bench):
    sampler = bench.make("tpe_budget", seed=0, n_trials=12, parallel=False)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == 3 and sampler._multivariate
    assert bench.make("tpe_budget", seed=0, n_trials=3, parallel=False)._n_startup_trials == 1
    assert bench.make("tpe", seed=0, n_trials=12, parallel=False)._n_startup_trials == 10  # Optuna's default
    assert isinstance(
        bench.make("random", seed=0, n_trials=12, parallel=False), optuna.samplers.RandomSampler
    )
    assert isinstance(bench.make("qmc", seed=0, n_trials=12, parallel=False), optuna.samplers.QMCSampler)
    with pytest.raises(SystemExit, match="unknown sampler"):
        bench.make("grid", seed=0, n_trials=12, parallel=False)


def test_the_stage_opens_its_study_with_the_sampler_an_arm_puts_in_place(bench, monkeypatch):
    chosen = optuna.samplers.RandomSampler(seed=7)
    monkeypatch.setattr(study, "make_sampler", lambda seed, parallel: chosen)
    settings = {"study_name": "s", "directions": ["minimize"], "objectives": ["val_loss"]}
    opened = study.open_study(settings, optuna.storages.InMemoryStorage(), pruner=None, seed=0)
    assert opened.sampler is chosen
