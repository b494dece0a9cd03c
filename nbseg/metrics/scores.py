"""Segmentation metrics: Dice and IoU per class, instance matching (F1, the DSB 2018 average
precision), Rand error and variation of information; per image and pooled over a set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

AP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5:0.05:0.95, the DSB 2018 definition


def dice_iou(pred, gt, *, classes=(1,)) -> dict:
    """Dice and IoU of each class.

    Parameters
    ----------
    pred, gt : ([Z,] Y, X) ndarray of int
        Class maps. For foreground metrics pass ``pred > 0`` and ``gt > 0``.
    classes : sequence of int
        Classes to score (default the foreground of a binary map).

    Returns
    -------
    dict of class -> {"dice", "iou", "intersection", "pred", "gt"}
        Pixel counts are kept so sets of images can be pooled. A class absent from both
        images scores 1 (nothing to find, nothing found).
    """
    pred, gt = same_shape(pred, gt)
    scores = {}
    for c in classes:
        p, g = pred == c, gt == c
        inter, n_pred, n_gt = int(np.count_nonzero(p & g)), int(np.count_nonzero(p)), int(np.count_nonzero(g))
        scores[c] = {"dice": ratio(2 * inter, n_pred + n_gt), "iou": ratio(inter, n_pred + n_gt - inter),
                     "intersection": inter, "pred": n_pred, "gt": n_gt}
    return scores


def ratio(num, den) -> float:
    return num / den if den else 1.0


def same_shape(pred, gt):
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has shape {pred.shape} but ground truth {gt.shape}; "
                         "they must cover the same pixels.")
    return pred, gt


@dataclass
class Overlaps:
    """Object sizes and the IoU of every overlapping (ground truth, prediction) pair."""

    n_gt: int
    n_pred: int
    gt_ids: np.ndarray  # for each overlapping pair, 1..n_gt
    pred_ids: np.ndarray  # 1..n_pred
    iou: np.ndarray
    inter: np.ndarray  # shared pixels of each pair
    gt_size: np.ndarray  # pixels of each object, indexed 0..n_gt (0: background)
    pred_size: np.ndarray  # 0..n_pred


def overlaps(pred, gt) -> Overlaps:
    """IoU of every pair of objects that share a pixel (sparse, so large 3D label images fit)."""
    from skimage.segmentation import relabel_sequential

    pred, gt = same_shape(pred, gt)
    pred = relabel_sequential(pred.astype(np.int64, copy=False))[0].ravel()
    gt = relabel_sequential(gt.astype(np.int64, copy=False))[0].ravel()
    n_pred, n_gt = int(pred.max(initial=0)), int(gt.max(initial=0))
    both = (pred > 0) & (gt > 0)
    codes, inter = np.unique(gt[both] * (n_pred + 1) + pred[both], return_counts=True)
    gt_ids, pred_ids = codes // (n_pred + 1), codes % (n_pred + 1)
    gt_size, pred_size = np.bincount(gt, minlength=n_gt + 1), np.bincount(pred, minlength=n_pred + 1)
    iou = inter / (gt_size[gt_ids] + pred_size[pred_ids] - inter)
    return Overlaps(n_gt, n_pred, gt_ids, pred_ids, iou, inter, gt_size, pred_size)


def matched_pairs(ov: Overlaps, threshold: float) -> np.ndarray:
    """One-to-one matching maximising the summed IoU among pairs with IoU > ``threshold``.

    Each group of objects linked by such pairs is solved with the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``); above 0.5 every group is a single pair.

    Returns
    -------
    (M,) ndarray of int
        Indices into ``ov.iou`` of the matched pairs.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = np.flatnonzero(ov.iou > threshold)
    if keep.size == 0:
        return keep
    rows, cols = ov.gt_ids[keep] - 1, ov.pred_ids[keep] - 1
    graph = coo_matrix((np.ones(keep.size), (rows, ov.n_gt + cols)), shape=(ov.n_gt + ov.n_pred,) * 2)
    _, component = connected_components(graph, directed=False)
    group = component[rows]
    matched = []
    for g in np.unique(group):
        members = keep[group == g]
        if members.size == 1:
            matched.append(members)
            continue
        r_ids, r = np.unique(ov.gt_ids[members], return_inverse=True)
        c_ids, c = np.unique(ov.pred_ids[members], return_inverse=True)
        cost = np.zeros((r_ids.size, c_ids.size))
        cost[r, c] = ov.iou[members]
        lookup = np.full(cost.shape, -1)
        lookup[r, c] = members
        chosen = lookup[linear_sum_assignment(cost, maximize=True)]
        matched.append(chosen[chosen >= 0])
    return np.concatenate(matched)


def instance_scores(pred, gt, *, thresholds=AP_THRESHOLDS) -> "pandas.DataFrame":
    """TP, FP, FN, precision, recall, F1 and AP = TP / (TP + FP + FN) at each IoU threshold.

    Parameters
    ----------
    pred, gt : ([Z,] Y, X) ndarray of int
        Label images, 0 = background, each object its own number.
    thresholds : sequence of float
        A pair matches when its IoU is above the threshold.

    Returns
    -------
    DataFrame indexed by threshold. Images with no object in either score 1 throughout.
    """
    import pandas as pd

    ov = overlaps(pred, gt)
    rows = [_counts_row(len(matched_pairs(ov, t)), ov.n_pred, ov.n_gt) for t in thresholds]
    return pd.DataFrame(rows, index=pd.Index(list(thresholds), name="iou_threshold"))


def _counts_row(tp: int, n_pred: int, n_gt: int) -> dict:
    fp, fn = n_pred - tp, n_gt - tp
    if n_pred == 0 and n_gt == 0:
        return dict(tp=0, fp=0, fn=0, precision=1.0, recall=1.0, f1=1.0, ap=1.0)
    return dict(tp=tp, fp=fp, fn=fn, precision=tp / n_pred if n_pred else 0.0, recall=tp / n_gt if n_gt else 0.0,
                f1=2 * tp / (2 * tp + fp + fn), ap=tp / (tp + fp + fn))


def mean_average_precision(pred, gt) -> float:
    """AP averaged over IoU thresholds 0.5, 0.55, ..., 0.95 (the DSB 2018 score of one image)."""
    return float(instance_scores(pred, gt)["ap"].mean())


def rand_vi(pred, gt) -> dict:
    """Adapted Rand error and variation of information of two label images.

    ``vi_split`` = H(pred | gt), over-segmentation; ``vi_merge`` = H(gt | pred), under-segmentation;
    in bits; ``vi`` is their sum.
    """
    from skimage.metrics import adapted_rand_error, variation_of_information

    pred, gt = same_shape(pred, gt)
    error, _, _ = adapted_rand_error(gt, pred)
    split, merge = variation_of_information(gt, pred)
    return {"rand_error": float(error), "vi": float(split + merge), "vi_split": float(split), "vi_merge": float(merge)}


__all__ = ["AP_THRESHOLDS", "Overlaps", "dice_iou", "instance_scores", "matched_pairs", "mean_average_precision",
           "overlaps", "rand_vi", "ratio", "same_shape"]
