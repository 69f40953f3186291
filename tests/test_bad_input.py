"""Bad values anywhere in the config stop a stage before any work: exit 2, a few lines naming
the key, the value and the rule, no traceback, nothing written (each stage as a user runs it).
So does a service the run needs that cannot be used (a study storage: exit 1, as for an MLflow
server that does not answer, tested in test_robustness.py), with no password printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pathlib import Path

from conftest import ROOT, free_port, run_module

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
    (
        "train",
        [f"{E}.wide_deep.train.epoch=3"],
        ["Unknown config key", "Did you mean", "experiments.wide_deep.train.epochs"],
    ),
    ("train", [f"{E}.wide_deep.variants.search.train.early_stopping.patience=-1"], ["patience=-1"]),
    (
        "train",
        [f"{E}.wide_deep.variants.search.train.reduce_lr_on_plateau.factor=1.5"],
        ["factor=1.5", "(0, 1)"],
    ),
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
    ("evaluate", [f"+{E}.wide_deep.bar.test_rmse_maximum=0.5"], ["test_rmse_maximum: not a rule", "_max"]),
    (
        "evaluate",
        ["experiment=residual", f"+{E}.residual.bar.val_accuracy_above={{resnet: plain}}"],
        ["'resnet' is neither a variant nor a group", "plain, residual"],
    ),
    ("prepare", ["datasets.california_housing.split.test_size=1.5"], ["test_size=1.5", "fraction"]),
    ("prepare", ["datasets.california_housing.split.valid_size=0"], ["valid_size=0"]),
    ("tune", ["tune.n_trials=0"], ["tune.n_trials=0", ">= 1"]),
    ("tune", ["tune.n_workers=-1"], ["tune.n_workers=-1"]),
    ("tune", ["tune.timeout=-10"], ["tune.timeout=-10", "> 0"]),
    ("tune", ["tune.pruner=sometimes"], ["tune.pruner='sometimes'", "median", "hyperband"]),
    ("tune", ["tune.sampler=grid"], ["tune.sampler='grid'", "tpe_budget", "random", "qmc"]),
    ("tune", [f"{E}.wide_deep.tune.direction=up"], ["direction='up'", "minimize"]),
    ("tune", [f"{E}.wide_deep.tune.space.model.units.low=300"], ["space.model.units", "below high=256"]),
    (
        "tune",
        [f"{E}.wide_deep.tune.space.train.optimizer.learning_rate.low=-1"],
        ["learning_rate", "log scale needs low > 0"],
    ),
    (
        "tune",
        [f"{E}.wide_deep.tune.space.train.batch_size.choices=[]"],
        ["batch_size.choices", "at least one"],
    ),
    ("tune", [f"{E}.wide_deep.tune.space.model.depth.type=integer"], ["depth.type='integer'", "categorical"]),
]


PASSWORD = "Tr0ub4dor-and-3"  # in each storage URL below; printed nowhere
JOURNAL = "studies/wide_deep/study.journal"
RECORD = b'{"op_code":0,"worker_id":"w-1","study_name":"wide_deep","directions":[1]}\n'
SERVICES = [
    # (stage, arguments, exit code, phrases, files written first); in the arguments {free_port} is
    # a loopback port nobody listens on, {postgres} a running server (login "guarded" has
    # another password than PASSWORD)
    (
        "tune",
        [f"tune.storage=postgresql://pipeline:{PASSWORD}@127.0.0.1:{{free_port}}/optuna"],
        1,
        [
            "study storage postgresql://pipeline:***@127.0.0.1:",
            "connection refused",
            "Start the database server",
        ],
        {},
    ),
    (
        "tune",
        [f"tune.storage=postgresql://guarded:{PASSWORD}@{{postgres}}/postgres"],
        1,
        [
            "postgresql://guarded:***@127.0.0.1:",
            "authentication failed for user 'guarded'",
            "Fix the user name or password",
        ],
        {},
    ),
    (
        "tune",
        [f"tune.storage=postgresql://pipeline:{PASSWORD}@{{postgres}}/no_such_db"],
        1,
        ["database 'no_such_db' does not exist", "createdb no_such_db"],
        {},
    ),
    (
        "tune",
        [f"tune.storage=mysql://optuna:{PASSWORD}@127.0.0.1/optuna"],
        1,
        ["mysql://optuna:***@127.0.0.1/optuna", "driver MySQLdb", "not installed"],
        {},
    ),
    # a torn append glued onto by the next one: the line is no longer the last
    (
        "tune",
        ["tune.dir=studies"],
        1,
        [
            f"The study journal {JOURNAL} cannot be read: line 2 is not JSON",
            f"mv {JOURNAL} {JOURNAL}.bad",
            "tune.dir=<another folder>",
        ],
        {JOURNAL: RECORD + b'{"op_code":4,"worker_id":"w{"op_code":6,"worker_id":"w-2"}\n' + RECORD},
    ),
    (
        "tune",
        ["tune.dir=studies"],
        1,
        ["line 1 is not an Optuna journal record"],
        {JOURNAL: b'{"hello": "world"}\n' + RECORD},
    ),
    # a power cut's zeroed block, in a journal named by tune.storage
    (
        "tune",
        ["tune.storage=old.journal"],
        1,
        ["old.journal cannot be read: line 2 is not JSON", "tune.storage=<another file>"],
        {"old.journal": RECORD + b"\x00" * 9 + b"\n"},
    ),
]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def assert_stopped_before_any_work(result, code: int, phrases: list[str], before: dict, folder: Path) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 10
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert snapshot(folder) == before  # nothing written: no data/, models/, mlruns/, studies/ ...


@pytest.mark.parametrize(
    "stage,args,phrases", CASES, ids=[f"{stage}:{' '.join(args)}" for stage, args, _ in CASES]
)
def test_bad_value_stops_before_any_work(stage, args, phrases, tmp_path, tracking_store):
    before = snapshot(tmp_path)
    result = run_module(f"pipeline.{stage}", *args, cwd=tmp_path, timeout=120)
    assert_stopped_before_any_work(result, 2, phrases, before, tmp_path)


@pytest.mark.parametrize(
    "stage,args,code,phrases,files",
    SERVICES,
    ids=[f"{stage}:{' '.join(args)}" for stage, args, *_ in SERVICES],
)
def test_a_service_that_cannot_be_used_stops_before_any_work(
    stage, args, code, phrases, files, tmp_path, tracking_store, request
):
    places = {"free_port": free_port()}
    if any("{postgres}" in arg for arg in args):
        server = request.getfixturevalue("postgres")
        server.add_login("guarded", "the-right-one")
        places["postgres"] = f"127.0.0.1:{server.port}"
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path)
    result = run_module(
        f"pipeline.{stage}",
        "experiment=wide_deep",
        *[arg.format(**places) for arg in args],
        cwd=tmp_path,
        timeout=120,
    )
    assert_stopped_before_any_work(result, code, phrases, before, tmp_path)
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    assert PASSWORD not in result.stdout + result.stderr


def test_a_storage_password_is_masked_in_the_mlflow_params():
    from pipeline.tune import loggable

    # percent-encoded, as a password with an @ must be in a URL
    assert loggable({"storage": "postgresql://u:p%40ss@db:5432/optuna", "n_trials": 3}) == {
        "storage": "postgresql://u:***@db:5432/optuna",
        "n_trials": 3,
    }
    assert loggable({"storage": "postgresql://u:pw@db:port/optuna"})["storage"] == (
        "postgresql://u:***@db:port/optuna"
    )  # unparsable, masked all the same
    assert loggable({"storage": None}) == {"storage": None}


@pytest.mark.parametrize(
    "stage,args,code",
    [
        ("train", ["experiments.wide_deep.train.batch_size=0"], 2),
        ("tune", [f"tune.storage=postgresql://pipeline:{PASSWORD}@127.0.0.1:{{free_port}}/optuna"], 1),
    ],
)
def test_a_bad_value_is_refused_before_tensorflow_is_imported(stage, args, code, tmp_path):
    args = [arg.format(free_port=free_port()) for arg in args]
    code_line = (
        f"import sys; from pipeline import cli, {stage}; "
        f"code = cli.run_stage({stage}.main, {args!r}); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code_line],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.stdout.split() == [str(code), "False"], result.stderr


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
