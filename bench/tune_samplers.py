"""Which sampler earns a small budget: one experiment's tune stage, same budget, several samplers
and sampler seeds, the best validation value of each.

    PIPELINE_DATA_MIRROR=../shared/data python bench/tune_samplers.py --experiment wide_deep
        [--samplers random,tpe_budget] [--seeds 3] [--n-trials N] [--keep DIR] [overrides ...]

Each arm is the real tune stage (``pipeline.tune.main``: experiment=<name>, the experiment's
budget and pruner, tune.register=false) in a fresh study and a throw-away MLflow store, run in a
process of its own, one arm after the other. The arm sets ``tune.sampler`` and seeds that
sampler with the arm's sampler seed (``tuning.study.make_sampler``); the training seed, data,
space and pruner stay the experiment's. Every arm's first trial is the
configured model (the stage's warm start), so the samplers differ from trial 1 on.

Samplers (tune.sampler, Optuna 5):
  tpe_budget  the default: TPESampler(multivariate=True, n_startup_trials=max(1, budget // 4)):
              a quarter of the budget random (the warm start counts), then the joint model
  tpe         TPESampler(): 10 random start-up trials, so a budget of 12 is random search but
              for its last 2 trials, one of 3-4 entirely
  random      RandomSampler: the baseline
  qmc         QMCSampler (scrambled Sobol): space-filling points instead of random ones

GPSampler is not among them: it needs PyTorch, which is not in the pinned stack.

Printed: per arm the best value and its trial; per sampler the median best over the seeds;
then whether each sampler's median beats random search's (the issue's bar, #16 item 6).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tune_arm  # noqa: E402


def run_arm_here(seed: int, stage_args: list[str]) -> int:
    """In the arm's own process: the tune stage, its sampler (tune.sampler) seeded with the
    arm's sampler seed instead of the stage's."""
    from pipeline import tune
    from pipeline.tuning import study

    stage_sampler = study.make_sampler

    def arm_sampler(name: str, _stage_seed: int, n_trials: int, parallel: bool):
        return stage_sampler(name, seed, n_trials, parallel)

    study.make_sampler = arm_sampler  # open_study and tune.resume look it up at call time
    return tune.main(stage_args)


def run_arm(experiment: str, sampler: str, seed: int, n_trials: int, folder: Path, extra: list[str]) -> dict:
    # one worker: the sampler's seed is replaced in this process only
    args = tune_arm.stage_args(
        experiment, n_trials, folder, f"tune.sampler={sampler}", "tune.n_workers=1", *extra
    )
    command = [sys.executable, __file__, "--arm", str(seed), "--", *args]
    seconds, study, summary = tune_arm.run(f"{sampler} seed {seed}", command, experiment, folder)
    values = [t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return {
        "sampler": sampler,
        "seed": seed,
        "seconds": seconds,
        "best_value": summary["best_value"],
        "best_trial": summary["best_trial"],
        "complete": len(values),
        "trials": len(study.trials),
    }


def beats(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="wide_deep")
    parser.add_argument("--samplers", default="random,tpe_budget", help="comma-separated, random first")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds per sampler (0, 1, ...)")
    parser.add_argument("--n-trials", type=int, default=None, help="default: the experiment's budget")
    parser.add_argument("--keep", type=Path, default=None, help="keep studies and logs here")
    parser.add_argument("--arm", type=int, default=None, help=argparse.SUPPRESS)  # the sampler seed
    parser.add_argument("overrides", nargs="*", help="config overrides for every arm")
    args = parser.parse_args()
    if args.arm is not None:
        return run_arm_here(args.arm, args.overrides)

    from pipeline.config import experiment_config, load
    from pipeline.errors import ConfigError
    from pipeline.tuning.study import make_sampler

    cfg = load([f"experiment={args.experiment}", *args.overrides])
    tune_cfg = experiment_config(cfg).tune
    n_trials = args.n_trials or int(tune_cfg.n_trials)
    direction, metric = str(tune_cfg.direction), str(tune_cfg.metric)
    samplers = args.samplers.split(",")
    for name in samplers:  # an unknown name stops here, before any training
        try:
            make_sampler(name, 0, n_trials, False)
        except ConfigError as error:
            raise SystemExit(str(error)) from None
    base = args.keep or Path(tempfile.mkdtemp(prefix="tune-samplers-"))
    print(
        f"{args.experiment}: {n_trials} trials per arm, {metric} ({direction}), pruner "
        f"{cfg.tune.pruner or tune_cfg.pruner}, training seed {cfg.seed}; studies in {base}",
        flush=True,
    )
    arms: list[dict] = []
    for seed in range(args.seeds):  # seeds outer: a drifting machine load touches every sampler alike
        for name in samplers:
            folder = base / f"{name}-{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            arm = run_arm(args.experiment, name, seed, n_trials, folder, args.overrides)
            arms.append(arm)
            print(
                f"  {name:10s} seed {seed}: best {arm['best_value']:.4f} (trial {arm['best_trial']}), "
                f"{arm['complete']}/{arm['trials']} complete, {arm['seconds']:.0f} s",
                flush=True,
            )

    medians = {
        name: statistics.median(a["best_value"] for a in arms if a["sampler"] == name) for name in samplers
    }
    print(f"\n| sampler | best {metric} per sampler seed | median | median beats random |")
    print("|---|---|---|---|")
    for name in samplers:
        bests = ", ".join(f"{a['best_value']:.4f}" for a in arms if a["sampler"] == name)
        verdict = (
            "–"
            if name == "random" or "random" not in medians
            else ("yes" if beats(medians[name], medians["random"], direction) else "no")
        )
        print(f"| {name} | {bests} | {medians[name]:.4f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
