"""The results report (pipeline.report) on made-up stage outputs: it only reads what they wrote."""

import json

import pytest
import yaml

from conftest import run_module
from pipeline import bars
from pipeline.report import Row, errata_text, experiment_rows, markdown_table, table

PARAMS = {
    "experiment": "cls",
    "seed": 42,
    "experiments": {
        "cls": {
            "tune": {"variant": "long", "metric": "val_accuracy"},
            "report": {"metrics": ["test_accuracy", "val_accuracy"]},
            "errata": "The note's {variants[short][note_val_accuracy]:.2f} was on the test set; "
            "ours {variants[short][val_accuracy]:.3f}, baseline {baseline[accuracy]}.",
        },
        "folds": {"tune": {"variant": "only"}, "report": {"metrics": ["cv_mae_mean"]}},
    },
}
METRICS = {
    "cls": {
        "variants": {
            "short": {
                "test_accuracy": 0.81,
                "val_accuracy": 0.83,
                "note_val_accuracy": 0.85,
                "diff_val_accuracy": -0.02,
                "train_seconds": 12.5,
            },
            "long": {"test_accuracy": 0.86, "val_accuracy": 0.87, "train_seconds": 80.0},
        },
        "baseline": {"accuracy": 0.1},
        "bar": {},
    },
    "folds": {
        "variants": {"only": {"cv_mae_mean": 2.4, "cv_mae_std": 0.3, "test_mae": 2.7}},
        "baseline": {},
        "bar": {},
    },
}
# as evaluate writes them: cls meets its bar, folds misses one rule of two
METRICS["cls"]["bar"] = bars.check({"test_accuracy_min": 0.8}, METRICS["cls"]["variants"])
METRICS["folds"]["bar"] = bars.check(
    {"cv_mae_mean_max": 2.6, "test_mae_max": 2.5}, METRICS["folds"]["variants"]
)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data))


