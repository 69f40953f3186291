"""The search's result as a model people can load: the best trial's model, logged on the
parent run and registered as a new version of ``<experiment>``, which becomes
``models:/<experiment>@champion`` only if it beats the current champion on validation (else
``@challenger``).

The model is the one the trial trained, saved to a temporary file by the process that ran it
(one model per search is logged, not one per trial), so the study ends without training
anything again. Only when the best trial ran in an earlier invocation of a resumed study (or
in another machine's) is its config retrained: training is seeded and deterministic,
so the retrained model scores what the trial scored (the parent run logs both, ``champion_*``
metrics beside ``best_value``, and a note is printed if they differ).
"""

from __future__ import annotations

import math
from typing import Any

from pipeline import cli
from pipeline.tuning.objective import Context, Kept
from pipeline.tuning.space import suggest


def register_champion(context: Context, trial, kept: Kept | None = None) -> dict[str, Any]:
    """Log ``trial``'s model on the active run (``kept``'s if it is that trial, else retrained),
    register it and promote it if it is better; {name, version, alias, uri, previous, scores}."""
    import mlflow

    from pipeline import tracking

    settings = context.settings
    if kept is not None and kept.number == trial.number:
        model, run_cfg, scores = kept.load_model(), kept.run_cfg, kept.scores
        mlflow.set_tag("champion.retrained", "false")
    else:
        trained, run_cfg, scores = retrain(context, trial)
        model = trained.model
        mlflow.set_tag("champion.retrained", "true")
    tracking.log_metrics({f"champion_{k}": v for k, v in scores.items()})
    value = float(scores.get(settings["metric"], math.nan))
    logged = tracking.log_servable(
        context.stage.experiment.servable(run_cfg, context.variant, model, context.stage.data)
    )
    tracking.log_metrics(scores, model_id=logged.model_id)
    name = context.stage.name
    registered = tracking.register_and_promote(
        logged.model_uri,
        name,
        metric=settings["metric"],
        value=value,
        direction=settings["direction"],
        tags={
            **context.tags,
            "optuna.trial": trial.number,
            "variant": context.variant,
            **{k: v for k, v in tracking.numeric(scores).items() if k.startswith(("test_", "val_"))},
        },
    )
    mlflow.set_tags(
        {
            "registered.model": f"models:/{name}/{registered['version']}",
            "registered.alias": registered["alias"],
            "champion.trial": str(trial.number),
        }
    )
    if registered["alias"] != tracking.CHAMPION:
        previous = registered["previous"]
        cli.progress(
            f"tune {name}: version {registered['version']} ({settings['metric']} "
            f"{value:.5g}) does not beat champion version {previous['version']} "
            f"({previous['metric']} {previous['value']:.5g}): registered as @challenger"
        )
    return {**registered, "scores": scores}


def retrain(context: Context, trial):
    """``trial``'s config trained again (a trial that ran in another process); (trained,
    resolved config, scores), with a note if it does not score what the trial scored."""
    import keras
    import optuna

    keras.backend.clear_session()
    trained, run_cfg, scores = context.train(
        suggest(optuna.trial.FixedTrial(trial.params), context.stage.exp_cfg, context.variant)
    )
    metric = context.settings["metric"]
    value = float(scores.get(metric, math.nan))
    if not math.isclose(value, trial.values[0], rel_tol=1e-4, abs_tol=1e-6):
        cli.progress(
            f"note: the retrained champion scores {metric} {value:.5g}, "
            f"trial {trial.number} scored {trial.values[0]:.5g} (non-deterministic ops?)"
        )
    return trained, run_cfg, scores
