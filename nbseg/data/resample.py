"""The working scale: images and labels resampled so typical objects fit the network's view.

Training and prediction call the same functions, so a model always sees its images at the scale
it learnt them; predictions are brought back to the input's own shape (and pixel sizes) before
anything is thresholded or written.

Factors are per spatial axis, ``([Z,] Y, X)``: 0.5 halves an axis, 1 leaves it alone.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

FIDELITY_SAMPLE = 8  # images (or evenly spaced slices of a stack) on which label fidelity is measured
FIDELITY_SIDE = 1024  # in-plane crop for that measurement, so a huge image costs seconds


def is_native(factors) -> bool:
    """True when ``factors`` leave every axis at its own scale."""
    return factors is None or all(abs(float(f) - 1.0) < 1e-6 for f in factors)


def scaled_shape(shape, factors) -> tuple:
    """``shape`` at ``factors`` (each side at least 1 pixel)."""
    return tuple(max(1, int(round(n * f))) for n, f in zip(shape, factors))


def image_factors(scale, spacing, pixel_sizes, unit=None) -> list:
    """The factors that bring one image to the working scale.

    Parameters
    ----------
    scale : sequence of float or None
        The plan's factors (``Plan.scale``), for images of the training data's pixel size.
    spacing : sequence of float or None
        The plan's pixel size at the working scale (``Plan.spacing``, µm), if known.
    pixel_sizes : sequence of float or None
        This image's, ``([Z,] Y, X)``; ``unit`` its unit.

    Returns
    -------
    list of float
        ``pixel_sizes / spacing`` where both are known in µm and differ from ``scale`` by more than
        5 % (another microscope or zoom: resampled to the training data's pixel size), else ``scale``.
    """
    dims = len(scale) if scale else len(pixel_sizes or ()) or 2
    base = [1.0] * dims if not scale else [float(f) for f in scale]
    if not spacing or unit != "µm" or not pixel_sizes or any(v is None for v in pixel_sizes):
        return base
    factors = [float(v) / float(t) for v, t in zip(pixel_sizes, spacing)]
    return factors if any(abs(f - b) > 0.05 * b for f, b in zip(factors, base)) else base


def rescale_dataset(dataset, scale, spacing=None):
    """``dataset`` at the working scale (a new Dataset; the given one is unchanged).

    Parameters
    ----------
    dataset : nbseg.data.Dataset
    scale, spacing : the plan's (see :func:`image_factors`)
    """
    from dataclasses import replace

    samples, moved = [], []
    for s in dataset.samples:
        factors = image_factors(scale, spacing, s.pixel_sizes, s.unit)
        if is_native(factors):
            samples.append(s)
            continue
        if scale and factors != [float(f) for f in scale]:
            moved.append(s.name)
        sizes = tuple(None if v is None else v / f for v, f in zip(s.pixel_sizes or (), factors)) or s.pixel_sizes
        samples.append(replace(s, image=resample_image(s.image, factors),
                               target=resample_target(s.target, factors), pixel_sizes=sizes))
    notes = list(dataset.notes)
    if moved:
        notes.append(f"pixel sizes differ between images: {', '.join(moved[:5])}{', ...' if len(moved) > 5 else ''} "
                     f"resampled to the common pixel size {spacing} µm")
    return replace(dataset, samples=samples, notes=notes)


def resample_image(data: np.ndarray, factors) -> np.ndarray:
    """Resample a ``(C, [Z,] Y, X)`` image by ``factors`` (linear, smoothed first when shrinking).

    The Gaussian smoothing before a reduction (sigma ``(1/f - 1) / 2`` per axis, as scikit-image's
    ``rescale`` does) keeps thin bright structures from vanishing between the kept pixels.

    Parameters
    ----------
    data : (C, [Z,] Y, X) ndarray
    factors : sequence of float, one per spatial axis

    Returns
    -------
    (C, [Z',] Y', X') float32 ndarray
    """
    if is_native(factors):
        return np.asarray(data, dtype=np.float32)
    shape = scaled_shape(data.shape[1:], factors)
    sigma = [max(0.0, (1 / f - 1) / 2) for f in factors]
    channels = []
    for channel in np.asarray(data, dtype=np.float32):
        if any(sigma):
            channel = ndimage.gaussian_filter(channel, sigma, mode="nearest")
        channels.append(_linear(channel, shape))
    return np.stack(channels)


def resample_target(target: np.ndarray, factors) -> np.ndarray:
    """Resample an integer ``([Z,] Y, X)`` target (classes, ``-1`` ignored) by nearest neighbour."""
    if is_native(factors):
        return target
    shape = scaled_shape(target.shape, factors)
    return _linear(target, shape, order=0).astype(target.dtype)


def restore(stored: np.ndarray, shape, out=None, *, step: int = 8) -> np.ndarray:
    """Bring ``(K, [Z',] Y', X')`` maps at the working scale back to ``shape`` (linear).

    Parameters
    ----------
    stored : (K, ...) ndarray or memory map
    shape : ([Z,] Y, X) tuple of int
        The input image's spatial shape.
    out : (K, *shape) array or nbseg.model.tiling.DiskArray, optional
        Written slab by slab along the first spatial axis (a disk-backed store stays on disk).
    step : int
        Output slices per slab.
    """
    out = np.empty((stored.shape[0],) + tuple(shape), stored.dtype) if out is None else out
    zoom = [n / m for n, m in zip(shape, stored.shape[1:])]
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        lo, hi = _source_range(start, stop, zoom[0], stored.shape[1])
        slab = [_linear(np.asarray(stored[k, lo:hi], dtype=np.float32), (stop - start,) + tuple(shape[1:]),
                        offset=(start, lo), zoom=zoom) for k in range(stored.shape[0])]
        out[:, start:stop] = np.stack(slab)  # whole slabs: a disk-backed store takes only these
    return out


def _source_range(start: int, stop: int, zoom: float, n: int) -> tuple[int, int]:
    """Source slices needed (with one of margin) for output slices ``start:stop``."""
    lo = int(np.floor((start + 0.5) / zoom - 0.5)) - 1
    hi = int(np.ceil((stop - 0.5) / zoom - 0.5)) + 2
    return max(0, lo), min(n, hi)


def _linear(array: np.ndarray, shape, *, order: int = 1, offset=(0, 0), zoom=None, origin=None) -> np.ndarray:
    """``array`` resampled to ``shape`` with pixel centres aligned (``align_corners=False``).

    ``offset`` = (first output index, first source index) along axis 0, for slab-wise restoring;
    ``origin`` the same pair for every axis, for a window of a larger image.
    """
    zoom = zoom or [n / m for n, m in zip(shape, array.shape)]
    matrix = np.array([1 / z for z in zoom])
    # output pixel o maps to source (o + 0.5) / z - 0.5; shifted along axis 0 for a slab
    shift = np.array([0.5 / z - 0.5 for z in zoom])
    shift[0] += offset[0] / zoom[0] - offset[1]
    for axis, (out_start, src_start) in enumerate(origin or ()):
        shift[axis] += out_start / zoom[axis] - src_start
    return ndimage.affine_transform(array, matrix, offset=shift, output_shape=tuple(shape), order=order,
                                    mode="nearest", prefilter=False)


def label_fidelity(targets, factors, n_classes: int) -> float:
    """How well labels survive the trip to ``factors`` and back: the lowest per-class Dice.

    Each class is shrunk as a soft mask (linear, smoothed as images are), brought back, and
    thresholded at 0.5 — what predicting at that scale can at best give. Thin structures
    (membranes, object borders) lose most, so they keep a dataset at its own scale. Stacks are
    measured on evenly spaced slices, with the in-plane factors.

    Parameters
    ----------
    targets : list of ([Z,] Y, X) int arrays
    factors : sequence of float
    n_classes : int

    Returns
    -------
    float
        In [0, 1]; 1.0 when no class has labelled pixels.
    """
    inter, total = np.zeros(n_classes), np.zeros(n_classes)
    for target in _fidelity_crops(targets):
        for c in range(1, n_classes):
            mask = (target == c).astype(np.float32)
            if not mask.any():
                continue
            back = _round_trip(mask, list(factors)[-mask.ndim:]) >= 0.5
            inter[c] += 2 * np.logical_and(back, mask > 0).sum()
            total[c] += back.sum() + mask.sum()
    present = total > 0
    return float(np.min(inter[present] / total[present])) if present.any() else 1.0


def _round_trip(mask: np.ndarray, factors) -> np.ndarray:
    small = resample_image(mask[np.newaxis], factors)[0]
    return _linear(small, mask.shape)


def _fidelity_crops(targets):
    """Up to FIDELITY_SAMPLE 2D/3D pieces, each cropped in-plane to FIDELITY_SIDE."""
    pieces = []
    for target in targets:
        if target.ndim == 3:  # evenly spaced slices stand for a stack (planar factors only differ in-plane)
            picks = np.linspace(0, target.shape[0] - 1, min(target.shape[0], FIDELITY_SAMPLE)).astype(int)
            pieces += [target[i] for i in np.unique(picks)]
        else:
            pieces.append(target)
    step = max(1, len(pieces) // FIDELITY_SAMPLE)
    for piece in pieces[::step][:FIDELITY_SAMPLE]:
        yield piece[..., :FIDELITY_SIDE, :FIDELITY_SIDE]


__all__ = ["image_factors", "is_native", "rescale_dataset", "label_fidelity", "resample_image", "resample_target",
           "restore", "scaled_shape"]
