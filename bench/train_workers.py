"""What the train stage's workers buy: one experiment's train stage with 1 worker and with 2.

    PIPELINE_DATA_MIRROR=../shared/data python bench/train_workers.py [--experiment thoracic]
        [--workers 1 2] [--repeats 1] [override ...]

Each arm is the real stage, ``python -m pipeline.train experiment=<name> train.workers=K
<overrides>``, in its own working folder with the experiment's dataset prepared once (from the
mirror) and a throw-away MLflow store. Arms alternate (1, 2, 1, 2, ...), never at the same time.
Reported per arm: wall time of the whole invocation (median over repeats) and the load it put
on the machine (CPU seconds / wall seconds: 1.0 is one core busy); then the ratio to the first
arm and whether every arm saved the same weights (it must: pipeline.pool).

The default overrides shrink thoracic to its 5 variants x (5 folds + the final fit), 30 epochs
each, as configured, but 1 repeat of the 5 folds instead of 3.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OVERRIDES = {"thoracic": ["experiments.thoracic.train.cv.splitter.n_repeats=1"]}


def run(command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def weights(models: Path) -> str:
    """One digest of every saved model's weights, in file order."""
    code = (
        "import hashlib, sys, keras; from pathlib import Path; h = hashlib.sha256()\n"
        "for f in sorted(Path(sys.argv[1]).glob('*.keras')):\n"
        "    h.update(b''.join(w.tobytes() for w in keras.models.load_model(f, compile=False).get_weights()))\n"
        "print(h.hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(models)], capture_output=True, text=True, check=True
    ).stdout
    return out.strip()


def print_speed_ups(
    walls: dict[int, list[float]], loads: dict[int, list[float]], repeats: int, more=lambda workers: ""
) -> None:
    """A line per arm (workers=K, in the order run): median wall time and load, the speed-up
    over the first arm, and ``more(K)``. Also bench/tune_workers.py's."""
    base = statistics.median(next(iter(walls.values())))
    for workers, times in walls.items():
        wall = statistics.median(times)
        print(
            f"workers={workers}: {wall:7.1f} s (median of {repeats}), load "
            f"{statistics.median(loads[workers]):.2f}, speed-up {base / wall:.2f}x{more(workers)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="thoracic")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="config overrides (default: a shrunk thoracic)")
    args = parser.parse_args(argv)
    overrides = args.overrides or DEFAULT_OVERRIDES.get(args.experiment, [])
    sys.path.insert(0, str(ROOT / "src"))
    from pipeline.config import experiment_config, load

    dataset = experiment_config(load([f"experiment={args.experiment}"])).dataset
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory(prefix="bench-train-workers-") as tmp:
        shared = Path(tmp) / "prepared"
        shared.mkdir()
        run([sys.executable, "-m", "pipeline.prepare", f"dataset={dataset}"], shared, env)
        walls: dict[int, list[float]] = {k: [] for k in args.workers}
        loads: dict[int, list[float]] = {k: [] for k in args.workers}
        digests: set[str] = set()
        for repeat in range(args.repeats):
            for workers in args.workers:
                folder = Path(tmp) / f"w{workers}-r{repeat}"
                folder.mkdir()
                (folder / "data").symlink_to(shared / "data")
                arm_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
                command = [
                    sys.executable,
                    "-m",
                    "pipeline.train",
                    f"experiment={args.experiment}",
                    f"train.workers={workers}",
                    f"mlflow.artifact_root={folder / 'artifacts'}",
                    *overrides,
                ]
                wall, cpu = run(command, folder, arm_env)
                walls[workers].append(wall)
                loads[workers].append(cpu / wall)
                digests.add(weights(folder / "models" / args.experiment))
                print(
                    f"  workers={workers} repeat {repeat + 1}: {wall:.1f} s, load {cpu / wall:.2f}",
                    flush=True,
                )
    print(f"train {args.experiment} {' '.join(overrides)}  ({os.cpu_count()} cores)")
    print_speed_ups(walls, loads, args.repeats)
    same = len(digests) == 1
    print(f"weights identical in every arm: {'yes' if same else 'NO'} ({len(digests)} digest(s))")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
