"""One experiment's `dvc exp` runs side by side: its params that differ and its headline metrics.

    python -m pipeline.compare experiment=wide_deep [dvc exp show options, e.g. -n 3]
    make exp-show experiment=wide_deep

`dvc exp show` has a column for every param and metric of all 14 experiments (about 2,000; a
terminal shows only "…"), and its column names repeat the full path
(`experiments.wide_deep.train.optimizer.learning_rate`). This reads `dvc exp show --json` and
keeps one experiment: the train epochs, batch size and learning rate, every other param of it
that differs between the rows, and metrics/headline/<experiment>.json (the best variant on
validation, its value and test scores), named without the `experiments.<name>.` prefix and
wrapped to the terminal's width.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any, Iterator

from pipeline import layout

ALWAYS = ("train.epochs", "train.batch_size", "train.optimizer.learning_rate")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def _revisions(shown: list[dict]) -> Iterator[tuple[str, dict]]:
    """(label, data) for the workspace, each baseline commit and each experiment of it."""
    for commit in shown:
        label = commit.get("name") or ("workspace" if commit["rev"] == "workspace" else commit["rev"][:7])
        yield label, commit.get("data") or {}
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                yield revision.get("name") or revision["rev"][:7], revision.get("data") or {}


def table(shown: list[dict], name: str) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows for experiment ``name`` from `dvc exp show --json`."""
    rows = []
    for label, data in _revisions(shown):
        params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
        metrics = (data.get("metrics") or {}).get(layout.headline(name).as_posix(), {}).get("data", {})
        rows.append((label, flatten(params.get("experiments", {}).get(name, {})), flatten(metrics)))
    params = [key for key in ALWAYS if any(key in p for _, p, _ in rows)]
    params += sorted(
        key
        for key in set().union(*(p for _, p, _ in rows)) - set(params)
        if len({json.dumps(p.get(key), sort_keys=True) for _, p, _ in rows}) > 1
    )
    metrics = list(dict.fromkeys(key for _, _, m in rows for key in m))
    columns = ["experiment", *params, *metrics]
    return columns, [
        [label, *(p.get(k, "-") for k in params), *(m.get(k, "-") for k in metrics)] for label, p, m in rows
    ]


def render(columns: list[str], rows: list[list[Any]], width: int) -> str:
    import pandas as pd

    def cell(value: Any) -> Any:
        return f"{value:.4g}" if isinstance(value, float) else value

    frame = pd.DataFrame([[cell(v) for v in row] for row in rows], columns=columns)
    return frame.to_string(index=False, line_width=width)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    names = [a.split("=", 1)[1] for a in args if a.startswith("experiment=")]
    if not names or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0 if names else 2
    options = [a for a in args if not a.startswith("experiment=")]
    dvc = shutil.which("dvc") or "dvc"
    shown = subprocess.run([dvc, "exp", "show", "--json", *options], text=True, capture_output=True)
    if shown.returncode != 0:
        print(f"error: dvc exp show failed:\n{shown.stderr.strip()}", file=sys.stderr)
        return shown.returncode
    columns, rows = table(json.loads(shown.stdout), names[0])
    if len(columns) == 1:
        print(
            f"error: no params or headline metrics of experiment {names[0]!r} in `dvc exp show`",
            file=sys.stderr,
        )
        return 2
    print(render(columns, rows, shutil.get_terminal_size((120, 24)).columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
