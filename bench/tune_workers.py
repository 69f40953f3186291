"""What the tune stage's workers buy: one experiment's search with 1 worker and with 2.

    PIPELINE_DATA_MIRROR=../shared/data python bench/tune_workers.py [--experiment wide_deep]
        [--trials N] [--workers 1 2] [--repeats 1] [override ...]

Each arm is the real tune stage, ``python -m pipeline.tune experiment=<name>
tune.n_workers=K``, in a fresh study and a throw-away MLflow store (bench/tune_arm.py). The
trials run in batches of one per core either way (pipeline.tuning.batches); with 1 worker a
batch's trials train one after the other, with 2 side by side. Arms alternate (1, 2, 1, 2,
...), never at the same time. Reported per arm: wall time of the whole invocation (median over
repeats) and the load it put on the machine (CPU seconds / wall seconds: 1.0 is one core
busy); then the ratio to the first arm and whether every arm made the same study (each trial's
parameters, state, values and per-epoch reports: it must).

The experiment's dataset is prepared once (from the mirror) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tune_arm  # noqa: E402
from train_workers import print_speed_ups  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fingerprint(study) -> tuple:
    """What must not depend on the number of workers: every trial, in order."""
    return tuple(
        (
            t.number,
            tuple(sorted(t.params.items())),
            t.state.name,
            tuple(t.values or ()),
            tuple(sorted(t.intermediate_values.items())),
        )
        for t in study.trials
    )


def prepare(experiment: str, folder: Path) -> Path:
    """The experiment's dataset prepared in ``folder`` (its data/), from the mirror."""
    from pipeline.config import experiment_config, load

    folder.mkdir(parents=True)
    dataset = experiment_config(load([f"experiment={experiment}"])).dataset
    env = {**os.environ, "PYTHONPATH": str(tune_arm.ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if env.get("PIPELINE_DATA_MIRROR"):  # given relative to where the bench was started
        env["PIPELINE_DATA_MIRROR"] = str(Path(env["PIPELINE_DATA_MIRROR"]).resolve())
    subprocess.run(
        [sys.executable, "-m", "pipeline.prepare", f"dataset={dataset}"], cwd=folder, env=env, check=True
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="wide_deep")
    parser.add_argument("--trials", type=int, help="the budget (default: the experiment's)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="config overrides")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(tune_arm.ROOT / "src"))
    from pipeline.config import experiment_config, load

    trials = args.trials or int(experiment_config(load([f"experiment={args.experiment}"])).tune.n_trials)
    walls: dict[int, list[float]] = {k: [] for k in args.workers}
    loads: dict[int, list[float]] = {k: [] for k in args.workers}
    studies: set[tuple] = set()
    best: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tune-workers-") as tmp:
        prepared = prepare(args.experiment, Path(tmp) / "prepared")
        for repeat in range(args.repeats):
            for workers in args.workers:
                folder = Path(tmp) / f"w{workers}-r{repeat}"
                folder.mkdir()
                (folder / "data").symlink_to(prepared / "data")
                command = [
                    sys.executable,
                    "-m",
                    "pipeline.tune",
                    *tune_arm.stage_args(
                        args.experiment, trials, folder, f"tune.n_workers={workers}", *args.overrides
                    ),
                ]
                before = cpu_seconds()
                wall, study, summary = tune_arm.run(
                    f"workers={workers}", command, args.experiment, folder, cwd=folder
                )
                load_ = (cpu_seconds() - before) / wall
                walls[workers].append(wall)
                loads[workers].append(load_)
                studies.add(fingerprint(study))
                best[workers] = summary["best_value"]
                print(f"  workers={workers} repeat {repeat + 1}: {wall:.1f} s, load {load_:.2f}", flush=True)
    print(f"tune {args.experiment}, {trials} trials {' '.join(args.overrides)}  ({os.cpu_count()} cores)")
    print_speed_ups(walls, loads, args.repeats, more=lambda workers: f", best {best[workers]:.5g}")
    same = len(studies) == 1
    print(f"the same study in every arm: {'yes' if same else 'NO'} ({len(studies)} different)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
