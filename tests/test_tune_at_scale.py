"""Tuning at scale (issue #6): worker processes sharing one study, crash safety (SIGKILL,
Ctrl-C), failed trials with reasons, study plots, the registered champion, several objectives.

Most tests run on a tiny made-up California-housing-shaped dataset (a few hundred rows written
into a temporary folder), with a throw-away MLflow store; the last one runs on the real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from conftest import ROOT, run_module
from pipeline import config
from pipeline.errors import ConfigError
from pipeline.experiments.wide_deep import FEATURES
from pipeline import pool
from pipeline.tuning import batches, recovery, study as study_mod

TIMEOUT = 900  # seconds; the machine is shared, a tiny trial can take a while under load
# the machinery is tested on the seed's small two-output model (inputs wide + deep, the base
# epochs), not on the tune stage's own variant (its own epochs, latitude/longitude inputs)
PIN_VARIANT = "experiments.wide_deep.tune.variant=two_outputs"


# --- helpers ---------------------------------------------------------------------------------


def write_tiny_housing(folder: Path, rows: int = 256) -> None:
    """data/california_housing/{arrays.npz,info.json} with the real layout, made-up values."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", rows), ("valid", rows // 2), ("test", rows // 2)):
        x = rng.normal(size=(n, 8))
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = 2 + 0.5 * x[:, 0] + x[:, 3] - 0.2 * x[:, 6] + rng.normal(0, 0.1, n)
    target = folder / "data/california_housing"
    target.mkdir(parents=True)
    np.savez(target / "arrays.npz", **arrays)
    (target / "info.json").write_text(json.dumps({"sha256": {"content": "0" * 64}}))


@pytest.fixture
def tiny(tmp_path, tracking_store, monkeypatch):
    """A working folder with the tiny dataset; args for a short wide & deep search in it."""
    write_tiny_housing(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [
        "experiment=wide_deep",
        "experiments.wide_deep.train.epochs=2",
        "tune.pruner=none",
        f"tune.dir={tmp_path / 'studies'}",
        f"mlflow.artifact_root={tmp_path / 'artifacts'}",
        PIN_VARIANT,
    ]
    return tmp_path, args


def journal_study(folder: Path, name: str = "wide_deep"):
    storage = JournalStorage(JournalFileBackend(str(folder / "studies" / name / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def start_tune(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.tune", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_mid_trial(folder: Path, process: subprocess.Popen, min_complete: int = 1):
    """Poll the study until ``min_complete`` trials are done and another one is running;
    return that running trial."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            trials = journal_study(folder).get_trials(deepcopy=False)
        except (KeyError, FileNotFoundError):  # the study is not created yet
            trials = []
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        # training, not just starting: its run is open and its parameters are drawn (a trial
        # killed between the two has no parameters for its retry to repeat)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs and t.params
        ]
        if len(complete) >= min_complete and running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial was running in time")


def runs_of(uri: str, experiment: str = "wide_deep"):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


# --- settings, splitting, recovery: no training -------------------------------------------------


def test_a_batch_is_one_trial_per_core_unless_trials_would_see_each_other(monkeypatch):
    """A median pruner reads only complete trials (none of a batch's peers); successive halving
    and hyperband read the running ones too, whose timing would change their decisions; and
    transfer's trials reuse the model_A their process trained."""
    from pipeline.experiments import get_experiment

    monkeypatch.setattr(pool, "cores", lambda: 2)
    wide_deep, transfer = get_experiment("wide_deep"), get_experiment("transfer")
    assert batches.batch_size({"pruner": "median"}, wide_deep) == 2
    assert batches.batch_size({"pruner": "none"}, wide_deep) == 2
    assert batches.batch_size({"pruner": "successive_halving"}, wide_deep) == 1
    assert batches.batch_size({"pruner": "hyperband"}, wide_deep) == 1
    assert batches.batch_size({"pruner": "none"}, transfer) == 1


def test_objectives_and_directions_settings():
    base = config.compose()
    single = study_mod.settings_of(base)
    assert single["objectives"] == ["val_rmse"] and single["directions"] == ["minimize"]
    assert single["n_workers"] is None and single["register"] is True
    multi = study_mod.settings_of(config.apply_overrides(base, ["tune.objectives=[val_rmse,n_params]"]))
    assert multi["objectives"] == ["val_rmse", "n_params"] and multi["metric"] == "val_rmse"
    assert multi["directions"] == ["minimize", "minimize"]
    for bad in (
        ["tune.objectives=[val_rmse,n_params]", "tune.directions=[minimize]"],
        ["tune.directions=[upwards]"],
        ["tune.n_workers=0"],
    ):
        with pytest.raises(ConfigError):
            study_mod.settings_of(config.apply_overrides(base, bad))


def test_every_experiment_has_a_valid_space_and_variant():
    """`python -m pipeline.tune experiment=<any>`: every experiment's tune section composes into
    settings, and a sampled trial config is a valid config of that experiment."""
    from pipeline.experiments import get_experiment
    from pipeline.tune import suggest

    base = config.compose()
    for name in base.experiments:
        cfg = config.apply_overrides(base, [f"experiment={name}"])
        settings = study_mod.settings_of(cfg)
        exp_cfg = config.experiment_config(cfg)
        get_experiment(name).variant_config(exp_cfg, settings["variant"])
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        assert suggest(trial, exp_cfg) is not None, name


def test_a_stored_study_refuses_other_objectives(tmp_path):
    storage = study_mod.make_storage(None, tmp_path)
    settings = study_mod.settings_of(config.compose())
    study_mod.open_study(settings, storage, pruner=None, seed=0)
    settings = {**settings, "objectives": ["val_rmse", "n_params"], "directions": ["minimize", "minimize"]}
    with pytest.raises(ConfigError, match="tune.study_name"):
        study_mod.open_study(settings, storage, pruner=None, seed=0)


def test_recovery_fails_a_dead_workers_trial_and_queues_it_again(tmp_path):
    study = optuna.create_study(study_name="s", storage=study_mod.make_storage(None, tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = study.ask()
    orphan.suggest_float("x", 0, 1)
    orphan.set_user_attr("worker", {"host": recovery.this_process()["host"], "pid": dead.pid, "token": ""})
    alive = study.ask()
    alive.set_user_attr("worker", recovery.this_process())
    assert [n for n, _ in recovery.recover_stale_trials(study)] == [orphan.number]
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert "is gone" in trials[orphan.number].user_attrs["fail_reason"]
    assert trials[alive.number].state == TrialState.RUNNING  # a live worker's trial is left be
    retried = trials[-1]
    assert retried.state == TrialState.WAITING and retried.params == trials[orphan.number].params
    assert retried.user_attrs == {"retry_of": orphan.number}
    assert recovery.recover_stale_trials(study) == []  # idempotent


def test_process_identity_detects_exit_and_pid_reuse():
    me = recovery.this_process()
    assert not recovery.process_gone(**me)
    assert recovery.process_gone(me["host"], me["pid"], "another-boot:1")  # token mismatch
    assert not recovery.process_gone("some-other-host", 1, "")  # cannot tell: never gone


def cut_last_line(journal: Path, short_by: int) -> bytes:
    """What a crash mid-append leaves: the journal's last line ``short_by`` bytes short, no
    newline. Returns the bytes of the line that are left (the torn part)."""
    whole = journal.read_bytes()
    start = whole.rfind(b"\n", 0, len(whole) - 1) + 1
    assert len(whole) - start > short_by + 1, "the last line is too short to cut"
    journal.write_bytes(whole[:-short_by])
    return whole[start:-short_by]


def test_a_journal_cut_by_a_crash_is_repaired_and_the_study_goes_on(tmp_path):
    """Optuna 5 opens a journal whose last line was cut mid-way, but its next trial fails (the
    append lands on the torn line). check_storage cuts that line off, keeps its bytes in
    study.journal.torn, and the study goes on with every complete trial."""

    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study(study_name="s", storage=study_mod.make_storage(None, tmp_path))
    study.optimize(objective, n_trials=3)
    journal = tmp_path / "study.journal"
    torn = cut_last_line(journal, 25)  # trial 2's last record, its state COMPLETE
    kept = journal.read_bytes()[: -len(torn)]

    # as Optuna leaves it (a copy): it opens, but the next trial fails. If this stops failing,
    # Optuna copes with a torn line itself and repair_torn_journal can go.
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy/study.journal").write_bytes(journal.read_bytes())
    unrepaired = optuna.load_study(study_name="s", storage=study_mod.make_storage(None, tmp_path / "copy"))
    with pytest.raises(AttributeError, match="_last_created_trial_id_by_this_process"):
        unrepaired.optimize(objective, n_trials=1)

    message = study_mod.check_storage(None, tmp_path)
    assert message == (
        f"{journal} ended in a line cut off by a crash ({len(torn)} bytes); moved "
        f"it to {journal}.torn, the study keeps every complete record"
    )
    assert journal.read_bytes() == kept and (tmp_path / "study.journal.torn").read_bytes() == torn + b"\n"
    assert not (tmp_path / "study.journal.lock").exists()  # Optuna's lock, taken and released
    assert study_mod.check_storage(None, tmp_path) is None  # nothing more to do
    resumed = optuna.load_study(study_name="s", storage=study_mod.make_storage(None, tmp_path))
    assert [t.state for t in resumed.trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
    resumed.optimize(objective, n_trials=1)
    assert [t.state for t in resumed.trials][3:] == [TrialState.COMPLETE]


# --- searches on tiny data ----------------------------------------------------------------------


def test_failed_trials_keep_their_reason_and_the_study_goes_on(tiny, tracking_store):
    """A diverging trial (NaN loss) and a trial whose builder raises are FAILED with a reason
    (user attr + MLflow tag); the others complete; the parent run gets the study's plots (the
    importances need two complete trials and are skipped with one)."""
    from pipeline import tune

    folder, args = tiny
    space = (
        "experiments.wide_deep.tune.space={model: {activation: {type: categorical, "
        "choices: [relu, bogus]}}, train: {optimizer: {learning_rate: {type: categorical, "
        "choices: [0.003, 1.0e+12]}}}}"
    )
    storage = study_mod.make_storage(None, folder / "studies/wide_deep")
    study = optuna.create_study(study_name="wide_deep", storage=storage)
    for activation, rate in (("relu", 1e12), ("bogus", 0.003), ("relu", 0.003)):
        study.enqueue_trial({"model.activation": activation, "train.optimizer.learning_rate": rate})
    assert tune.main([*args, space, "tune.n_trials=3", "tune.register=false"]) == 0
    trials = journal_study(folder).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "TrainingDiverged" in trials[0].user_attrs["fail_reason"]
    assert "bogus" in trials[1].user_attrs["fail_reason"]
    best = json.loads((folder / "studies/wide_deep/best_params.json").read_text())
    assert best["best_trial"] == 2 and best["states"] == {"FAIL": 2, "COMPLETE": 1}
    assert set(best["fail_reasons"]) == {"0", "1"}
    client, parents, children = runs_of(tracking_store)
    by_trial = {r.data.tags["optuna.trial"]: r for r in children}
    assert by_trial["0"].info.status == "FAILED" and by_trial["0"].data.tags["optuna.state"] == "FAILED"
    assert "TrainingDiverged" in by_trial["0"].data.tags["fail_reason"]
    assert by_trial["2"].data.tags["optuna.state"] == "COMPLETE"
    assert len(by_trial["2"].data.metrics) and "n_params" in by_trial["2"].data.metrics
    (parent,) = parents
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/optimization_history.png", "plots/parallel_coordinate.png"}


def test_several_objectives_pareto_front_and_champion(tiny, tracking_store):
    """val_rmse vs model size: the Pareto front is plotted and listed in best_params.json; the
    trial with the best val_rmse is registered as wide_deep@champion (its own model, not
    retrained), which loads through mlflow.pyfunc and predicts."""
    from pipeline import tune

    folder, args = tiny
    assert tune.main([*args, "tune.n_trials=3", "tune.objectives=[val_rmse,n_params]"]) == 0
    study = journal_study(folder)
    assert len(study.directions) == 2 and study.metric_names == ["val_rmse", "n_params"]
    best = json.loads((folder / "studies/wide_deep/best_params.json").read_text())
    front = {t.number for t in study.best_trials}
    assert {p["trial"] for p in best["pareto_front"]} == front
    assert all(set(p["values"]) == {"val_rmse", "n_params"} for p in best["pareto_front"])
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert best["best_trial"] == min(done, key=lambda t: t.values[0]).number
    client, parents, _ = runs_of(tracking_store)
    (parent,) = parents
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "plots/pareto_front.png",
        "plots/optimization_history.png",
        "plots/param_importances.png",
        "plots/parallel_coordinate.png",
    } <= plots

    version = client.get_model_version_by_alias("wide_deep", "champion")
    assert version.run_id == parent.info.run_id and version.tags["optuna.trial"] == str(best["best_trial"])
    assert parent.data.tags["champion.retrained"] == "false"  # the trial's own model, its own score
    assert parent.data.metrics["champion_val_rmse"] == best["best_value"]
    assert Path(mlflow.artifacts.download_artifacts(version.source), "MLmodel").is_file()
    model = mlflow.pyfunc.load_model("models:/wide_deep@champion")
    x = np.load(folder / "data/california_housing/arrays.npz")["x_test"][:4]
    houses = pd.DataFrame(
        x,
        columns=list(FEATURES),
    )
    prediction = model.predict(houses)  # raw rows in, named columns out
    assert list(prediction.columns) == ["main", "aux"] and len(prediction) == 4
    assert np.isclose(parent.data.metrics["champion_val_rmse"], best["best_value"], rtol=1e-4)


def test_one_worker_and_two_give_the_same_study_trial_by_trial(tiny, tracking_store):
    """Batches of two trials side by side, told in trial order: the sampler and the median
    pruner see the same finished trials with 1 worker or 2, so every trial draws the same
    parameters and ends in the same state with the same value; the champion is the best
    trial's own model (never trained again)."""
    folder, args = tiny
    args = [*args, "experiments.wide_deep.train.epochs=6", "tune.pruner=median", "tune.n_trials=5"]
    studies = {}
    for n_workers in (2, 1):
        result = run_module(
            "pipeline.tune",
            *args,
            f"tune.n_workers={n_workers}",
            f"tune.dir={folder / f'studies-{n_workers}'}",
            cwd=folder,
            timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "5/5" in result.stderr and "2 at a time" in result.stderr
        storage = JournalStorage(
            JournalFileBackend(str(folder / f"studies-{n_workers}/wide_deep/study.journal"))
        )
        studies[n_workers] = optuna.load_study(study_name="wide_deep", storage=storage).trials
    two, one = studies[2], studies[1]
    assert len(two) == len(one) == 5
    assert [(t.params, t.state, t.values) for t in two] == [(t.params, t.state, t.values) for t in one]
    assert [t.intermediate_values for t in two] == [t.intermediate_values for t in one]
    assert len({t.user_attrs["worker"]["pid"] for t in two}) == 3  # 2 workers; the 5th here
    assert len({t.params["model.units"] for t in two}) == 5
    client, parents, children = runs_of(tracking_store)
    assert len(parents) == 2 and len(children) == 10
    for parent in parents:
        assert {r.data.tags["mlflow.parentRunId"] for r in children} >= {parent.info.run_id}
        assert parent.data.tags["champion.retrained"] == "false"
        best = min((t for t in two if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
        assert parent.data.metrics["champion_val_rmse"] == pytest.approx(best.values[0], rel=1e-6)


def test_sigkilled_worker_leaves_finished_trials_and_the_next_run_resumes(tiny, tracking_store):
    """SIGKILL a worker mid-trial: the batch ends, the parent fails its trials (reason: worker
    gone), queues them again, keeps the finished ones and exits 1; the next invocation retries."""
    folder, args = tiny
    long_args = [*args, "experiments.wide_deep.train.epochs=20", "tune.register=false"]
    process = start_tune(folder, *long_args, "tune.n_trials=4")
    victim = wait_until_mid_trial(folder, process)
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, stderr[-3000:]
    assert "died while running trial #" in stderr and f"trial #{victim.number} failed" in stderr
    finished = {t.number: t.state for t in journal_study(folder).trials if t.state.is_finished()}
    assert finished[victim.number] == TrialState.FAIL
    assert TrialState.COMPLETE in finished.values()

    result = run_module("pipeline.tune", *long_args, "tune.n_trials=2", cwd=folder, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = journal_study(folder).trials
    for number, state in finished.items():  # nothing finished was lost or changed
        assert trials[number].state == state
    assert "is gone" in trials[victim.number].user_attrs["fail_reason"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[victim.number].params
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    client, parents, children = runs_of(tracking_store)
    stale_run = client.get_run(trials[victim.number].user_attrs["mlflow_run_id"])
    assert stale_run.info.status == "KILLED" and stale_run.data.tags["optuna.state"] == "FAILED"
    assert all(r.info.status != "RUNNING" for r in parents + children)


def test_a_real_journal_cut_by_a_crash_resumes_with_every_complete_trial(tiny, tracking_store):
    """A short search's journal, its last line cut mid-way and its lock left behind, as a worker
    killed mid-append leaves them: the next tune run (once Optuna's grace period breaks the
    lock) says it moved the torn bytes aside, keeps every complete trial (one whose last record
    was cut is failed as its worker is gone, and retried) and adds its own."""
    folder, args = tiny
    args = [*args, "tune.register=false"]
    first = run_module("pipeline.tune", *args, "tune.n_trials=2", cwd=folder, timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr[-3000:]
    journal = folder / "studies/wide_deep/study.journal"
    torn = cut_last_line(journal, 20)
    kept = {t.number: t for t in journal_study(folder).trials}  # what Optuna reads of it
    lock = journal.with_name("study.journal.lock")
    lock.symlink_to(journal)  # what JournalFileSymlinkLock.acquire made, never released

    second = run_module("pipeline.tune", *args, "tune.n_trials=1", cwd=folder, timeout=TIMEOUT)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert (
        f"tune wide_deep: {journal} ended in a line cut off by a crash ({len(torn)} bytes); "
        f"moved it to {journal}.torn"
    ) in second.stderr
    assert (folder / "studies/wide_deep/study.journal.torn").read_bytes() == torn + b"\n"
    assert not lock.is_symlink()
    trials = journal_study(folder).trials
    complete = [n for n, t in kept.items() if t.state == TrialState.COMPLETE]
    assert complete and all(
        trials[n].state == TrialState.COMPLETE and trials[n].values == kept[n].values for n in complete
    )
    assert len(trials) > len(kept)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == len(complete) + 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_ctrl_c_ends_the_run_killed_keeps_finished_trials_and_exits_130(tiny, tracking_store):
    folder, args = tiny
    process = start_tune(
        folder, *args, "experiments.wide_deep.train.epochs=40", "tune.n_trials=20", "tune.register=false"
    )
    running = wait_until_mid_trial(folder, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr[-3000:]
    trials = journal_study(folder).trials
    assert trials[running.number].state == TrialState.FAIL
    assert trials[running.number].user_attrs["fail_reason"] == "interrupted (Ctrl-C)"
    assert any(t.state == TrialState.COMPLETE for t in trials)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    _, (parent,), children = runs_of(tracking_store)
    assert parent.info.status == "KILLED"
    interrupted = [r for r in children if r.data.tags["optuna.trial"] == str(running.number)]
    assert interrupted[0].info.status == "KILLED"


# --- the real data ------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_data_two_workers_plots_and_champion(mirror, tmp_path, tracking_store):
    """California housing, two workers, two trials of two epochs side by side: exactly two
    trials, the study plots on the parent run, and the champion (the best trial's own model)
    predicts the real test rows through pyfunc."""
    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    assert run_module("pipeline.prepare", "experiment=wide_deep", cwd=tmp_path, env=env).returncode == 0
    result = run_module(
        "pipeline.tune",
        "experiment=wide_deep",
        "tune.n_trials=2",
        "tune.n_workers=2",
        "experiments.wide_deep.train.epochs=2",
        PIN_VARIANT,
        f"tune.dir={tmp_path / 'studies'}",
        f"mlflow.artifact_root={tmp_path / 'artifacts'}",
        cwd=tmp_path,
        env=env,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((tmp_path / "studies/wide_deep/best_params.json").read_text())
    assert best["n_trials"] == 2 and best["champion"]["uri"] == "models:/wide_deep@champion"
    client, (parent,), children = runs_of(tracking_store)
    assert len(children) == 2
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/param_importances.png"} <= plots
    # both trials ran in worker processes: the best one's saved model is the champion
    assert parent.data.tags["champion.retrained"] == "false"
    metric = best["metric"]
    assert parent.data.metrics[f"champion_{metric}"] == pytest.approx(best["best_value"], rel=1e-6)
    x = np.load(tmp_path / "data/california_housing/arrays.npz")["x_test"][:5]
    houses = pd.DataFrame(
        x,
        columns=list(FEATURES),
    )
    main = mlflow.pyfunc.load_model("models:/wide_deep@champion").predict(houses)["main"].to_numpy()
    assert main.shape == (5,) and np.all((main > 0) & (main < 6))  # house values, 100k$
