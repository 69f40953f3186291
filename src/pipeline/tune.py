"""Hyperparameter search with Optuna: resumable, parallel, crash-safe, tracked in MLflow.

    python -m pipeline.tune experiment=<name> [tune.n_trials=N] [tune.timeout=S]
        [tune.n_workers=K] [tune.storage=URL] [tune.pruner=median|successive_halving|hyperband|none]
        [tune.sampler=tpe_budget|tpe|random|qmc]
        [tune.objectives=[val_rmse,n_params] tune.directions=[minimize,minimize]]
        [tune.register=true|false] [tune.dir=studies] [tune.study_name=NAME]

The search space is the experiment's ``tune.space`` (conf/tune/<experiment>.yaml). The study
lives in persistent storage (a journal file <dir>/<experiment>/study.journal, or an RDB URL
such as postgresql://... for invocations on several machines sharing one study), so running the
same command again resumes it: exactly N more trials. They run in batches of one per core,
asked from the seeded sampler, trained side by side in K worker processes (tune.n_workers,
default one per core) and told in trial order (pipeline.tuning.batches): the same study with
1 worker or 2. A worker killed mid-trial leaves every finished trial; its trials are failed
(with a reason) and retried once by the next invocation. A trial whose loss diverges or whose
model cannot be built is FAILED with its reason and the study goes on. Ctrl-C stops the
trials at their next batch, keeps the finished ones, ends the MLflow run KILLED and exits 130.
The storage is checked before any work: an RDB
server that does not answer or refuses the login, or a journal line that is not a record, stops
the run with one line (no password in it) and exit 1; a journal whose last line a crash cut
short has that line moved to study.journal.torn and resumes with every complete trial.

One MLflow parent run per invocation (the study's plots as PNGs, best_params.json) with one
child run per trial. A new study's first trial is the configured (untuned) model. The best
trial's model (by the first objective; saved when the trial ran, retrained only if it ran in
an earlier invocation) is logged on the parent run and registered as a new version of the model
<experiment>: it becomes ``models:/<experiment>@champion`` if it beats the
current champion on validation, else ``@challenger`` (unless tune.register=false). The best
parameters, with the best trial's test-set score (never used for selection) and, for several
objectives, the Pareto front, are written to <dir>/<experiment>/best_params.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline import cli
from pipeline.config import experiment_config, load

# the names the tests and other stages import from here
from pipeline.tuning.space import search_space, suggest  # noqa: F401
from pipeline.tuning.batches import batch_size
from pipeline.tuning.study import PRUNERS, SAMPLERS, make_pruner, make_storage, settings_of  # noqa: F401


def main(args: list[str]) -> int:
    cfg = load(args)
    settings = settings_of(cfg)
    search_space(OmegaConf.to_container(experiment_config(cfg).tune.space))  # fail fast
    return run_search(cfg, settings)


def open_study(cfg: DictConfig, settings: dict, *, seed: int, parallel: bool):
    from pipeline.tuning import study

    storage = make_storage(settings["storage"], study_dir(cfg, settings))
    pruner = make_pruner(settings["pruner"], int(experiment_config(cfg).train.epochs))
    return study.open_study(settings, storage, pruner=pruner, seed=seed, parallel=parallel)


def study_dir(cfg: DictConfig, settings: dict) -> Path:
    from pipeline import layout

    return layout.study_dir(cfg.experiment, settings["dir"])


def best_params_file(cfg: DictConfig, settings: dict) -> Path:
    from pipeline import layout

    return layout.best_params(cfg.experiment, settings["dir"])


def run_search(cfg: DictConfig, settings: dict) -> int:
    from pipeline import tracking
    from pipeline.io import write_json
    from pipeline.tuning import recovery
    from pipeline.tuning.objective import Context
    from pipeline.tuning.study import quiet_optuna

    check_study_storage(cfg, settings)  # before anything is written or TensorFlow loaded
    quiet_optuna()
    context = Context.load(cfg, settings)  # the tracking server is checked first
    parallel = batch_size(settings, context.stage.experiment) > 1
    study = open_study(cfg, settings, seed=int(cfg.seed), parallel=parallel)
    resume(study, context)
    with tracking.run(
        f"tune-{study.study_name}",
        experiment_id=context.stage.experiment_id,
        tags={**context.tags, **recovery.process_tags()},
    ) as parent:
        tracking.log_params({f"tune.{k}": v for k, v in loggable(settings).items()})
        try:
            failed_workers, kept = run_trials(study, context, parent.info.run_id)
        finally:
            recover(study, context, mine=True)  # a worker SIGKILLed just now, a Ctrl-C
        summary = finish(context, study, settings, kept)
        write_json(best_params_file(cfg, settings), summary)
    print_result(cfg, study, settings, summary)
    if failed_workers:
        cli.progress(
            f"tune {cfg.experiment}: a worker process died (above); finished "
            "trials are kept, run the command again for the missing ones"
        )
        return 1
    return 0


def check_study_storage(cfg: DictConfig, settings: dict) -> None:
    """An RDB that cannot be used, or a journal that cannot be read, stops here (one line)."""
    from pipeline.tuning.study import check_storage

    # workers skip it: their parent checked it
    repaired = check_storage(settings["storage"], study_dir(cfg, settings))
    if repaired:
        cli.progress(f"tune {cfg.experiment}: {repaired}")


def resume(study, context) -> None:
    """Recover what a killed invocation left, warm-start a new study, seed the sampler."""
    from pipeline.tuning.study import make_sampler

    settings = context.settings
    recover(study, context)  # what a killed earlier invocation left RUNNING
    already = len(study.trials)
    if not already:
        warm_start(study, context)
    # another seed per invocation: a resumed study must not re-sample the first one's points
    seed = context.stage.seed + already
    size = batch_size(settings, context.stage.experiment)
    study.sampler = make_sampler(settings["sampler"], seed, settings["n_trials"], parallel=size > 1)
    cli.progress(
        f"tune {context.stage.name}: study {study.study_name!r} has {already} trials; "
        f"running {settings['n_trials']} more (pruner {settings['pruner']}, "
        f"{size} at a time)"
    )


def print_result(cfg: DictConfig, study, settings: dict, summary: dict) -> None:
    from pipeline.tuning import report

    cli.progress(report.table(study, settings))
    cli.progress(
        f"tune {cfg.experiment}: best {settings['metric']} {summary['best_value']:.4f} "
        f"(trial {summary['best_trial']}), test {summary['best_test']}; "
        f"wrote {best_params_file(cfg, settings)}"
        + (
            f"; registered version {summary['champion']['version']} as {summary['champion']['uri']}"
            if "champion" in summary
            else ""
        )
    )


def warm_start(study, context) -> None:
    """A new study's first trial is the configured (untuned) model, so the search's best can
    never be worse than what the train stage trained with the same settings."""
    from pipeline.tuning.space import configured_point

    point, outside = configured_point(context.stage.exp_cfg, context.variant)
    study.enqueue_trial(point, user_attrs={"warm_start": "configured"}, skip_if_exists=True)
    cli.progress(
        f"tune {context.stage.name}: trial 0 is the configured model"
        + (f" (sampled for {', '.join(outside)}: outside the space)" if outside else "")
    )


def loggable(settings: dict) -> dict:
    """The settings as MLflow params, without the password of an RDB storage URL."""
    from pipeline.tuning.study import is_rdb, masked

    storage = settings.get("storage")
    return {**settings, "storage": masked(storage) if is_rdb(storage) else storage}


def recover(study, context, mine: bool = False) -> None:
    """Fail (with a reason) and queue again the trials of dead workers; close their runs."""
    from pipeline.tuning import recovery

    for number, reason in recovery.recover_stale_trials(study, mine=mine):
        cli.progress(f"tune {context.stage.name}: trial #{number} failed: {reason}; queued again")
    recovery.close_orphan_runs(context.stage.experiment_id)


def run_trials(study, context, parent_run_id: str):
    """N trials in batches (pipeline.tuning.batches); (1 if a worker process died else 0,
    the best complete trial with its model, or None)."""
    import tempfile

    import mlflow

    from pipeline.tuning import batches

    settings = context.settings
    progress = batches.Progress(study, settings, parent_run_id, settings["n_trials"])
    with tempfile.TemporaryDirectory(prefix="pipeline-trials-") as model_dir:
        search = batches.Search(study, context, parent_run_id, Path(model_dir))
        try:
            failed = batches.run_batches(search, progress)
        finally:
            progress.close()
        if failed:
            mlflow.set_tag("tune.failed_workers", str(failed))
        if search.kept is not None:
            search.kept.load_model()  # into memory: the folder goes when this returns
        return failed, search.kept


def finish(context, study, settings: dict, kept=None) -> dict:
    """Summary, plots and champion on the parent run (the active run); ``kept``: the best
    trial run in this process, whose model the champion is if it is the study's best."""
    import mlflow

    from pipeline import tracking
    from pipeline.tuning import report
    from pipeline.tuning.champion import register_champion

    summary = report.summarize(study, settings)
    tracking.log_metrics({"best_value": summary["best_value"], **summary["best_test"]})
    for plot, why in report.log_plots(study, settings).items():
        cli.progress(f"tune {context.stage.name}: plot {plot} skipped: {why}")
    if settings["register"]:
        champion = register_champion(context, report.champion_trial(study, settings), kept)
        summary["champion"] = {k: v for k, v in champion.items() if k != "scores"}
    mlflow.log_dict(summary, "best_params.json")
    return summary


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
