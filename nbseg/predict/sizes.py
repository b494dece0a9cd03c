"""Sizes as people write them (``"2GB"``, ``"500MB"``, ``"1.5GiB"``) and as nbseg prints them: the
text side of ``--max-memory``, apart from the memory plan (:mod:`.memory`) that uses it."""
from __future__ import annotations

import math

import re

import numpy as np

UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
         "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


class MemoryBudgetError(ValueError):
    """A memory bound that is not a size, or too small for one tile; the message says what would do."""


def parse_size(text) -> int:
    """Bytes in a size such as ``"2GB"``, ``"500MB"``, ``"1.5 GiB"`` or ``"800M"`` (a number alone: bytes).

    Decimal units (kB, MB, GB: powers of 1000) and binary ones (KiB, MiB, GiB: powers of 1024).

    Raises
    ------
    MemoryBudgetError
        For text that is not a positive size, naming it and showing the form.
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = SIZE_PATTERN.match(str(text))
        if not match or match.group(2).lower() not in UNITS:
            raise MemoryBudgetError(f"max_memory {text!r} is not a size; give a number and a unit, e.g. "
                                    "'2GB', '500MB' or '1.5GiB' (CLI: --max-memory 2GB).")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * UNITS[unit])
    if size <= 0:
        raise MemoryBudgetError(f"max_memory {text!r} is not above zero; give e.g. '2GB'.")
    return size


def format_size(size: float, *, up: bool = False) -> str:
    """``1536000000`` -> ``"1.54 GB"``; ``up=True`` rounds up (a need, never shown below itself)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= factor:
            value = math.ceil(size / factor * 100) / 100 if up else size / factor
            return f"{value:.2f} {unit}"
    return f"{int(size)} B"


__all__ = ["MemoryBudgetError", "format_size", "parse_size"]
