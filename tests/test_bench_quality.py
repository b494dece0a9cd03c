"""bench/quality.py's bookkeeping on tiny synthetic folders: the first-N subsets and the paired scoring of a
method on the images deepflash2 predicted (no training is run)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import quality  # noqa: E402


def square_labels(offset: int) -> np.ndarray:
    labels = np.zeros((32, 32), np.int32)
    labels[4 + offset:14 + offset, 4:14] = 1
    labels[18:28, 18:28] = 2
    return labels


def make_split(root: Path, n: int) -> dict:
    split = {}
    for part in ("train", "test"):
        split[part] = {}
        for kind in ("images", "masks"):
            folder = root / "data" / part / kind
            folder.mkdir(parents=True)
            for i in range(n):
                tifffile.imwrite(folder / f"img{i}.tif", square_labels(0).astype(np.uint16))
            split[part][kind] = folder
    return split


def test_subset_links_the_first_images_of_each_part_and_kind(tmp_path):
    split = make_split(tmp_path, 4)
    out = quality.subset(split, tmp_path / "work", n_train=None, n_test=2, name="few")
    for part, n in (("train", 4), ("test", 2)):
        for kind in ("images", "masks"):
            assert out[part][kind] == tmp_path / "work" / "few" / part / kind
            assert sorted(p.name for p in out[part][kind].iterdir()) == [f"img{i}.tif" for i in range(n)]


def test_paired_scoring_reads_nbseg_file_names_on_the_subset_only(tmp_path):
    split = make_split(tmp_path, 3)
    gt = quality.subset(split, tmp_path / "work", n_train=None, n_test=2, name="few")["test"]["masks"]
    pred = tmp_path / "work" / "predictions" / "nbseg_5min"
    pred.mkdir(parents=True)
    for i, offset in enumerate((0, 8, 0)):  # image 1: the first object shifted past IoU 0.5
        tifffile.imwrite(pred / f"img{i}.labels.ome.tif", square_labels(offset))
        tifffile.imwrite(pred / f"img{i}.prob.ome.tif", np.ones((32, 32), np.float32))
    scores = quality.score_on_subset(pred, gt, tmp_path / "work")
    assert scores["images"] == 2
    assert (scores["tp@0.5"], scores["fp@0.5"], scores["fn@0.5"]) == (3, 1, 1)


def test_rows_kept_through_several_runs_carry_one_earlier_mark():
    first = {"rows": [{"method": "monai", "budget_min": 2, "status": "ok", "note": "BasicUNet"}]}
    for _ in range(3):
        first = {"rows": quality.keep_earlier_rows(first, [])}
    (row,) = first["rows"]
    assert row["note"] == f"BasicUNet {quality.EARLIER_MARK}"
    assert row["earlier"] is True


def test_rows_measured_now_replace_the_earlier_ones():
    earlier = {"rows": [{"method": "monai", "budget_min": 2, "status": "ok", "note": "old"}]}
    now = [{"method": "monai", "budget_min": 2, "status": "ok", "note": "new"}]
    assert quality.keep_earlier_rows(earlier, now) == now