@pytest.fixture
def project(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/config.yaml").write_text("{}\n")  # marks the project root
    write(tmp_path / "params.yaml", PARAMS)
    for name, metrics in METRICS.items():
        write(tmp_path / f"metrics/{name}.json", metrics)
        runs = {variant: f"run-{name}-{variant}" for variant in metrics["variants"]}
        write(tmp_path / f"models/{name}/runs.json", {"parent_run_id": "p", "variants": runs})
    write(
        tmp_path / "tuning/cls/best_params.json",
        {"metric": "val_accuracy", "best_value": 0.88, "best_test": {"test_accuracy": 0.875}},
    )
    return tmp_path


def test_rows_hold_note_ours_diff_tuned_time_and_run():
    rows = experiment_rows(
        "cls",
        PARAMS["experiments"]["cls"],
        METRICS["cls"],
        {"metric": "val_accuracy", "best_value": 0.88, "best_test": {"test_accuracy": 0.875}},
        {"short": "r1", "long": "r2"},
    )
    by_key = {(r.variant, r.metric): r for r in rows}
    assert list(by_key) == [
        ("short", "test_accuracy"),
        ("short", "val_accuracy"),
        ("long", "test_accuracy"),
        ("long", "val_accuracy"),
    ]
    short_val = by_key["short", "val_accuracy"]
    assert (short_val.note, short_val.ours, short_val.run_id) == (0.85, 0.83, "r1")
    assert short_val.diff == pytest.approx(-0.02) and short_val.tuned is None
    assert by_key["long", "test_accuracy"].tuned == 0.875  # the best trial's test score
    assert by_key["long", "val_accuracy"].tuned == 0.88  # the tuned metric itself
    assert by_key["long", "test_accuracy"].seconds == 80.0


def test_mean_comes_with_its_std_and_unlisted_metrics_fall_back_to_the_first_test_metric():
    [row] = experiment_rows("folds", PARAMS["experiments"]["folds"], METRICS["folds"], None, {})
    assert (row.metric, row.ours, row.std) == ("cv_mae_mean", 2.4, 0.3)
    [fallback] = experiment_rows("folds", {}, METRICS["folds"], None, {})
    assert fallback.metric == "test_mae"
    cells = table([row])
    assert cells[1][4] == "2.4 ± 0.3" and cells[1][3] == "–"
    assert markdown_table(cells).splitlines()[1] == "|" + "---|" * 10


def test_a_tune_only_variant_gets_a_row_of_its_tuned_test_score_beside_the_note():
    cfg = {"tune": {"variant": "search"}, "report": {"metrics": ["test_rmse"]}}
    metrics = {"variants": {"two_outputs": {"test_rmse": 0.577, "note_test_rmse": 0.56}}}
    rows = experiment_rows("wd", cfg, metrics, {"best_test": {"test_rmse": 0.461}}, {})
    tuned = rows[-1]
    assert (tuned.variant, tuned.ours, tuned.note, tuned.tuned) == ("search (tune only)", None, 0.56, 0.461)
    assert tuned.diff == pytest.approx(0.461 - 0.56)
    assert table([tuned])[1][3:7] == ["0.56", "–", "-0.099", "0.461"]


def test_large_counts_are_whole_numbers_not_exponents():
    row = Row(
        experiment="e",
        variant="v",
        metric="params",
        note=None,
        ours=53698.0,
        std=None,
        tuned=None,
        seconds=1456.8,
        run_id=None,
    )
    assert table([row])[1][4] == "53,698" and table([row])[1][7] == "1,457"


def test_errata_are_filled_from_the_measurements_and_a_bad_field_is_shown_not_raised():
    text = errata_text(PARAMS["experiments"]["cls"]["errata"], METRICS["cls"])
    assert text == "The note's 0.85 was on the test set; ours 0.830, baseline 0.1."
    assert "could not fill in" in errata_text("{variants[nope][x]}", METRICS["cls"])


def test_report_stage_writes_markdown_and_self_contained_html(project):
    result = run_module("pipeline.report", cwd=project)
    assert result.returncode == 0, result.stderr
    markdown = (project / "reports/report.md").read_text()
    assert "| cls | short | val_accuracy | 0.85 | 0.83 | -0.02 | – | 12.5 | run-cls-shor |" in markdown
    assert "| folds | only | cv_mae_mean | – | 2.4 ± 0.3 |" in markdown
    # the bar column: on each experiment's first row, the rules missed named with their figures
    assert "| cls | short | test_accuracy | – | 0.81 | – | – | 12.5 | run-cls-shor | met |" in markdown
    assert "| run-cls-shor |  |" in markdown  # cls's later rows leave it empty
    assert "| not met: test_mae_max (only 2.7: needs <= 2.5) |" in markdown
    assert "The note's 0.85 was on the test set" in markdown
    assert "![cls.png](figures/cls.png)" in markdown
    assert (project / "reports/figures/cls.png").read_bytes()[:4] == b"\x89PNG"
    page = (project / "reports/report.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # figures embedded: one file to share
    assert 'src="http' not in page and "<td>run-cls-long</td>" in page


def test_missing_stage_outputs_are_named_with_the_stage_to_run_and_nothing_is_written(project):
    (project / "metrics/folds.json").unlink()
    result = run_module("pipeline.report", cwd=project)
    assert result.returncode != 0
    assert "metrics/folds.json (run: dvc repro evaluate@folds)" in result.stderr
    assert not (project / "reports").exists()


def test_row_diff_is_ours_minus_note():
    row = Row("e", "v", "m", note=0.5, ours=0.75, std=None, tuned=None, seconds=None, run_id=None)
    assert row.diff == 0.25


def test_readme_shows_the_committed_reports_table_as_rendered():
    import subprocess
    import sys

    from conftest import ROOT

    # as committed: the quick start's `make run` rewrites reports/ before its `make test`
    check = subprocess.run(
        [sys.executable, "scripts/readme_table.py", "--check", "--rev", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_readme_table_sync_replaces_only_the_marked_block():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "scripts/readme_table.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    report = "# t\n\nintro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n## Errata\n\n| not | this |\n"
    readme = f"before\n{sync.START}\nold\n{sync.END}\nafter\n"
    updated = sync.synced(readme, report)
    assert updated.startswith("before\n") and updated.endswith("\nafter\n")
    assert "(2 rows)" in updated and "| 3 | 4 |" in updated and "not" not in updated and "old" not in updated
    with pytest.raises(SystemExit, match="report-table"):
        sync.synced("no markers here", report)


def test_the_bar_column_stands_on_each_experiments_first_row():
    rows = [
        Row("e", v, "m", note=None, ours=0.5, std=None, tuned=None, seconds=None, run_id=None)
        for v in ("a", "b")
    ] + [Row("f", "a", "m", None, 0.5, None, None, None, None)]
    cells = table(rows, {"e": "not met: m_min (a 0.5: needs >= 0.6)"})
    assert cells[0][-1] == "bar"
    assert [row[-1] for row in cells[1:]] == ["not met: m_min (a 0.5: needs >= 0.6)", "", "–"]


def test_the_usage_text_is_the_module_docstring():
    import pipeline.report

    usage = pipeline.report.__doc__
    assert "usage: python -m pipeline.report" in usage
    for name in ("metrics/<experiment>.json", "reports/report.md", "report.metrics", "errata", "bar"):
        assert name in usage


def test_compare_reports_names_every_moved_figure(tmp_path):
    """scripts/compare_reports.py: the figures ("ours", "tuned") that moved between two runs,
    not the seconds or run ids, which move every run (columns found by their header, a cell's
    escaped "|" kept in its cell); and the committed report against itself."""
    import subprocess
    import sys

    from conftest import ROOT

    header = (
        "| experiment | variant | metric | note | ours | diff | tuned | train s | MLflow run | bar |\n|---|\n"
    )
    old = (
        header
        + "| e | a | acc | n \\| m | 0.9902 ± 0.0031 | – | 0.99 | 3.1 | r1 | met |\n| e | b | acc | – | 0.5 | – | – | 2.0 | r2 |  |\n"
    )
    new = (
        header
        + "| e | a | acc | n \\| m | 0.8962 ± 0.0886 | – | 0.99 | 2.7 | r3 | met |\n| e | c | acc | – | 0.5 | – | – | 2.0 | r4 |  |\n"
    )
    (tmp_path / "old.md").write_text(f"# r\n\n{old}\n## Errata\n\n| e | a | acc | 1 | 2 | 3 | 4 |\n")
    (tmp_path / "new.md").write_text(f"# r\n\n{new}")

    def compare(*args):
        return subprocess.run(
            [sys.executable, "scripts/compare_reports.py", *args], cwd=ROOT, capture_output=True, text=True
        )

    result = compare(str(tmp_path / "old.md"), str(tmp_path / "new.md"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "e / a / acc (ours): 0.9902 ± 0.0031 -> 0.8962 ± 0.0886",
        "e / b / acc: only in the old report",
        "e / c / acc: only in the new report",
        "1 figures equal, 3 moved or missing",
    ]
    same = compare("HEAD:", "HEAD:")
    (summary,) = same.stdout.splitlines()  # nothing moved: the summary line alone
    assert same.returncode == 0 and summary.endswith(" figures equal, 0 moved or missing")
    assert "No report at" in compare(str(tmp_path / "none.md")).stderr
