"""Which sampler earns a small budget: one experiment's tune stage, same budget, several samplers
and sampler seeds, the best validation value of each.

    PIPELINE_DATA_MIRROR=../shared/data python bench/tune_samplers.py --experiment wide_deep
        [--samplers random,tpe_budget] [--seeds 3] [--n-trials N] [--keep DIR] [overrides ...]

Each arm is the real tune stage (``pipeline.tune.main``: experiment=<name>, the experiment's
budget and pruner, tune.register=false) in a fresh study and a throw-away MLflow store, run in a
process of its own, one arm after the other. The arm replaces the stage's sampler
(``tuning.study.make_sampler``) by one of SAMPLERS, seeded with the arm's sampler seed; the
training seed, data, space and pruner stay the experiment's. Every arm's first trial is the
configured model (the stage's warm start), so the samplers differ from trial 1 on.

Samplers (Optuna 5):
  random      RandomSampler: the baseline
  tpe         TPESampler() as the tune stage builds it today: 10 random start-up trials, so a
              budget of 12 is random search but for its last 2 trials, one of 3-4 entirely
  tpe_budget  TPESampler(multivariate=True, n_startup_trials=max(1, budget // 4)): a quarter of
              the budget random (the warm start counts), then the joint model of the space
  qmc         QMCSampler (scrambled Sobol): space-filling points instead of random ones

GPSampler is not among them: it needs PyTorch, which is not in the pinned stack.

Printed: per arm the best value and its trial; per sampler the median best over the seeds;
then whether each sampler's median beats random search's (the issue's bar, #16 item 6).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make(name: str, seed: int, n_trials: int, parallel: bool):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    if name == "tpe_budget":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            n_startup_trials=max(1, n_trials // 4),
            constant_liar=parallel,
        )
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    raise SystemExit(f"unknown sampler {name!r}; valid: random, tpe, tpe_budget, qmc")


def run_arm_here(sampler: str, seed: int, n_trials: int, stage_args: list[str]) -> int:
    """In the arm's own process: the tune stage with its sampler replaced."""
    import warnings

    from pipeline import tune
    from pipeline.tuning import study

    def arm_sampler(_stage_seed: int, parallel: bool):
        with warnings.catch_warnings():  # multivariate TPE and QMC are "experimental" in Optuna
            warnings.simplefilter("ignore")
            return make(sampler, seed, n_trials, parallel)

    study.make_sampler = arm_sampler  # open_study and tune.resume look it up at call time
    return tune.main(stage_args)


def run_arm(experiment: str, sampler: str, seed: int, n_trials: int, folder: Path, extra: list[str]) -> dict:
    import optuna

    from pipeline.tune import make_storage

    study_dir = folder / "studies"
    stage_args = [
        f"experiment={experiment}",
        f"tune.n_trials={n_trials}",
        f"tune.dir={study_dir}",
        f"mlflow.artifact_root={folder / 'artifacts'}",
        "tune.register=false",
        "tune.n_workers=1",  # the sampler is replaced in this process only
        *extra,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
    }
    command = [sys.executable, __file__, "--arm", f"{sampler}:{seed}:{n_trials}", "--", *stage_args]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seconds = time.perf_counter() - started
    (folder / "tune.log").write_text(result.stdout)
    if result.returncode != 0:
        print(result.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"[{sampler} seed {seed}] pipeline.tune failed with exit code {result.returncode}")
    loaded = optuna.load_study(study_name=experiment, storage=make_storage(None, study_dir / experiment))
    summary = json.loads((study_dir / experiment / "best_params.json").read_text())
    values = [t.value for t in loaded.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return {
        "sampler": sampler,
        "seed": seed,
        "seconds": seconds,
        "best_value": summary["best_value"],
        "best_trial": summary["best_trial"],
        "complete": len(values),
        "trials": len(loaded.trials),
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
    parser.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # sampler:seed:n_trials
    parser.add_argument("overrides", nargs="*", help="config overrides for every arm")
    args = parser.parse_args()
    if args.arm:
        sampler, seed, n_trials = args.arm.split(":")
        return run_arm_here(sampler, int(seed), int(n_trials), args.overrides)

    from pipeline.config import experiment_config, load

    cfg = load([f"experiment={args.experiment}", *args.overrides])
    tune_cfg = experiment_config(cfg).tune
    n_trials = args.n_trials or int(tune_cfg.n_trials)
    direction, metric = str(tune_cfg.direction), str(tune_cfg.metric)
    samplers = args.samplers.split(",")
    for name in samplers:
        make(name, 0, n_trials, False)  # an unknown name stops here, before any training
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
