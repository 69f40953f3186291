"""Running the trials: batches asked from the seeded sampler, trained side by side, told in order.

A batch is as many trials as the machine has cores (``batch_size``). This process asks them
from the study and draws their parameters (the sampler runs here only, seeded); the trials of a
full batch train side by side in ``pipeline.pool``'s worker processes, one core each, and an
odd last trial trains here with every core. Only when the whole batch has ended are its trials
told, in trial order. So the sampler of the next batch, and the pruner of a running trial, see
the same finished trials whatever the timing: a median pruner reads only complete trials, which
within a batch are none of its peers. A pruner that compares running trials too (successive
halving, hyperband) gets batches of one, and so does an experiment whose trials reuse what
their process trained (transfer's model_A). The batch size depends on the cores, never on
``tune.n_workers`` (the processes), so 1 worker and 2 give the same study.

A worker saves the model of each complete trial to a temporary file; the best one becomes the
champion without being trained again. A trial that fails or is interrupted is told FAILED with
its reason where it ran. A worker that dies stops the search: what finished is told, and its
trials are failed and queued again by the recovery (``tune.recover``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import cli

#: pruners whose decisions read only finished trials, so that a batch's peers do not change them
BATCH_SAFE_PRUNERS = ("median", "none")


def batch_size(settings: dict, experiment) -> int:
    """Trials per batch: one per core, unless the pruner would compare them while they run or
    the experiment's trials reuse what its process trained (``tune_in_one_process``)."""
    from pipeline.pool import cores

    if experiment.tune_in_one_process or settings["pruner"] not in BATCH_SAFE_PRUNERS:
        return 1
    return cores()


