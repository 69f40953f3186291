"""bench/traced_folds.py runs both arms of a shrunk thoracic variant and finds the same result."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_traced_folds_benchmark_traces_once_and_finds_the_same_weights(mirror, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/traced_folds.py"),
            "--repeats",
            "1",
            "experiments.thoracic.train.epochs=2",
            "experiments.thoracic.train.cv.splitter.n_repeats=1",
        ],
        cwd=tmp_path,  # no prepared data here: the bench reads the mirror
        env={**os.environ, "PIPELINE_DATA_MIRROR": str(mirror)},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "model per fit:" in result.stdout and "6 fits, 6 traced" in result.stdout
    assert "traced once  :" in result.stdout and "6 fits, 1 traced" in result.stdout
    assert "same scores and final weights in every run: yes" in result.stdout
