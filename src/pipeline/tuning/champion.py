"""The search's result as a model people can load: the champion trial retrained, logged on the
parent run and registered as ``models:/<experiment>@champion``.

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

ALIAS = "champion"


def register_champion(context: Context, trial) -> dict[str, Any]:
    """Retrain ``trial``'s config, log the model on the active run, register it under the
    experiment's name with the alias ``champion``; {name, version, uri, scores}."""
    import keras
    import mlflow
    import optuna

    from pipeline import tracking

    settings = context.settings
    keras.backend.clear_session()
    trained, run_cfg, scores = context.train(suggest(optuna.trial.FixedTrial(trial.params),
                                                     context.exp_cfg))
    tracking.log_metrics({f"champion_{k}": v for k, v in scores.items()})
    retrained = float(scores.get(settings["metric"], math.nan))
    if not math.isclose(retrained, trial.values[0], rel_tol=1e-4, abs_tol=1e-6):
        cli.progress(f"note: the retrained champion scores {settings['metric']} {retrained:.5g}, "
                     f"trial {trial.number} scored {trial.values[0]:.5g} (non-deterministic ops?)")
    uri = tracking.log_keras_model(
        trained.model, context.experiment.input_example(run_cfg, context.variant, context.data))
    name = context.cfg.experiment
    version = tracking.register_model(uri, name, alias=ALIAS, tags={
        "optuna.study": settings["study_name"], "optuna.trial": trial.number,
        "variant": context.variant, settings["metric"]: retrained})
    mlflow.set_tags({"champion.model": f"models:/{name}/{version.version}",
                     "champion.trial": str(trial.number)})
    return {"name": name, "version": version.version, "uri": f"models:/{name}@{ALIAS}",
            "source": version.source, "scores": scores}
