"""Message helpers shared by the checks: which row is bad, and values short enough to quote."""

from __future__ import annotations

from typing import Any

import numpy as np


def first_bad(mask, values) -> tuple[int, Any]:
    """(1-based position in the chunk, value) of the first True in ``mask``."""
    index = int(np.flatnonzero(np.asarray(mask))[0])
    return index + 1, values.iloc[index]


def shorten(value, limit: int = 60, quote: bool = True) -> str:
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
