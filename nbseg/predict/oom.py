"""Running out of memory during prediction halves the batch, then the tile, and tries again with a message,
instead of ending the session (the retry itself is :func:`nbseg.runtime.retry_smaller`, as training's)."""
from __future__ import annotations


def smaller_step(batch_size: int, tile, divisors):
    """The next try after running out of memory: half the batch, else half the tile's longest sides
    (kept multiples of ``divisors``); None when both are as small as they go.

    Parameters
    ----------
    batch_size : int
    tile : ([Z,] Y, X) tuple of int
    divisors : ([Z,] Y, X) tuple of int
        What each side must be a multiple of (what the U-Net pools).

    Returns
    -------
    (int, tuple) or None
    """
    if batch_size > 1:
        return batch_size // 2, tuple(tile)
    halves = [(t // 2) // d * d for t, d in zip(tile, divisors)]  # each side halved, a multiple still
    sides = [t for t, h in zip(tile, halves) if h >= 1]
    if not sides:
        return None
    longest = max(sides)
    return 1, tuple(h if t == longest and h >= 1 else t for t, h in zip(tile, halves))


def retry_out_of_memory(run, *, batch_size: int, tile, divisors, report=None):
    """``run(batch_size, tile)``, again with half the batch (then half the tile) after each
    out-of-memory error (a GPU's or the CPU allocator's), until it fits or nothing is left to halve.

    Parameters
    ----------
    run : callable(int, tuple)
    batch_size : int
    tile, divisors : ([Z,] Y, X) tuple of int
    report : callable(str), optional
        Told each retry (default: a ``RuntimeWarning``).

    Returns
    -------
    (result, batch_size, tile)
        ``run``'s result and the batch and tile that fitted.

    Raises
    ------
    torch.OutOfMemoryError
        When one tile of the smallest size does not fit either, saying which memory ran out.
    """
    import warnings

    import torch

    from ..runtime import retry_smaller

    def give_up(settings, memory, err):
        advice = ("Close other notebooks that hold the GPU, or predict on the CPU (CLI: --device cpu)."
                  if memory.startswith("GPU") else "Close other programs, or bound what prediction keeps in "
                  "memory (CLI: --max-memory, e.g. 4GB).")
        return torch.OutOfMemoryError(f"Out of {memory} even with one tile of {list(settings[1])}: {err}. {advice}")

    def told(memory, settings, smaller):
        what = (f"batch {settings[0]} -> {smaller[0]}" if smaller[0] != settings[0]
                else f"tile {list(settings[1])} -> {list(smaller[1])} (results may differ slightly at tile borders)")
        (report or (lambda text: warnings.warn(text, RuntimeWarning, stacklevel=5)))(
            f"Out of {memory}; trying again with {what}.")

    result, (batch_size, tile) = retry_smaller(lambda settings: run(*settings), (batch_size, tuple(tile)),
                                               lambda settings: smaller_step(*settings, divisors), report=told,
                                               give_up=give_up)
    return result, batch_size, tile


__all__ = ["retry_out_of_memory", "smaller_step"]
