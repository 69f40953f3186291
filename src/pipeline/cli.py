"""What every stage entry point shares: argument parsing, quiet TF logs, clean error exits."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from pipeline.errors import PipelineError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def run_stage(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Call a stage's main; expected failures print one clear paragraph and exit non-zero."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        # the stage module's docstring is its usage text
        print((sys.modules[main.__module__].__doc__ or main.__doc__ or "").strip())
        return 0
    try:
        return int(main(args) or 0)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept, nothing half-written was left", file=sys.stderr)
        return 130


def pop_option(args: list[str], key: str) -> str | None:
    """Remove ``key=value`` from args (a stage option that is not a config key); return value."""
    for arg in list(args):
        if arg.startswith(f"{key}="):
            args.remove(arg)
            return arg.split("=", 1)[1]
    return None


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
