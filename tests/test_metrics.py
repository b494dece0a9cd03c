"""Metrics against hand-computed cases and an independent brute-force matcher; folder evaluation."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile

from nbseg.metrics import (AP_THRESHOLDS, dice_iou, evaluate, evaluate_folders, instance_scores,
                           mean_average_precision, rand_vi)


def test_dice_iou_by_hand():
    pred = np.array([[1, 1, 1, 0, 0]])
    gt = np.array([[0, 1, 1, 1, 1]])
    s = dice_iou(pred, gt)[1]
    assert s["dice"] == pytest.approx(2 * 2 / (3 + 4)) and s["iou"] == pytest.approx(2 / 5)
    assert dice_iou(np.zeros((3, 3)), np.zeros((3, 3)))[1]["dice"] == 1.0  # nothing to find, nothing found
    multi = dice_iou(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), classes=(1, 2))
    assert multi[1]["dice"] == 0 and multi[2]["dice"] == pytest.approx(2 * 1 / 4)
    with pytest.raises(ValueError, match=r"shape \(2,\) but ground truth \(3,\)"):
        dice_iou(np.zeros(2), np.zeros(3))


def test_instance_scores_by_hand():
    gt = np.zeros((10, 10), int)
    gt[0:4, 0:4] = 1  # 16 px
    gt[6:10, 6:10] = 2
    pred = np.zeros((10, 10), int)
    pred[0:4, 1:4] = 5  # 12 px inside object 1: IoU 12/16 = 0.75
    pred[6:8, 0:2] = 9  # a false positive
    scores = instance_scores(pred, gt, thresholds=(0.5, 0.75, 0.8))
    assert scores.loc[0.5, ["tp", "fp", "fn"]].tolist() == [1, 1, 1]
    assert scores.loc[0.5, "f1"] == pytest.approx(2 / 4) and scores.loc[0.5, "ap"] == pytest.approx(1 / 3)
    assert scores.loc[0.5, "precision"] == 0.5 and scores.loc[0.5, "recall"] == 0.5
    assert scores.loc[0.75, "tp"] == 0  # IoU must be above the threshold
    assert scores.loc[0.8, "ap"] == 0


def test_empty_images():
    empty = np.zeros((4, 4), int)
    one = empty.copy()
    one[1:3, 1:3] = 1
    assert instance_scores(empty, empty).loc[0.5, "f1"] == 1.0
    assert instance_scores(one, empty).loc[0.5, "ap"] == 0.0 and instance_scores(empty, one).loc[0.5, "recall"] == 0


def test_hungarian_beats_greedy_below_one_half():
    # gt A overlaps preds X (IoU 0.40) and Y (0.33); gt B overlaps only X (0.33).
    # Greedy by best IoU takes A-X and leaves B unmatched; the assignment matches both.
    gt = np.zeros((1, 30), int)
    pred = np.zeros((1, 30), int)
    gt[0, 0:10], gt[0, 10:16] = 1, 2
    pred[0, 4:14], pred[0, 0:4] = 7, 8
    scores = instance_scores(pred, gt, thresholds=(0.3,))
    assert scores.loc[0.3, "tp"] == 2


def _random_labels(rng, n_objects, shape=(20, 20), base=None, jitter=0):
    labels = np.zeros(shape, int)
    boxes = base if base is not None else [
        (rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3), rng.integers(2, 7), rng.integers(2, 7))
        for _ in range(n_objects)]
    for i, (y, x, h, w) in enumerate(boxes, start=1):
        dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
        labels[max(0, y + dy):y + dy + h, max(0, x + dx):x + dx + w] = i * 3  # ids need not be 1..N
    return labels, boxes


def _brute_force(pred, gt, threshold):
    """TP of the matching that maximises summed IoU among pairs above ``threshold``, by enumeration."""
    g_ids, p_ids = [i for i in np.unique(gt) if i], [i for i in np.unique(pred) if i]
    iou = np.array([[np.sum((gt == g) & (pred == p)) / np.sum((gt == g) | (pred == p)) for p in p_ids]
                    for g in g_ids]).reshape(len(g_ids), len(p_ids))
    best = (0.0, 0)
    small, large = (g_ids, p_ids) if len(g_ids) <= len(p_ids) else (p_ids, g_ids)
    for chosen in itertools.permutations(range(len(large)), len(small)):
        pairs = [(i, j) if len(g_ids) <= len(p_ids) else (j, i) for i, j in enumerate(chosen)]
        good = [iou[i, j] for i, j in pairs if iou[i, j] > threshold]
        best = max(best, (sum(good), len(good)))
    return best[1], len(p_ids), len(g_ids)


def test_f1_and_ap_match_a_brute_force_matcher():
    rng = np.random.default_rng(0)
    for case in range(25):
        gt, boxes = _random_labels(rng, rng.integers(0, 5))
        kept = [b for b in boxes if rng.random() > 0.2]
        pred, _ = _random_labels(rng, 0, base=kept + [tuple(rng.integers(0, 15, 4) % 6 + 2)] * int(rng.random() > 0.6),
                                 jitter=1)
        thresholds = (0.1, 0.3) + AP_THRESHOLDS
        scores = instance_scores(pred, gt, thresholds=thresholds)
        aps = []
        for t in thresholds:
            tp, n_pred, n_gt = _brute_force(pred, gt, t)
            assert scores.loc[t, "tp"] == tp, (case, t)
            if n_pred + n_gt:
                assert scores.loc[t, "f1"] == pytest.approx(2 * tp / (n_pred + n_gt))
                aps.append(tp / (n_pred + n_gt - tp)) if t >= 0.5 else None
        if aps:
            assert mean_average_precision(pred, gt) == pytest.approx(np.mean(aps))


def test_rand_and_vi():
    gt = np.zeros((8, 8), int)
    gt[:, :4], gt[:, 4:] = 1, 2
    assert rand_vi(gt, gt) == pytest.approx({"rand_error": 0, "vi": 0, "vi_split": 0, "vi_merge": 0}, abs=1e-9)
    merged = (gt > 0).astype(int)
    scores = rand_vi(merged, gt)
    assert scores["rand_error"] > 0 and scores["vi_split"] == pytest.approx(0, abs=1e-9)
    assert scores["vi_merge"] == pytest.approx(1)  # the merged object leaves one bit of the truth open


def test_pooled_summary_by_hand():
    a_gt = np.zeros((4, 4), int)
    a_gt[:2, :2] = 1
    b_gt = np.zeros((4, 4), int)
    b_gt[2:, 2:] = 1
    b_pred = np.zeros((4, 4), int)
    b_pred[2:, 2:] = 1
    b_pred[0, 3] = 2
    result = evaluate({"a": np.zeros((4, 4), int), "b": b_pred}, {"a": a_gt, "b": b_gt})
    s = result.summary
    assert s["dice"] == pytest.approx(2 * 4 / (5 + 8))  # pooled pixels: intersection 4, pred 5, gt 8
    assert (s["tp@0.5"], s["fp@0.5"], s["fn@0.5"]) == (1, 1, 1)
    assert s["f1@0.5"] == pytest.approx(2 / 4)
    assert s["map"] == pytest.approx((0 + 1 / 2) / 2)
    assert list(result.table["image"]) == ["a", "b"]
    assert "F1 at IoU 0.5" in result.report()


def test_multiclass_evaluation():
    gt = np.array([[0, 1, 2, 2]])
    pred = np.array([[0, 1, 2, 1]])
    s = evaluate({"x": pred}, {"x": gt}, kind="multiclass", n_classes=3).summary
    assert s["dice class 1"] == pytest.approx(2 / 3) and s["dice class 2"] == pytest.approx(2 / 3)


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)


def test_evaluate_folders_pairs_predict_outputs_with_ground_truth(tmp_path):
    gt = np.zeros((16, 16), np.uint16)
    gt[2:6, 2:6], gt[2:6, 6:10] = 1, 2  # two touching objects
    _write(tmp_path / "gt" / "cells.tif", gt)
    _write(tmp_path / "pred" / "cells.labels.ome.tif", gt)
    _write(tmp_path / "pred" / "cells.mask.ome.tif", (gt > 0).astype(np.uint8) * 255)  # touching: one object
    _write(tmp_path / "pred" / "cells.prob.ome.tif", np.zeros((16, 16), np.uint8))
    by_labels = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert by_labels.summary["f1@0.5"] == 1.0 and by_labels.summary["images"] == 1
    by_mask = evaluate_folders(tmp_path / "pred", tmp_path / "gt", kind="binary")
    assert by_mask.summary["dice"] == 1.0 and "f1@0.5" not in by_mask.summary
    by_labels.to_csv(tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text().strip().splitlines()[-1].startswith("(pooled)")


def test_evaluate_folders_lists_unmatched_names(tmp_path):
    _write(tmp_path / "gt" / "a.tif", np.zeros((4, 4), np.uint8))
    _write(tmp_path / "gt" / "b.tif", np.zeros((4, 4), np.uint8))
    _write(tmp_path / "pred" / "a.mask.ome.tif", np.zeros((4, 4), np.uint8))
    _write(tmp_path / "pred" / "c.mask.ome.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"No ground truth for: c.mask.ome.tif.*No prediction for: b.tif"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(ValueError, match="evaluation kind 'instance' is unknown.*Did you mean 'instances'"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", kind="instance")


def test_real_dsb2018_masks_against_themselves_and_eroded(shared_data, tmp_path):
    from scipy import ndimage

    masks = sorted((shared_data / "dsb2018" / "masks").glob("*.tif"))[:2]
    for path in masks:
        gt = tifffile.imread(path)
        _write(tmp_path / "gt" / path.name, gt)
        eroded = np.where(ndimage.grey_erosion(gt, size=3) == gt, gt, 0).astype(gt.dtype)
        _write(tmp_path / "pred" / (path.stem + ".labels.ome.tif"), eroded)
    same = evaluate_folders(tmp_path / "gt", tmp_path / "gt")
    assert same.summary["dice"] == 1 and same.summary["map"] == 1 and same.summary["rand_error"] == 0
    worse = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert 0.5 < worse.summary["dice"] < 1 and worse.summary["map"] < 1


def test_training_verdict_fails_a_model_that_learnt_nothing():
    from nbseg.metrics.verdict import POOR_DICE, training_verdict

    good = training_verdict([0.91])
    assert good.ok and "0.910" in good.text
    poor = training_verdict([0.07])  # the whole stack called foreground
    assert not poor.ok and "failed" in poor.text.lower() and "0.070" in poor.text
    assert "longer" in poor.text and "labels" in poor.text  # what to do: more time, check the labels
    assert not training_verdict([0.9, POOR_DICE - 0.01]).ok  # one poor fold of an ensemble fails it
    assert not training_verdict([-1.0]).ok and not training_verdict([float("nan")]).ok  # never validated
    assert not training_verdict([]).ok
