"""How many object edits turn one label image into another (the simulated annotator's count).

Objects are matched at IoU > 0.5 (one-to-one). An object of ``before`` of which two or more objects of
``after`` mostly lie inside was split (one edit per extra piece); an object of ``after`` that holds most
of two or more objects of ``before`` is a merge (one edit per extra object). Objects left unmatched are
added (in ``after`` only) or deleted (in ``before`` only); matched objects in no split or merge are kept.
"""
from __future__ import annotations

import numpy as np

from .scores import overlaps


def count_edits(before, after, *, iou: float = 0.5) -> dict:
    """Object edits from ``before`` (e.g. a prediction) to ``after`` (the corrected labels).

    Parameters
    ----------
    before, after : ([Z,] Y, X) ndarray of int
        Instance label images of one shape, 0 = background.
    iou : float
        Pairs above this IoU are the same object, kept (no edit).

    Returns
    -------
    dict
        ``added``, ``deleted``, ``split``, ``merged`` (edits of each kind), ``edits`` (their sum) and
        ``kept`` (objects matched, not counted as edits).
    """
    if not 0 < iou < 1:
        raise ValueError(f"iou={iou}; give a matching threshold between 0 and 1, e.g. 0.5.")
    ov = overlaps(before, after)  # "prediction" = before, "ground truth" = after
    nb, na, bi, ai, inter = ov.n_pred, ov.n_gt, ov.pred_ids, ov.gt_ids, ov.inter
    size_b, size_a = ov.pred_size, ov.gt_size
    matched = ov.iou > iou
    home_of_a = _home(ai, bi, inter, size_a, na)  # the before-object each after-object mostly lies in
    home_of_b = _home(bi, ai, inter, size_b, nb)
    used_b, used_a = np.zeros(nb + 1, bool), np.zeros(na + 1, bool)
    split = _groups(home_of_a, used_a, used_b)
    merged = _groups(home_of_b, used_b, used_a)
    kept_pairs = matched & ~used_b[bi] & ~used_a[ai]
    used_b[bi[kept_pairs]] = used_a[ai[kept_pairs]] = True
    added, deleted = int((~used_a[1:]).sum()), int((~used_b[1:]).sum())
    return {"added": added, "deleted": deleted, "split": split, "merged": merged,
            "edits": added + deleted + split + merged, "kept": int(kept_pairs.sum())}


def _home(ids, other, inter, size, n) -> np.ndarray:
    """For each object 1..n, the object of the other image holding more than half of it (0: none)."""
    home = np.zeros(n + 1, np.int64)
    most = inter > size[ids] / 2
    home[ids[most]] = other[most]
    return home


def _groups(home, used_parts, used_whole) -> int:
    """Edits for wholes that two or more parts call home (parts - 1 each); marks the objects involved.

    An object may be in a split and in a merge both (cut, then one piece joined to a neighbour).
    """
    counts = np.bincount(home[1:], minlength=len(used_whole))
    counts[0] = 0
    wholes = np.flatnonzero(counts >= 2)
    used_whole[wholes] = True
    used_parts[np.flatnonzero(np.isin(home, wholes) & (home > 0))] = True
    return int((counts[wholes] - 1).sum())


__all__ = ["count_edits"]
