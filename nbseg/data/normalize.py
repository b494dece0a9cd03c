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


def percentile_normalize(image, *, percentiles=DEFAULT_PERCENTILES, name: str = "image", sample_size: int = 2_000_000,
                         bounds=None):
    """Scale each channel so its ``percentiles`` map to 0 and 1 (or by another image's ``bounds``).

    Parameters
    ----------
    image : (C, [Z,] Y, X) ndarray
    percentiles : (float, float)
    name : str
        The file, for messages.
    sample_size : int
        See :func:`intensity_bounds`.
    bounds : (low, span), optional
        :func:`intensity_bounds` of another image to scale by instead (CARE's clean targets go by their noisy
        input's, so the network's output stays in the input's intensity scale).

    Returns
    -------
    (C, [Z,] Y, X) ndarray of float32
    """
    lows, spans = bounds if bounds is not None else intensity_bounds(image, percentiles, name=name,
                                                                     sample_size=sample_size)
    out = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        np.subtract(channel, lows[c], out=out[c], dtype=np.float32)
        out[c] /= spans[c]
    return out


def as_grey(image, *, bright_objects: bool | None = None):
    """An RGB(A) :class:`~nbseg.io.images.Image` as one grey channel (the mean of R, G and B), for a model trained on grey images.

    A colour image with a light background (brightfield: most pixels lie in the upper half of its range) is
    inverted for a model whose training objects were brighter than their background (fluorescence), so
    that its dark nuclei reach the model as bright ones.
    """
    from dataclasses import replace

    grey = np.asarray(image.data[:3], dtype=np.float32).mean(axis=0, keepdims=True)
    low, median, high = np.percentile(grey[:, ::4, ::4], (1, 50, 99))
    if bright_objects and median > (low + high) / 2:
        grey = grey.max() - grey
    return replace(image, data=grey)
