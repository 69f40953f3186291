"""Wide & deep end to end on the real California-housing data (shrunk epochs and trials)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import copy_project, dashboard, dashboard_command, headless_chromium_dom, run_module
from pipeline.tracking import cpu_kind

pytestmark = pytest.mark.slow
VARIANTS = {"single_input", "two_inputs", "two_outputs"}
TARGETS = ("evaluate@wide_deep", "tune@wide_deep")  # the whole wide & deep pipeline, nothing else


def test_prepare_splits_like_the_seed(mirror, tmp_path):
    result = run_module(
        "pipeline.prepare", "experiment=wide_deep", cwd=tmp_path, env={"PIPELINE_DATA_MIRROR": str(mirror)}
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "data/california_housing/info.json").read_text())
    assert info["shapes"]["x_train"] == [11610, 8]
    assert info["shapes"]["x_valid"] == [3870, 8]
    assert info["shapes"]["x_test"] == [5160, 8]
    assert re.fullmatch(r"[0-9a-f]{64}", info["sha256"]["content"])
    assert abs(info["y_train_stats"]["mean"] - 2.07) < 0.05


def shrink(project: Path, epochs: int = 2, n_trials: int = 2) -> None:
    """Fewer epochs and trials, written into conf/ (the source of truth) and params.yaml."""
    experiment = project / "conf/experiments/wide_deep.yaml"
    # every variant's epochs (the seed's 20, the tune stage's variant's own)
    experiment.write_text(re.sub(r"epochs: \d+", f"epochs: {epochs}", experiment.read_text()))
    tune = project / "conf/tune/wide_deep.yaml"
    tune.write_text(re.sub(r"n_trials: \d+", f"n_trials: {n_trials}", tune.read_text()))


BIN = Path(sys.executable).parent  # dvc and the python its stages call: this environment's


def dvc(project: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=project, capture_output=True, text=True, env=env, timeout=1800
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def repro(mirror, tmp_path_factory):
    """A copy of the project, wide & deep shrunk, after one `dvc repro` of its stages."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    shrink(project)
    env = {
        **os.environ,
        "PIPELINE_DATA_MIRROR": str(mirror),
        "PYTHONPATH": str(project / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    assert run_module("pipeline.config", cwd=project, env=env).returncode == 0
    subprocess.run(
        ["git", "commit", "-qam", "shrink"],
        cwd=project,
        check=True,
        env={
            **env,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    first = dvc(project, "repro", *TARGETS, env=env)
    return project, env, first


def test_repro_runs_every_stage_and_writes_metrics(repro):
    project, _, first = repro
    for stage in ("prepare@california_housing", "train@wide_deep", "evaluate@wide_deep", "tune@wide_deep"):
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((project / "metrics/wide_deep.json").read_text())
    assert set(metrics["variants"]) == VARIANTS
    for scores in metrics["variants"].values():
        assert 0 < scores["test_rmse"] < metrics["baseline"]["rmse"]  # beats the null model
    two_outputs = metrics["variants"]["two_outputs"]
    assert two_outputs["note_test_rmse"] == 0.56 and "diff_test_rmse" in two_outputs
    assert "test_rmse_aux" in two_outputs
    headline = json.loads((project / "metrics/headline/wide_deep.json").read_text())
    assert headline["variant"] == metrics["registry"]["variant"]  # the registered one
    assert headline["test_rmse"] == metrics["variants"][headline["variant"]]["test_rmse"]
    assert set(headline) == {"variant", "val_rmse", "test_rmse", "test_rmse_aux"} - (
        set() if "test_rmse_aux" in metrics["variants"][headline["variant"]] else {"test_rmse_aux"}
    )
    best = json.loads((project / "tuning/wide_deep/best_params.json").read_text())
    assert best["n_trials"] == 2 and "test_test_rmse" not in best["best_test"]
    assert "test_rmse" in best["best_test"]
    for variant in VARIANTS:
        assert (project / f"models/wide_deep/{variant}.keras").is_file()
        assert (project / f"plots/wide_deep/history/{variant}.csv").read_text().startswith("epoch,")


def test_second_repro_does_nothing(repro):
    project, env, _ = repro
    again = dvc(project, "repro", *TARGETS, env=env)
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout


def test_metrics_and_plots_show(repro):
    project, env, _ = repro
    shown = dvc(project, "metrics", "show", env=env).stdout
    assert "metrics/wide_deep.json" in shown and "test_rmse" in shown
    dvc(project, "plots", "show", "-o", str(project / "dvc_plots"), env=env)
    assert (project / "dvc_plots/index.html").is_file()


# --- a team: outputs pushed by one clone, pulled by another, nothing retrained ----------------


def git(project: Path, *args: str) -> str:
    who = ["-c", "user.email=test@example.com", "-c", "user.name=test"]
    return subprocess.run(
        ["git", *who, *args], cwd=project, check=True, capture_output=True, text=True
    ).stdout


def pushed(project: Path, env: dict, url: str, **options: str) -> None:
    """Point the clone's `team` remote at ``url`` (the one setting a user changes), push, and
    commit dvc.lock: what the pusher shares."""
    dvc(project, "remote", "modify", "--local", "team", "url", url, env=env)
    for key, value in options.items():
        dvc(project, "remote", "modify", "--local", "team", key, value, env=env)
    dvc(project, "push", env=env)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results", "--allow-empty")


def teammate(project: Path, folder: Path, env: dict, url: str, **options: str):
    """A fresh clone of ``project`` with the same remote, after `make pull`'s command."""
    clone = folder / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    for key, value in {"url": url, **options}.items():
        dvc(clone, "remote", "modify", "--local", "team", key, value, env=env)
    env = {**env, "PYTHONPATH": str(clone / "src")}
    # dvc.lock also records the other experiments of the full `make run`: pull what this made
    pull = subprocess.run(
        [sys.executable, "-m", "pipeline.remote", "pull", *TARGETS, "--with-deps"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return clone, env, pull


def metrics_of(project: Path, env: dict) -> dict:
    """The metrics files there are (dvc.lock also names the full run's other experiments)."""
    shown = json.loads(dvc(project, "metrics", "show", "--json", env=env).stdout)
    return {name: entry["data"] for name, entry in shown[""]["data"].items() if "data" in entry}


def assert_nothing_to_redo(project: Path, clone: Path, clone_env: dict, env: dict) -> None:
    assert "up to date" in dvc(clone, "status", *TARGETS, "--with-deps", env=clone_env).stdout
    assert metrics_of(clone, clone_env) == metrics_of(project, env)
    assert "Running stage" not in dvc(clone, "repro", *TARGETS, env=clone_env).stdout


def test_a_teammate_pulls_the_results_instead_of_retraining(repro, tmp_path):
    project, env, _ = repro
    remote = tmp_path / "remote"
    pushed(project, env, str(remote))
    clone, clone_env, pull = teammate(project, tmp_path, env, str(remote))
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert (clone / "models/wide_deep/two_outputs.keras").is_file()
    assert (clone / "metrics/headline/wide_deep.json").is_file()
    assert_nothing_to_redo(project, clone, clone_env, env)


def locked_md5s(project: Path) -> dict[str, str]:
    """Every output's md5 as dvc.lock records it (a folder's ends in .dir)."""
    import yaml

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def workspace(folder: Path) -> set[str]:
    """The files a user sees (not git's, not DVC's cache, temp files or local config)."""
    internal = (".git/", ".dvc/cache", ".dvc/tmp", ".dvc/config.local")
    return {
        name
        for name in (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if not name.startswith(internal)
    }


def test_a_pull_that_fails_half_way_changes_nothing_and_names_what_is_missing(repro, tmp_path):
    """One object damaged and one gone from the remote: the pull refuses (exit 1), names both
    outputs and checks out nothing, not even the outputs it could have had."""
    project, env, _ = repro
    remote = tmp_path / "remote"
    pushed(project, env, str(remote))
    objects = {path: remote / "files/md5" / md5[:2] / md5[2:] for path, md5 in locked_md5s(project).items()}
    objects["metrics/wide_deep.json"].write_text('{"damaged": true}')
    objects["plots/wide_deep/history"].unlink()  # its .dir listing: the folder cannot be rebuilt
    plain = tmp_path / "plain"
    subprocess.run(["git", "clone", "-q", str(project), str(plain)], check=True)
    clone, _, pull = teammate(project, tmp_path, env, str(remote))
    assert pull.returncode == 1, pull.stdout + pull.stderr
    assert "metrics/wide_deep.json" in pull.stderr and "plots/wide_deep/history" in pull.stderr
    assert "Traceback" not in pull.stderr
    assert workspace(clone) == workspace(plain)  # not one output checked out


def test_the_same_through_an_ssh_remote(repro, sshd, tmp_path):
    """A real sshd on loopback (key login, the host key verified from known_hosts)."""
    project, env, _ = repro
    ssh_env = {**env, "HOME": str(sshd.home)}  # asyncssh reads ~/.ssh/known_hosts
    url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{tmp_path / 'remote-over-ssh'}"
    pushed(project, ssh_env, url, keyfile=str(sshd.key))
    assert list((tmp_path / "remote-over-ssh/files/md5").iterdir())  # it went through sshd
    clone, clone_env, pull = teammate(project, tmp_path, ssh_env, url, keyfile=str(sshd.key))
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert_nothing_to_redo(project, clone, clone_env, ssh_env)


def test_queued_experiments_run_and_compare(repro):
    """`dvc exp run --queue -S ...` twice, `dvc queue start`: both run the foreach stages with
    their own value (Hydra composes conf/ with it) and `dvc exp show --json` has their metrics."""
    import time

    project, env, _ = repro
    for epochs in (1, 4):  # not 3: the later param test must train, not restore from the run-cache
        dvc(
            project,
            "exp",
            "run",
            "--queue",
            "-S",
            f"experiments.wide_deep.train.epochs={epochs}",
            "evaluate@wide_deep",
            env=env,
        )
    dvc(project, "queue", "start", "-j", "1", env=env)
    deadline = time.monotonic() + 1800
    while re.search(r"\b(Queued|Running)\b", status := dvc(project, "queue", "status", env=env).stdout):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc(project, "exp", "show", "--json", env=env).stdout)
    runs = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp["revs"]:
                data = revision["data"]
                epochs = data["params"]["params.yaml"]["data"]["experiments"]["wide_deep"]["train"]["epochs"]
                runs[epochs] = data["metrics"]["metrics/headline/wide_deep.json"]["data"]
    assert set(runs) == {1, 4}, shown
    assert runs[1]["val_rmse"] != runs[4]["val_rmse"]  # each ran with its own epochs


def test_exp_show_of_one_experiment_fits_a_terminal(repro):
    """`make exp-show experiment=wide_deep` (the command `make -n` prints), after the queued
    runs: one row each, the epochs that differ, the headline metrics, in 120 columns."""
    project, env, _ = repro
    dry = subprocess.run(
        ["make", "-n", "-s", "exp-show", "experiment=wide_deep"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (command,) = [line for line in dry.splitlines() if line.startswith("python -m pipeline.compare")]
    shown = subprocess.run(
        [sys.executable, *command.split()[1:]],
        cwd=project,
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, *rows = shown.splitlines()
    assert header.split()[:2] == ["experiment", "train.epochs"], shown
    assert {"variant", "val_rmse", "test_rmse"} <= set(header.split()), shown
    assert len(rows) == 4 and {row.split()[1] for row in rows} == {"1", "2", "4"}, (
        shown
    )  # workspace, baseline, 2 runs
    assert "imdb" not in shown and "baseline" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 120, shown


def test_mlflow_has_a_run_per_variant_with_model_and_lineage(repro):
    project, _, _ = repro
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("wide_deep")
    runs = client.search_runs([experiment.experiment_id])
    variant_runs = {
        r.data.tags.get("pipeline.variant"): r
        for r in runs
        if r.data.tags.get("pipeline.stage") == "train" and "pipeline.variant" in r.data.tags
    }
    assert set(variant_runs) == VARIANTS
    info = json.loads((project / "data/california_housing/info.json").read_text())
    for run in variant_runs.values():
        assert run.info.status == "FINISHED"
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", run.data.tags["git_commit"])
        assert run.data.tags["pipeline.cpu"] == cpu_kind()
        assert run.data.tags["dataset.sha256.content"] == info["sha256"]["content"]
        assert "mlflow.parentRunId" in run.data.tags
        assert {"test_rmse", "val_rmse", "train_seconds"} <= set(run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "validation_loss")) == 2  # per epoch
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"learning_curves.png", "test_predictions.png"} <= artifacts
        # the model is an MLflow logged model of the run, with evaluate's metrics on it
        logged = client.search_logged_models(
            experiment_ids=[experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert len(logged) == 1
        assert {"test_rmse", "val_rmse"} <= {m.key for m in logged[0].metrics}
        # the run's dataset input: name, digest, split sizes
        (dataset_input,) = run.inputs.dataset_inputs
        assert dataset_input.dataset.name == "california_housing"
        assert info["sha256"]["content"].startswith(dataset_input.dataset.digest)
        assert {"sha256": info["sha256"]["content"], "rows.train": "11610", "rows.test": "5160"}.items() <= {
            t.key: t.value for t in dataset_input.tags
        }.items()
    model = mlflow.pyfunc.load_model(f"runs:/{variant_runs['two_inputs'].info.run_id}/model")
    example = model.metadata.load_input_example(
        str(
            Path(mlflow.artifacts.download_artifacts(f"runs:/{variant_runs['two_inputs'].info.run_id}/model"))
        )
    )
    assert model.metadata.signature is not None and list(example.columns)[0] == "MedInc"
    prediction = model.predict(example)  # a house's 8 features in, named columns out
    assert list(prediction.columns) == ["main"] and len(prediction) == 5
    # evaluate registered the best variant on validation as the champion
    metrics = json.loads((project / "metrics/wide_deep.json").read_text())
    best = min(VARIANTS, key=lambda v: metrics["variants"][v]["val_rmse"])
    assert metrics["registry"]["variant"] == best
    champion = client.get_model_version_by_alias("wide_deep", "champion")
    assert champion.tags["selection.metric"] == "val_rmse"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", champion.tags["git_commit"])
    trials = [
        r for r in runs if r.data.tags.get("pipeline.stage") == "tune" and "optuna.trial" in r.data.tags
    ]
    assert len(trials) == 2 and all("mlflow.parentRunId" in r.data.tags for r in trials)


def test_changing_one_param_reruns_only_its_dependants(repro):
    project, env, _ = repro
    result = dvc(project, "exp", "run", "-S", "experiments.wide_deep.train.epochs=3", *TARGETS, env=env)
    assert "Running stage 'train@wide_deep'" in result.stdout
    assert "Running stage 'prepare@california_housing'" not in result.stdout
    history = (project / "plots/wide_deep/history/two_inputs.csv").read_text().splitlines()
    assert len(history) == 1 + 3


def test_tune_resumes_the_same_study(mirror, tmp_path, tracking_store):
    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    assert run_module("pipeline.prepare", "experiment=wide_deep", cwd=tmp_path, env=env).returncode == 0
    args = [
        "experiment=wide_deep",
        "tune.n_trials=2",
        "experiments.wide_deep.variants.search.train.epochs=2",  # the tune variant's own
        f"tune.dir={tmp_path / 'studies'}",
    ]
    for _ in range(2):
        result = run_module("pipeline.tune", *args, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    assert "has 2 trials; running 2 more" in result.stderr
    best = json.loads((tmp_path / "studies/wide_deep/best_params.json").read_text())
    assert best["n_trials"] == 4
    mlflow.set_tracking_uri(tracking_store)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("wide_deep").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4
    assert {r.data.tags["optuna.state"] for r in children} <= {"COMPLETE", "PRUNED"}


def test_the_tune_stages_study_in_optuna_dashboard(repro, tmp_path):
    """`make dashboard experiment=wide_deep DIR=tuning` serves the DVC tune stage's journal:
    the study and its trials through the dashboard's JSON API, and the page renders them."""
    import requests

    from test_servers import free_port

    project, env, _ = repro
    command = dashboard_command(project, free_port(), experiment="wide_deep", DIR="tuning")
    assert "127.0.0.1" in command and "tuning/wide_deep/study.journal" in command
    with dashboard(command, project, tmp_path / "dashboard.log") as url:
        (study,) = requests.get(f"{url}/api/studies", timeout=10).json()["study_summaries"]
        assert study["study_name"] == "wide_deep" and study["directions"] == ["minimize"]
        detail = requests.get(f"{url}/api/studies/{study['study_id']}", timeout=30).json()
        assert len(detail["trials"]) == 2
        page = headless_chromium_dom(f"{url}/dashboard/studies/{study['study_id']}", tmp_path / "chromium")
        assert "wide_deep" in page and "History" in page
