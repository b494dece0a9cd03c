"""From probabilities to masks and objects: thresholds, a threshold sweep, connected components or a
seeded watershed, small-object removal and hole filling — 2D and 3D alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..choices import check_choice
from ..config import DEFAULT_MIN_SIZE

if TYPE_CHECKING:
    import pandas

THRESHOLD_METHODS = ("otsu",)
# an interior probability above this seeds one object (nbseg.predict.seeds chooses a model's own after training)
DEFAULT_SEED_THRESHOLD = 0.5
# the interior map is smoothed by a Gaussian of this sigma (px) first: on noisy images a high seed threshold
# otherwise breaks one object's interior into specks, each a seed (DSB2018 with low-light noise: F1 0.66
# unsmoothed at 0.9 against 0.73 smoothed)
SEED_SMOOTHING = 1.0


def parse_threshold(value) -> str | float:
    """``"otsu"`` or a number in (0, 1), from a float or a string such as ``"0.4"``.

    Raises
    ------
    ValueError
        Naming what was given, what is allowed, and the closest method name on a typo.
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return check_choice(value.strip().lower(), THRESHOLD_METHODS, what="threshold",
                                hint=", or a probability between 0 and 1 such as 0.5")
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"threshold {value} is outside (0, 1); give a probability such as 0.5, or 'otsu'.")
    return value


def find_threshold(prob, *, method="otsu") -> float:
    """The threshold ``method`` gives for ``prob``: Otsu's, or ``method`` itself if it is a number.

    Parameters
    ----------
    prob : ([Z,] Y, X) ndarray
        Foreground probability in [0, 1].
    method : "otsu" or float
    """
    method = parse_threshold(method)
    if method != "otsu":
        return method
    from skimage.filters import threshold_otsu

    values = np.asarray(prob)
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    if values.size == 0 or values.min() == values.max():
        return 0.5  # nothing to split: any value gives the same mask
    return float(threshold_otsu(values))


def threshold(prob, *, method="otsu") -> np.ndarray:
    """Foreground mask: ``prob > t`` with ``t`` from :func:`find_threshold`.

    Parameters
    ----------
    prob : ([Z,] Y, X) ndarray
    method : "otsu" or float

    Returns
    -------
    ([Z,] Y, X) ndarray of bool
    """
    return np.asarray(prob) > find_threshold(prob, method=method)


def classes(probabilities) -> np.ndarray:
    """Most probable class per pixel (multi-class projects).

    Parameters
    ----------
    probabilities : (K, [Z,] Y, X) ndarray

    Returns
    -------
    ([Z,] Y, X) ndarray of uint8 (uint16 beyond 255 classes)
    """
    probabilities = np.asarray(probabilities)
    dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
    return np.argmax(probabilities, axis=0).astype(dtype)


@dataclass
class Sweep:
    """IoU against ground truth as the threshold varies (:func:`threshold_sweep`).

    Attributes
    ----------
    iou : DataFrame
        Index: thresholds; one column per image and ``"overall"`` (pooled over all pixels).
    best : Series
        Threshold with the highest IoU, per image and ``"overall"``.
    best_iou : Series
        That IoU.
    """

    iou: "pandas.DataFrame"
    best: "pandas.Series"
    best_iou: "pandas.Series"


def threshold_sweep(probs, gts, thresholds=None) -> Sweep:
    """Foreground IoU for each threshold, per image and pooled, and the best threshold of each.

    Parameters
    ----------
    probs : dict of name -> ([Z,] Y, X) ndarray, or list
        Foreground probabilities; NaN pixels are not scored.
    gts : same structure as ``probs``
        Ground truth; non-zero is foreground.
    thresholds : sequence of float, optional
        Default 0.05, 0.10, ..., 0.95.

    Returns
    -------
    Sweep
    """
    import pandas as pd

    names, prob_list, gt_list = _paired(probs, gts)
    thresholds = np.sort(np.asarray(thresholds if thresholds is not None else np.arange(1, 20) / 20, dtype=float))
    columns, pooled = {}, np.zeros((3, len(thresholds)))
    for name, prob, gt in zip(names, prob_list, gt_list):
        counts = _sweep_counts(prob, gt, thresholds)
        pooled += counts
        columns[name] = _iou(counts)
    columns["overall"] = _iou(pooled)
    iou = pd.DataFrame(columns, index=pd.Index(thresholds, name="threshold"))
    return Sweep(iou=iou, best=iou.idxmax(), best_iou=iou.max())


def _paired(probs, gts):
    if isinstance(probs, dict):
        missing = sorted(set(probs) ^ set(gts))
        if missing:
            raise ValueError(f"probabilities and ground truth name different images: {', '.join(map(str, missing))}. "
                             "Give both for the same images.")
        names = list(probs)
        return names, [probs[n] for n in names], [gts[n] for n in names]
    probs, gts = list(probs), list(gts)
    if len(probs) != len(gts):
        raise ValueError(f"{len(probs)} probability maps but {len(gts)} ground truths; give one of each per image.")
    return [f"image {i}" for i in range(len(probs))], probs, gts


