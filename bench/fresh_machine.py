"""Does the README's quick start work on a fresh clone, and what does it cost?

    python bench/fresh_machine.py [--only test|run] [--keep] [--shared ../shared]

Clones this repository (its committed HEAD) into a temporary folder with the shared data folder
beside it, as CI sees it, and runs the README's two quick-start commands exactly as written
there (read from the README's first ```bash block, so the check and the docs cannot drift). It
prints each command's exit code, wall time and peak memory (the largest resident set of any
process the command started) and exits non-zero if either failed. For `make run` it also prints
how long each DVC stage took (from when `dvc repro` announced it to when it announced the next).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pipeline.machine import cpu_kind  # noqa: E402  (no third-party import: any Python runs this)

# Run by a fresh interpreter per command, so that the peak is this command's alone.
MEASURE = (
    "import resource, subprocess, sys;"
    "code = subprocess.run(sys.argv[1], shell=True).returncode;"
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
    "sys.exit(code)"
)


def quick_start_commands(readme: Path) -> list[str]:
    """The commands of the README's quick-start block (comments stripped)."""
    text = readme.read_text()
    section = text.split("## Quick start", 1)[-1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    if not block:
        raise SystemExit(f"No ```bash block under '## Quick start' in {readme}")
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def stage_seconds(starts: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Each stage's duration: from its 'Running stage' line to the next one (the last: to end)."""
    ends = [t for _, t in starts[1:]] + [end]
    return {stage: stop - start for (stage, start), stop in zip(starts, ends)}


def run_measured(command: str, cwd: Path, log: Path) -> tuple[int, float, float, dict[str, float]]:
    started = time.perf_counter()
    stage_starts: list[tuple[str, float]] = []
    with (
        log.open("w") as out,
        subprocess.Popen(
            [sys.executable, "-c", MEASURE, command],
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        for line in process.stdout:
            out.write(line)
            out.flush()  # the log shows progress while it runs
            if match := STAGE_LINE.match(line):
                stage_starts.append((match.group(1), time.perf_counter() - started))
        code = process.wait()
    seconds = time.perf_counter() - started
    peaks = re.findall(r"PEAK_KB (\d+)", log.read_text())
    peak_gb = int(peaks[-1]) / 2**20 if peaks else float("nan")
    return code, seconds, peak_gb, stage_seconds(stage_starts, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("test", "run"), help="run one of the two commands")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    parser.add_argument(
        "--shared",
        default=str(ROOT.parent / "shared"),
        help="the shared folder (data mirror) to put beside the clone",
    )
    args = parser.parse_args()
    shared = Path(args.shared).resolve()
    if not (shared / "data").is_dir():
        raise SystemExit(f"No data mirror at {shared / 'data'}")

    commands = quick_start_commands(ROOT / "README.md")
    if args.only:
        commands = [c for c in commands if f"make {args.only}" in c]
    workdir = Path(tempfile.mkdtemp(prefix="fresh-machine-"))
    clone = workdir / "main"
    failures = 0
    try:
        (workdir / "shared").symlink_to(shared)
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip()
        # one commit's figures and times compare only between machines of one kind
        print(f"fresh clone of {commit} in {clone}, on {cpu_kind()} ({os.cpu_count()} cores)", flush=True)
        for index, command in enumerate(commands, start=1):
            print(f"[{index}/{len(commands)}] {command} ...", flush=True)
            code, seconds, peak_gb, stages = run_measured(command, clone, workdir / f"command{index}.log")
            failures += code != 0
            for stage, stage_time in stages.items():
                print(f"    {stage:<40} {stage_time:7.0f} s")
            print(
                f"[{index}/{len(commands)}] exit {code}, wall {seconds / 60:.1f} min, "
                f"peak memory {peak_gb:.2f} GB (log: {workdir / f'command{index}.log'})",
                flush=True,
            )
    finally:
        if args.keep or failures:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
