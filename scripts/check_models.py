"""What a user can load after `make run`: per experiment, its trained variants, the logged
models MLflow lists for them, and whether ``models:/<experiment>@champion`` loads.

    python scripts/check_models.py [--tracking-uri sqlite:///mlruns/mlflow.db] [--project .]

Reads models/<experiment>/runs.json (what train logged) and asks MLflow (search_logged_models,
the registry) for the rest; loads each champion with mlflow.pyfunc and predicts its own input
example. Prints a markdown table; exits 1 if a variant has no logged model or a champion does
not load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def inventory(project: Path) -> list[dict]:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    rows = []
    for runs_file in sorted(project.glob("models/*/runs.json")):
        name = runs_file.parent.name
        record = json.loads(runs_file.read_text())
        experiment = client.get_experiment_by_name(name)
        logged = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        by_run = {m.source_run_id for m in logged}
        row = {
            "experiment": name,
            "variants": len(record["variants"]),
            "with_logged_model": sum(run in by_run for run in record["variants"].values()),
            "logged_models": len(logged),
        }
        try:
            version = client.get_model_version_by_alias(name, "champion")
            model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            example = model.input_example
            answer = model.predict(example)
            row.update(
                champion=f"v{version.version} ({version.tags.get('variant', '?')}, "
                f"{version.tags.get('selection.metric')} "
                f"{float(version.tags.get('selection.value', 'nan')):.4f})",
                answers=", ".join(list(answer.columns)[:3]) + (" ..." if answer.shape[1] > 3 else ""),
                loads=True,
            )
        except Exception as error:  # noqa: BLE001 - reported, not raised: the table shows all
            row.update(champion=f"missing: {type(error).__name__}", answers="", loads=False)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    project = Path(args.project).resolve()
    import mlflow

    mlflow.set_tracking_uri(
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{project / 'mlruns/mlflow.db'}"
    )
    rows = inventory(project)
    print("| experiment | trained variants | with a logged model | logged models | champion | answers |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['experiment']}` | {r['variants']} | {r['with_logged_model']} | "
            f"{r['logged_models']} | {r['champion']} | {r['answers']} |"
        )
    bad = [r["experiment"] for r in rows if not r["loads"] or r["with_logged_model"] < r["variants"]]
    if bad:
        print(f"missing models or champions: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
