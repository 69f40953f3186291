"""The study: tune settings, its storage, and opening it with the objectives it was made for.

Storage is a journal file per study by default (``<dir>/<experiment>/study.journal``): an
append-only log written under a file lock, so several worker processes on one machine share
it safely. An RDB URL (``postgresql://...``) serves workers on several machines; there Optuna's
heartbeat fails the trials of a worker that stopped answering, and ``recovery.retry`` queues
them again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from pipeline import layout
from pipeline.config import experiment_config
from pipeline.errors import ConfigError, StorageError

PRUNERS = ("median", "successive_halving", "hyperband", "none")
DIRECTIONS = ("minimize", "maximize")
#: what a trial measures on its model besides the experiment's metrics (lower is better)
COSTS = ("n_params", "latency_ms")
#: RDB storage only: a running trial's worker writes a heartbeat this often (seconds) ...
HEARTBEAT_SECONDS = 30
#: ... and a trial without one for this long is failed (and retried) by the next trial to start
GRACE_SECONDS = 120


def settings_of(cfg: DictConfig) -> dict[str, Any]:
    """The experiment's tune defaults, overridden by the non-null top-level ``tune.*`` keys;
    ``objectives``/``directions`` are always lists (one entry for a single-objective study)."""
    exp_tune = experiment_config(cfg).tune
    merged = {
        key: exp_tune.get(key) for key in ("n_trials", "pruner", "sampler", "direction", "metric", "variant")
    }
    merged.update({key: _plain(value) for key, value in cfg.tune.items() if value is not None})
    merged.setdefault("timeout", None)
    merged.setdefault("storage", None)
    merged.setdefault("n_workers", None)  # one per core
    merged.setdefault("register", True)
    merged["study_name"] = merged.get("study_name") or cfg.experiment
    merged["sampler"] = merged.get("sampler") or SAMPLERS[0]
    if merged["pruner"] not in PRUNERS:
        raise ConfigError(f"Unknown pruner {merged['pruner']!r}; valid choices: {', '.join(PRUNERS)}.")
    if merged["sampler"] not in SAMPLERS:
        raise ConfigError(f"Unknown sampler {merged['sampler']!r}; valid choices: {', '.join(SAMPLERS)}.")
    for key in ("n_trials", "n_workers"):
        if key == "n_workers" and merged[key] is None:
            continue
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise ConfigError(f"tune.{key} must be a positive integer, got {merged[key]!r}.")
    if merged["timeout"] is not None and not (
        isinstance(merged["timeout"], (int, float)) and merged["timeout"] > 0
    ):
        raise ConfigError(f"tune.timeout must be a positive number of seconds, got {merged['timeout']!r}.")
    merged.update(_objectives(merged))
    return merged


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def _objectives(merged: dict[str, Any]) -> dict[str, Any]:
    objectives = merged.get("objectives") or [merged["metric"]]
    if isinstance(objectives, str):
        objectives = [objectives]
    directions = merged.get("directions")
    if isinstance(directions, str):
        directions = [directions]
    if not directions:
        # a cost (size, latency) is minimized; any other metric goes the experiment's way
        directions = ["minimize" if name in COSTS else merged["direction"] for name in objectives]
    if len(directions) != len(objectives):
        raise ConfigError(f"tune.directions {directions} must have one entry per objective {objectives}.")
    if any(d not in DIRECTIONS for d in directions):
        raise ConfigError(f"tune.directions {directions}: each must be one of {', '.join(DIRECTIONS)}.")
    if len(set(objectives)) != len(objectives):
        raise ConfigError(f"tune.objectives {objectives} names a metric twice.")
    return {
        "objectives": list(objectives),
        "directions": list(directions),
        "metric": objectives[0],
        "direction": directions[0],
    }


@contextlib.contextmanager
def quiet_experimental():
    """Heartbeats, constant liar and metric names are 'experimental' in Optuna 5; we rely on
    them knowingly, so their warnings are noise."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def quiet_optuna() -> None:
    """Optuna logs each trial, and a failed one with its traceback; the progress bar and its
    one line per failed trial (with the reason) replace that."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def make_pruner(name: str, max_epochs: int):
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=2, max_resource=max_epochs),
        "none": lambda: optuna.pruners.NopPruner(),
    }[name]()


def is_rdb(storage: str | None) -> bool:
    return bool(storage) and "://" in storage


def journal_path(storage: str | None, study_dir: Path) -> Path:
    return Path(storage) if storage else study_dir / layout.JOURNAL


def make_storage(storage: str | None, study_dir: Path):
    """An RDB URL (with heartbeats); otherwise a journal file, safe for local worker processes."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from pipeline.tuning.recovery import retry

    if is_rdb(storage):
        return _rdb_storage(storage, retry)
    path = journal_path(storage, study_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # its default lock, JournalFileSymlinkLock(path), is the one repair_torn_journal takes
    return JournalStorage(JournalFileBackend(str(path)))


# --- the storage checks, before any work (run by the process that opens the study first) ---


def masked(url: str) -> str:
    """An RDB URL fit to print or log: the password (if any) as ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ValueError, TypeError):  # unparsable (e.g. a port that is not a number)
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def check_storage(storage: str | None, study_dir: Path) -> str | None:
    """The study's storage is usable before anything is written or TensorFlow is loaded (else
    StorageError, one line); a journal's line cut by a crash is moved aside: what was done, to
    print. Never from a worker process: its parent checked, and peers may be appending."""
    if is_rdb(storage):
        check_rdb(storage)
        return None
    path = journal_path(storage, study_dir)
    check_journal(path, "tune.storage=<another file>" if storage else "tune.dir=<another folder>")
    return repair_torn_journal(path)


#: how long the check waits for an RDB server to answer (a firewall that drops packets)
CONNECT_SECONDS = 10
_START = "Start the database server, or fix the host or port"
#: (what the driver's message says, lower case; what went wrong in plain words; the fix)
RDB_FAILURES = (
    (("connection refused",), "connection refused: nothing listens on {where}", _START),
    (("timeout", "timed out"), f"no answer from {{where}} in {CONNECT_SECONDS} s", _START),
    (
        (
            "could not translate host name",
            "name or service not known",
            "nodename nor servname",
            "unknown mysql server host",
        ),
        "unknown host {host}",
        "Fix the host name",
    ),
    (
        ("authentication failed", "access denied", "no password supplied", 'role "'),
        "authentication failed for user {user!r}",
        "Fix the user name or password",
    ),
    (
        ('database "', "unknown database"),
        "database {database!r} does not exist on {where}",
        "Create it (createdb {database}) or fix the database name",
    ),
)


def check_rdb(url: str) -> None:
    """Connect once: a server that is down, a wrong password or a missing database is one line
    naming the URL (password masked) and the fix, instead of SQLAlchemy's traceback."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    shown = masked(url)
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError, TypeError) as error:
        raise StorageError(
            f"tune.storage={shown} is not a database URL ({error}); write it as "
            "dialect+driver://user:password@host:port/database."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":  # a file: connecting would create it
        folder = Path(parsed.database or ".").parent
        if not folder.is_dir():
            raise StorageError(
                f"The study storage {shown} (tune.storage) cannot be created: the "
                f"folder {folder} does not exist. Create it or fix the path."
            )
        return
    try:
        engine = create_engine(
            parsed,
            connect_args={"connect_timeout": CONNECT_SECONDS} if backend in ("postgresql", "mysql") else {},
        )
    except ImportError as error:
        raise StorageError(
            f"The study storage {shown} (tune.storage) needs the database driver "
            f"{error.name or error}, which is not installed here. Install it, or "
            f"name an installed driver in the URL ({backend}+<driver>://...)."
        ) from None
    except SQLAlchemyError as error:
        raise StorageError(
            f"The study storage {shown} (tune.storage) is not a database "
            f"SQLAlchemy knows ({error}). Fix the URL's dialect+driver:// part."
        ) from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as error:
        what, fix = _rdb_failure(str(getattr(error, "orig", None) or error), parsed)
        raise StorageError(
            f"The study storage {shown} (tune.storage) cannot be used: {what}. "
            f"{fix} in tune.storage, or leave tune.storage unset for a journal "
            "file under tune.dir."
        ) from None
    finally:
        engine.dispose()


def _rdb_failure(text: str, url) -> tuple[str, str]:
    """The driver's message as (what went wrong, the fix); unknown ones as its first line."""
    if url.password:  # drivers do not echo the password, but never trust that
        text = text.replace(str(url.password), "***")
    where = (url.host or "localhost") + (f":{url.port}" if url.port else "")
    for phrases, what, fix in RDB_FAILURES:
        if any(phrase in text.lower() for phrase in phrases):
            names = {"where": where, "host": url.host, "user": url.username, "database": url.database}
            return what.format(**names), fix.format(**names)
    return (text.strip().splitlines() or ["no reason given"])[0], _START


def check_journal(path: Path, elsewhere: str = "tune.dir=<another folder>") -> None:
    """Every complete line is a journal record (a JSON object with op_code and worker_id):
    Optuna replays them all on opening and fails with a decoder traceback on the first that is
    not. An unterminated last line is a crash's torn append, left to repair_torn_journal.
    (A new tune.study_name would not help: its study lives in the same file, read whole.)"""
    if not path.exists():
        return  # a new study
    fixes = (
        f"move it aside to start afresh (mv {shlex.quote(str(path))} "
        f"{shlex.quote(str(path) + '.bad')}), or start a new study elsewhere with {elsewhere}"
    )
    try:
        with path.open("rb") as journal:
            for number, line in enumerate(journal, 1):
                if not line.endswith(b"\n"):
                    return
                problem = _record_problem(line)
                if problem:
                    raise StorageError(
                        f"The study journal {path} cannot be read: line {number} "
                        f"{problem}. To go on, {fixes}."
                    )
    except OSError as error:
        raise StorageError(
            f"The study journal {path} cannot be read: {error.strerror}. Fix its permissions, or {fixes}."
        ) from None


def _record_problem(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return f"is not JSON ({error.msg} at column {error.colno})"
    except ValueError:  # not UTF-8
        return "is not JSON (not UTF-8 text)"
    if not (isinstance(record, dict) and isinstance(record.get("op_code"), int) and "worker_id" in record):
        return "is not an Optuna journal record (a JSON object with op_code and worker_id)"
    return None


def repair_torn_journal(path: Path) -> str | None:
    """Optuna appends whole lines, so a last line without its newline was cut by a crash.
    Optuna 5 opens such a journal, but the next append lands on that line and makes it
    unreadable (the next trial fails: AttributeError '_last_created_trial_id_by_this_process').
    Cut it off, its bytes kept in <journal>.torn, holding Optuna's journal lock so that no live
    writer is mid-append; what was done, or None.

    No upstream issue found for this (searched Dec 2026: 5.0.0's append_logs never checks the
    tail); related: https://github.com/optuna/optuna/pull/6794 (read_logs and an incomplete
    last line), https://github.com/optuna/optuna/issues/5138 (JSONDecodeError, damaged journals).
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.exists() or _ends_whole(path):
        return None  # the common case, without waiting for the lock
    lock = JournalFileSymlinkLock(str(path))  # JournalFileBackend's default lock (make_storage)
    lock.acquire()  # a lock left by a killed writer is broken after Optuna's grace period (30 s)
    try:
        with path.open("r+b") as journal:
            size = journal.seek(0, os.SEEK_END)
            end = _end_of_last_line(journal, size)
            if end == size:
                return None  # a live writer's append, finished meanwhile
            journal.seek(end)
            torn = journal.read()
            aside = path.with_name(path.name + ".torn")
            with aside.open("ab") as out:  # appended: an earlier crash's bytes stay too
                out.write(torn + b"\n")
                out.flush()
                os.fsync(out.fileno())
            journal.truncate(end)
            journal.flush()
            os.fsync(journal.fileno())
    finally:
        lock.release()
    return (
        f"{path} ended in a line cut off by a crash ({len(torn)} bytes); moved it to {aside}, "
        "the study keeps every complete record"
    )


def _ends_whole(path: Path) -> bool:
    """An empty journal, or one whose last byte is a newline."""
    size = path.stat().st_size
    if not size:
        return True
    with path.open("rb") as journal:
        journal.seek(size - 1)
        return journal.read(1) == b"\n"


def _end_of_last_line(journal, size: int, chunk: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if it has none), reading from the end."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        journal.seek(start)
        found = journal.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _rdb_storage(url: str, stale_trial_callback, attempts: int = 5):
    """RDBStorage creates Optuna's tables on first use; workers starting together on an empty
    database race on that (PostgreSQL answers one of them with a duplicate-key or
    already-exists error). The loser retries and finds the tables made."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(1, attempts + 1):
        try:
            with quiet_experimental():
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=stale_trial_callback,
                )
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


#: tune.sampler's choices, the default first. Budgets here are 3-12 trials, and TPESampler()
#: spends its first 10 on random start-up points, so the default models the space after a
#: quarter of the budget (the warm start counts); measured with bench/tune_samplers.py (README)
SAMPLERS = ("tpe_budget", "tpe", "random", "qmc")


def make_sampler(name: str, seed: int, n_trials: int, parallel: bool):
    """One of SAMPLERS, seeded. ``tpe_budget``: multivariate TPE after max(1, n_trials // 4)
    start-up trials; ``tpe``: Optuna's TPESampler() (10 start-up trials); ``random``; ``qmc``:
    scrambled Sobol points. With several workers the constant liar keeps TPE's workers from
    sampling the same point."""
    import optuna

    makers = {
        "tpe_budget": lambda: optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=max(1, n_trials // 4), constant_liar=parallel
        ),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=parallel),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, scramble=True),
    }
    if name not in makers:
        raise ConfigError(f"Unknown sampler {name!r}; valid choices: {', '.join(SAMPLERS)}.")
    with quiet_experimental():  # multivariate TPE, the constant liar and QMC are "experimental"
        return makers[name]()


def open_study(settings: dict[str, Any], storage, *, pruner, seed: int, parallel: bool = False):
    """Create the study or load it; a stored study made for other objectives is an error (its
    values would be compared with ours), not silently mixed."""
    import optuna

    directions = settings["directions"]
    study = optuna.create_study(
        study_name=settings["study_name"],
        storage=storage,
        directions=directions,
        sampler=make_sampler(settings["sampler"], seed, settings["n_trials"], parallel),
        pruner=pruner,
        load_if_exists=True,
    )
    stored = [d.name.lower() for d in study.directions]
    names = study.metric_names
    if stored != directions or (names is not None and names != settings["objectives"]):
        raise ConfigError(
            f"Study {study.study_name!r} optimizes {names or '?'} ({', '.join(stored)}); this run "
            f"asks for {settings['objectives']} ({', '.join(directions)}). Name a new study with "
            f"tune.study_name=<name> (or another tune.dir), or keep the study's objectives."
        )
    if names is None:
        with quiet_experimental():
            study.set_metric_names(settings["objectives"])
    return study


def completed(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts
