"""Copy the committed report's table into the README (between its report-table markers).

    python scripts/readme_table.py [--check [--rev REV]]

The README shows the table of `reports/report.md` as measured; run this after `dvc repro report`
so the two cannot disagree. `--check` only compares (exit 1 on a difference); with `--rev HEAD`
it compares the two files as committed, which is what the tests check: a `make run` rewrites
reports/ in the work tree (new run ids), and that must not fail the `make test` after it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- report-table:start -->", "<!-- report-table:end -->"
MARKED = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)


def report_table(report_md: str) -> str:
    """The table rows of the report (everything before the errata that starts with '|')."""
    head = report_md.split("## Errata", 1)[0]
    return "\n".join(line for line in head.splitlines() if line.startswith("|"))


def readme_block(table: str) -> str:
    rows = table.count("\n") - 1  # minus the header and separator lines, plus the last row
    return (
        f"{START}\n<details><summary>The report's table ({rows} rows): seed vs ours vs tuned, "
        f"per experiment, variant and metric</summary>\n\n{table}\n\n</details>\n{END}"
    )


def synced(readme: str, report_md: str) -> str:
    if not MARKED.search(readme):
        raise SystemExit(f"README has no {START} ... {END} block to fill")
    return MARKED.sub(lambda _: readme_block(report_table(report_md)), readme, count=1)


def committed(rev: str, path: Path) -> str:
    shown = subprocess.run(
        ["git", "show", f"{rev}:{path.relative_to(ROOT).as_posix()}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        raise SystemExit(f"git show {rev}:{path.relative_to(ROOT)} failed: {shown.stderr.strip()}")
    return shown.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    parser.add_argument("--rev", help="with --check: compare the files as committed at this revision")
    args = parser.parse_args()
    if args.rev and not args.check:
        parser.error("--rev goes with --check (the work tree's README is the one written)")
    readme_path, report_path = ROOT / "README.md", ROOT / "reports" / "report.md"
    readme, report = (
        (committed(args.rev, readme_path), committed(args.rev, report_path))
        if args.rev
        else (readme_path.read_text(), report_path.read_text())
    )
    updated = synced(readme, report)
    if args.check:
        if updated != readme:
            print(
                "README's report table differs from reports/report.md: run scripts/readme_table.py",
                file=sys.stderr,
            )
            return 1
        return 0
    readme_path.write_text(updated)
    print(f"README table <- {report_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
