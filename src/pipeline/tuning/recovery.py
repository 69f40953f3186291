"""Crash recovery: trials and MLflow runs left RUNNING by a worker that was killed.

A worker that dies (SIGKILL, OOM, power loss) cannot mark its own trial. The journal storage
has no heartbeat in Optuna 5 (only RDBStorage has), so every trial records which process runs
it (host, pid and the process's start time, against pid reuse) and the next invocation on the
same host fails the RUNNING trials whose process is gone, with a ``fail_reason``, queues each
once more (``retry``), and ends the dead process's MLflow runs as KILLED. Workers on other
machines share an RDB storage, whose heartbeat does the same.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

#: a RUNNING trial with no recorded worker (killed between its creation and its first line)
#: is only declared stale after this long, so a trial that is just starting is never touched
UNCLAIMED_SECONDS = 300
MAX_RETRIES = 1


def process_token(pid: int) -> str:
    """Boot id + start time of ``pid`` (Linux /proc), "" elsewhere: a reused pid differs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return ""


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": process_token(os.getpid())}


def process_tags() -> dict[str, str]:
    """The same identity as MLflow tags, so runs of a dead process can be closed."""
    return {f"pipeline.{key}": str(value) for key, value in this_process().items()}


def process_gone(host: str, pid: int, token: str = "") -> bool:
    """True when ``pid`` on this host has exited (or is a zombie, or is another process now).
    A process on another host is never declared gone: we cannot see it."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True
    except (OSError, IndexError):
        pass
    return bool(token) and process_token(int(pid)) != token


def retry(study, trial) -> None:
    """Queue a failed trial's parameters again (at most MAX_RETRIES times), as Optuna's
    RetryHeartbeatStaleTrialCallback does but without copying its attributes (a retried trial
    must not inherit the ``fail_reason``). Also the RDB heartbeat's stale-trial callback."""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        return
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={"retry_of": trial.number},
            system_attrs={"failed_trial": history[0], "retry_history": history},
        )
    )


def recover_stale_trials(study, *, mine: bool = False) -> list[tuple[int, str]]:
    """Fail (with a reason) and retry the RUNNING trials whose worker process is gone, and
    with ``mine`` those of this process (called once its optimize loop has ended, e.g. by a
    Ctrl-C between a trial's end and its state being stored); [(trial number, reason)]."""
    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage  # Optuna has no public call to fail another process's trial
    me = this_process()
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker and mine and worker == me:
            reason = "the tune process stopped (interrupted) while the trial ran"
        elif worker:
            if not process_gone(worker["host"], worker["pid"], worker.get("token", "")):
                continue
            reason = (
                f"worker process {worker['pid']} on {worker['host']} is gone (killed or "
                "crashed) while the trial ran"
            )
        else:
            age = (datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0
            if is_heartbeat_enabled(storage) or age < UNCLAIMED_SECONDS:
                continue
            reason = f"no worker claimed the trial for {age:.0f}s (its process died at start)"
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another invocation recovered it first
        retry(study, storage.get_trial(trial._trial_id))
        recovered.append((trial.number, reason))
    return recovered


def close_orphan_runs(experiment_id: str) -> list[str]:
    """End as KILLED the RUNNING tune runs (parents and trials) whose process on this host is
    gone; a trial's run also gets ``optuna.state=FAILED`` and a ``fail_reason`` tag."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    closed = []
    runs = client.search_runs(
        [experiment_id], "attributes.status = 'RUNNING' and tags.`pipeline.stage` = 'tune'"
    )
    for run in runs:
        tags = run.data.tags
        if "pipeline.pid" not in tags or not process_gone(
            tags.get("pipeline.host", ""), int(tags["pipeline.pid"]), tags.get("pipeline.token", "")
        ):
            continue
        if "optuna.trial" in tags:
            client.set_tag(run.info.run_id, "optuna.state", "FAILED")
            client.set_tag(
                run.info.run_id,
                "fail_reason",
                f"process {tags['pipeline.pid']} on {tags['pipeline.host']} is gone",
            )
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed
