"""bench/fit_overhead.py runs its four arms and prints a line for each."""

import subprocess
import sys

from conftest import ROOT


def test_the_fit_overhead_benchmark_prints_every_arm():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/fit_overhead.py"), "--epochs", "1", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    for arm in ("keras fit", "pipeline fit", "bare loop", "keras tf.data alone"):
        assert f"{arm} " in result.stdout, arm
