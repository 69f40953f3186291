"""The pipeline against real servers: Optuna workers sharing a PostgreSQL study, and the train
stage logging to an MLflow tracking server over HTTP. Both servers are started by fixtures (the
PostgreSQL one in conftest.py), on a free loopback port in a throw-away folder, and stopped (and
removed) even when a test fails.

Without the PostgreSQL server binaries (Debian: ``apt-get install postgresql``) the Postgres
test skips locally; under ``CI=true`` it fails, as the real-data tests do without a mirror.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import (
    ROOT,
    dashboard,
    dashboard_command,
    free_port,
    run_module,
    stop_process_group,
    wait_until_answering,
)

pytestmark = pytest.mark.slow

EPOCHS = "experiments.wide_deep.train.epochs=2"  # shrunk: these tests are about the plumbing
TUNED = "search"  # the variant the tune stage trains (its own epochs)
VARIANTS = {"single_input", "two_inputs", "two_outputs"}


# --- PostgreSQL (the server: conftest.Postgres) ----------------------------------------------


def _open_storage(url: str, start_at: float) -> str:
    import psycopg  # noqa: F401  (imported by the first connection otherwise, at uneven times)

    from pipeline.tuning.study import make_storage

    time.sleep(max(0.0, start_at - time.time()))  # imports done: all workers go at once
    make_storage(url, Path(".")).engine.dispose()
    return "ok"


def test_workers_creating_optuna_tables_together_on_an_empty_database(postgres):
    """Optuna creates its schema on first use; workers doing that at the same moment collide
    (PostgreSQL: duplicate key on pg_type, or relation exists). Each must still open the storage."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    url = postgres.createdb("race")
    start_at = time.time() + 20
    # spawn, not fork: earlier tests loaded TensorFlow in this process, and a forked copy of its
    # runtime can crash when the child garbage-collects (seen: a segfault in a CI run)
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert list(pool.map(_open_storage, [url] * 4, [start_at] * 4)) == ["ok"] * 4


def test_two_workers_share_one_postgres_study(prepared, postgres, tmp_path, tracking_store):
    import optuna

    url = postgres.createdb("optuna")  # empty: the two workers create the schema and the study
    per_worker = (2, 1)  # unequal, so a lost or doubled worker shows in the total
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_TRACKING_URI": tracking_store}
    # MLflow creates its SQLite schema on first use; do it once here, not in two racing workers
    mlflow.set_tracking_uri(tracking_store)
    MlflowClient().search_experiments()
    workers, logs = [], []
    for index, n_trials in enumerate(per_worker):
        log = (tmp_path / f"worker{index}.log").open("w+")
        logs.append(log)
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.tune",
                    "experiment=wide_deep",
                    f"tune.storage={url}",
                    f"tune.n_trials={n_trials}",
                    "tune.study_name=shared",
                    f"tune.dir={tmp_path / 'studies'}",
                    f"mlflow.artifact_root={tmp_path / 'artifacts'}",
                    "tune.register=false",
                    f"experiments.wide_deep.variants.{TUNED}.train.epochs=1",
                ],
                cwd=prepared,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        codes = [worker.wait(timeout=900) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    assert codes == [0, 0], "\n\n".join(outputs)

    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials(deepcopy=False)
    total = sum(per_worker)
    assert sorted(t.number for t in trials) == list(range(total)), "a trial was lost or doubled"
    assert all(t.state.is_finished() for t in trials), [t.state.name for t in trials]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({t._trial_id for t in trials}) == total
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("wide_deep").experiment_id])
    trial_runs = [r for r in runs if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs) == list(range(total))
    parents = [r for r in runs if "optuna.trial" not in r.data.tags]  # one per worker invocation
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == {r.info.run_id for r in parents}


def test_a_study_behind_a_password_keeps_it_out_of_every_output(postgres, tmp_path, tracking_store):
    """tune on a PostgreSQL study whose login needs its password (tiny made-up data, one trial):
    the password is in no output, no MLflow param or tag, and no file the run wrote."""
    from test_tune_at_scale import PIN_VARIANT, write_tiny_housing

    password = "Tr0ub4dor-and-3"
    postgres.add_login("guarded", password)
    postgres.run(
        "createdb",
        "-h",
        "127.0.0.1",
        "-p",
        str(postgres.port),
        "-U",
        postgres.USER,
        "-O",
        "guarded",
        "guarded_study",
    )
    write_tiny_housing(tmp_path)
    result = run_module(
        "pipeline.tune",
        "experiment=wide_deep",
        PIN_VARIANT,
        "tune.n_trials=1",
        f"tune.storage=postgresql://guarded:{password}@127.0.0.1:{postgres.port}/guarded_study",
        "experiments.wide_deep.train.epochs=1",
        "tune.pruner=none",
        "tune.register=false",
        f"tune.dir={tmp_path / 'studies'}",
        f"mlflow.artifact_root={tmp_path / 'artifacts'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert password not in result.stdout + result.stderr
    mlflow.set_tracking_uri(tracking_store)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("wide_deep").experiment_id])
    assert len(runs) == 2  # the search and its trial
    for run in runs:
        assert not [k for k, v in {**run.data.params, **run.data.tags}.items() if password in v]
    (parent,) = [r for r in runs if "optuna.trial" not in r.data.tags]
    assert parent.data.params["tune.storage"] == (
        f"postgresql://guarded:***@127.0.0.1:{postgres.port}/guarded_study"
    )
    written = [p for p in tmp_path.rglob("*") if p.is_file()]  # mlflow.db, artifacts, studies/
    assert written and not [p for p in written if password.encode() in p.read_bytes()]


# --- MLflow tracking server ------------------------------------------------------------------


