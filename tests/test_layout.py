"""dvc.yaml and pipeline.layout name the same paths (a path moved in one is caught here), and
every stage says how to call it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import layout

ROOT = Path(__file__).resolve().parents[1]


def declared(stage: str, field: str) -> set[str]:
    """The paths of one field (deps, outs, metrics, plots) of a dvc.yaml stage, for experiment
    ``X`` on dataset ``D`` (a foreach stage's ``${key}`` and ``${item.dataset}``)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    entries = spec.get("do", spec).get(field, [])
    paths = {next(iter(e)) if isinstance(e, dict) else e for e in entries}
    return {p.replace("${key}", "X").replace("${item.dataset}", "D") for p in paths}


def posix(*paths: Path) -> set[str]:
    return {p.as_posix() for p in paths}


def test_prepare_writes_the_prepared_dataset():
    assert declared("prepare", "outs") == {"data/X"}  # foreach over datasets: X is a dataset
    assert posix(layout.prepared("X")) == {"data/X"}


def test_train_writes_models_and_history_where_evaluate_and_tune_read_them():
    assert declared("train", "outs") == posix(layout.models("X"))
    assert declared("train", "plots") == posix(layout.history("X"))
    assert posix(layout.prepared("D")) <= declared("train", "deps")
    assert posix(layout.models("X")) <= declared("evaluate", "deps")
    for inside in (layout.model_file("X", "v"), layout.training_metrics("X", "v"), layout.run_record("X")):
        assert inside.parent == layout.models("X")
    assert layout.history_file("X", "v").parent == layout.history("X")


def test_evaluate_writes_metrics_headline_and_plots():
    assert declared("evaluate", "metrics") == posix(layout.metrics("X"), layout.headline("X"))
    assert declared("evaluate", "plots") == posix(layout.evaluate_plots("X"))
    assert posix(layout.metrics("X")) <= declared("tune", "deps")  # tune runs after evaluate


def test_tune_writes_its_study_and_best_params_under_tune_dir():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["tune"]["do"]
    assert f"tune.dir={layout.TUNING}" in spec["cmd"]
    assert declared("tune", "outs") == posix(layout.journal("X"))
    assert declared("tune", "metrics") == posix(layout.best_params("X"))


def test_report_reads_the_stage_outputs_and_writes_reports():
    assert declared("report", "outs") == posix(layout.REPORTS)
    assert posix(layout.METRICS, layout.TUNING, layout.MODELS) <= declared("report", "deps")


def test_every_stage_depends_on_the_modules_its_entry_point_imports():
    for stage in ("train", "evaluate", "tune"):
        assert {"src/pipeline/stage.py", "src/pipeline/layout.py"} <= declared(stage, "deps"), stage
    for stage in ("prepare", "report"):
        assert "src/pipeline/layout.py" in declared(stage, "deps"), stage


@pytest.mark.parametrize("stage", ["prepare", "train", "evaluate", "tune", "report", "predict"])
def test_every_stage_prints_its_usage_on_help(stage):
    done = subprocess.run(
        [sys.executable, "-m", f"pipeline.{stage}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert f"python -m pipeline.{stage}" in done.stdout, done.stdout
    assert "tensorflow" not in done.stderr.lower()