class Progress:
    """tqdm bar over this invocation's finished trials (read from the study); one line per
    failed trial."""

    def __init__(self, study, settings: dict, tune_run: str, total: int) -> None:
        from tqdm import tqdm

        self.study, self.settings, self.tune_run = study, settings, tune_run
        self.seen: set[int] = set()
        self.bar = tqdm(
            total=total,
            desc=f"tune {settings['study_name']}",
            unit="trial",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def refresh(self) -> None:
        trials = [
            t
            for t in self.study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.user_attrs.get("tune_run") == self.tune_run
        ]
        new = [t for t in trials if t.number not in self.seen]
        for trial in new:
            self.seen.add(trial.number)
            if trial.state.name == "FAIL":
                self.bar.write(
                    f"trial #{trial.number} failed: {trial.user_attrs.get('fail_reason', 'unknown reason')}"
                )
        if new:
            self.bar.set_postfix_str(self.best(), refresh=False)
            self.bar.update(len(new))

    def best(self) -> str:
        from pipeline.tuning.study import completed

        done = completed(self.study)
        if not done:
            return "best -"
        if len(self.settings["objectives"]) > 1:
            return f"Pareto front {len(self.study.best_trials)} trials"
        best = self.study.best_trial
        return f"best {self.settings['metric']} {best.value:.4f} (#{best.number})"

    def close(self) -> None:
        self.refresh()
        self.bar.close()


@dataclass
class Outcome:
    """How a trial ended in its worker: COMPLETE (values; its model in ``model_file``, its
    resolved config and scores), PRUNED, or FAIL (already told there, with its reason)."""

    number: int
    state: str
    values: list[float] = field(default_factory=list)
    model_file: str | None = None
    run_cfg: Any = None
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass
class Search:
    """What the batches of one invocation share."""

    study: Any
    context: Any  # objective.Context of this process
    parent_run_id: str
    model_dir: Path  # complete trials' models, until the champion is chosen
    kept: Any = None  # objective.Kept: the best complete trial, its model as a file


def run_batches(search: Search, progress: Progress) -> int:
    """``tune.n_trials`` trials in batches; the number of worker processes that died (0 or 1:
    the pool is unusable after one). Ctrl-C is deferred here (the journal is never written
    half) and passed on to the running trials, which end at their next batch."""
    from pipeline import interrupts, pool
    from pipeline.errors import WorkerDied

    settings, stage = search.context.settings, search.context.stage
    size = batch_size(settings, stage.experiment)
    left, started = settings["n_trials"], time.monotonic()
    with interrupts.deferred(), pool.Workers(stage, pool.waves(settings["n_workers"], size)[0]) as full:
        while left > 0:
            if settings["timeout"] and time.monotonic() - started > settings["timeout"]:
                cli.progress(f"tune {stage.name}: timeout; {left} trial(s) not started")
                break
            trials = ask(search, min(size, left))
            left -= len(trials)
            # a last, smaller batch gets its own share of the cores; full ones reuse the pool
            smaller = len(trials) < size
            with (
                pool.Workers(stage, pool.waves(settings["n_workers"], len(trials))[0])
                if smaller
                else contextlib.nullcontext(full)
            ) as workers:
                try:
                    run_batch(search, trials, workers)
                except WorkerDied as died:
                    cli.progress(f"error: {died}")
                    return 1
                finally:
                    progress.refresh()
            interrupts.check()
    return 0


def ask(search: Search, n: int) -> list:
    """``n`` new trials with their parameters drawn here (the seeded sampler, in trial order)."""
    from pipeline.tuning.recovery import this_process
    from pipeline.tuning.space import suggest

    ctx = search.context
    trials = []
    for _ in range(n):
        trial = search.study.ask()
        # this process holds it until a worker claims it: a crash before then is recovered
        trial.set_user_attr("worker", this_process())
        trial.set_user_attr("tune_run", search.parent_run_id)
        suggest(trial, ctx.stage.exp_cfg, ctx.variant)
        trials.append(trial)
    return trials


def run_batch(search: Search, trials: list, workers) -> None:
    """Train the batch's trials side by side; tell them in trial order once all have ended
    (also when Ctrl-C or a dead worker ends the batch early: nothing finished is lost)."""
    settings = search.context.settings
    model_dir = str(search.model_dir) if settings["register"] else None
    tasks = {
        index: (settings, search.parent_run_id, trial._trial_id, trial.number, model_dir)
        for index, trial in enumerate(trials)
    }
    outcomes: dict[int, Outcome] = {}
    try:
        for index, outcome in workers.run(run_trial, tasks, describe=lambda task: f"trial #{task[3]}"):
            outcomes[index] = outcome
    finally:
        for index in sorted(outcomes):
            tell(search, trials[index], outcomes[index])


def tell(search: Search, trial, outcome: Outcome) -> None:
    import optuna

    from pipeline.tracking import better
    from pipeline.tuning.objective import Kept

    if outcome.state == "COMPLETE":
        values = outcome.values
        search.study.tell(trial, values if len(values) > 1 else values[0])
        kept, direction = search.kept, search.context.settings["directions"][0]
        if outcome.model_file and (kept is None or better(values[0], kept.value, direction)):
            search.kept = Kept(outcome.number, values[0], outcome.model_file, outcome.run_cfg, outcome.scores)
    elif outcome.state == "PRUNED":
        search.study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def run_trial(
    stage, settings: dict, parent_run_id: str, trial_id: int, number: int, model_dir: str | None
) -> Outcome:
    """One trial in a worker (or this process): the objective on the trial the parent asked,
    its model saved to ``model_dir`` if it completes. Pruned and complete trials are told by
    the parent, after the batch; a failed or interrupted one is told FAILED here."""
    import optuna

    from pipeline.tune import open_study
    from pipeline.tuning.objective import Context, Objective, TrialFailed
    from pipeline.tuning.study import quiet_optuna

    quiet_optuna()
    study = open_study(stage.cfg, settings, seed=0, parallel=True)  # its sampler draws nothing
    # another process asked the trial (and drew all its parameters): Optuna's Trial reopens it
    trial = optuna.trial.Trial(study, trial_id)
    objective = Objective(Context(stage, settings), parent_run_id)
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        return Outcome(number, "PRUNED")
    except TrialFailed:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return Outcome(number, "FAIL")
    except BaseException:  # Ctrl-C, a ConfigError: the trial is over and the search stops
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    trained, run_cfg, scores = objective.result
    model_file = None
    if model_dir is not None:
        model_file = str(Path(model_dir) / f"trial-{number}.keras")
        trained.model.save(model_file)
    return Outcome(
        number,
        "COMPLETE",
        list(values) if isinstance(values, list) else [values],
        model_file,
        run_cfg,
        scores,
    )
