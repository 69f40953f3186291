"""The study: tune settings, its storage, and opening it with the objectives it was made for.

Storage is a journal file per study by default (``<dir>/<experiment>/study.journal``): an
append-only log written under a file lock, so several worker processes on one machine share
it safely. An RDB URL (``postgresql://...``) serves workers on several machines; there Optuna's
heartbeat fails the trials of a worker that stopped answering, and ``recovery.retry`` queues
them again.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from pipeline.config import experiment_config
from pipeline.errors import ConfigError

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
    merged = {key: exp_tune.get(key) for key in ("n_trials", "pruner", "direction", "metric", "variant")}
    merged.update({key: _plain(value) for key, value in cfg.tune.items() if value is not None})
    merged.setdefault("timeout", None)
    merged.setdefault("storage", None)
    merged.setdefault("n_workers", 1)
    merged.setdefault("register", True)
    merged["study_name"] = merged.get("study_name") or cfg.experiment
    if merged["pruner"] not in PRUNERS:
        raise ConfigError(f"Unknown pruner {merged['pruner']!r}; valid choices: {', '.join(PRUNERS)}.")
    for key in ("n_trials", "n_workers"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise ConfigError(f"tune.{key} must be a positive integer, got {merged[key]!r}.")
    if merged["timeout"] is not None and not (isinstance(merged["timeout"], (int, float))
                                              and merged["timeout"] > 0):
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
        raise ConfigError(f"tune.directions {directions} must have one entry per objective "
                          f"{objectives}.")
    if any(d not in DIRECTIONS for d in directions):
        raise ConfigError(f"tune.directions {directions}: each must be one of {', '.join(DIRECTIONS)}.")
    if len(set(objectives)) != len(objectives):
        raise ConfigError(f"tune.objectives {objectives} names a metric twice.")
    return {"objectives": list(objectives), "directions": list(directions),
            "metric": objectives[0], "direction": directions[0]}


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


def make_storage(storage: str | None, study_dir: Path):
    """An RDB URL (with heartbeats); otherwise a journal file, safe for local worker processes."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from pipeline.tuning.recovery import retry

    if storage and "://" in storage:
        return _rdb_storage(storage, retry)
    path = Path(storage) if storage else study_dir / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


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
                    url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=stale_trial_callback)
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


def make_sampler(seed: int, parallel: bool):
    """TPE; with several workers the constant liar keeps them from sampling the same point."""
    import optuna

    with quiet_experimental():
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)


def open_study(settings: dict[str, Any], storage, *, pruner, seed: int, parallel: bool = False):
    """Create the study or load it; a stored study made for other objectives is an error (its
    values would be compared with ours), not silently mixed."""
    import optuna

    directions = settings["directions"]
    study = optuna.create_study(
        study_name=settings["study_name"], storage=storage, directions=directions,
        sampler=make_sampler(seed, parallel), pruner=pruner, load_if_exists=True)
    stored = [d.name.lower() for d in study.directions]
    names = study.metric_names
    if stored != directions or (names is not None and names != settings["objectives"]):
        raise ConfigError(
            f"Study {study.study_name!r} optimizes {names or '?'} ({', '.join(stored)}); this run "
            f"asks for {settings['objectives']} ({', '.join(directions)}). Name a new study with "
            f"tune.study_name=<name> (or another tune.dir), or keep the study's objectives.")
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
