"""Batch inference: a logged model's predictions for every row of a file.

    python -m pipeline.predict experiment=<name> input=<file> output=<file>
        [model=champion|<alias>|<version>|runs:/<run id>/model|models:/<name>/<version>|...]
        [chunk_size=4096]

model: ``champion`` (the default) is models:/<experiment>@champion, another word another alias
of that registered model (e.g. ``challenger``), a number one of its versions
(models:/<experiment>/<n>); a runs:/ or models:/ URI is used as it is. One that does not
exist is refused with the versions and aliases that do.

input: .csv, .parquet, .jsonl or .ndjson (JSON lines), and for text models .txt (one review a
line; blank lines are skipped). What it must hold is read from the model's signature:

- table models (wide_deep, boston, thoracic): the model's numeric columns, by name;
- text models (imdb, multi_io): a ``text`` column;
- reuters: a ``word_ids`` column of lists of whole numbers (in a CSV: numbers separated by
  spaces, e.g. "1 14 22");
- image models (the fashion experiments): an ``image`` column of 28x28 nested lists or 784 flat
  values, whole numbers 0-255 (Parquet, JSON lines), or a CSV with 784 pixel columns such as
  Kaggle's fashion-mnist CSV (``label,pixel1,...,pixel784``: a ``label`` column is ignored);
  siamese: ``image_a`` and ``image_b`` (in a CSV, the columns named image_a... and image_b...).

A column ``id`` is not given to the model; it is copied to the output as its first column.

output: .csv, .parquet, .jsonl or .ndjson: one row per input row, in the input's order, with the
model's named outputs (e.g. ``main``; ``sentiment_probability`` and ``sentiment``; ``class`` and
``probability_<class>``). The file is read and predicted ``chunk_size`` rows at a time, with a
progress bar on stderr, so it may be larger than memory; the output appears only when every row
is done (after an error or Ctrl-C nothing is left at ``output``).

A file the model cannot take is refused before anything is written (exit 2): a missing or
empty file, an unknown format, a column the model does not take or one it needs that is missing,
a value of the wrong type or an image of the wrong size (rows count from 1, a header not
counted).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline import cli
from pipeline.batch import models
from pipeline.batch.layout import Layout
from pipeline.batch.read import INPUT_FORMATS, count_rows
from pipeline.batch.stream import predict_file
from pipeline.batch.write import OUTPUT_FORMATS
from pipeline.config import load
from pipeline.errors import BadInput, ConfigError

DEFAULT_CHUNK_SIZE = 4096


@dataclass
class Options:
    model: str
    input: Path
    output: Path
    chunk_size: int
    input_format: str
    output_format: str


def main(args: list[str]) -> int:
    # everything that can be checked without MLflow (seconds to import) is checked first
    options = parse_options(args)
    cfg = load_config(args)
    require_experiment(cfg, args, options.model)
    uri = models.model_uri(cfg.experiment, options.model)
    check_files(options)
    total = count_rows(options.input, options.input_format)

    # MLflow's download bar would clutter stderr, where the rows' progress bar is
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from pipeline import tracking

    tracking.configure(cfg)
    version = models.check_exists(uri)  # " (version <n>)" for an alias
    model = models.load_model(uri)
    rows = predict_file(
        model,
        Layout.of(model, uri),
        options.input,
        options.input_format,
        options.output,
        options.output_format,
        chunk_size=options.chunk_size,
        total=total,
        desc=f"predict {cfg.experiment}",
    )
    cli.progress(f"predict {cfg.experiment}: {rows} rows with {uri}{version} -> {options.output}")
    return 0


main.__doc__ = __doc__


# --- arguments -------------------------------------------------------------------------------
def parse_options(args: list[str]) -> Options:
    """model=, input=, output= and chunk_size= (removed from args; the rest are config keys)."""
    model = cli.pop_option(args, "model") or "champion"
    given = {key: cli.pop_option(args, key) for key in ("input", "output", "chunk_size")}
    missing = [key for key in ("input", "output") if not given[key]]
    if missing:
        raise ConfigError(
            f"predict needs {' and '.join(f'{key}=<file>' for key in missing)}: "
            "python -m pipeline.predict experiment=<name> input=<file> "
            "output=<file> (see --help)."
        )
    chunk_size = DEFAULT_CHUNK_SIZE
    if given["chunk_size"] is not None:
        try:
            chunk_size = int(given["chunk_size"])
        except ValueError:
            chunk_size = 0
        if chunk_size < 1:
            raise ConfigError(
                f"chunk_size={given['chunk_size']!r} must be a whole number of rows, at least 1."
            )
    source, target = Path(given["input"]), Path(given["output"])
    return Options(
        model,
        source,
        target,
        chunk_size,
        file_format(source, INPUT_FORMATS, "input"),
        file_format(target, OUTPUT_FORMATS, "output"),
    )


def load_config(args: list[str]):
    """params.yaml with the remaining overrides; a typo there may be one of predict's options."""
    try:
        return load(args)
    except ConfigError as error:
        if not str(error).startswith("Unknown config key"):
            raise
        raise ConfigError(f"{error} predict's own options: input=, output=, model=, chunk_size=.") from error


def file_format(path: Path, formats: dict[str, str], role: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise BadInput(
            f"The {role} file {path} has an unknown format {suffix or '(no extension)'!r}; "
            f"{role} formats: {', '.join(formats)}."
        )
    return formats[suffix]


def require_experiment(cfg, args: list[str], model: str) -> None:
    """The registered model's name is the experiment's: say which, unless the model is a URI."""
    named = any(arg.startswith("experiment=") for arg in args)
    if not named and not model.startswith(("runs:/", "models:/")):
        raise ConfigError(
            "Say whose model predicts: experiment=<name> (its registered model); "
            f"valid choices: {', '.join(sorted(cfg.experiments))}."
        )


def check_files(options: Options) -> None:
    """A non-empty input file and an output that is another file, before any model loads."""
    source = options.input
    if not source.is_file():
        raise BadInput(
            f"The input file {source} does not exist" + (" (it is a directory)." if source.is_dir() else ".")
        )
    if source.stat().st_size == 0:
        raise BadInput(f"The input file {source} is empty: no rows to predict.")
    if options.output.resolve() == source.resolve():
        raise BadInput(
            f"The output {options.output} is the input file; write the predictions to another file."
        )
    if options.output.is_dir():
        raise BadInput(f"The output {options.output} is a directory; give a file name.")


if __name__ == "__main__":
    sys.exit(cli.run_stage(main))
