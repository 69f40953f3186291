"""Get a teammate's outputs from the DVC remote instead of retraining: ``make pull``.

    python -m pipeline.remote pull [targets...] [--with-deps]

``dvc pull`` checks out whatever it managed to download, so a pull that failed half-way leaves
part of the outputs in the workspace, and a remote whose folder is gone is only a warning (exit
0). This pulls in two steps: ``dvc fetch`` into the cache, then ``dvc checkout`` only if every
output dvc.lock records is complete in the cache; otherwise it names the missing outputs and
exits 1 with the workspace as it was. A damaged object on the remote counts as missing: the
``team`` remote sets ``verify = true``, so DVC checks each download's hash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


def dvc(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("dvc") or "dvc"
    return subprocess.run([executable, *args], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def missing_outputs(targets: list[str]) -> list[str]:
    """Outputs recorded in dvc.lock whose data is not (all) in the cache."""
    result = dvc("status", "--json", *targets)
    if result.returncode != 0:
        raise SystemExit(f"error: dvc status failed:\n{result.stderr.strip()}")
    missing = []
    for changes in json.loads(result.stdout or "{}").values():
        for change in changes:
            if isinstance(change, dict):
                missing += [
                    path for path, state in change.get("changed outs", {}).items() if state == "not in cache"
                ]
    return sorted(set(missing))


def pull(targets: list[str]) -> int:
    fetched = dvc("fetch", *targets)
    errors = [line for line in fetched.stderr.splitlines() if line.startswith(("ERROR", "WARNING"))]
    missing = missing_outputs(targets)
    if missing:
        print(
            "error: the remote lacks (or holds damaged) data of "
            f"{len(missing)} output(s): {', '.join(missing)}.\n"
            "Nothing was checked out; the workspace is as it was. Push them from the clone "
            "that made them (`make push`), or rebuild them with `dvc repro`.",
            file=sys.stderr,
        )
        if errors:
            print("dvc said:\n  " + "\n  ".join(errors[:10]), file=sys.stderr)
        return 1
    checkout = dvc("checkout", *targets)
    sys.stderr.write(checkout.stderr)
    if checkout.returncode != 0:
        return checkout.returncode
    print(
        fetched.stdout.strip().splitlines()[-1] if fetched.stdout.strip() else "fetched",
        "- checked out; `dvc status` should now say up to date",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] != "pull":
        print(__doc__.strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    return pull(args[1:])


if __name__ == "__main__":
    sys.exit(main())
