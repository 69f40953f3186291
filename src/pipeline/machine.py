"""What kind of machine this is, without importing anything heavy (bench/fresh_machine.py and
the MLflow tags both say it)."""

from __future__ import annotations

import platform
from pathlib import Path

# The widest vector extension first: oneDNN picks its kernels, and so the order of its sums, by
# it, so one commit's figures repeat to the last digit only on CPUs of one kind (README: Results).
VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx", "sse4_2")


def cpu_kind(cpuinfo: str | None = None) -> str:
    """The CPU's model, family and widest vector extension, e.g. "AMD EPYC (family 25 model 1,
    avx2)": runs of one commit give the same numbers on the same kind. A virtual machine's model
    name can be as vague as "AMD EPYC", hence the family. ``cpuinfo``: /proc/cpuinfo's text."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    flags = set(fields.get("flags", "").split())
    details = (
        [f"family {fields['cpu family']} model {fields.get('model', '?')}"] if "cpu family" in fields else []
    )
    details += [name for name in VECTOR_EXTENSIONS if name in flags][:1]
    return f"{model} ({', '.join(details)})" if details else model
