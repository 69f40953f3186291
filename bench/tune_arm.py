"""One arm of a tune benchmark (bench/tune_pruning.py, bench/tune_samplers.py): the real tune
stage in a process of its own, in a fresh study under the arm's folder and a throw-away MLflow
store there, its output kept in <folder>/tune.log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage_args(experiment: str, n_trials: int, folder: Path, *extra: str) -> list[str]:
    """The tune stage's overrides for an arm: its budget, its folder, nothing registered."""
    return [
        f"experiment={experiment}",
        f"tune.n_trials={n_trials}",
        f"tune.dir={folder / 'studies'}",
        f"mlflow.artifact_root={folder / 'artifacts'}",
        "tune.register=false",
        *extra,
    ]


def run(label: str, command: list[str], experiment: str, folder: Path, cwd: Path = ROOT):
    """Run ``command`` (a tune stage invocation made with stage_args) in ``cwd`` (where its
    data/ is prepared) with its MLflow store in ``folder``; (wall seconds, the study it left,
    its best_params.json). A failed run stops the benchmark with the end of its output."""
    import optuna

    sys.path.insert(0, str(ROOT / "src"))
    from pipeline.tune import make_storage

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
    }
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seconds = time.perf_counter() - started
    (folder / "tune.log").write_text(result.stdout)
    if result.returncode != 0:
        print(result.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"[{label}] pipeline.tune failed with exit code {result.returncode}")
    study_dir = folder / "studies" / experiment
    study = optuna.load_study(study_name=experiment, storage=make_storage(None, study_dir))
    return seconds, study, json.loads((study_dir / "best_params.json").read_text())
