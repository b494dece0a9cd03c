"""Label curation and ground truth from several experts: small arrays with hand-known answers,
plus a few real BU-BIL images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from nbseg.io.images import read_image, write_ome_tiff
from nbseg.data.targets import IGNORE
from nbseg.labels import (
    apply_excluding_mask, disagreement_mask, estimate_ground_truth, excluding_mask, ground_truth_folders,
    merge_segmentations, polygons_to_mask,
)


def square(shape=(16, 16), top=4, size=6):
    mask = np.zeros(shape, np.uint8)
    mask[..., top:top + size, top:top + size] = 1
    return mask


# ---------------------------------------------------------------- Seg1 / Seg2 merging


@pytest.mark.parametrize("shape", [(6, 8), (3, 6, 8)])
def test_merge_takes_seg2_inside_merging_mask(shape):
    seg1, seg2 = np.full(shape, 1, np.uint8), np.full(shape, 2, np.uint8)
    merging = np.zeros(shape, np.uint8)
    merging[..., :3] = 5  # any nonzero value marks Seg2
    merged = merge_segmentations(seg1, seg2, merging)
    assert merged.shape == shape
    assert (merged[..., :3] == 2).all() and (merged[..., 3:] == 1).all()


def test_merge_keeps_values_of_the_wider_dtype():
    merged = merge_segmentations(np.zeros((2, 2), np.uint8), np.full((2, 2), 300, np.uint16), np.ones((2, 2)))
    assert merged.dtype == np.uint16 and (merged == 300).all()


def test_merge_refuses_a_merging_mask_of_another_shape():
    with pytest.raises(ValueError, match=r"merging mask \(4, 5\).*same shape|same shape.*merging mask \(4, 5\)"):
        merge_segmentations(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 5)))


# ---------------------------------------------------------------- polygons


def test_polygon_square_fills_its_vertices_and_inside():
    mask = polygons_to_mask([[(1, 1), (1, 5), (5, 5), (5, 1)]], (8, 8))
    assert mask.dtype == np.uint8
    assert mask.sum() == 25 and mask[1:6, 1:6].all()


def test_polygons_values_and_later_polygon_on_top():
    first = [(0, 0), (0, 5), (5, 5), (5, 0)]
    second = [(3, 3), (3, 7), (7, 7), (7, 3)]
    mask = polygons_to_mask([first, second], (8, 8), values=[1, 300])
    assert mask.dtype == np.uint16
    assert mask[0, 0] == 1 and mask[4, 4] == 300 and mask[7, 7] == 300 and mask[0, 7] == 0


def test_polygons_in_3d_go_to_their_slices():
    triangle = np.array([(1, 1), (1, 4), (4, 1)])
    mask = polygons_to_mask([triangle, triangle + 2], (4, 8, 8), z=[1, 3])
    per_slice = mask.sum(axis=(1, 2))
    assert per_slice[0] == 0 and per_slice[2] == 0
    assert per_slice[1] == per_slice[3] == polygons_to_mask([triangle], (8, 8)).sum() > 0


def test_polygon_outside_the_image_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"Polygon 1 .*outside the image.*rows 0\.\.7.*clip=True"):
        polygons_to_mask([[(1, 1), (1, 3), (3, 3)], [(1, 1), (1, 30), (3, 3)]], (8, 8))


def test_polygon_outside_is_clipped_on_request():
    mask = polygons_to_mask([[(-3, -3), (-3, 20), (20, 20), (20, -3)]], (8, 8), clip=True)
    assert mask.all()


def test_polygon_half_a_pixel_outside_is_tolerated():
    assert polygons_to_mask([[(-0.4, 0), (0, 7.4), (7, 7)]], (8, 8)).any()


@pytest.mark.parametrize("polygons, shape, z, message", [
    ([[(1, 1), (2, 2)]], (8, 8), None, r"shape \(2, 2\).*N >= 3"),
    ([[(1, 1, 1), (2, 2, 2), (3, 3, 3)]], (8, 8), None, r"\(N, 2\)"),
    ([[(1, 1), (1, 3), (3, 3)]], (2, 8, 8), None, "needs its slice"),
    ([[(1, 1), (1, 3), (3, 3)]], (2, 8, 8), [2], r"z=2.*slices 0\.\.1"),
    ([[(1, 1), (1, 3), (3, 3)]], (8, 8), [0], "2D"),
    ([[(1, 1), (1, 3), (3, 3)]], (2, 8, 8), [0, 1], "one slice number per polygon"),
])
def test_bad_polygons_are_explained(polygons, shape, z, message):
    with pytest.raises(ValueError, match=message):
        polygons_to_mask(polygons, shape, z=z)


# ---------------------------------------------------------------- excluding masks


def test_excluding_mask_joins_polygons_and_masks(tmp_path):
    drawn = [[(0, 0), (0, 2), (2, 2), (2, 0)]]
    stroke = np.zeros((8, 8), np.uint8)
    stroke[7, :] = 255
    tifffile.imwrite(tmp_path / "stroke.tif", stroke)
    excluded = excluding_mask((8, 8), polygons=drawn, masks=[tmp_path / "stroke.tif"])
    assert excluded.dtype == np.uint8 and set(np.unique(excluded)) == {0, 1}
    assert excluded.sum() == 9 + 8


def test_excluding_mask_in_3d_and_applied_to_a_target():
    excluded = excluding_mask((2, 6, 6), polygons=[[(0, 0), (0, 1), (1, 1), (1, 0)]], z=[1])
    target = np.ones((2, 6, 6), np.int64)
    out = apply_excluding_mask(target, excluded)
    assert (out[1, :2, :2] == IGNORE).all() and (out == IGNORE).sum() == 4
    assert (target == 1).all()  # the input is left alone


def test_excluding_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*image is \(8, 8\)"):
        excluding_mask((8, 8), masks=[np.zeros((4, 4))])
    with pytest.raises(ValueError, match="same pixels"):
        apply_excluding_mask(np.zeros((8, 8)), np.zeros((8, 9)))


def test_disagreement_mask_marks_pixels_with_too_little_agreement():
    a, b, c = (np.array([[1, 1, 0, 0]]), np.array([[1, 0, 0, 2]]), np.array([[1, 0, 1, 2]]))
    assert disagreement_mask([a, b, c]).tolist() == [[0, 1, 1, 1]]
    assert disagreement_mask([a, b, c], min_agreement=0.6).tolist() == [[0, 0, 0, 0]]


# ---------------------------------------------------------------- ground truth


def test_majority_is_strict_and_ties_go_to_background():
    a, b, c, d = (np.array([[1, 1, 1, 0]]), np.array([[1, 1, 0, 0]]), np.array([[1, 0, 0, 0]]),
                  np.array([[1, 0, 0, 1]]))
    assert estimate_ground_truth([a, b, c], method="majority").mask.tolist() == [[1, 1, 0, 0]]
    four = estimate_ground_truth([a, b, c, d], method="majority")
    assert four.mask.tolist() == [[1, 0, 0, 0]]  # 2 of 4 is a tie
    assert np.allclose(four.probability, [[1, 0.5, 0.25, 0.25]])
    assert four.expert_scores["staple_sensitivity"].isna().all()


def test_majority_accepts_0_255_and_bool_masks():
    a = np.array([[255, 0]], np.uint8)
    assert estimate_ground_truth([a, a > 0, a], method="majority").mask.tolist() == [[1, 0]]


def test_multiclass_majority_is_a_plurality():
    experts = [np.array([[1, 2, 0]]), np.array([[1, 2, 2]]), np.array([[2, 0, 1]])]
    assert estimate_ground_truth(experts, method="majority", labels="multiclass").mask.tolist() == [[1, 2, 0]]


@pytest.mark.parametrize("region", ["union", "image"])
def test_staple_ignores_one_expert_s_extra_strip(region):
    truth = square((20, 20))
    sloppy = truth.copy()
    sloppy[12, 4:10] = 1  # 6 pixels the other two experts leave out
    result = estimate_ground_truth([truth, truth, sloppy], method="staple", region=region,
                                   names=["ann", "bob", "cyd"])
    assert (result.mask == truth).all()
    scores = result.expert_scores
    assert list(scores.index) == ["ann", "bob", "cyd"]
    assert scores.loc["cyd", "dice"] == pytest.approx(2 * 36 / (36 + 42))
    assert scores.loc["cyd", "sensitivity"] == 1.0
    assert scores.loc["cyd", "specificity"] == pytest.approx(1 - 6 / (400 - 36))
    assert scores.loc["ann", "dice"] == 1.0
    assert scores.loc["cyd", "staple_specificity"] < scores.loc["ann", "staple_specificity"]
    assert result.probability.dtype == np.float32 and result.probability[truth > 0].min() > 0.5


def test_staple_in_3d():
    truth = np.zeros((4, 12, 12), np.uint8)
    truth[1:3, 3:9, 3:9] = 1
    extra, short = truth.copy(), truth.copy()
    extra[3, 3:9, 3:9] = 1
    short[1, 3:9, 3:5] = 0
    for method in ("staple", "majority"):
        result = estimate_ground_truth([truth, extra, short, truth], method=method)
        assert result.mask.shape == truth.shape and (result.mask == truth).all()


def test_staple_with_no_foreground_is_empty():
    empty = np.zeros((5, 5), np.uint8)
    result = estimate_ground_truth([empty, empty], method="staple")
    assert not result.mask.any() and (result.expert_scores["dice"] == 1.0).all()


def test_multilabel_staple_keeps_classes_and_reports_confusion():
    truth = np.zeros((12, 12), np.uint8)
    truth[2:6, 2:6] = 1
    truth[7:11, 7:11] = 2
    confused = truth.copy()
    confused[7:11, 7:9] = 1  # half of class 2 called class 1
    result = estimate_ground_truth([truth, truth, confused], method="staple", labels="multiclass")
    assert (result.mask == truth).all()
    scores = result.expert_scores
    assert scores.loc["expert3", "sensitivity"] == pytest.approx(1 - 8 / 32)
    assert scores.loc["expert3", "staple_sensitivity"] < scores.loc["expert1", "staple_sensitivity"]


def test_experts_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match=r"differ in shape: expert1 \(4, 4\), expert2 \(4, 5\)"):
        estimate_ground_truth([np.zeros((4, 4)), np.zeros((4, 5))])


@pytest.mark.parametrize("method", ["staple", "majority"])
def test_a_single_expert_is_refused(method):
    with pytest.raises(ValueError, match="two or more experts"):
        estimate_ground_truth([square()], method=method)


def test_non_binary_masks_to_binary_staple_are_refused():
    labels = square()
    labels[0, 0] = 7
    with pytest.raises(ValueError, match=r"expert2's mask holds labels 0, 1, 7.*labels='multiclass'.*mask > 0"):
        estimate_ground_truth([square(), labels])


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "vote"}, "method 'vote' is unknown; use one of 'staple', 'majority'"),
    ({"method": "stapel"}, "Did you mean 'staple'"),
    ({"threshold": 1.5}, r"threshold is 1.5"),
    ({"labels": "instances"}, "labels 'instances' is unknown"),
])
def test_bad_options_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_ground_truth([square(), square()], **kwargs)


# ---------------------------------------------------------------- folders


def write_experts(root, masks_by_expert):
    dirs = []
    for expert, masks in masks_by_expert.items():
        folder = root / expert
        folder.mkdir(parents=True)
        for name, mask in masks.items():
            tifffile.imwrite(folder / f"{name}.tif", mask, photometric="minisblack")
        dirs.append(folder)
    return dirs


def three_experts(tmp_path, n_images=2):
    truth = square()
    sloppy = truth.copy()
    sloppy[12, 4:10] = 1
    names = [f"img{i}" for i in range(n_images)]
    return write_experts(tmp_path / "experts", {
        "ann": {n: truth for n in names}, "bob": {n: truth for n in names}, "cyd": {n: sloppy for n in names},
    })


def test_ground_truth_folders_writes_masks_and_scores(tmp_path):
    dirs = three_experts(tmp_path)
    out = tmp_path / "consensus"
    table = ground_truth_folders(dirs, out, method="staple", save_probability=True)
    assert sorted(p.name for p in out.iterdir()) == ["expert_scores.csv", "img0.tif", "img1.tif", "probability"]
    assert (tifffile.imread(out / "img0.tif") == square()).all()
    assert tifffile.imread(out / "probability" / "img1.tif").dtype == np.float32
    assert list(table.columns[:2]) == ["image", "expert"] and len(table) == 6
    saved = pd.read_csv(out / "expert_scores.csv")
    assert saved.loc[saved.expert == "cyd", "dice"].iloc[0] == pytest.approx(2 * 36 / (36 + 42))


def test_ground_truth_keeps_the_pixel_sizes_the_experts_agree_on(tmp_path):
    truth = np.stack([square()] * 3)  # ZYX
    experts = {"ann": (0.5, 0.1, 0.1), "bob": (0.5, 0.1, 0.1), "cyd": None}  # cyd's tool dropped them
    dirs = []
    for name, sizes in experts.items():
        dirs.append(tmp_path / name)
        if sizes:
            write_ome_tiff(tmp_path / name / "img0.ome.tif", truth, axes="ZYX", pixel_sizes=sizes)
        else:
            (tmp_path / name).mkdir()
            tifffile.imwrite(tmp_path / name / "img0.ome.tif", truth, ome=False, metadata=None,
                            photometric="minisblack")
    ground_truth_folders(dirs, tmp_path / "out", method="majority", save_probability=True, dims=3)
    for written in (tmp_path / "out" / "img0.ome.tif", tmp_path / "out" / "probability" / "img0.ome.tif"):
        image = read_image(written, dims=3)
        assert image.pixel_sizes == pytest.approx((0.5, 0.1, 0.1))


def test_ground_truth_leaves_out_pixel_sizes_the_experts_disagree_on(tmp_path):
    for name, z in (("ann", 0.5), ("bob", 1.0)):
        write_ome_tiff(tmp_path / name / "img0.ome.tif", np.stack([square()] * 2), axes="ZYX",
                       pixel_sizes=(z, 0.2, 0.2))
    ground_truth_folders([tmp_path / "ann", tmp_path / "bob"], tmp_path / "out", method="majority", dims=3)
    sizes = read_image(tmp_path / "out" / "img0.ome.tif", dims=3).pixel_sizes
    assert sizes[0] is None and sizes[1:] == pytest.approx((0.2, 0.2))


def test_ground_truth_folders_refuses_to_overwrite(tmp_path):
    dirs = three_experts(tmp_path)
    out = tmp_path / "consensus"
    out.mkdir()
    (out / "img1.tif").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"already holds 1 of the files to write \(img1.tif\)"):
        ground_truth_folders(dirs, out, method="majority")
    assert [p.name for p in out.iterdir()] == ["img1.tif"] and (out / "img1.tif").read_bytes() == b"keep me"


def test_experts_with_different_file_names_are_refused(tmp_path):
    dirs = write_experts(tmp_path, {"ann": {"a": square(), "b": square()}, "bob": {"a": square(), "c": square()}})
    with pytest.raises(ValueError, match=r"ann lacks c; bob lacks b"):
        ground_truth_folders(dirs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bad_image_late_in_the_folder_writes_nothing(tmp_path):
    dirs = write_experts(tmp_path / "e", {"ann": {"a": square(), "b": square()},
                                          "bob": {"a": square(), "b": square((16, 17))}})
    with pytest.raises(ValueError, match=r"Image b: .*differ in shape"):
        ground_truth_folders(dirs, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no staging folder left behind


def test_a_single_expert_folder_is_refused(tmp_path):
    dirs = write_experts(tmp_path, {"ann": {"a": square()}})
    with pytest.raises(ValueError, match="two or more"):
        ground_truth_folders(dirs, tmp_path / "out")


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def bubil(shared_data):
    root = shared_data / "bubil-multirater" / "ds1"
    experts = sorted(p for p in (root / "experts").iterdir() if p.is_dir())
    agreement = pd.read_csv(root / "per_image_agreement.csv", index_col="name")
    return root, experts, agreement


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("name", ["B01", "B17"])
def test_bubil_majority_matches_the_readme_and_staple_is_close(bubil, name):
    root, experts, agreement = bubil
    masks = [tifffile.imread(e / f"{name}.tif") for e in experts]
    gold = tifffile.imread(root / "masks" / f"{name}.tif") > 0
    majority = estimate_ground_truth(masks, method="majority", names=[e.name for e in experts])
    assert dice(majority.mask > 0, gold) == pytest.approx(agreement.loc[name, "dice_majority_vs_gs"], abs=1e-4)
    staple = estimate_ground_truth(masks, method="staple", names=[e.name for e in experts])
    assert dice(staple.mask > 0, gold) > 0.93
    scores = staple.expert_scores
    # Person2's two annotations are pixel-identical, so they must score the same
    assert scores.loc["Person2_Amira"].equals(scores.loc["Person2_ImageJ"])
    assert scores["staple_sensitivity"].between(0, 1).all()


def test_ground_truth_folders_on_3d_stacks(tmp_path):
    truth = np.zeros((3, 12, 12), np.uint8)  # 3 slices: could be read as channels without dims=3
    truth[1, 3:9, 3:9] = 1
    extra = truth.copy()
    extra[2, 3:9, 3:9] = 1
    dirs = write_experts(tmp_path / "e", {"ann": {"s": truth}, "bob": {"s": truth}, "cyd": {"s": extra}})
    ground_truth_folders(dirs, tmp_path / "out", method="staple", dims=3)
    assert (tifffile.imread(tmp_path / "out" / "s.tif") == truth).all()


def test_ground_truth_folders_checks_options_before_anything(tmp_path):
    dirs = three_experts(tmp_path)
    with pytest.raises(ValueError, match="^method 'vote' is unknown"):
        ground_truth_folders(dirs, tmp_path / "out", method="vote")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experts"]
