"""What tracing once per variant buys: a cross-validated variant's folds and refit on one traced
model (``training.TracedModel``, what the stages do) against a freshly built model per fit (what
they did before), in one process, arms alternating.

    PIPELINE_DATA_MIRROR=../shared/data PYTHONPATH=src python bench/traced_folds.py \\
        [--experiment thoracic] [--variant NAME] [--repeats 2] [override ...]

Each arm is ``experiment.train_variant`` on the real data (the prepared arrays if this checkout
has them, else the mirror split as prepare splits it), seed 42, with the stage's fast path; only
that call is timed (all folds, the final fit and the fold scoring). Reported per arm: wall time
(median over repeats), its fits and their tracings, and the ratio; then whether both arms gave
the same cross-validated scores and the same final weights, bit for bit (they must).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPRESENTATIVE = {"thoracic": "binary_crossentropy", "boston": "faithful"}


def arms():
    """arm name -> the TracedModel class the cross-validation uses in that arm."""
    from pipeline import training

    return {"model per fit": training.UntracedModel, "traced model": training.TracedModel}


def count_tracings(training) -> list:
    """A list that gets each fitted model's train function: distinct ones were traced. It keeps
    the functions themselves, so that a freed one's id cannot come back as a new one's."""
    seen: list = []
    original = training.fit

    def recording(model, *args, **kwargs):
        result = original(model, *args, **kwargs)
        seen.append(training.GatheredBatches.of(model).function)
        return result

    training.fit = recording
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="thoracic", choices=sorted(REPRESENTATIVE))
    parser.add_argument("--variant", default=None, help="default: " + str(REPRESENTATIVE))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. experiments.thoracic.train.epochs=5"
    )
    args = parser.parse_args(argv)

    from experiment_speed import load_data

    from pipeline import training
    from pipeline.config import experiment_config, load
    from pipeline.experiments import get_experiment

    cfg = load([f"experiment={args.experiment}", *args.overrides])
    exp_cfg = experiment_config(cfg)
    variant = args.variant or REPRESENTATIVE[args.experiment]
    data, origin = load_data(cfg, exp_cfg.dataset)
    experiment = get_experiment(args.experiment)
    print(f"{args.experiment} / {variant} on {origin}; {args.repeats} repeat(s), arms alternate", flush=True)

    tracings = count_tracings(training)
    classes = arms()
    results: dict[str, list[tuple[float, int, int, dict, str]]] = {name: [] for name in classes}
    for repeat in range(1, args.repeats + 1):
        for name, traced_class in classes.items():
            training.TracedModel = traced_class  # what CrossValidated.train_variant builds
            tracings.clear()
            started = time.perf_counter()
            trained = experiment.train_variant(exp_cfg, variant, data, seed=int(cfg.seed))
            seconds = time.perf_counter() - started
            digest = hashlib.sha256(b"".join(w.tobytes() for w in trained.model.get_weights())).hexdigest()
            traced = len({id(function) for function in tracings})
            results[name].append((seconds, len(tracings), traced, trained.metrics, digest))
            print(
                f"  repeat {repeat} {name:13s}: {seconds:6.1f} s, {len(tracings)} fits, {traced} traced",
                flush=True,
            )

    base = statistics.median(r[0] for r in results["model per fit"])
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        print(
            f"{name:13s}: {seconds:6.1f} s (median of {len(runs)}), {runs[0][1]} fits, "
            f"{runs[0][2]} traced, speed-up {base / seconds:.2f}x"
        )
    outcomes = {(r[4], tuple(sorted(r[3].items()))) for runs in results.values() for r in runs}
    same = len(outcomes) == 1
    print(f"same scores and final weights in every run: {'yes' if same else 'NO'}")
    command = f"PYTHONPATH=src python bench/traced_folds.py {' '.join(argv or sys.argv[1:])}".rstrip()
    print(f"command: {command}  (load average {os.getloadavg()[0]:.2f})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
