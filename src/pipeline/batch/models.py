"""Which logged model ``model=`` names, whether the tracking store has it, and loading it.

A model that is not there is refused with what is (the registered versions and aliases, or the
models a run logged), rather than MLflow's bare "not found".
"""

from __future__ import annotations

import re

from pipeline.errors import ConfigError

ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def model_uri(name: str, model: str) -> str:
    """The URI ``model=`` stands for: an alias or a version of the registered model ``name``
    (the experiment's), or a runs:/ or models:/ URI as it is."""
    if model.startswith(("runs:/", "models:/")):
        return model
    if model.isdigit():
        return f"models:/{name}/{int(model)}"
    if ALIAS.fullmatch(model):
        return f"models:/{name}@{model}"
    raise ConfigError(
        f"model={model!r} is neither an alias (champion), a version number nor a runs:/ or models:/ URI."
    )


def check_exists(uri: str) -> str:
    """Ask the registry (or the run store) before loading, to list what exists when the model
    is not there (a ConfigError); for an alias, " (version <n>)"."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    target = uri.removeprefix("models:/").strip("/")
    try:
        if uri.startswith("runs:/"):
            client.get_run(uri.removeprefix("runs:/").split("/")[0])
        elif target.startswith("m-") and "/" not in target:
            client.get_logged_model(target)
        elif "@" in target:
            return f" (version {client.get_model_version_by_alias(*target.split('@', 1)).version})"
        elif "/" in target and target.rsplit("/", 1)[1].isdigit():
            client.get_model_version(*target.rsplit("/", 1))
    except mlflow.exceptions.MlflowException as error:
        name = re.split(r"[@/]", target, maxsplit=1)[0]
        # a run or a logged model's id (m-...) has no registered versions to list
        registered = not (uri.startswith("runs:/") or name.startswith("m-"))
        known = f" {registry_listing(name)}" if registered else ""
        raise ConfigError(
            f"No model {uri} in the tracking store {mlflow.get_tracking_uri()}: "
            f"{error.message.rstrip('.')}.{known}"
        ) from error
    return ""


def load_model(uri: str):
    """The pyfunc model at ``uri`` (a ConfigError if it does not load)."""
    import mlflow

    try:
        return mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as error:
        raise ConfigError(f"Cannot load the model {uri}: {error.message}{logged_models_hint(uri)}") from error


def registry_listing(name: str) -> str:
    """What the registry holds under ``name``: its versions and aliases, or the other names."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        names = sorted(m.name for m in client.search_registered_models())
        return (
            f"No model is registered as {name!r} (registered: {', '.join(names) or 'none'}); "
            f"`python -m pipeline.evaluate experiment={name}` or `python -m pipeline.tune "
            f"experiment={name}` registers one, or give model=runs:/<run id>/model."
        )
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = ", ".join(f"@{alias} = version {version}" for alias, version in sorted(model.aliases.items()))
    return (
        f"Registered versions of {name!r}: {', '.join(map(str, versions)) or 'none'}; "
        f"aliases: {aliases or 'none'}."
    )


def logged_models_hint(uri: str) -> str:
    """For runs:/<id>/<path> that does not load: the models the run logged."""
    if not uri.startswith("runs:/"):
        return ""
    from mlflow import MlflowClient

    run_id = uri.removeprefix("runs:/").split("/")[0]
    client = MlflowClient()
    run = client.get_run(run_id)
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    names = sorted({m.name for m in logged if m.source_run_id == run_id})
    return (
        f" The run logged: {', '.join(f'runs:/{run_id}/{n}' for n in names)}."
        if names
        else " The run logged no model."
    )
