"""bench/tune_workers.py runs a shrunk real search with 1 worker and 2 and finds the same study."""

import pytest

from conftest import run_bench


@pytest.mark.slow
def test_the_tune_workers_benchmark_runs_both_arms_and_compares_studies(mirror):
    result = run_bench(
        "tune_workers.py",
        "--trials",
        "3",
        "experiments.wide_deep.variants.search.train.epochs=2",
        mirror=mirror,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "workers=1:" in result.stdout and "workers=2:" in result.stdout
    assert "the same study in every arm: yes" in result.stdout
