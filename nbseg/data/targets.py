"""Turn label images into training targets: binary, multi-class, or background/interior/boundary."""
from __future__ import annotations

import numpy as np

from ..config import IGNORE

MAX_MASKS_READ = 8  # masks looked at to tell classes from objects
MAX_AUTO_CLASSES = 32  # more values than this are objects, whatever their shapes
CLASS_NAMES = {
    "binary": ["background", "foreground"],
    "instances": ["background", "interior", "boundary"],
}


class LabelError(ValueError):
    """Label values do not fit the declared kind; the message names the file."""


def detect_label_kind(masks, *, n_classes=None, names=None) -> str:
    """What the label images hold, read from their values and shapes.

    ``"binary"`` if every mask holds only 0/1 or 0/255; ``"multiclass"`` if ``n_classes`` is given,
    or if each value forms many separate regions (classes: membranes, vesicles, ...); ``"instances"``
    if each value is one region (one number per object).

    Raises
    ------
    LabelError
        When the values could be either (a few values, each one region), naming ``--labels``.
    """
    masks = list(masks)
    values = set()
    for mask in masks:
        values.update(np.unique(mask).tolist())
    if values <= {0, 1} or values <= {0, 255}:
        return "binary"
    if n_classes:
        return "multiclass"
    regions, labels = _regions_per_value(masks[:MAX_MASKS_READ])
    if regions <= 1.5 * labels and labels > 2 * len(masks[:MAX_MASKS_READ]):
        return "instances"  # about one region per number, and more numbers than a class set has
    if regions > 2 * labels and max(values) < MAX_AUTO_CLASSES:
        return "multiclass"
    where = f" ({', '.join(map(str, names[:3]))})" if names else ""
    raise LabelError(
        f"The masks{where} hold the values {sorted(values)[:8]}{' ...' if len(values) > 8 else ''}, and it is not "
        "clear whether they are classes or objects. Say which: --labels multiclass (with --n-classes K) or "
        "--labels instances (data.labels in config.yaml).")


def _regions_per_value(masks) -> tuple[int, int]:
    """Connected regions of equal nonzero value, and distinct nonzero values, summed over ``masks``."""
    from skimage.measure import label

    regions = numbers = 0
    for mask in masks:
        mask = np.asarray(mask)
        regions += int(label(mask, background=0, connectivity=1).max())
        numbers += int(np.count_nonzero(np.unique(mask)))
    return regions, numbers


def n_classes_for(kind: str, n_classes=None) -> int:
    if kind == "binary":
        return 2
    if kind == "instances":
        return 3
    if not n_classes or n_classes < 2:
        raise LabelError(f"multi-class labels need n_classes (2 or more); got {n_classes!r}.")
    return int(n_classes)


def split_unlabelled(mask, value: int | None):
    """The mask with its "not labelled" pixels set to 0, and where they are.

    Parameters
    ----------
    mask : ([Z,] Y, X) ndarray of int, or None
    value : int or None
        The value that means "not labelled" (``data.unlabelled``); None: every pixel is labelled.

    Returns
    -------
    labels : ([Z,] Y, X) ndarray, or None for no mask
    unlabelled : ([Z,] Y, X) ndarray of bool, or None where every pixel is labelled
    """
    if mask is None or value is None:
        return mask, None
    unlabelled = np.asarray(mask) == value
    return np.where(unlabelled, 0, mask), (unlabelled if unlabelled.any() else None)


def check_unlabelled_value(value: int, kind: str, n_classes: int, values) -> None:
    """Refuse a "not labelled" value that is also a class the masks use.

    Parameters
    ----------
    value : int
        The value that means "not labelled" (``data.unlabelled``).
    kind : {"binary", "multiclass", "instances"}
    n_classes : int
    values : set of int
        The label values seen in the masks, ``value`` left out.

    Raises
    ------
    LabelError
    """
    classes = {"binary": {0, 1, 255} & (values | {0, 1}), "multiclass": set(range(n_classes))}.get(kind, {0})
    if value in classes:
        meaning = "background" if value == 0 else f"class {value} of the {kind} labels"
        raise LabelError(
            f"The 'not labelled' value {value} is also {meaning} (label values {sorted(values)[:8]}). Give the "
            "unlabelled pixels a value no class uses (e.g. the largest value of the mask type, 255 or 65535, "
            "for multi-class or instance masks) and set it with --unlabelled (data.unlabelled in config.yaml).")


def to_target(mask: np.ndarray, kind: str, *, n_classes: int, name: str = "mask",
              unlabelled: np.ndarray | None = None) -> np.ndarray:
    """Target classes for one mask, int64 of the same shape.

    Parameters
    ----------
    mask : ([Z,] Y, X) ndarray of int
        Labels; pixels under ``unlabelled`` should hold 0.
    kind : {"binary", "multiclass", "instances"}
    n_classes : int
    name : str
        The file, for messages.
    unlabelled : ([Z,] Y, X) ndarray of bool, optional
        Pixels nobody labelled: their target is ``IGNORE``, and object boundaries are not drawn against them.
    """
    target = _classes(mask, kind, n_classes=n_classes, name=name, unlabelled=unlabelled)
    if unlabelled is not None:
        target[unlabelled] = IGNORE
    return target


def _classes(mask, kind, *, n_classes, name, unlabelled):
    if mask.min() < 0:
        raise LabelError(f"{name} holds negative label {mask.min()}; labels start at 0 (background).")
    if kind == "binary":
        return (mask > 0).astype(np.int64)
    if kind == "multiclass":
        top = int(mask.max())
        if top >= n_classes:
            raise LabelError(
                f"{name} holds label {top} but the project has {n_classes} classes (0..{n_classes - 1}). "
                f"Set n_classes to {top + 1} or fix the mask."
            )
        return mask.astype(np.int64)
    if kind == "instances":
        return instances_to_three_class(mask, unlabelled=unlabelled)
    raise LabelError(f"label kind {kind!r} is unknown; use binary, multiclass or instances.")


def instances_to_three_class(labels: np.ndarray, *, unlabelled: np.ndarray | None = None) -> np.ndarray:
    """0 background, 1 interior, 2 boundary — the boundary class lets touching objects come apart.

    Boundaries are the objects' inner edge pixels, taken per 2D plane for stacks so thin
    anisotropic slices are not all boundary.

    Parameters
    ----------
    labels : ([Z,] Y, X) ndarray of int
        Object ids, 0 background.
    unlabelled : ([Z,] Y, X) ndarray of bool, optional
        Pixels nobody labelled. An object's edge towards them is not a boundary: what lies beyond is unknown.
    """
    from scipy import ndimage

    target = (labels > 0).astype(np.int64)
    planes = labels[np.newaxis] if labels.ndim == 2 else labels
    free = np.zeros(planes.shape, bool) if unlabelled is None else unlabelled.reshape(planes.shape)
    cross = ndimage.generate_binary_structure(3, 1)
    cross[0] = cross[2] = False  # neighbours within each plane only
    # an inner edge pixel has a labelled neighbour of another value; unlabelled neighbours take part in neither
    # the largest nor the smallest neighbouring value
    values = planes.astype(np.int64)
    high = ndimage.maximum_filter(np.where(free, -1, values), footprint=cross, mode="nearest")
    low = ndimage.minimum_filter(np.where(free, np.iinfo(np.int64).max, values), footprint=cross, mode="nearest")
    edges = ((high != values) | (low != values)).reshape(labels.shape)
    target[edges & (labels > 0)] = 2
    return target


def foreground(target: np.ndarray) -> np.ndarray:
    """Pixels of any object class (the thing a biologist means by 'segmented')."""
    return target > 0
