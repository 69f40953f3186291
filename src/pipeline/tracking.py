"""MLflow conventions: one MLflow experiment per source experiment, a parent run per stage
invocation with a child run per variant or trial, and the same tags on every run (git commit,
dataset hashes, stage, CPU kind) so any figure can be traced back to its code, data and machine."""

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
from pipeline.errors import ServingMismatch, TrackingError
from pipeline.machine import cpu_kind

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
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True
        ).stdout.strip()
        excluded = [f":(exclude){path}" for path in PIPELINE_RECORDS]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def standard_tags(stage: str, experiment: str, dataset_hashes: Mapping[str, str]) -> dict[str, str]:
    commit = git_commit()  # two git calls: once for both tags
    tags = {
        "pipeline.stage": stage,
        "pipeline.experiment": experiment,
        "pipeline.cpu": cpu_kind(),
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
    }
    tags.update({f"dataset.sha256.{name}": digest for name, digest in dataset_hashes.items()})
    return tags


@contextlib.contextmanager
def run(
    name: str,
    *,
    experiment_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED on success, FAILED (or KILLED on Ctrl-C) if not.
    ``parent_run_id`` nests it under a run of another process (a stage's worker)."""
    active = mlflow.start_run(
        run_id=run_id,
        run_name=None if run_id else name,
        experiment_id=experiment_id,
        nested=nested,
        parent_run_id=parent_run_id,
        tags=dict(tags or {}),
    )
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


def fail_unfinished_children(experiment_id: str, parent_run_id: str) -> None:
    """End as FAILED the runs under ``parent_run_id`` (and theirs) still RUNNING because the
    worker process that had them died: nobody else would end them."""
    client = mlflow.MlflowClient()
    parents = [parent_run_id]
    while parents:
        parent = parents.pop()
        for child in client.search_runs(
            [experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'"
        ):
            client.set_terminated(child.info.run_id, "FAILED")
            parents.append(child.info.run_id)


class MlflowLogger:
    """The experiments' RunLogger: metrics to the active run, ``child`` opens a nested run."""

    def __init__(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        self.experiment_id, self.tags = experiment_id, dict(tags)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(dict(metrics), step=step)

    @contextlib.contextmanager
    def child(self, name: str) -> Iterator["MlflowLogger"]:
        with run(
            name, experiment_id=self.experiment_id, nested=True, tags={**self.tags, "pipeline.child": name}
        ):
            yield self

    def log_model(self, servable, name: str = "model") -> None:
        log_servable(servable, name)


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of ``metrics`` (experiments also report labels, lists and tables,
    which MLflow metrics cannot hold; those go to the JSON files)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, model_id: str | None = None) -> None:
    """The numeric entries of ``metrics`` on the active run (and on its logged model
    ``model_id``: the Models tab shows them)."""
    mlflow.log_metrics(numeric(metrics), step=step, model_id=model_id)


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


RAW_MODEL_CODE = Path(__file__).parent / "serving" / "raw_model.py"
#: how far the logged model's answer on raw rows may lie from the trained network's
CHECK_TOLERANCE = 1e-5


def check_servable(servable) -> Any:
    """The logged model's answer on the raw test rows, checked against the trained network on
    the same rows as the stages feed it; raises ServingMismatch if they differ."""
    import numpy as np

    from pipeline.serving.raw_model import RawInputModel

    raw_model = RawInputModel().setup(servable.spec, servable.model, servable.vocabulary)
    served = raw_model.predict(None, servable.raw_test)
    expected = raw_model.named_outputs(
        servable.model.predict(servable.network_test, batch_size=4096, verbose=0)
    )
    for column in expected.columns:
        ours, theirs = served[column].to_numpy(), expected[column].to_numpy()
        same = (
            np.allclose(ours, theirs, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE)
            if ours.dtype.kind == "f"
            else np.array_equal(ours, theirs)
        )
        if not same or len(ours) != len(theirs):
            raise ServingMismatch(
                f"The logged model of {servable.spec['experiment']}/{servable.spec['variant']} "
                f"answers raw test rows differently from the trained network (column {column!r}); "
                "its serving spec does not match how the experiment feeds the network."
            )
    return served


def log_servable(servable, name: str = "model", tags: Mapping[str, str] | None = None):
    """Log a trained variant as an MLflow logged model (pyfunc, a model from code) that takes
    raw rows and answers named columns, with signature, input example and pinned requirements,
    on the active run; returns MLflow's ModelInfo (``model_id``, ``model_uri``).

    A pyfunc rather than ``mlflow.keras.log_model``, whose ``input_example`` fails in MLflow
    3.17 (mlflow/mlflow#16183; tests/test_serving.py says when that is fixed). The Keras file
    is inside it too (``artifacts/keras_model.keras``). Requirements are given, not inferred:
    inferring them reloads the model in a subprocess, which costs more than training these
    small networks.
    """
    import json

    import keras
    import pandas
    import tensorflow as tf
    from mlflow.models import infer_signature

    from pipeline.serving import EXAMPLE_ROWS, head
    from pipeline.serving.raw_model import KERAS_MODEL, SPEC, VOCABULARY

    served = check_servable(servable)
    example = head(servable.raw_test, EXAMPLE_ROWS)
    signature = infer_signature(example, served.iloc[:EXAMPLE_ROWS])
    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as tmp:
        artifacts = {SPEC: Path(tmp) / "spec.json", KERAS_MODEL: Path(tmp) / "keras_model.keras"}
        artifacts[SPEC].write_text(json.dumps(servable.spec, indent=2))
        servable.model.save(artifacts[KERAS_MODEL])
        if servable.vocabulary is not None:
            artifacts[VOCABULARY] = Path(tmp) / "vocabulary.txt"
            artifacts[VOCABULARY].write_text("\n".join(servable.vocabulary), encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(RAW_MODEL_CODE),
            artifacts={key: str(path) for key, path in artifacts.items()},
            signature=signature,
            input_example=example,
            pip_requirements=[
                f"tensorflow=={tf.__version__}",
                f"keras=={keras.__version__}",
                f"mlflow=={mlflow.__version__}",
                f"pandas=={pandas.__version__}",
            ],
            tags={
                "pipeline.experiment": servable.spec["experiment"],
                "pipeline.variant": servable.spec["variant"],
                **servable.tags,
                **(tags or {}),
            },
        )


def log_dataset(info: Mapping[str, Any], source_url: str, context: str = "training") -> None:
    """The prepared dataset (its info.json) as the run's input, the UI's Datasets column: its
    name, the sha256 of its content (or one over its verified source files) as digest, where it
    comes from, and the size of each split as tags.

    MLflow's SQL store (3.17, ``SqlAlchemyStore._log_inputs_impl``) looks the dataset up, then
    inserts it, with no retry: two runs logging a dataset the experiment does not have yet, at
    the same moment, fail one with ``UNIQUE constraint failed: datasets...``. A stage that trains
    in a pool logs it on its parent run first; tests/test_tracking.py says when that is no
    longer needed."""
    import hashlib

    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    hashes = info["sha256"]
    digest = (
        hashes.get("content")
        or hashlib.sha256(
            "".join(f"{name}:{sha}\n" for name, sha in sorted(hashes.items())).encode()
        ).hexdigest()
    )
    sizes = {
        key.removeprefix("y_") if key != "y" else "all": str(shape[0])
        for key, shape in info["shapes"].items()
        if key == "y" or key.startswith("y_")
    }
    # MLflow keeps at most 36 characters of a digest; the whole sha256 is a tag of the input
    dataset = MetaDataset(HTTPDatasetSource(source_url), name=info["dataset"], digest=digest[:36])
    mlflow.log_input(
        dataset, context=context, tags={"sha256": digest, **{f"rows.{k}": v for k, v in sizes.items()}}
    )


CHAMPION, CHALLENGER = "champion", "challenger"


def better(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def register_and_promote(
    model_uri: str,
    name: str,
    *,
    metric: str,
    value: float,
    direction: str,
    tags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Register ``model_uri`` as a new version of ``name`` (tagged with its validation score
    and ``tags``) and move the alias ``champion`` to it only if it beats the current champion
    on ``metric`` (validation, never test); otherwise it becomes the ``challenger``. A first
    version becomes champion. Roll back with ``MlflowClient().set_registered_model_alias(name,
    "champion", <older version>)``. Returns {name, version, alias, uri, previous}."""
    client = MlflowClient()
    version = mlflow.register_model(
        model_uri,
        name,
        tags={
            "selection.metric": metric,
            "selection.value": repr(float(value)),
            "selection.direction": direction,
            **{k: str(v) for k, v in (tags or {}).items()},
        },
    )
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None
    previous = (
        None
        if current is None
        else {
            "version": str(current.version),
            "metric": current.tags.get("selection.metric"),
            "value": float(current.tags.get("selection.value", "nan")),
        }
    )
    comparable = previous is not None and previous["metric"] == metric
    # a champion registered before versions carried their score cannot be compared: replace it
    legacy = previous is not None and previous["metric"] is None
    promote = (
        previous is None or legacy or (comparable and better(float(value), previous["value"], direction))
    )
    alias = CHAMPION if promote else CHALLENGER
    client.set_registered_model_alias(name, alias, version.version)
    return {
        "name": name,
        "version": str(version.version),
        "alias": alias,
        "uri": f"models:/{name}@{alias}",
        "previous": previous,
        "comparable": comparable,
    }
