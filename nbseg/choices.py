"""Check a named option against the allowed names, suggesting the closest on a typo."""
from __future__ import annotations

import difflib


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
