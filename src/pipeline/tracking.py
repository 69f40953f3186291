"""MLflow conventions: one MLflow experiment per source experiment, a parent run per stage
invocation with a child run per variant or trial, and the same tags on every run (git commit,
dataset hashes, stage) so any figure can be traced back to its code and data."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

import mlflow
from mlflow.tracking import MlflowClient

from pipeline.config import PROJECT_ROOT
from pipeline.errors import TrackingError

TRACKING_ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(cfg) -> str:
    """``MLFLOW_TRACKING_URI`` if set (a team server), else the project's local SQLite store."""
    return os.environ.get(TRACKING_ENV) or cfg.mlflow.tracking_uri


def configure(cfg) -> str:
    uri = tracking_uri(cfg)
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path -> relative to the project root, whatever the cwd
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_absolute():
            db = PROJECT_ROOT / db
            uri = f"sqlite:///{db}"
        db.parent.mkdir(parents=True, exist_ok=True)
    elif parsed.scheme in ("http", "https"):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _check_server(uri: str, timeout: float = 5.0) -> None:
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as error:
        raise TrackingError(
            f"The MLflow tracking server {uri} (from {TRACKING_ENV}) is not reachable: {error}. "
            f"Start it, fix the URL, or unset {TRACKING_ENV} to use the local store mlruns/."
        ) from error


def get_experiment_id(cfg, name: str) -> str:
    """The MLflow experiment of a source experiment, created with artifacts under mlruns/."""
    client = MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if urlparse(mlflow.get_tracking_uri()).scheme == "sqlite":
        location = (PROJECT_ROOT / cfg.mlflow.artifact_root / name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel worker
        return client.get_experiment_by_name(name).experiment_id


# Tracked files that `dvc repro` itself rewrites: a change there is a record of the run, not a
# change of the code (without this, every run after a pipeline's first stage was "-dirty").
PIPELINE_RECORDS = ("dvc.lock", "reports")


def git_commit(root: Path | str = PROJECT_ROOT) -> str:
    """HEAD's commit, with "-dirty" when tracked files other than the pipeline's records changed."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        excluded = [f":(exclude){path}" for path in PIPELINE_RECORDS]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *excluded], cwd=root, capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def standard_tags(stage: str, experiment: str, dataset_hashes: Mapping[str, str]) -> dict[str, str]:
    commit = git_commit()  # two git calls: once for both tags
    tags = {"pipeline.stage": stage, "pipeline.experiment": experiment,
            "mlflow.source.git.commit": commit, "git_commit": commit}
    tags.update({f"dataset.sha256.{name}": digest for name, digest in dataset_hashes.items()})
    return tags


@contextlib.contextmanager
def run(name: str, *, experiment_id: str | None = None, tags: Mapping[str, str] | None = None,
        nested: bool = False, run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED on success, FAILED (or KILLED on Ctrl-C) if not."""
    active = mlflow.start_run(run_id=run_id, run_name=None if run_id else name,
                              experiment_id=experiment_id, nested=nested, tags=dict(tags or {}))
    try:
        yield active
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


class MlflowLogger:
    """The experiments' RunLogger: metrics to the active run, ``child`` opens a nested run."""

    def __init__(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        self.experiment_id, self.tags = experiment_id, dict(tags)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(dict(metrics), step=step)

    @contextlib.contextmanager
    def child(self, name: str) -> Iterator["MlflowLogger"]:
        with run(name, experiment_id=self.experiment_id, nested=True,
                 tags={**self.tags, "pipeline.child": name}):
            yield self


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """The numeric entries of ``metrics`` (experiments also report labels, lists and tables,
    which MLflow metrics cannot hold; those go to the JSON files)."""
    numbers = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    mlflow.log_metrics(numbers, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({k: ("null" if v is None else v) for k, v in params.items()})


def log_figure(figure, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)


@contextlib.contextmanager
def artifact_dir(artifact_path: str) -> Iterator[Path]:
    """A temporary directory whose files, if any, are logged to the active run under
    ``artifact_path`` when the block succeeds (e.g. TensorBoard event files: download the
    folder and run ``tensorboard --logdir`` on it)."""
    with tempfile.TemporaryDirectory(prefix=f"pipeline-{artifact_path}-") as tmp:
        yield Path(tmp)
        if any(Path(tmp).iterdir()):
            mlflow.log_artifacts(tmp, artifact_path)


def log_keras_model(model, input_example: Any, name: str = "model") -> str:
    """Log the model (keras flavor + pyfunc) with signature, input example and pinned
    requirements; return its ``runs:/`` URI.

    Saved locally and logged as the run's artifacts because ``mlflow.keras.log_model`` with an
    input example fails in MLflow 3.17 (it writes the example before creating the model folder,
    mlflow/mlflow#16183). Requirements are given, not inferred: inference reloads the model in
    a subprocess, which costs more than training these small networks.
    """
    import keras
    import tensorflow as tf
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, model.predict(input_example, verbose=0))
    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as tmp:
        path = Path(tmp) / name
        path.mkdir()
        mlflow.keras.save_model(
            model,
            str(path),
            signature=signature,
            input_example=input_example,
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
                              f"mlflow=={mlflow.__version__}"],
        )
        mlflow.log_artifacts(str(path), name)
    return f"runs:/{mlflow.active_run().info.run_id}/{name}"


def register_model(model_uri: str, name: str, *, alias: str | None = None,
                   tags: Mapping[str, Any] | None = None):
    """Register ``model_uri`` (``runs:/<run>/<path>``) as a new version of ``name`` in the Model
    Registry and point ``alias`` at it; ``models:/<name>@<alias>`` then loads it. Returns the
    ModelVersion. With the local store its source is the run's artifact folder under mlruns/."""
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version.version)
    return version
