"""Prepare a dataset: fetch (mirror or origin), verify sha256, split as the seed, write arrays.

    python -m pipeline.prepare dataset=<name> [key=value ...]   e.g. dataset=california_housing
    python -m pipeline.prepare experiment=<name>               # the dataset that experiment uses

Writes data/<dataset>/arrays.npz and data/<dataset>/info.json (shapes, class balance or target
statistics, source hashes), atomically: a failure leaves no partial output.
"""

from __future__ import annotations

import sys

from pipeline import cli, layout
from pipeline.config import load
from pipeline.errors import ConfigError
from pipeline.data.sources import get_source
from pipeline.data.splits import SPLITTERS, summarize
from pipeline.io import atomic_dir, save_arrays, write_json


def main(args: list[str]) -> int:
    dataset = cli.pop_option(args, "dataset")
    cfg = load(args)
    name = dataset or cfg.experiments[cfg.experiment].dataset
    if name not in cfg.datasets:
        raise ConfigError(f"Unknown dataset {name!r}; valid choices: {', '.join(sorted(cfg.datasets))}.")
    spec = cfg.datasets[name]
    source = get_source(spec.source)
    cli.progress(f"prepare {name}: fetching and verifying {source.name}")
    raw, hashes = source.load()
    arrays = SPLITTERS[spec.source](raw, spec.split)
    info = {
        "dataset": name,
        "source": source.name,
        "citation": source.citation,
        "sha256": hashes,
        "split": dict(spec.split),
        **summarize(arrays),
    }
    with atomic_dir(layout.prepared(name)) as tmp:
        save_arrays(tmp / "arrays.npz", arrays)
        write_json(tmp / "info.json", info)
    cli.progress(f"prepare {name}: wrote {layout.prepared(name)} {info['shapes']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
