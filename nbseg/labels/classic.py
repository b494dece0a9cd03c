"""A classic first segmentation for images with no masks: smoothing, a threshold, a seeded watershed
and a smallest object size, in 2D and 3D alike, light enough for a live preview."""
from __future__ import annotations

from typing import Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import DEFAULT_MIN_SIZE


class ClassicSettings(BaseModel):
    """Settings of :func:`classic_segment`, checked when made (or changed).

    sigma : Gaussian smoothing in pixels, one value or one per axis (Z, Y, X) for anisotropic stacks.
    threshold : ``"otsu"``, ``"li"``, ``"triangle"`` (computed from the smoothed image) or a value in the
        image's intensity units.
    dark_objects : objects are darker than the background (brightfield, H&E-like nuclei).
    watershed : split touching objects with a watershed seeded at distance-transform peaks.
    min_distance : least distance in pixels between two seeds (about an object's radius).
    min_size : objects smaller than this many pixels are dropped.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    sigma: Union[float, tuple[float, ...]] = 1.0
    threshold: Union[Literal["otsu", "li", "triangle"], float] = "otsu"
    dark_objects: bool = False
    watershed: bool = True
    min_distance: int = Field(5, ge=1)
    min_size: int = Field(DEFAULT_MIN_SIZE, ge=0)

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, value):
        values = value if isinstance(value, tuple) else (value,)
        if any(not np.isfinite(v) or v < 0 for v in values) or not 1 <= len(values) <= 3:
            raise ValueError(f"sigma {value!r} must be one smoothing width in pixels, 0 or more, or one per axis "
                             "(Z, Y, X), e.g. 1.5 or (0.5, 2, 2)")
        return value


def grey(image, *, channel_axis: Optional[int] = None) -> np.ndarray:
    """One grey ``([Z,] Y, X)`` float32 image: the mean over the channels of a colour or multi-channel image.

    Parameters
    ----------
    image : ndarray
        ``([Z,] Y, X)``, or with a channel axis at ``channel_axis`` (e.g. ``-1`` for RGB ``(Y, X, 3)``,
        ``0`` for nbseg's ``C[Z]YX``).
    """
    image = np.asarray(image)
    if channel_axis is not None:
        image = image.mean(axis=channel_axis, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"The image has shape {image.shape}; give (Y, X) or (Z, Y, X), and channel_axis= for a "
                         "colour or multi-channel image (e.g. channel_axis=-1 for RGB).")
    return image.astype(np.float32, copy=False)


def classic_segment(image, settings: Optional[ClassicSettings] = None, *, channel_axis: Optional[int] = None,
                    **changes) -> np.ndarray:
    """Instance labels from smoothing, a threshold, an optional seeded watershed and a smallest size.

    Parameters
    ----------
    image : ndarray
        ``([Z,] Y, X)``, or with channels at ``channel_axis`` (averaged into one grey image).
    settings : ClassicSettings, optional
        Defaults when left out; keyword ``changes`` (e.g. ``threshold="li"``) override single settings.

    Returns
    -------
    labels : ([Z,] Y, X) ndarray of int32
        0 = background, objects 1..N.
    """
    from skimage.segmentation import relabel_sequential

    settings = ClassicSettings(**{**(settings or ClassicSettings()).model_dump(), **changes})  # checks changes
    smooth = smoothed(grey(image, channel_axis=channel_axis), settings.sigma)
    level = threshold_value(smooth, settings.threshold)
    foreground = smooth < level if settings.dark_objects else smooth > level
    labels = _seeded_watershed(foreground, settings.min_distance) if settings.watershed else _components(foreground)
    labels = _drop_small(labels, settings.min_size)
    return relabel_sequential(labels)[0].astype(np.int32)


def smoothed(image: np.ndarray, sigma) -> np.ndarray:
    """Gaussian smoothing of a ``([Z,] Y, X)`` image; ``sigma`` one value or one per axis."""
    from scipy.ndimage import gaussian_filter

    sigma = tuple(sigma) if isinstance(sigma, tuple) else (float(sigma),) * image.ndim
    if len(sigma) != image.ndim:
        raise ValueError(f"sigma has {len(sigma)} values {sigma} but the image has {image.ndim} axes "
                         f"{image.shape}; give one value, or one per axis.")
    return gaussian_filter(image, sigma) if any(sigma) else image


def threshold_value(image: np.ndarray, method) -> float:
    """The threshold of ``method`` (``"otsu"``, ``"li"``, ``"triangle"``) on ``image``, or the value given."""
    from skimage import filters

    if not isinstance(method, str):
        return float(method)
    if image.min() == image.max():
        return float(image.max())  # a flat image has no objects to find
    return float({"otsu": filters.threshold_otsu, "li": filters.threshold_li,
                  "triangle": filters.threshold_triangle}[method](image))


def _components(foreground: np.ndarray) -> np.ndarray:
    from scipy.ndimage import label

    return label(foreground)[0]


def _seeded_watershed(foreground: np.ndarray, min_distance: int) -> np.ndarray:
    """Split touching objects: one seed per distance-transform peak, at least ``min_distance`` apart."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter, label, maximum_filter
    from skimage.segmentation import watershed

    # smoothed, so the jagged outline of a threshold does not raise a peak (and a seed) in every bump
    distance = gaussian_filter(distance_transform_edt(foreground), 1.0)
    # a peak is the largest distance within min_distance; plateaus of equal peaks join into one seed
    peaks = (distance == maximum_filter(distance, size=2 * min_distance + 1)) & foreground
    seeds = label(peaks)[0]
    return watershed(-distance, seeds, mask=foreground)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


__all__ = ["ClassicSettings", "classic_segment", "grey", "smoothed", "threshold_value"]
