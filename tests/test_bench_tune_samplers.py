"""bench/tune_samplers.py: an arm's sampler seed reaches the study the tune stage opens, and
the sampler stays the one tune.sampler names (no training)."""

import importlib.util

import optuna
import pytest

from conftest import ROOT
from pipeline import config
from pipeline.tuning import study


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("tune_samplers", ROOT / "bench" / "tune_samplers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_arm_seeds_the_stage_s_sampler_with_its_own_seed(bench, monkeypatch):
    made = []
    stage_sampler = study.make_sampler

    def recording(name, seed, n_trials, parallel):
        made.append((name, seed, n_trials))
        return stage_sampler(name, seed, n_trials, parallel)

    def open_like_the_stage(args):
        cfg = config.apply_overrides(config.compose(), args)
        return study.open_study(
            study.settings_of(cfg), optuna.storages.InMemoryStorage(), pruner=None, seed=0
        )

    monkeypatch.setattr(study, "make_sampler", recording)
    tune = importlib.import_module("pipeline.tune")
    opened = []
    monkeypatch.setattr(tune, "main", lambda args: opened.append(open_like_the_stage(args)) or 0)
    assert bench.run_arm_here(7, ["tune.sampler=random", "tune.n_trials=4"]) == 0
    assert made == [("random", 7, 4)]
    assert isinstance(opened[0].sampler, optuna.samplers.RandomSampler)
