"""Post-processing: thresholds, the threshold sweep, and objects from probabilities (2D and 3D)."""
from __future__ import annotations

import numpy as np
import pytest

from nbseg.predict.post import (classes, fill_object_holes, find_threshold, instances, parse_threshold,
                        remove_small_objects, threshold, threshold_sweep)


def test_parse_threshold():
    assert parse_threshold("0.4") == 0.4 and parse_threshold(0.7) == 0.7
    assert parse_threshold("Otsu") == "otsu"
    with pytest.raises(ValueError, match=r"threshold 'otsuu' is unknown; use one of 'otsu'.*Did you mean 'otsu'"):
        parse_threshold("otsuu")
    with pytest.raises(ValueError, match=r"threshold 1.5 is outside \(0, 1\)"):
        parse_threshold(1.5)


def test_threshold_otsu_value_and_constant():
    prob = np.r_[np.full(50, 0.1), np.full(50, 0.8)].reshape(10, 10)
    assert 0.1 <= find_threshold(prob) < 0.8
    np.testing.assert_array_equal(threshold(prob), prob > 0.5)
    np.testing.assert_array_equal(threshold(prob, method=0.9), np.zeros_like(prob, bool))
    assert not threshold(np.full((4, 4), 0.2)).any()  # a constant map has nothing to split


def test_classes_is_the_argmax():
    probs = np.zeros((3, 2, 2))
    probs[0, 0, 0] = probs[1, 0, 1] = probs[2, 1, 0] = probs[2, 1, 1] = 1
    np.testing.assert_array_equal(classes(probs), [[0, 1], [2, 2]])
    assert classes(probs).dtype == np.uint8


def test_threshold_sweep_by_hand():
    probs = {"a": np.array([0.1, 0.4, 0.6, 0.9]), "b": np.array([0.2, 0.7, 0.3, 0.05])}
    gts = {"a": np.array([0, 1, 1, 1]), "b": np.array([0, 1, 0, 0])}
    sweep = threshold_sweep(probs, gts, thresholds=[0.05, 0.3, 0.5, 0.8])
    # a: t=.05 -> TP3 FP1 FN0; .3 -> TP3; .5 -> TP2 FN1; .8 -> TP1 FN2
    np.testing.assert_allclose(sweep.iou["a"], [3 / 4, 1, 2 / 3, 1 / 3])
    # b: t=.05 -> TP1 FP2; .3 -> TP1 FP0 (0.3 is not above 0.3); .5 -> TP1; .8 -> FN1
    np.testing.assert_allclose(sweep.iou["b"], [1 / 3, 1, 1, 0])
    np.testing.assert_allclose(sweep.iou["overall"], [4 / 7, 1, 3 / 4, 1 / 4])
    assert sweep.best["a"] == 0.3 and sweep.best["b"] == 0.3 and sweep.best["overall"] == 0.3
    assert sweep.best_iou["overall"] == 1


def test_threshold_sweep_matches_brute_force():
    rng = np.random.default_rng(0)
    probs = [rng.random((12, 9)) for _ in range(3)]
    gts = [rng.random((12, 9)) > 0.6 for _ in range(3)]
    sweep = threshold_sweep(probs, gts)
    for t, row in sweep.iou.iterrows():
        inter = [np.sum((p > t) & g) for p, g in zip(probs, gts)]
        union = [np.sum((p > t) | g) for p, g in zip(probs, gts)]
        np.testing.assert_allclose(row[:3], np.divide(inter, union))
        assert row["overall"] == pytest.approx(sum(inter) / sum(union))


def test_threshold_sweep_leaves_nan_pixels_out():
    """Out-of-fold maps of a region split are NaN where the model trained: those pixels are not scored."""
    rng = np.random.default_rng(1)
    prob, gt = rng.random((8, 10)).astype(np.float16), rng.random((8, 10)) > 0.5
    held = prob.copy()
    held[:, :6] = np.nan
    np.testing.assert_allclose(threshold_sweep([held], [gt]).iou["overall"],
                               threshold_sweep([prob[:, 6:]], [gt[:, 6:]]).iou["overall"])


def test_threshold_sweep_refuses_mismatched_sets():
    with pytest.raises(ValueError, match="different images: b"):
        threshold_sweep({"a": np.zeros(3)}, {"a": np.zeros(3), "b": np.zeros(3)})


def _two_touching(dims: int):
    """Two squares (cubes) side by side along X; interiors separated by a boundary column."""
    shape = (6, 12, 24)[-dims:]
    fg, interior = np.zeros(shape), np.zeros(shape)
    box = (slice(1, 5),) * (dims - 2) + (slice(2, 10),)
    fg[box + (slice(2, 22),)] = 0.9
    interior[box + (slice(3, 11),)] = 0.9
    interior[box + (slice(13, 21),)] = 0.9
    return fg, interior


@pytest.mark.parametrize("dims", [2, 3])
def test_watershed_splits_touching_objects_components_do_not(dims):
    fg, interior = _two_touching(dims)
    assert instances(fg).max() == 1
    labels = instances(fg, interior=interior)
    assert labels.max() == 2
    assert np.count_nonzero(labels == 1) == np.count_nonzero(labels == 2)  # split in the middle
    np.testing.assert_array_equal(labels > 0, fg > 0.5)


def test_foreground_without_a_seed_stays_an_object():
    fg, interior = _two_touching(2)
    fg[0, 0:4] = 0.9  # a small object with no interior seed
    labels = instances(fg, interior=interior, min_size=1)
    assert labels.max() == 3 and labels[0, 0] == 3


@pytest.mark.parametrize("dims", [2, 3])
def test_small_objects_removed_and_relabelled(dims):
    labels = np.zeros((5, 10, 10)[-dims:], int)
    labels[(0,) * dims] = 7  # 1 pixel
    labels[(slice(2, 4),) * dims] = 3  # 4 or 8 pixels
    kept = remove_small_objects(labels, min_size=2)
    assert kept.max() == 1 and kept[(0,) * dims] == 0 and np.count_nonzero(kept) == 2**dims


@pytest.mark.parametrize("dims", [2, 3])
def test_holes_filled_per_object(dims):
    shape = (7,) * dims
    ring = np.zeros(shape, int)
    ring[(slice(1, 6),) * dims] = 1
    ring[(slice(2, 5),) * dims] = 0  # a hole (a cavity in 3D)
    ring[(3,) * dims] = 2  # another object inside the hole keeps its label
    filled = fill_object_holes(ring)
    assert filled[(3,) * dims] == 2 and np.count_nonzero(filled == 1) == 5**dims - 1
    assert np.count_nonzero(instances(ring > 0, fill_holes=False, min_size=1) == 0) > np.count_nonzero(
        instances(ring > 0, min_size=1) == 0)


def test_instances_from_a_real_mask(shared_data):
    import tifffile

    from nbseg.data.targets import instances_to_three_class
    from nbseg.metrics.scores import instance_scores

    path = sorted((shared_data / "dsb2018" / "masks").glob("*.tif"))[0]
    gt = tifffile.imread(path)[:128, :128]
    target = instances_to_three_class(gt)
    interior = (target == 1).astype(np.float32)
    labels = instances(target > 0, interior=interior, min_size=1)
    assert instance_scores(labels, gt).loc[0.5, "f1"] > 0.95
