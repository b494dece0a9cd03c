"""Running out of memory in a training step halves the batch and tries again, with a message, instead of
ending the run: the memory a GPU has free is known only by trying, and the plan's batch is a guess."""
from __future__ import annotations

from ..runtime import retry_smaller


class TrainingMemoryError(ValueError):
    """Not even one patch fits in memory for a training step (a ValueError: the CLI prints it cleanly)."""


def halve_batch_on_out_of_memory(run, batch_size: int, *, report, patch, device) -> tuple[float, int]:
    """``run(batch_size)``, again with half the batch after each out-of-memory error, down to one patch.

    Parameters
    ----------
    run : callable(int) -> float
        One training step on a batch of that many patches (a fresh batch each call).
    batch_size : int
    report : callable(str)
        Told each retry, e.g. ``"out of memory at batch 8: continuing with batch 4."``.
    patch : ([Z,] Y, X) sequence of int
        Named in the error when one patch does not fit.
    device : torch.device or str

    Returns
    -------
    (float, int)
        ``run``'s result and the batch size that fitted (the run keeps it from here on).

    Raises
    ------
    TrainingMemoryError
        When a batch of one patch does not fit either, naming the settings that make it smaller.
    """
    def give_up(batch, memory, err):  # the device names the memory here
        return TrainingMemoryError(
            f"Out of memory on {device} while training on one patch of {list(patch)} (batch 1): {err}. "
            "Use a smaller patch (set model.patch (CLI: --patch), e.g. half each side) or a smaller model "
            "(model.size S); --batch-size is already 1. Closing other notebooks that hold the GPU, or "
            "training on the CPU (--device cpu), also helps.")

    def told(memory, batch, smaller):
        report(f"out of memory at batch {batch}: continuing with batch {smaller}.")

    return retry_smaller(run, batch_size, lambda batch: batch // 2 if batch > 1 else None, report=told,
                         give_up=give_up)


__all__ = ["TrainingMemoryError", "halve_batch_on_out_of_memory"]