@contextlib.contextmanager
def mlflow_server_on(backend_uri: str, folder: Path):
    """``mlflow server`` on ``backend_uri``, serving artifacts from ``folder``, on a free
    loopback port; its URL."""
    port = free_port()
    log_path = folder / "mlflow-server.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            str(folder / "server-artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(server, f"{url}/health", log_path)
        yield url
    finally:
        stop_process_group(server)
        log.close()


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a SQLite backend."""
    with mlflow_server_on(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as url:
        yield url


def test_train_logs_to_an_mlflow_server(prepared, mlflow_server, tmp_path):
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    result = run_module("pipeline.train", "experiment=wide_deep", EPOCHS, cwd=prepared, env=env)
    assert result.returncode == 0, result.stderr

    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient()  # REST: nothing is read from the server's files directly
    experiment = client.get_experiment_by_name("wide_deep")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # served by the server
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["pipeline.stage"] == "train"
    # logged by the parent before its workers start (the workaround in train.main)
    (dataset,) = client.get_run(parents[0].info.run_id).inputs.dataset_inputs
    assert dataset.dataset.name == "california_housing"
    children = {r.data.tags["pipeline.variant"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == VARIANTS
    for run in children.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert {"epochs", "train_seconds"} <= set(run.data.metrics)
        assert run.data.metrics["epochs"] == 2
        assert len(client.get_metric_history(run.info.run_id, "validation_loss")) == 2  # per epoch
        assert run.data.params["train.epochs"] == "2"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "learning_curves.png" in artifacts
        (logged,) = client.search_logged_models(
            experiment_ids=[experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert logged.artifact_location.startswith("mlflow-artifacts:")
    # the logged model comes back through the server and predicts
    model = mlflow.pyfunc.load_model(f"runs:/{children['single_input'].info.run_id}/model")
    assert model.metadata.signature is not None
    # and nothing went to the project's local store
    assert not (prepared / "mlruns").exists()


def test_a_team_server_on_postgresql(prepared, postgres, tmp_path):
    """The team's set-up: one `mlflow server` on PostgreSQL serving the artifacts; train,
    evaluate and a two-worker tune of wide & deep log to it at once; the runs, the logged models
    with their metrics and the champion come back over REST, and the champion predicts."""
    import pandas as pd

    with mlflow_server_on(postgres.createdb("mlflow"), tmp_path) as url:
        env = {"MLFLOW_TRACKING_URI": url}
        for stage in ("pipeline.train", "pipeline.evaluate"):
            result = run_module(stage, "experiment=wide_deep", EPOCHS, cwd=prepared, env=env)
            assert result.returncode == 0, result.stderr
        result = run_module(
            "pipeline.tune",
            "experiment=wide_deep",
            "tune.n_trials=2",
            "tune.n_workers=2",
            f"tune.dir={tmp_path / 'studies'}",
            f"experiments.wide_deep.variants.{TUNED}.train.epochs=1",
            cwd=prepared,
            env=env,
        )
        assert result.returncode == 0, result.stderr

        mlflow.set_tracking_uri(url)
        client = MlflowClient()
        experiment = client.get_experiment_by_name("wide_deep")
        runs = client.search_runs([experiment.experiment_id])
        trials = [r for r in runs if "optuna.trial" in r.data.tags]
        assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1]  # none lost
        assert all(r.info.status == "FINISHED" for r in runs)
        variant_runs = [
            r
            for r in runs
            if r.data.tags.get("pipeline.stage") == "train" and "pipeline.variant" in r.data.tags
        ]
        logged = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert {m.source_run_id for m in logged} >= {r.info.run_id for r in variant_runs}
        assert all(m.artifact_location.startswith("mlflow-artifacts:") for m in logged)
        with_metrics = [m for m in logged if {"test_rmse", "val_rmse"} <= {x.key for x in m.metrics}]
        assert len(with_metrics) >= len(VARIANTS)
        versions = client.search_model_versions("name='wide_deep'")
        assert len(versions) == 2  # evaluate's best variant, then the tuned model
        champion = client.get_model_version_by_alias("wide_deep", "champion")
        assert champion.tags["selection.metric"] == "val_rmse"
        model = mlflow.pyfunc.load_model("models:/wide_deep@champion")
        # floats: MLflow refuses int64 columns for a double column in-process (not over REST)
        house = pd.DataFrame(
            [
                {
                    "MedInc": 8.33,
                    "HouseAge": 41.0,
                    "AveRooms": 6.98,
                    "AveBedrms": 1.02,
                    "Population": 322.0,
                    "AveOccup": 2.56,
                    "Latitude": 37.88,
                    "Longitude": -122.23,
                }
            ]
        )
        assert "main" in model.predict(house).columns


def test_optuna_dashboard_shows_a_postgresql_study(postgres, tmp_path):
    """`make dashboard STORAGE=postgresql://...` on a shared study: its trials are served."""
    import optuna

    url = postgres.createdb("dashboard")
    study = optuna.create_study(study_name="wide_deep", storage=url, direction="minimize")
    study.optimize(lambda trial: (trial.suggest_float("x", -1, 1)) ** 2, n_trials=3)
    command = dashboard_command(ROOT, free_port(), experiment="wide_deep", STORAGE=url)
    with dashboard(command, ROOT, tmp_path / "dashboard.log") as served:
        (summary,) = requests_json(f"{served}/api/studies")["study_summaries"]
        assert summary["study_name"] == "wide_deep"
        trials = requests_json(f"{served}/api/studies/{summary['study_id']}")["trials"]
        assert [t["number"] for t in trials] == [0, 1, 2]


def requests_json(url: str):
    import requests

    response = requests.get(url, timeout=30)
    response.raise_for_status()
    return response.json()
