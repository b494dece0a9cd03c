"""A CUDA out-of-memory error during prediction halves the batch, then the tile, and tries again with a
message, instead of ending the session (the memory a GPU has free is known only by trying)."""
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
    """``run(batch_size, tile)``, again with half the batch (then half the tile) after each CUDA
    out-of-memory error, until it fits or nothing is left to halve.

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
    torch.cuda.OutOfMemoryError
        When one tile of the smallest size does not fit either, saying so.
    """
    import warnings

    import torch

    from ..runtime import is_out_of_memory

    report = report or (lambda text: warnings.warn(text, RuntimeWarning, stacklevel=3))
    while True:
        try:
            return run(batch_size, tuple(tile)), batch_size, tuple(tile)
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):  # a GPU's, or the CPU allocator's "can't allocate memory"
                raise
            step = smaller_step(batch_size, tile, divisors)
            if step is None:
                raise torch.cuda.OutOfMemoryError(
                    f"Out of GPU memory even with one tile of {list(tile)}: {err}. Close other notebooks that "
                    "hold the GPU, or predict on the CPU (CLI: --device cpu).") from err
            what = (f"batch {batch_size} -> {step[0]}" if step[0] != batch_size
                    else f"tile {list(tile)} -> {list(step[1])} (results may differ slightly at tile borders)")
            report(f"Out of GPU memory; trying again with {what}.")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what the failed batch held goes back before the retry
            batch_size, tile = step


__all__ = ["retry_out_of_memory", "smaller_step"]
