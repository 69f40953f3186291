"""Running the trials: in this process (one worker) or in K worker processes on one study.

Each worker is ``python -m pipeline.tune <same arguments> --worker=<parent run>,<trials>,<seed>``:
it opens the same study and runs its share of the N trials. Splitting N up front (rather than
every worker stopping when the study reaches N) is what makes the total exact: a stop check
after each trial races with the other workers' next trials. The parent only watches: it draws
the progress bar from the study, forwards Ctrl-C, and reports workers that died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline import cli

#: how long workers get to finish their interrupted trial after Ctrl-C before a SIGKILL
STOP_SECONDS = 30
POLL_SECONDS = 1.0


def shares(n_trials: int, n_workers: int) -> list[int]:
    """N trials over K workers as evenly as possible (no worker gets zero)."""
    workers = min(n_trials, n_workers)
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


class Progress:
    """tqdm bar over this invocation's finished trials (read from the study, so it works the
    same for trials run here and in worker processes); one line per failed trial."""

    def __init__(self, study, settings: dict, tune_run: str, total: int) -> None:
        from tqdm import tqdm

        self.study, self.settings, self.tune_run = study, settings, tune_run
        self.seen: set[int] = set()
        self.bar = tqdm(
            total=total,
            desc=f"tune {settings['study_name']}",
            unit="trial",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def __call__(self, study=None, trial=None) -> None:  # also an Optuna callback
        self.refresh()

    def refresh(self) -> None:
        trials = [
            t
            for t in self.study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.user_attrs.get("tune_run") == self.tune_run
        ]
        new = [t for t in trials if t.number not in self.seen]
        for trial in new:
            self.seen.add(trial.number)
            if trial.state.name == "FAIL":
                self.bar.write(
                    f"trial #{trial.number} failed: {trial.user_attrs.get('fail_reason', 'unknown reason')}"
                )
        if new:
            self.bar.set_postfix_str(self.best(), refresh=False)
            self.bar.update(len(new))

    def best(self) -> str:
        from pipeline.tuning.study import completed

        done = completed(self.study)
        if not done:
            return "best -"
        if len(self.settings["objectives"]) > 1:
            return f"Pareto front {len(self.study.best_trials)} trials"
        best = self.study.best_trial
        return f"best {self.settings['metric']} {best.value:.4f} (#{best.number})"

    def close(self) -> None:
        self.refresh()
        self.bar.close()


def run_here(study, objective, settings: dict, progress: Progress) -> None:
    optimize(study, objective, settings["n_trials"], settings["timeout"], callbacks=[progress])


def optimize(study, objective, n_trials: int, timeout: float | None, callbacks=()) -> None:
    """``study.optimize`` where Ctrl-C ends the running trial at the end of a batch (it fails
    as interrupted) or, between two trials, stops before the next one."""
    from pipeline import interrupts
    from pipeline.tuning.objective import TrialFailed

    with interrupts.deferred():
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=(TrialFailed,),
            callbacks=[*callbacks, lambda study, trial: interrupts.check()],
        )


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    log: IO[bytes] = field(repr=False)

    def tail(self, lines: int = 15) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])


def spawn(args: list[str], parent_run_id: str, seed: int, settings: dict) -> list[Worker]:
    """Start the worker processes, each in its own session: the parent alone receives a
    terminal's Ctrl-C and forwards it once (no double interrupt mid-cleanup)."""
    import mlflow

    import pipeline

    src = str(Path(pipeline.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
    }  # exactly the parent's store
    if settings.get("storage"):
        env[STORAGE_ENV] = settings["storage"]  # a URL's password stays out of `ps`
    args = [a for a in args if not is_storage_override(a)]
    workers = []
    for index, share in enumerate(shares(settings["n_trials"], settings["n_workers"])):
        log = tempfile.TemporaryFile()
        command = [
            sys.executable,
            "-m",
            "pipeline.tune",
            *args,
            f"--worker={parent_run_id},{share},{seed + index}",
        ]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
        )
        workers.append(Worker(index, process, log))
    return workers


def supervise(workers: list[Worker], progress: Progress) -> list[Worker]:
    """Wait for the workers, drawing progress; on Ctrl-C stop them and re-raise. Returns the
    workers that exited with an error."""
    try:
        while any(w.process.poll() is None for w in workers):
            progress.refresh()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        stop(workers)
        raise
    failed = [w for w in workers if w.process.returncode != 0]
    for worker in failed:
        code = worker.process.returncode
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        cli.progress(f"worker {worker.index} (pid {worker.process.pid}) ended with {how}:\n{worker.tail()}")
    return failed


def stop(workers: list[Worker]) -> None:
    """SIGINT (each worker fails its running trial as interrupted), then SIGKILL stragglers;
    the recovery fails what a SIGKILL leaves behind."""
    alive = [w.process for w in workers if w.process.poll() is None]
    for process in alive:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    try:
        for process in alive:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # slow, or a second Ctrl-C
        pass
    for process in alive:
        if process.poll() is None:
            process.kill()
            process.wait()


#: how a parent hands its study storage URL to its workers: the environment, not the command
#: line, where every user of the machine could read a database password with `ps`
STORAGE_ENV = "PIPELINE_TUNE_STORAGE"


def is_storage_override(arg: str) -> bool:
    return arg.lstrip("+~").split("=", 1)[0] == "tune.storage"


def worker_storage(settings: dict) -> dict:
    """A worker's settings with the storage its parent passed in the environment."""
    storage = os.environ.get(STORAGE_ENV)
    return {**settings, "storage": storage} if storage else settings


def parse_worker_option(value: str) -> tuple[str, int, int]:
    """``--worker=<parent run id>,<n trials>,<seed>`` -> (parent run id, n trials, seed)."""
    try:
        parent_run_id, n_trials, seed = value.split(",")
        return parent_run_id, int(n_trials), int(seed)
    except ValueError:
        from pipeline.errors import ConfigError

        raise ConfigError(
            f"--worker={value}: expected <parent run id>,<n trials>,<seed> "
            "(set by the parent tune process, not by hand)"
        ) from None
