"""A pipeline that fails safely: what a stage does when tracking is down, training diverges,
the user presses Ctrl-C, or `dvc repro` is interrupted and run again. Each test asserts the exit
code, the message and what is (not) left on disk. (Config and data errors: test_config.py and
test_data_sources.py; the tune stage's crash safety: test_tune_at_scale.py.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, copy_project, run_module

BIN = Path(sys.executable).parent  # dvc and the python its stages call: this environment's


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("stage", ["train", "evaluate", "tune"])
def test_unreachable_tracking_server_fails_before_any_work_and_writes_nothing(stage, tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    result = run_module(
        f"pipeline.{stage}",
        "experiment=wide_deep",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"The MLflow tracking server {uri} (from MLFLOW_TRACKING_URI) is not reachable" in result.stderr
    assert "unset MLFLOW_TRACKING_URI" in result.stderr and "Traceback" not in result.stderr
    assert tree(tmp_path) == []


# --- on the real data -----------------------------------------------------------------------


@pytest.mark.slow
def test_diverging_training_fails_the_run_and_writes_no_model(prepared, tracking_store):
    result = run_module(
        "pipeline.train",
        "experiment=wide_deep",
        "experiments.wide_deep.train.optimizer.learning_rate=1.0e12",
        f"mlflow.artifact_root={prepared / 'artifacts'}",
        cwd=prepared,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "error: " in result.stderr and "Traceback" not in result.stderr
    assert "nan" in result.stderr.lower() or "diverge" in result.stderr.lower()
    assert not (prepared / "models").exists() or tree(prepared / "models") == []
    assert not (prepared / "plots").exists() or not list((prepared / "plots").rglob("*.csv"))
    client = MlflowClient(tracking_store)
    runs = client.search_runs([client.get_experiment_by_name("wide_deep").experiment_id])
    statuses = {run.info.run_name: run.info.status for run in runs}
    assert statuses["single_input"] == "FAILED" and statuses["train"] == "FAILED", statuses


def start(command: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    """Started in its own session, so that a Ctrl-C can go to its whole process group."""
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def ctrl_c_when(process: subprocess.Popen, log: Path, marker: str, then_wait: float = 3.0) -> int:
    """Once ``marker`` shows in the log (and ``then_wait`` seconds more), SIGINT the process group
    as a terminal's Ctrl-C does; the exit code."""
    deadline = time.monotonic() + 900
    while marker not in log.read_text():
        assert process.poll() is None, f"ended before {marker!r}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {marker!r} in 900 s"
        time.sleep(0.5)
    time.sleep(then_wait)
    os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=600)


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_no_half_written_model_or_metrics(prepared, tracking_store):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = prepared / "train.log"
    process = start(
        [
            sys.executable,
            "-m",
            "pipeline.train",
            "experiment=wide_deep",
            "experiments.wide_deep.train.epochs=500",
            f"mlflow.artifact_root={prepared / 'artifacts'}",
        ],
        prepared,
        env,
        log,
    )
    code = ctrl_c_when(process, log, "train wide_deep [2/3]")  # the first variant is done
    assert code == 130, log.read_text()[-3000:]
    assert "interrupted" in log.read_text()
    # the model folder is written whole at the end or not at all: the finished first variant is
    # not left behind as if the stage had succeeded, and no temporary file survives
    assert not (prepared / "models").exists() or tree(prepared / "models") == []
    assert not [p for p in tree(prepared / "plots") if "/." in f"/{p}"]  # no temporary files
    client = MlflowClient(tracking_store)
    runs = client.search_runs([client.get_experiment_by_name("wide_deep").experiment_id])
    assert {r.info.run_name: r.info.status for r in runs}["train"] in ("KILLED", "FAILED")


@pytest.mark.slow
def test_repro_after_an_interrupted_repro_finishes_without_redoing_finished_stages(mirror, tmp_path):
    project = copy_project(tmp_path / "project")
    env = {
        **os.environ,
        "PIPELINE_DATA_MIRROR": str(mirror),
        "PYTHONPATH": str(project / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    dvc = [str(BIN / "dvc"), "repro", "evaluate@wide_deep"]
    log = tmp_path / "first.log"
    code = ctrl_c_when(start(dvc, project, env, log), log, "train wide_deep [1/3]")
    assert code != 0, log.read_text()[-3000:]
    first = log.read_text()
    assert "Running stage 'prepare@california_housing'" in first
    assert not (project / "metrics/wide_deep.json").exists()

    second = subprocess.run(dvc, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Running stage 'prepare@california_housing'" not in second.stdout  # kept from the first
    assert "Running stage 'train@wide_deep'" in second.stdout
    assert "Running stage 'evaluate@wide_deep'" in second.stdout
    assert (project / "metrics/wide_deep.json").is_file()
    status = subprocess.run(
        [str(BIN / "dvc"), "status", "evaluate@wide_deep"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "up to date" in status.stdout or status.stdout.strip() in ("", "{}"), status.stdout
