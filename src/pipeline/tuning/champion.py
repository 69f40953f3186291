"""The search's result as a model people can load: the best trial retrained, logged on the
parent run and registered as a new version of ``<experiment>``, which becomes
``models:/<experiment>@champion`` only if it beats the current champion on validation (else
``@challenger``).

Retraining (rather than logging every trial's model) stores one model per search instead of
one per trial; training is seeded and deterministic, so the retrained model scores what the
trial scored (the parent run logs both, ``champion_*`` metrics beside ``best_value``).
"""

from __future__ import annotations

import math
from typing import Any

from pipeline import cli
from pipeline.tuning.objective import Context
from pipeline.tuning.space import suggest


def register_champion(context: Context, trial) -> dict[str, Any]:
    """Retrain ``trial``'s config, log its model on the active run, register it and promote it
    if it is better; {name, version, alias, uri, previous, scores}."""
    import keras
    import mlflow
    import optuna

    from pipeline import tracking

    settings = context.settings
    keras.backend.clear_session()
    trained, run_cfg, scores = context.train(
        suggest(optuna.trial.FixedTrial(trial.params), context.exp_cfg, context.variant)
    )
    tracking.log_metrics({f"champion_{k}": v for k, v in scores.items()})
    retrained = float(scores.get(settings["metric"], math.nan))
    if not math.isclose(retrained, trial.values[0], rel_tol=1e-4, abs_tol=1e-6):
        cli.progress(
            f"note: the retrained champion scores {settings['metric']} {retrained:.5g}, "
            f"trial {trial.number} scored {trial.values[0]:.5g} (non-deterministic ops?)"
        )
    logged = tracking.log_servable(
        context.experiment.servable(run_cfg, context.variant, trained.model, context.data)
    )
    tracking.log_metrics(scores, model_id=logged.model_id)
    name = context.cfg.experiment
    registered = tracking.register_and_promote(
        logged.model_uri,
        name,
        metric=settings["metric"],
        value=retrained,
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
            f"{retrained:.5g}) does not beat champion version {previous['version']} "
            f"({previous['metric']} {previous['value']:.5g}): registered as @challenger"
        )
    return {**registered, "scores": scores}
