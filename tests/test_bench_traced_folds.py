"""bench/traced_folds.py runs both arms of a shrunk thoracic variant and finds the same result."""

import pytest

from conftest import run_bench


@pytest.mark.slow
def test_the_traced_folds_benchmark_traces_per_variant_and_finds_the_same_weights(mirror, tmp_path):
    result = run_bench(
        "traced_folds.py",
        "--repeats",
        "1",
        "experiments.thoracic.train.epochs=2",
        "experiments.thoracic.train.cv.splitter.n_repeats=1",
        mirror=mirror,
        cwd=tmp_path,  # no prepared data here: the bench reads the mirror
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "model per fit:" in result.stdout and "6 fits, 6 traced" in result.stdout
    # fold 1 validates every epoch, in its own train function: two traced, for six fits
    assert "traced model :" in result.stdout and "6 fits, 2 traced" in result.stdout
    assert "same scores and final weights in every run: yes" in result.stdout
