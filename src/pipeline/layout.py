"""Where every stage reads and writes: the one owner of the output layout.

dvc.yaml declares the same paths (``tests/test_layout.py`` checks that both agree), so a path
changes here and in dvc.yaml together or the test says which one is out of step.

    data/<dataset>/                      prepare: arrays.npz, info.json
    models/<experiment>/                 train: <variant>.keras, <variant>.metrics.json, runs.json
    plots/<experiment>/history/          train: <variant>.csv (DVC plots)
    plots/<experiment>/evaluate/         evaluate: figures
    metrics/<experiment>.json            evaluate: test scores beside the note's figures
    metrics/headline/<experiment>.json   evaluate: the few columns `dvc exp show` shows
    <tune.dir>/<experiment>/             tune: study.journal, best_params.json
    reports/                             report: report.md, report.html, figures/
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
PLOTS = Path("plots")
METRICS = Path("metrics")
REPORTS = Path("reports")
TUNING = Path("tuning")  # the DVC tune stage's studies (tune.dir=tuning); by hand: studies/
JOURNAL = "study.journal"  # a study's default storage, inside its study_dir


def prepared(dataset: str) -> Path:
    return DATA / dataset


def models(experiment: str) -> Path:
    return MODELS / experiment


def model_file(experiment: str, variant: str) -> Path:
    return models(experiment) / f"{variant}.keras"


def training_metrics(experiment: str, variant: str) -> Path:
    """What train measured of a variant (e.g. its cross-validation scores), read by evaluate."""
    return models(experiment) / f"{variant}.metrics.json"


def run_record(experiment: str) -> Path:
    """variant -> MLflow run id and logged model id, written by train, read by evaluate/report."""
    return models(experiment) / "runs.json"


def history(experiment: str) -> Path:
    return PLOTS / experiment / "history"


def history_file(experiment: str, variant: str) -> Path:
    return history(experiment) / f"{variant}.csv"


def evaluate_plots(experiment: str) -> Path:
    return PLOTS / experiment / "evaluate"


def metrics(experiment: str) -> Path:
    return METRICS / f"{experiment}.json"


def headline(experiment: str) -> Path:
    return METRICS / "headline" / f"{experiment}.json"


def study_dir(experiment: str, tune_dir: str | Path = TUNING) -> Path:
    return Path(tune_dir) / experiment


def journal(experiment: str, tune_dir: str | Path = TUNING) -> Path:
    return study_dir(experiment, tune_dir) / JOURNAL


def best_params(experiment: str, tune_dir: str | Path = TUNING) -> Path:
    return study_dir(experiment, tune_dir) / "best_params.json"
