"""Bad values anywhere in the config stop a stage before any work: exit 2, a few lines naming
the key, the value and the rule, no traceback, nothing written (each stage as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_module

E = "experiments"
CASES = [
    # (stage, arguments, phrases the message must contain)
    ("train", [f"{E}.wide_deep.train.batch_size=0"], ["train.batch_size=0", "whole number >= 1"]),
    ("train", [f"{E}.wide_deep.train.epochs=-1"], ["train.epochs=-1", ">= 1"]),
    ("train", [f"{E}.wide_deep.train.epochs=ten"], ["epochs", "wrong type", "an int"]),
    ("train", [f"{E}.wide_deep.train.optimizer.learning_rate=-5"], ["learning_rate=-5", "> 0"]),
    ("train", [f"{E}.wide_deep.train.optimizer.learning_rate=0"], ["learning_rate=0", "> 0"]),
    ("train", [f"{E}.wide_deep.train.steps_per_execution=0"], ["steps_per_execution=0"]),
    ("train", [f"{E}.wide_deep.model.units=0"], ["model.units=0", ">= 1"]),
    ("train", [f"{E}.wide_deep.model.depth=0"], ["model.depth=0", ">= 1"]),
    ("train", [f"{E}.wide_deep.model.cross_bins=1"], ["cross_bins=1", "0 (none) or"]),
    ("train", [f"{E}.wide_deep.model.soft_clip=-3"], ["soft_clip=-3", "> 0 (or null)"]),
    ("train", [f"{E}.wide_deep.train.epoch=3"], ["Unknown config key", "Did you mean",
                                                   "experiments.wide_deep.train.epochs"]),
    ("train", [f"{E}.wide_deep.variants.search.train.early_stopping.patience=-1"], ["patience=-1"]),
    ("train", [f"{E}.wide_deep.variants.search.train.reduce_lr_on_plateau.factor=1.5"],
     ["factor=1.5", "(0, 1)"]),
    ("train", ["experiment=wide_dep"], ["Unknown experiment 'wide_dep'", "wide_deep"]),
    ("train", [f"{E}.wide_deep.train.epochs=1,2"], ["epochs=1,2' is a sweep", "pipeline.tune"]),
    ("train", [f"{E}.deep_training.model.hidden=[300,"], ["Cannot parse override", "hidden=[300,"]),
    ("train", [f"{E}.fashion_regularization.model.dropout=1.5"], ["dropout=1.5", "[0.0, 1.0)"]),
    ("train", [f"{E}.fashion_regularization.model.dropout=-0.1"], ["dropout=-0.1"]),
    ("train", [f"{E}.fashion_regularization.model.kernel_l2=-0.01"], ["kernel_l2=-0.01", ">= 0"]),
    ("train", [f"{E}.deep_training.train.optimizer.name=adamw"], ["optimizer.name='adamw'", "nadam"]),
    ("train", [f"{E}.deep_training.train.optimizer.momentum=1.2"], ["momentum=1.2"]),
    ("train", [f"{E}.deep_training.model.hidden=[300,0]"], ["hidden=[300, 0]", "list of whole numbers"]),
    ("train", [f"{E}.thoracic.train.cv.splitter.n_splits=1"], ["n_splits=1", ">= 2"]),
    ("train", [f"{E}.imdb.model.max_tokens=1"], ["max_tokens=1"]),
    ("train", [f"{E}.reuters.model.num_words=0"], ["num_words=0"]),
    ("train", [f"{E}.siamese.model.embedding=0"], ["embedding=0"]),
    ("train", [f"{E}.ensemble.model.members=0"], ["members=0"]),
    ("train", [f"{E}.transfer.train.transfer.seeds=0"], ["seeds=0"]),
    ("train", [f"{E}.transfer.train.transfer.frozen_epochs=-2"], ["frozen_epochs=-2", ">= 0"]),
    ("evaluate", [f"{E}.mc_dropout.train.mc.passes=0", "experiment=mc_dropout"], ["passes=0"]),
    ("prepare", ["datasets.california_housing.split.test_size=1.5"], ["test_size=1.5", "fraction"]),
    ("prepare", ["datasets.california_housing.split.valid_size=0"], ["valid_size=0"]),
    ("tune", ["tune.n_trials=0"], ["tune.n_trials=0", ">= 1"]),
    ("tune", ["tune.n_workers=-1"], ["tune.n_workers=-1"]),
    ("tune", ["tune.timeout=-10"], ["tune.timeout=-10", "> 0"]),
    ("tune", ["tune.pruner=sometimes"], ["tune.pruner='sometimes'", "median", "hyperband"]),
    ("tune", [f"{E}.wide_deep.tune.direction=up"], ["direction='up'", "minimize"]),
    ("tune", [f"{E}.wide_deep.tune.space.model.units.low=300"], ["space.model.units", "below high=256"]),
    ("tune", [f"{E}.wide_deep.tune.space.train.optimizer.learning_rate.low=-1"],
     ["learning_rate", "log scale needs low > 0"]),
    ("tune", [f"{E}.wide_deep.tune.space.train.batch_size.choices=[]"], ["batch_size.choices", "at least one"]),
    ("tune", [f"{E}.wide_deep.tune.space.model.depth.type=integer"], ["depth.type='integer'", "categorical"]),
]


@pytest.mark.parametrize("stage,args,phrases", CASES,
                         ids=[f"{stage}:{' '.join(args)}" for stage, args, _ in CASES])
def test_bad_value_stops_before_any_work(stage, args, phrases, tmp_path, tracking_store):
    before = set(tmp_path.iterdir())
    result = run_module(f"pipeline.{stage}", *args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 10
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert set(tmp_path.iterdir()) == before  # nothing written: no data/, models/, mlruns/ ...


def test_a_bad_value_is_refused_before_tensorflow_is_imported(tmp_path):
    code = ("import sys; from pipeline import cli, train; "
            "code = cli.run_stage(train.main, ['experiments.wide_deep.train.batch_size=0']); "
            "print(code, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.stdout.split() == ["2", "False"], result.stderr


def test_the_committed_config_breaks_no_rule(composed):
    from pipeline import schema

    schema.check(composed)


def test_the_schemas_optimizer_names_are_the_factorys():
    from pipeline import schema
    from pipeline.models.factories import OPTIMIZERS

    assert sorted(schema.OPTIMIZER_NAMES) == sorted(OPTIMIZERS)


def test_every_error_is_listed_at_once():
    from pipeline import config
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        config.load([f"{E}.wide_deep.train.batch_size=0", f"{E}.imdb.model.units=0"])
    assert "batch_size=0" in str(error.value) and "imdb.model.units=0" in str(error.value)
