"""Training speed: the seed's plain ``model.fit`` against the pipeline's fit loop, one process.

    PIPELINE_DATA_MIRROR=../shared/data python bench/train_speed.py [--variant two_outputs] [--repeats 2]

Both train the same wide & deep variant on the real California-housing split (prepared on the
fly if data/ is empty), same seed, same epochs and batch size. Baseline: NumPy arrays straight
into ``fit`` with ``steps_per_execution=1``. Pipeline: in-memory ``tf.data`` with prefetch and
``steps_per_execution`` from the config. Runs alternate (plain, fast, plain, fast ...) so drift in
machine load hits both; the median of each is reported, as samples/s and their ratio, with the
final validation RMSE of each.
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
    parser.add_argument("--repeats", type=int, default=2)
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
    experiment = get_experiment(exp_cfg.family)

    plain_cfg = exp_cfg.copy()
    plain_cfg.train.steps_per_execution = 1
    runs: dict[str, list] = {"plain fit": [], "pipeline": []}
    for repeat in range(args.repeats):
        for label, run_cfg, fast in (("plain fit", plain_cfg, False), ("pipeline", exp_cfg, True)):
            trained = experiment.train_variant(run_cfg, args.variant, data, seed=int(cfg.seed), fast=fast)
            rmse = experiment.score(run_cfg, args.variant, trained.model, data, "valid")["rmse"]
            runs[label].append((trained.fit.samples_per_second, rmse, trained.fit.seconds))
            print(f"  run {repeat + 1} {label:9s}: {trained.fit.samples_per_second:9.0f} samples/s, "
                  f"{trained.fit.seconds:5.1f} s, val RMSE {rmse:.4f}", flush=True)

    print(f"\nwide & deep / {args.variant}, {exp_cfg.train.epochs} epochs, batch "
          f"{exp_cfg.train.batch_size}, {len(data['y_train'])} training samples, "
          f"median of {args.repeats} runs each")
    medians = {}
    for label, rows in runs.items():
        speed = statistics.median(r[0] for r in rows)
        rmse = statistics.median(r[1] for r in rows)
        medians[label] = (speed, rmse)
        print(f"{label:10s} {speed:9.0f} samples/s   final val RMSE {rmse:.4f}")
    ratio = medians["pipeline"][0] / medians["plain fit"][0]
    gap = abs(medians["pipeline"][1] - medians["plain fit"][1])
    print(f"speed-up {ratio:.2f}x   |val RMSE difference| {gap:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
