"""The smallest object that ``nbseg predict --instances`` keeps, planned from the labelled objects' sizes.

A predicted object smaller than nearly every object the user labelled is far more often a speck or a
fragment than a real object: dropping it removes false positives and costs few true ones. The bound is
the 1st percentile of the labelled objects' pixel counts (``Fingerprint.object_size``; instance and binary
labels), halved when fewer than ``FEW_OBJECTS`` are labelled, never below :data:`DEFAULT_MIN_SIZE`.
Prediction counts it in each image's own pixels (:func:`nbseg.predict.options.planned_min_size`), and
``nbseg predict --min-size`` and notebook 07 override it. How it was chosen (the percentile on DSB2018's
validation images; the half for few objects, a margin) is in docs/benchmarks.md.
"""
from __future__ import annotations

from ..config import DEFAULT_MIN_SIZE  # the floor, and prediction's bound when the models do not say

QUANTILE = "p1"
# Under this many labelled objects the 1st percentile is the smallest one itself, not a share of them: a
# real object a little smaller, or one predicted a little small, would be dropped, so the bound is halved.
FEW_OBJECTS = 100


def plan_min_size(fingerprint) -> tuple[int | None, str | None]:
    """Pixels an object of ``nbseg predict --instances`` needs to be kept, and why; (None, None) for
    multi-class labels.

    Parameters
    ----------
    fingerprint : nbseg.data.fingerprint.Fingerprint
        ``fingerprint.object_size`` gives the labelled objects' pixel counts at the images' own scale, the
        scale prediction writes its results at.

    Returns
    -------
    (int or None, str or None)
        The bound and its reason in a sentence.
    """
    sizes = getattr(fingerprint, "object_size", None)
    if fingerprint.kind == "multiclass" or not sizes or not sizes.get("count"):
        return None, None  # classes are not objects: a multi-class result keeps every pixel's class
    smallest, few = int(sizes[QUANTILE]), sizes["count"] < FEW_OBJECTS
    size = max(DEFAULT_MIN_SIZE, smallest // 2 if few else smallest)
    unit = "voxels" if fingerprint.spatial_dims == 3 else "px"
    if size == DEFAULT_MIN_SIZE:
        why = (f"{size} {unit}: the smallest labelled objects are as small as {smallest} {unit}, so only specks "
               f"under {DEFAULT_MIN_SIZE} are dropped")
    elif few:
        why = (f"{size} {unit}: half the smallest of the {sizes['count']} labelled objects ({smallest} {unit}; with "
               f"fewer than {FEW_OBJECTS} objects, new ones may well be smaller), so smaller predicted objects are "
               "dropped from the instance results")
    else:
        why = (f"{size} {unit}: 99 % of the {sizes['count']:,} labelled objects are at least {smallest} {unit}, so "
               "smaller predicted objects are dropped from the instance results")
    return size, why + " (nbseg predict --min-size, notebook 07's 'Min object size')"


__all__ = ["DEFAULT_MIN_SIZE", "plan_min_size"]
