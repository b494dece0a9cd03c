"""Per-image percentile normalisation; its percentiles are saved with the model so prediction matches."""
from __future__ import annotations

import numpy as np


class IntensityError(ValueError):
    """An image that cannot be normalised (constant, or NaN/inf values)."""


def percentile_normalize(image, *, percentiles=(1.0, 99.8), name: str = "image", sample_size: int = 2_000_000):
    """Scale each channel so its ``percentiles`` map to 0 and 1.

    Parameters
    ----------
    image : (C, [Z,] Y, X) ndarray
    percentiles : (float, float)
    name : str
        The file, for messages.
    sample_size : int
        Percentiles of larger images are estimated from a regular subsample (fast on big stacks).

    Returns
    -------
    (C, [Z,] Y, X) ndarray of float32
    """
    out = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        flat = np.asarray(channel).reshape(-1)
        stride = max(1, flat.size // sample_size)
        values = flat[::stride].astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise IntensityError(f"{name} channel {c} holds NaN or infinite values; fix or remove the image.")
        low, high = np.percentile(values, percentiles)
        if high <= low:
            high = values.max()
            low = values.min()
        if high <= low:
            raise IntensityError(
                f"{name} channel {c} is constant (every pixel is {low:g}); it carries no signal to learn from. "
                "Remove it or check the export."
            )
        np.subtract(channel, low, out=out[c], dtype=np.float32)
        out[c] /= high - low
    return out
