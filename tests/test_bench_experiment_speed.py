"""bench/experiment_speed.py on small made-up data: both arms run the same fit (same epochs,
same result), only the pipeline arm with the config's steps_per_execution, and the report
renders. One epoch each, a few seconds in all."""

import importlib.util
import sys

import numpy as np
import pytest

from conftest import ROOT
from pipeline import config


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("experiment_speed", ROOT / "bench" / "experiment_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def composed():
    return config.compose()


def tabular(n_features: int, rows: int, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(rows, n_features))
    y = x[:, 0] * 0.5 + np.sin(x[:, 1]) + rng.normal(0, 0.1, rows)
    parts = np.array_split(np.arange(rows), len(splits))
    return {f"{k}_{s}": a[idx] for s, idx in zip(splits, parts) for k, a in (("x", x), ("y", y))}


def images(rows: int = 240) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {}
    for split in ("train", "valid", "test"):
        data[f"x_{split}"] = rng.integers(0, 256, size=(rows, 28, 28), dtype=np.uint8)
        data[f"y_{split}"] = np.arange(rows) % 10  # every class, sandal (5) and shirt (6) too
    return data


def check_both_arms(bench, plan, spe_pipeline: int) -> None:
    plain_model, plain_seconds, plain_epochs = plan.plain(3)
    pipeline_model, pipeline_seconds, pipeline_epochs = plan.pipeline(3)
    assert plain_model.steps_per_execution == 1
    assert pipeline_model.steps_per_execution == spe_pipeline
    assert plain_epochs == pipeline_epochs == plan.epochs == 1
    assert plain_seconds > 0 and pipeline_seconds > 0
    # the same seed, batches and model: the same result, whichever way it was fitted
    assert plan.score(plain_model) == pytest.approx(plan.score(pipeline_model), rel=1e-4, abs=1e-4)
    # the floor arm: the plain arm's fresh model, its epochs as one compiled function
    model, train, valid = plan.fresh(3)
    assert bench.floor_fit(model, train, valid, batch_size=plan.batch_size, epochs=2) > 0
    batches = -(-bench.n_rows(train[1]) // plan.batch_size)
    assert int(model.optimizer.iterations) == 1 + 2 * batches  # train_on_batch, then the 2 timed epochs


def test_single_fit_plan_and_report(bench, composed):
    exp_cfg = config.experiment_config(composed, "wide_deep")
    data = tabular(8, 240, ("train", "valid", "test"))
    plan = bench.plan_for("wide_deep", exp_cfg, data, epochs_cap=1)
    assert (plan.variant, plan.epochs, plan.batch_size, plan.n_train) == ("two_outputs", 1, 32, 80)
    assert plan.capped and plan.metric == "rmse"
    check_both_arms(bench, plan, int(exp_cfg.train.steps_per_execution))

    row = bench.measure(plan, [1, 2], log=lambda line: None)
    assert [len(row.runs[arm]) for arm in ("plain", "pipeline")] == [2, 2]
    assert row.ratio > 0
    table = bench.markdown_table([row]).splitlines()
    assert len(table) == 3 and table[2].startswith("| wide_deep | two_outputs | the one fit | 1* |")
    lines = bench.verdict([row])
    assert lines[0].startswith("median ratio") and lines[1].startswith("below 1.0:")
    assert "--only wide_deep" in bench.command_line(["--only", "wide_deep"])


def test_floor_arm_adds_the_ceiling(bench, composed):
    exp_cfg = config.experiment_config(composed, "wide_deep")
    plan = bench.plan_for("wide_deep", exp_cfg, tabular(8, 240, ("train", "valid", "test")), epochs_cap=1)
    row = bench.measure(plan, [1], log=lambda line: None, floor=True)
    assert len(row.floor) == 1 and row.ceiling > 0
    header, _, line = bench.markdown_table([row]).splitlines()
    assert "| floor s | ceiling |" in header and line.count("|") == header.count("|")
    assert any(text.startswith("median ceiling") for text in bench.verdict([row]))


def test_crossval_plan_times_one_fold(bench, composed):
    exp_cfg = config.experiment_config(composed, "boston")
    data = tabular(13, 60, ("train", "test"))  # 30 training houses: fold 3 fits 23, scores 7
    plan = bench.plan_for("boston", exp_cfg, data, epochs_cap=1)
    assert plan.variant == "faithful" and plan.what == "fold 3 of 4"
    assert plan.n_train == 23 and plan.batch_size == 1 and plan.metric == "mae"
    check_both_arms(bench, plan, int(exp_cfg.train.steps_per_execution))


@pytest.mark.parametrize("name, what", [("ensemble", "member 1 of 5"), ("transfer", "model_A")])
def test_multi_fit_families_time_their_main_fit(bench, composed, name, what):
    exp_cfg = config.experiment_config(composed, name)
    plan = bench.plan_for(name, exp_cfg, images(), epochs_cap=1)
    assert plan.what == what
    assert plan.n_train == (240 if name == "ensemble" else 192)  # transfer: task A's 8 classes
    check_both_arms(bench, plan, int(exp_cfg.train.steps_per_execution))
