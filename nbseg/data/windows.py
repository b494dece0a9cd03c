"""Windows of a resampled image: blocks of a large image resampled apart that still fit together.

Blocked prediction (:mod:`nbseg.predict.cluster.blocks`) reads one block of the input at a time; these
functions say which input pixels a block of the working-scale image needs, resample just that
crop, and bring a block of predictions back to the input's scale, with the same values
:func:`nbseg.data.resample.resample_image` and :func:`~nbseg.data.resample.restore` give on the whole image.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .resample import _linear, _source_range, scaled_shape  # one interpolation rule for wholes and windows


def source_window(window, shape, factors) -> tuple:
    """The input pixels that :func:`resample_window` needs for ``window`` of the image at ``factors``.

    Parameters
    ----------
    window : ([Z,] Y, X) tuple of slice
        Pixels of the resampled image (of shape ``scaled_shape(shape, factors)``).
    shape : ([Z,] Y, X) tuple of int
        The input image's.

    Returns
    -------
    tuple of slice
        Those ``window`` reads by linear interpolation, widened by the smoothing's reach.
    """
    work = scaled_shape(shape, factors)
    found = []
    for w, n, m, f in zip(window, shape, work, factors):
        lo, hi = _source_range(w.start, w.stop, m / n, n)
        reach = int(4.0 * max(0.0, (1 / f - 1) / 2) + 0.5)  # gaussian_filter's radius (truncate 4)
        found.append(slice(max(0, lo - reach), min(n, hi + reach)))
    return tuple(found)


def resample_window(data: np.ndarray, factors, shape, window, start) -> np.ndarray:
    """``window`` of ``resample_image(whole, factors)``, from a crop of the whole image.

    The values equal the whole image's (up to float rounding) when the crop holds
    :func:`source_window`: blocks of a large image are resampled apart and still fit together.

    Parameters
    ----------
    data : (C, [Z,] Y, X) ndarray
        The crop of the whole image, which begins at pixel ``start`` of it.
    factors : sequence of float
    shape : ([Z,] Y, X) tuple of int
        The whole image's.
    window : ([Z,] Y, X) tuple of slice
        Pixels of the resampled whole image.

    Returns
    -------
    (C, *window sides) float32 ndarray
    """
    zoom = [m / n for m, n in zip(scaled_shape(shape, factors), shape)]
    sigma = [max(0.0, (1 / f - 1) / 2) for f in factors]
    sides = tuple(w.stop - w.start for w in window)
    origin = [(w.start, s) for w, s in zip(window, start)]
    channels = []
    for channel in np.asarray(data, dtype=np.float32):
        if any(sigma):
            channel = ndimage.gaussian_filter(channel, sigma, mode="nearest")
        channels.append(_linear(channel, sides, zoom=zoom, origin=origin))
    return np.stack(channels)


def restore_window(stored: np.ndarray, shape, work_shape, window, start) -> np.ndarray:
    """``window`` of :func:`restore` (``stored`` of the whole image brought back to ``shape``),
    from the part of ``stored`` that begins at ``start``.

    Parameters
    ----------
    stored : (K, ...) ndarray
        A part of the working-scale maps, whose whole is ``work_shape``; it must hold
        :func:`restore_source` of ``window``.
    shape : ([Z,] Y, X) tuple of int
        The input image's.
    window : ([Z,] Y, X) tuple of slice
        Pixels of the input image.

    Returns
    -------
    (K, *window sides) float32 ndarray
    """
    zoom = [n / m for n, m in zip(shape, work_shape)]
    sides = tuple(w.stop - w.start for w in window)
    origin = [(w.start, s) for w, s in zip(window, start)]
    return np.stack([_linear(np.asarray(k, dtype=np.float32), sides, zoom=zoom, origin=origin) for k in stored])


def restore_source(window, shape, work_shape) -> tuple:
    """The working-scale pixels that :func:`restore_window` reads for ``window`` of the input."""
    return tuple(slice(*_source_range(w.start, w.stop, n / m, m)) for w, n, m in zip(window, shape, work_shape))


__all__ = ["source_window", "resample_window", "restore_window", "restore_source"]
