"""QC checks on small synthetic datasets with planted problems (2D and 3D), model-assisted
ranking, and a few real DSB 2018 images."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

from nbseg.labels.qc import FLAGS, qc_dataset, rank_by_disagreement, robust_z


def nuclei(shape=(48, 48), n=3, seed=0):
    """An image with n bright 6x6 nuclei away from the border, and their instance mask."""
    rng = np.random.default_rng(seed)
    image = rng.normal(20, 3, shape).clip(0, 255)
    mask = np.zeros(shape, np.uint16)
    left = 2 + 4 * (seed // 5)  # masks differ between seeds (0..44)
    for i in range(n):
        top = 4 + seed % 5 + 12 * i
        image[..., top:top + 6, left:left + 6] += 100
        mask[..., top:top + 6, left:left + 6] = i + 1
    return image.astype(np.uint8), mask


def write_set(root, pairs):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for name, (image, mask) in pairs.items():
        if image is not None:
            tifffile.imwrite(root / "images" / f"{name}.tif", image)
        if mask is not None:
            tifffile.imwrite(root / "masks" / f"{name}.tif", mask)
    return root / "images", root / "masks"


def clean_pairs(n=8, **kwargs):
    return {f"ok{i}": nuclei(seed=i, **kwargs) for i in range(n)}


def flags_of(report, name):
    row = report.table.loc[name]
    return {flag for flag in FLAGS if row[flag]}


def test_a_clean_dataset_raises_no_flag(tmp_path):
    report = qc_dataset(*write_set(tmp_path, clean_pairs()))
    assert len(report.flagged) == 0, report.flagged["reasons"].tolist()
    assert (report.table["n_objects"] == 3).all()
    assert report.table["foreground_fraction"].iloc[0] == pytest.approx(3 * 36 / 48 ** 2)
    assert report.summary["count"].sum() == 0 and list(report.summary.index) == list(FLAGS)


def test_planted_problems_are_flagged_with_reasons(tmp_path):
    pairs = clean_pairs()
    image, mask = nuclei(seed=20)
    pairs["empty"] = (image, np.zeros_like(mask))
    tiny = mask.copy()
    tiny[40, 40] = 9
    pairs["tiny"] = (nuclei(seed=21)[0], tiny)
    split = mask.copy()
    split[30:34, 30:34] = 1  # a second piece numbered like the first nucleus
    pairs["split"] = (nuclei(seed=22)[0], split)
    border = np.zeros_like(mask)
    border[:5, :5], border[-5:, 20:25] = 1, 2
    pairs["border"] = (nuclei(seed=23)[0], border)
    pairs["wrongsize"] = (nuclei(seed=24)[0], mask[:40])
    pairs["copy"] = (pairs["ok1"][0], nuclei(seed=25)[1])
    pairs["nomask"] = (nuclei(seed=26)[0], None)
    pairs["noimage"] = (None, mask)
    pairs["bright"] = (np.full((48, 48), 240, np.uint8) - nuclei(seed=27)[0] // 8, mask)
    pairs["crowded"] = nuclei(n=4, seed=28)
    pairs["blank"] = (np.zeros((48, 48), np.uint8), nuclei(seed=29)[1])
    report = qc_dataset(*write_set(tmp_path, pairs), min_object_size=4)
    assert flags_of(report, "empty") == {"empty_mask"}
    assert flags_of(report, "tiny") == {"tiny_objects"}
    assert "sizes 1" in report.table.at["tiny", "reasons"]
    assert flags_of(report, "split") == {"split_objects"}
    assert "border_objects" in flags_of(report, "border")
    assert "2 of 2 objects touch the image border" in report.table.at["border", "reasons"]
    assert "shape_mismatch" in flags_of(report, "wrongsize")
    assert flags_of(report, "copy") == {"duplicate"} and "ok1" in report.table.at["copy", "reasons"]
    assert "copy" in report.table.at["ok1", "reasons"]
    assert flags_of(report, "nomask") == {"unpaired"} and flags_of(report, "noimage") == {"unpaired"}
    assert "odd_intensity" in flags_of(report, "bright")
    assert "median brightness" in report.table.at["bright", "reasons"]
    assert not flags_of(report, "crowded")  # 4 instead of 3 nuclei is no outlier
    assert "the image is constant (every pixel 0)" in report.table.at["blank", "reasons"]
    assert report.summary.at["duplicate", "count"] == 2
    assert set(report.flagged.index) == {"empty", "tiny", "split", "border", "wrongsize", "copy", "ok1",
                                         "nomask", "noimage", "bright", "blank"}


def test_labels_outside_the_declared_classes(tmp_path):
    pairs = {name: (image, (mask > 0).astype(np.uint8) * 2) for name, (image, mask) in clean_pairs(5).items()}
    bad = pairs["ok0"][1].copy()
    bad[0, 0] = 3
    pairs["bad"] = (nuclei(seed=9)[0], bad)
    report = qc_dataset(*write_set(tmp_path, pairs), n_classes=3, min_object_size=1)
    assert flags_of(report, "bad") == {"bad_labels"}
    assert "label(s) 3 outside the 3 classes 0..2" in report.table.at["bad", "reasons"]
    assert report.table.at["ok1", "fraction_2"] == pytest.approx(3 * 36 / 48 ** 2)
    assert report.table.at["ok1", "n_objects"] == 3  # connected pieces of class 2
    assert len(report.flagged) == 1


def test_an_instance_mask_among_binary_masks(tmp_path):
    pairs = {name: (image, (mask > 0).astype(np.uint8)) for name, (image, mask) in clean_pairs(6).items()}
    image, mask = nuclei(seed=30)
    pairs["instances"] = (image, mask.astype(np.uint8))
    report = qc_dataset(*write_set(tmp_path, pairs))
    assert flags_of(report, "instances") == {"bad_labels"}
    assert "3 different labels where most masks are binary" in report.table.at["instances", "reasons"]


def test_format_differences_and_unreadable_files(tmp_path):
    pairs = clean_pairs(5)
    image, mask = nuclei(seed=40)
    pairs["rgb"] = (np.stack([image] * 3, axis=-1), mask)
    pairs["wide"] = (image.astype(np.uint16), nuclei(seed=41)[1])
    images, masks = write_set(tmp_path, pairs)
    (images / "broken.tif").write_bytes(b"not a tiff")
    tifffile.imwrite(masks / "broken.tif", nuclei(seed=42)[1])
    report = qc_dataset(images, masks)
    assert flags_of(report, "rgb") == {"format_differs"}
    assert "3 channel(s) where most images have 1" in report.table.at["rgb", "reasons"]
    assert flags_of(report, "wide") == {"format_differs"}
    assert "image data type uint16 where most are uint8" in report.table.at["wide", "reasons"]
    assert "unreadable" in flags_of(report, "broken") and "broken.tif" in report.table.at["broken", "reasons"]


def test_3d_stacks_tiny_and_border_objects_in_voxels(tmp_path):
    pairs = {}
    for i in range(5):
        image, mask = nuclei(shape=(6, 40, 40), n=2, seed=i)
        mask[0], mask[-1] = 0, 0  # nuclei stop short of the stack's top and bottom
        pairs[f"stack{i}"] = (image, mask)
    image, mask = pairs["stack0"]
    cut, tiny = mask.copy(), mask.copy()
    cut[1:5, 10:15, 0:3] = 5  # touches the x border
    cut[1:5, 30:35, 35:40] = 6
    cut[:] = np.where(cut == 2, 0, cut)
    tiny[3, 30, 30] = 7
    pairs["cut"], pairs["tiny"] = (image + 2, cut), (image + 1, tiny)
    report = qc_dataset(*write_set(tmp_path, pairs), dims=3)
    assert report.table.at["stack1", "dims"] == 3 and report.table.at["stack1", "shape"] == "6x40x40"
    assert flags_of(report, "tiny") == {"tiny_objects"} and "voxels" in report.table.at["tiny", "reasons"]
    assert flags_of(report, "cut") == {"border_objects"}
    assert not flags_of(report, "stack1")


def test_progress_goes_through_the_callback(tmp_path):
    seen = []
    qc_dataset(*write_set(tmp_path, clean_pairs(3)), progress=lambda *args: seen.append(args))
    assert seen == [(1, 3, "ok0"), (2, 3, "ok1"), (3, 3, "ok2")]


def test_too_few_images_skip_outliers_with_a_note(tmp_path):
    report = qc_dataset(*write_set(tmp_path, clean_pairs(3)))
    assert any("needs 5 or more" in note for note in report.notes)
    assert str(report).startswith("0 of 3 images flagged")


def test_robust_z_known_values():
    z = robust_z([1, 2, 3, 4, 100])
    assert z[2] == 0 and z[-1] == pytest.approx(0.6745 * 97 / 1)
    assert np.allclose(robust_z([5, 5, 5]), 0)
    assert robust_z([1, 1, 1, 1, 3])[-1] == pytest.approx(2 / (1.2533 * 0.4))
    assert robust_z([1, 1, 1, 1, 3], min_spread=2)[-1] == pytest.approx(0.6745)


# ---------------------------------------------------------------- model-assisted


def test_rank_by_disagreement_puts_the_worst_annotation_first():
    label = np.zeros((10, 10), np.uint8)
    label[2:6, 2:6] = 1
    prediction = label * 0.9 + 0.05
    half = label.copy()
    half[2:6, 4:6] = 0  # annotator missed half the object
    ranked = rank_by_disagreement({"good": prediction, "half": prediction, "empty": np.zeros((10, 10))},
                                  {"good": label, "half": half, "empty": np.zeros((10, 10), np.uint8)})
    assert list(ranked.index) == ["half", "good", "empty"]
    assert list(ranked["rank"]) == [1, 2, 3]
    assert ranked.at["half", "disagreement"] == pytest.approx(1 - 2 * 8 / (16 + 8))
    assert ranked.at["half", "unannotated_fraction"] == pytest.approx(8 / 100)
    assert ranked.at["half", "missed_fraction"] == 0
    assert ranked.at["good", "mean_abs_error"] == pytest.approx(0.05)
    assert ranked.at["empty", "dice"] == 1.0


def test_rank_by_disagreement_in_3d():
    label = np.zeros((3, 6, 6), np.uint8)
    label[1, 1:4, 1:4] = 1
    ranked = rank_by_disagreement({"a": label.astype(float), "b": np.roll(label, 1, axis=0) * 1.0},
                                  {"a": label, "b": label})
    assert list(ranked.index) == ["b", "a"] and ranked.at["b", "dice"] == 0


@pytest.mark.parametrize("predictions, masks, message", [
    ({"a": np.zeros((4, 4))}, {"b": np.zeros((4, 4))}, "do not pair up, e.g. a, b"),
    ({"a": np.zeros((2, 4, 4))}, {"a": np.zeros((4, 4))}, r"shape \(2, 4, 4\).*not the class probabilities"),
    ({"a": np.full((4, 4), 3.0)}, {"a": np.zeros((4, 4))}, "Apply a sigmoid"),
])
def test_rank_by_disagreement_explains_bad_input(predictions, masks, message):
    with pytest.raises(ValueError, match=message):
        rank_by_disagreement(predictions, masks)


# ---------------------------------------------------------------- real data


def test_dsb_split_nucleus_is_found(shared_data, tmp_path):
    root = shared_data / "dsb2018"
    metadata = pd.read_csv(root / "metadata.csv")
    names = ["f6863b83d75e5927b30e2e326405b588293283c25aaef2251b30c343296b9cb1"]
    names += metadata.query("modality == 'fluorescence' and height == 256 and width == 256")["name"].head(5).tolist()
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
        for name in names:
            shutil.copy(root / folder / f"{name}.tif", tmp_path / folder)
    report = qc_dataset(tmp_path / "images", tmp_path / "masks")
    assert report.table.at[names[0], "split_objects"]
    assert "(e.g. 39)" in report.table.at[names[0], "reasons"]
    known = metadata.set_index("name").loc[names, "n_nuclei"]
    assert (report.table.loc[names, "n_objects"] == known).all()
