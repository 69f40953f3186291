"""bench/train_workers.py runs both arms of a shrunk train stage and finds the same weights."""

import pytest

from conftest import run_bench


@pytest.mark.slow
def test_the_workers_benchmark_runs_both_arms_and_compares_weights(mirror):
    result = run_bench(
        "train_workers.py",
        "experiments.thoracic.train.epochs=2",
        "experiments.thoracic.train.cv.splitter.n_splits=2",
        "experiments.thoracic.train.cv.splitter.n_repeats=1",
        "~experiments.thoracic.variants.mean_absolute_error",
        "~experiments.thoracic.variants.mean_squared_error",
        "~experiments.thoracic.variants.poisson",
        mirror=mirror,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "workers=1:" in result.stdout and "workers=2:" in result.stdout
    assert "weights identical in every arm: yes" in result.stdout
