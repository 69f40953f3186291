"""What do `make push` and `make pull` cost a team, and does a pull give the pusher's results?

    python bench/team_remote.py <project after `make run`> [--remote <folder>]

Uses a checkout that ran the pipeline (e.g. the one `python bench/fresh_machine.py --only run
--keep` leaves): commits its dvc.lock (what a pusher shares), pushes its outputs to a
local-folder remote (a temporary one unless --remote), clones it fresh, runs `make pull`'s
command there, and prints push and pull wall times, the remote's size and file count, and
whether the clone is up to date (`dvc status`), shows the same metrics (`dvc metrics show
--json`) and would rerun nothing (`dvc repro --dry`). Exits non-zero if any of the three fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def metrics(dvc: str, project: Path) -> dict:
    _, shown = run([dvc, "metrics", "show", "--json"], project)
    return {name: entry.get("data") for name, entry in json.loads(shown)[""]["data"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--remote", type=Path, help="the remote folder (default: a temporary one)")
    args = parser.parse_args()
    project = args.project.resolve()
    dvc = str(project / ".venv/bin/dvc")
    work = Path(tempfile.mkdtemp(prefix="team-remote-"))
    remote = (args.remote or work / "remote").resolve()

    who = ["-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    run(["git", *who, "add", "-A"], project)
    run(["git", *who, "commit", "-qm", "results of make run", "--allow-empty"], project)
    run([dvc, "remote", "modify", "--local", "team", "url", str(remote)], project)
    push_seconds, _ = run([dvc, "push"], project)
    files = [p for p in remote.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 2**20

    clone = work / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], work)
    run([dvc, "remote", "modify", "--local", "team", "url", str(remote)], clone)
    env = {
        **os.environ,
        "PYTHONPATH": str(clone / "src"),
        "PATH": f"{project / '.venv/bin'}{os.pathsep}{os.environ['PATH']}",
    }
    pull_seconds, _ = run([str(project / ".venv/bin/python"), "-m", "pipeline.remote", "pull"], clone, env)

    _, status = run([dvc, "status"], clone)
    _, dry = run([dvc, "repro", "--dry"], clone, env)
    up_to_date = "up to date" in status
    same_metrics = metrics(dvc, clone) == metrics(dvc, project)
    reruns = [line for line in dry.splitlines() if line.startswith("Running stage")]
    print(f"remote {remote}: {size_mb:.0f} MiB in {len(files)} files")
    print(f"push {push_seconds:.1f} s, pull into a fresh clone {pull_seconds:.1f} s")
    print(
        f"dvc status up to date: {up_to_date}; dvc metrics show identical: {same_metrics}; "
        f"dvc repro --dry would run {len(reruns)} stages"
    )
    return 0 if up_to_date and same_metrics and not reruns else 1


if __name__ == "__main__":
    sys.exit(main())
