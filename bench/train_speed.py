"""Training speed: the seed's plain ``model.fit`` against the pipeline's fit loop, one process.

    PIPELINE_DATA_MIRROR=../shared/data python bench/train_speed.py [--variant two_outputs] [--seeds 3]

Both train the same wide & deep variant on the real California-housing split, same epochs and
batch size, once per seed. Baseline: NumPy arrays straight into ``fit`` with
``steps_per_execution=1``, as the seed note does. Pipeline: the in-memory ``tf.data`` path with
prefetch and ``steps_per_execution`` from the config. Runs alternate (plain, pipeline, plain, ...)
so drift in machine load hits both. Reported: median samples/s of each and their ratio, and the
mean final validation RMSE of each over the seeds (the two shuffle the same way but not with the
same random stream, so single runs differ by seed noise; the means must agree).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pipeline.config import experiment_config, load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="two_outputs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the experiment's (20)")
    args = parser.parse_args()

    from pipeline.data.sources import get_source
    from pipeline.data.splits import SPLITTERS
    from pipeline.experiments import get_experiment

    cfg = load(["experiment=wide_deep"])
    exp_cfg = experiment_config(cfg)
    if args.epochs:
        exp_cfg.train.epochs = args.epochs
    spec = cfg.datasets[exp_cfg.dataset]
    raw, _ = get_source(spec.source).load()
    data = SPLITTERS[spec.source](raw, spec.split)
    experiment = get_experiment(cfg.experiment)

    plain_cfg = exp_cfg.copy()
    plain_cfg.train.steps_per_execution = 1
    runs: dict[str, list] = {"plain fit": [], "pipeline": []}
    for seed in range(int(cfg.seed), int(cfg.seed) + args.seeds):
        for label, run_cfg, fast in (("plain fit", plain_cfg, False), ("pipeline", exp_cfg, True)):
            trained = experiment.train_variant(run_cfg, args.variant, data, seed=seed, fast=fast)
            rmse = experiment.score(run_cfg, args.variant, trained.model, data, "valid")["rmse"]
            runs[label].append((trained.fit.samples_per_second, rmse, trained.fit.seconds))
            print(
                f"  seed {seed} {label:9s}: {trained.fit.samples_per_second:9.0f} samples/s, "
                f"{trained.fit.seconds:5.1f} s, val RMSE {rmse:.4f}",
                flush=True,
            )

    print(
        f"\nwide & deep / {args.variant}, {exp_cfg.train.epochs} epochs, batch "
        f"{exp_cfg.train.batch_size}, {len(data['y_train'])} training samples, "
        f"{args.seeds} seeds each"
    )
    medians = {}
    for label, rows in runs.items():
        speed = statistics.median(r[0] for r in rows)
        rmse = statistics.mean(r[1] for r in rows)
        spread = statistics.stdev(r[1] for r in rows) if len(rows) > 1 else 0.0
        medians[label] = (speed, rmse)
        print(
            f"{label:10s} {speed:9.0f} samples/s (median)   final val RMSE {rmse:.4f} "
            f"± {spread:.4f} (mean ± std)"
        )
    ratio = medians["pipeline"][0] / medians["plain fit"][0]
    gap = abs(medians["pipeline"][1] - medians["plain fit"][1])
    print(f"speed-up {ratio:.2f}x   |difference of mean val RMSE| {gap:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
