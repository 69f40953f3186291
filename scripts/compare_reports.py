"""Which of the report's figures moved between two runs?

    python scripts/compare_reports.py [OLD] [NEW]

Compares the "ours" and "tuned" cells of two `reports/report.md` tables, row by row (a row is
an experiment, variant and metric), and prints every cell that differs, then how many are
equal. The training seconds and MLflow run ids differ on every run and are not compared. OLD
defaults to the report committed at HEAD, NEW to the work tree's (what `make run` just wrote);
either may be a path (another clone's report) or `REV:` for the one committed at REV. Exits 1
if a cell moved or a row is missing on one side: "every figure of the report unchanged" is
then checkable in one command after a fresh-clone run.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from readme_table import ROOT, committed, report_table  # noqa: E402

FIGURES = ("ours", "tuned")  # columns of the report's table, found by their header
Key = tuple[str, str, str]
CELL_BORDER = re.compile(r"(?<!\\)\|")  # pipeline.report.markdown_table escapes a cell's own "|"


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in CELL_BORDER.split(line.strip())[1:-1]]


def figures(report_md: str) -> dict[Key, dict[str, str]]:
    """Each row's figures, keyed by (experiment, variant, metric)."""
    header, _separator, *body = report_table(report_md).splitlines()
    columns = {name: cells(header).index(name) for name in FIGURES}
    rows = {}
    for line in body:
        row = cells(line)
        rows[tuple(row[:3])] = {name: row[column] for name, column in columns.items()}
    return rows


def moved(old: str, new: str) -> tuple[list[str], int]:
    """Lines describing what moved (a figure or a whole row) and the number of equal figures.
    A cell empty on both sides ('–') is not a figure."""
    before, after = figures(old), figures(new)
    changes, equal = [], 0
    for key in before.keys() | after.keys():
        row = " / ".join(key)
        if key not in after or key not in before:
            changes.append(f"{row}: only in the {'old' if key in before else 'new'} report")
            continue
        for name in FIGURES:
            was, now = before[key][name], after[key][name]
            if was == now:
                equal += was != "–"
            else:
                changes.append(f"{row} ({name}): {was} -> {now}")
    return sorted(changes), equal


def read(where: str) -> str:
    if where.endswith(":"):
        return committed(where[:-1], ROOT / "reports" / "report.md")
    path = Path(where)
    if not path.is_file():
        raise SystemExit(f"No report at {path} (a report.md, or REV: for the committed one)")
    return path.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", default="HEAD:", help="default: HEAD: (the committed report)")
    parser.add_argument("new", nargs="?", default=str(ROOT / "reports" / "report.md"))
    args = parser.parse_args(argv)
    changes, equal = moved(read(args.old), read(args.new))
    for change in changes:
        print(change)
    print(f"{equal} figures equal, {len(changes)} moved or missing")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main())
