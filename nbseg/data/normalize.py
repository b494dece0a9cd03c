"""Per-image percentile normalisation; its percentiles are saved with the model so prediction matches."""
from __future__ import annotations

import numpy as np

from ..config import DEFAULT_PERCENTILES


class IntensityError(ValueError):
    """An image that cannot be normalised (constant, or NaN/inf values)."""


def intensity_bounds(image, percentiles=DEFAULT_PERCENTILES, *, name: str = "image", sample_size: int = 2_000_000):
    """Per-channel ``(low, span)`` such that ``(image - low) / span`` maps ``percentiles`` to 0 and 1.

    Parameters
    ----------
    image : (C, [Z,] Y, X) array-like
    percentiles : (float, float)
    name : str
        The file, for messages.
    sample_size : int
        Percentiles of larger images are estimated from a regular subsample (fast on big stacks).

    Returns
    -------
    low, span : (C,) ndarray of float32 and float64
    """
    lows, spans = [], []
    for c, channel in enumerate(image):
        flat = np.asarray(channel).reshape(-1)
        values = flat[::max(1, flat.size // sample_size)].astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise IntensityError(f"{name} channel {c} holds NaN or infinite values; fix or remove the image.")
        low, high = np.percentile(values, percentiles)
        if high <= low:
            low, high = values.min(), values.max()
        if high <= low:
            raise IntensityError(
                f"{name} channel {c} is constant (every pixel is {low:g}); it carries no signal to learn from. "
                "Remove it or check the export."
            )
        lows.append(np.float32(low))
        spans.append(float(high) - float(low))
    return np.array(lows, dtype=np.float32), np.array(spans, dtype=np.float64)


def percentile_normalize(image, *, percentiles=DEFAULT_PERCENTILES, name: str = "image", sample_size: int = 2_000_000):
    """Scale each channel so its ``percentiles`` map to 0 and 1.

    Parameters
    ----------
    image : (C, [Z,] Y, X) ndarray
    percentiles : (float, float)
    name : str
        The file, for messages.
    sample_size : int
        See :func:`intensity_bounds`.

    Returns
    -------
    (C, [Z,] Y, X) ndarray of float32
    """
    lows, spans = intensity_bounds(image, percentiles, name=name, sample_size=sample_size)
    out = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        np.subtract(channel, lows[c], out=out[c], dtype=np.float32)
        out[c] /= spans[c]
    return out