def _sweep_counts(prob, gt, thresholds) -> np.ndarray:
    """``(TP, FP, FN)`` at each threshold, from the sorted probabilities of each ground-truth side."""
    prob, gt = np.asarray(prob).ravel(), np.asarray(gt).ravel() > 0
    if prob.dtype.kind != "f" or prob.dtype.itemsize < 4:
        prob = prob.astype(np.float32)
    thresholds = thresholds.astype(prob.dtype)  # compare as `prob > t` does for this dtype
    if prob.shape != gt.shape:
        raise ValueError(f"a probability map has {prob.size} pixels but its ground truth {gt.size}; "
                         "they must have the same shape.")
    scored = ~np.isnan(prob)  # NaN: not scored (out-of-fold maps of a region split, outside the held-back band)
    inside, outside = np.sort(prob[gt & scored]), np.sort(prob[~gt & scored])
    tp = inside.size - np.searchsorted(inside, thresholds, side="right")
    fp = outside.size - np.searchsorted(outside, thresholds, side="right")
    return np.stack([tp, fp, inside.size - tp]).astype(float)


def _iou(counts) -> np.ndarray:
    tp, fp, fn = counts
    union = tp + fp + fn
    return np.where(union > 0, tp / np.maximum(union, 1), 1.0)


def instances(foreground, *, interior=None, threshold=0.5, seed_threshold: float = DEFAULT_SEED_THRESHOLD,
              min_size: int = DEFAULT_MIN_SIZE, fill_holes: bool = True,
              seed_smoothing: float = SEED_SMOOTHING) -> np.ndarray:
    """Label objects: connected components of the mask, or a watershed seeded from interiors.

    Parameters
    ----------
    foreground : ([Z,] Y, X) ndarray
        Foreground probability, or a boolean mask.
    interior : ([Z,] Y, X) ndarray, optional
        Interior probability (the middle class of an ``instances`` project). When given, each
        connected region of ``interior > seed_threshold`` seeds one object and a watershed on
        the interior probability splits touching objects along their boundaries (both on the map
        smoothed by a Gaussian of :data:`SEED_SMOOTHING` px).
    threshold : float or "otsu"
        For a probability ``foreground``.
    seed_threshold : float
    min_size : int
        Objects with fewer pixels (voxels in 3D) are removed.
    fill_holes : bool
        Fill holes inside each object.
    seed_smoothing : float
        Sigma (px) of that Gaussian; 0 for an ``interior`` smoothed already (:func:`smooth_interior`, once for
        several seed thresholds).

    Returns
    -------
    ([Z,] Y, X) ndarray of int32, 0 = background, 1..N = objects
    """
    from skimage.measure import label

    foreground = np.asarray(foreground)
    mask = foreground if foreground.dtype == bool else foreground > find_threshold(foreground, method=threshold)
    if interior is None:
        labels = label(mask).astype(np.int32)
    else:
        labels = _seeded_watershed(mask, np.asarray(interior, dtype=np.float32), seed_threshold, seed_smoothing)
    labels = remove_small_objects(labels, min_size=min_size)
    return fill_object_holes(labels) if fill_holes else labels


def smooth_interior(interior, sigma: float = SEED_SMOOTHING) -> np.ndarray:
    """The interior map as the seeded watershed reads it: float32, smoothed by a Gaussian of ``sigma`` px."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(interior, dtype=np.float32), sigma)


def _seeded_watershed(mask, interior, seed_threshold, smoothing) -> np.ndarray:
    from skimage.measure import label
    from skimage.segmentation import watershed

    if interior.shape != mask.shape:
        raise ValueError(f"interior has shape {interior.shape} but foreground {mask.shape}; give both for one image.")
    if smoothing:
        interior = smooth_interior(interior, smoothing)
    seeds = label((interior > seed_threshold) & mask)
    labels = watershed(-interior, markers=seeds, mask=mask).astype(np.int32)
    unseeded = mask & (labels == 0)  # foreground regions without an interior seed stay objects
    if unseeded.any():
        extra = label(unseeded)
        labels[extra > 0] = extra[extra > 0] + labels.max()
    return labels


def remove_small_objects(labels, *, min_size: int) -> np.ndarray:
    """Drop objects smaller than ``min_size`` pixels and number the rest 1..N.

    Parameters
    ----------
    labels : ([Z,] Y, X) ndarray of int
    min_size : int
    """
    from skimage.segmentation import relabel_sequential

    labels = np.asarray(labels)
    if min_size > 1 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels.astype(np.int32, copy=False))[0]


def fill_object_holes(labels) -> np.ndarray:
    """Fill each object's holes (background pixels it encloses) with its own label, in 2D or 3D."""
    from scipy import ndimage

    labels = np.array(labels, copy=True)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = labels[box]
        filled = ndimage.binary_fill_holes(region == index)
        region[filled & (region == 0)] = index
    return labels
