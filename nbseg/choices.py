"""Check a named option against the allowed names, suggesting the closest on a typo; read a typed
list of numbers (patch, tile, channels, pixel sizes) the same way in the CLI and the notebooks."""
from __future__ import annotations

import difflib
import re

# How nbseg suggest ranks images to correct (nbseg.predict.suggest; the default was chosen by
# bench/suggest_protocol.py on the pool only, see docs/benchmarks.md)
SUGGEST_CHOICES = ("uncertain", "disagree", "representative", "diverse", "crowded", "dense")
SUGGEST_DEFAULT = "dense"


def check_choice(value, allowed, *, what: str, hint: str = "") -> str:
    """Return ``value`` if it is one of ``allowed``; else raise ValueError with a "did you mean".

    Parameters
    ----------
    value : str
    allowed : sequence of str
    what : str
        The option's name for the message, e.g. ``"tta"``.
    hint : str
        Appended to the message (e.g. what else the option accepts).
    """
    if value in allowed:
        return value
    close = difflib.get_close_matches(str(value).lower(), list(allowed), n=1, cutoff=0.5)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{what} {value!r} is unknown; use one of {', '.join(map(repr, allowed))}{hint}.{suggestion}")


def parse_ints(text: str, *, what: str, example: str = "64,64 or 16,64,64") -> list[int]:
    """Whole numbers typed as ``"16,64,64"``, ``"16x64x64"`` or ``"16 64 64"``; blank gives ``[]``.

    Parameters
    ----------
    text : str
        What was typed.
    what : str
        The option's name for the message, e.g. ``"patch size"``.
    example : str
        A correct value for the message, e.g. ``"0 or 0,2"``.

    Raises
    ------
    ValueError
        Naming what was given, the part that is not a whole number, and an example.
    """
    return _parse_numbers(text, int, "whole number", what=what, example=example)


def parse_floats(text: str, *, what: str, example: str = "2,0.5,0.5") -> list[float]:
    """Numbers typed as ``"2,0.5,0.5"`` (or with ``x`` or spaces), e.g. pixel sizes; blank gives ``[]``.

    Raises
    ------
    ValueError
        Naming what was given, the part that is not a number, and an example.
    """
    return _parse_numbers(text, float, "number", what=what, example=example)


def _parse_numbers(text, kind, noun: str, *, what: str, example: str) -> list:
    values = []
    for part in (part for part in re.split(r"[,x\s]+", str(text).strip()) if part):
        try:
            values.append(kind(part))
        except ValueError:
            raise ValueError(f"{what} {text!r} is not a list of {noun}s ({part!r} is not one); "
                             f"write it like {example}.") from None
    return values
