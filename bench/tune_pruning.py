"""What pruning buys: one study budget run twice, with the configured pruner and with none.

    PIPELINE_DATA_MIRROR=../shared/data python bench/tune_pruning.py [--experiment wide_deep]
        [--n-trials 12] [--pruner <name>] [--keep DIR]

Each arm is the real tune stage, ``python -m pipeline.tune experiment=<name>
tune.n_trials=N tune.pruner=<pruner|none> tune.register=false`` in a fresh study (same sampler
seed, same search space, same data), tracked in a throw-away MLflow store. TPE's first trials
are random draws from the seed, so both arms start with the same configurations; the pruned arm
stops the unpromising ones early, and from there the two searches may diverge.

Reported per arm: epochs trained over all trials (a pruned trial counts the epochs it ran, a
completed one its own, early-stopped or not), wall time of the whole invocation, trial states,
the best validation value and the best trial's test score; then pruned/unpruned ratios.
The bar this was written for: pruning trains >= 40 % fewer epochs with a best value within 1 %.
Arms run one after the other (never at the same time), pruned first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tune_arm  # noqa: E402

from pipeline.config import experiment_config, load  # noqa: E402


def trial_epochs(trial) -> int:
    """Epochs a finished trial trained: its own count if it completed, else the epochs it
    reported to the pruner before it was stopped."""
    if "epochs" in trial.user_attrs:
        return int(trial.user_attrs["epochs"])
    return len(trial.intermediate_values)


def run_arm(experiment: str, pruner: str, n_trials: int, folder: Path, extra: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "pipeline.tune",
        *tune_arm.stage_args(experiment, n_trials, folder, f"tune.pruner={pruner}", *extra),
    ]
    print(f"[{pruner}] {' '.join(command[1:])}", flush=True)
    seconds, study, summary = tune_arm.run(pruner, command, experiment, folder)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return {
        "pruner": pruner,
        "seconds": seconds,
        "epochs": sum(trial_epochs(t) for t in trials),
        "per_trial": [(t.number, t.state.name, trial_epochs(t), t.value) for t in trials],
        "states": states,
        "best_value": summary["best_value"],
        "best_trial": summary["best_trial"],
        "best_test": summary["best_test"],
        "best_params": summary["best_params"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="wide_deep")
    parser.add_argument("--n-trials", type=int, default=None, help="default: the experiment's budget")
    parser.add_argument("--pruner", default=None, help="default: the experiment's pruner")
    parser.add_argument("--keep", type=Path, default=None, help="keep studies and logs here")
    parser.add_argument("overrides", nargs="*", help="config overrides for both arms")
    args = parser.parse_args()

    cfg = load([f"experiment={args.experiment}", *args.overrides])
    tune_cfg = experiment_config(cfg).tune
    n_trials = args.n_trials or int(tune_cfg.n_trials)
    pruner = args.pruner or cfg.tune.pruner or tune_cfg.pruner
    if pruner == "none":
        raise SystemExit("--pruner none leaves nothing to compare; name a pruner")
    base = args.keep or Path(tempfile.mkdtemp(prefix="tune-pruning-"))
    arms = {}
    for name in (pruner, "none"):
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        arms[name] = run_arm(args.experiment, name, n_trials, folder, args.overrides)
        arm = arms[name]
        for number, state, epochs, value in arm["per_trial"]:
            # a pruned trial's value is the last intermediate one (the monitored val_loss)
            shown = (
                "-"
                if value is None
                else (f"{value:.4f}" if state == "COMPLETE" else f"(monitor at the stop {value:.4f})")
            )
            print(f"  [{name}] trial {number:2d} {state:8s} {epochs:4d} epochs  value {shown}")
        print(
            f"  [{name}] {arm['epochs']} epochs, {arm['seconds']:.0f} s, {arm['states']}, best "
            f"{arm['best_value']:.4f} (trial {arm['best_trial']}), test {arm['best_test']}",
            flush=True,
        )

    metric, direction = str(tune_cfg.metric), str(tune_cfg.direction)
    pruned, full = arms[pruner], arms["none"]
    print(
        f"\n{args.experiment}: {n_trials} trials per arm, metric {metric} ({direction}), "
        f"sampler seed {cfg.seed}"
    )
    print(f"{'pruner':20s} {'epochs':>7s} {'wall s':>8s} {'best':>8s}  best trial's test")
    for arm in (pruned, full):
        test = ", ".join(f"{k} {v:.4f}" for k, v in arm["best_test"].items())
        print(
            f"{arm['pruner']:20s} {arm['epochs']:7d} {arm['seconds']:8.0f} {arm['best_value']:8.4f}  {test}"
        )
    epoch_ratio = pruned["epochs"] / full["epochs"]
    time_ratio = pruned["seconds"] / full["seconds"]
    # relative change of the best value, signed so that > 0 means pruning found a worse one
    worse = (pruned["best_value"] - full["best_value"]) / abs(full["best_value"])
    if direction == "maximize":
        worse = -worse
    print(
        f"pruned / unpruned: epochs {epoch_ratio:.2f} ({1 - epoch_ratio:.0%} fewer), wall time "
        f"{time_ratio:.2f}, best value {worse:+.2%} ({'worse' if worse > 0 else 'no worse'})"
    )
    met = epoch_ratio <= 0.60 and worse <= 0.01
    print(f"bar (>= 40 % fewer epochs, best within 1 %): {'met' if met else 'NOT met'}")
    print(f"studies and logs: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
