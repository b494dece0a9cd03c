"""`nbseg ground-truth` and `nbseg qc` end to end on small folders."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from nbseg.cli.main import main


def square(shape=(16, 16), top=4, size=6):
    mask = np.zeros(shape, np.uint8)
    mask[top:top + size, top:top + size] = 1
    return mask


@pytest.fixture
def experts(tmp_path):
    sloppy = square()
    sloppy[12, 4:10] = 1
    dirs = []
    for expert, mask in (("ann", square()), ("bob", square()), ("cyd", sloppy)):
        folder = tmp_path / expert
        folder.mkdir()
        for name in ("cell_01", "cell_02"):
            tifffile.imwrite(folder / f"{name}.tif", mask)
        dirs.append(str(folder))
    return dirs


@pytest.mark.parametrize("method", ["staple", "majority"])
def test_ground_truth_writes_masks_and_prints_scores(experts, tmp_path, capsys, method):
    out = tmp_path / "consensus"
    assert main(["ground-truth", "--method", method, "--output", str(out), *experts]) == 0
    printed = capsys.readouterr().out
    assert f"{method} ground truth of 2 image(s)" in printed
    assert "cyd" in printed and "dice" in printed
    assert sorted(p.name for p in out.iterdir()) == ["cell_01.tif", "cell_02.tif", "expert_scores.csv"]
    assert (tifffile.imread(out / "cell_01.tif") == square()).all()
    assert set(pd.read_csv(out / "expert_scores.csv")["expert"]) == {"ann", "bob", "cyd"}


def test_ground_truth_refuses_a_single_expert(experts, tmp_path, capsys):
    out = tmp_path / "consensus"
    assert main(["ground-truth", "--output", str(out), experts[0]]) == 2
    error = capsys.readouterr().err
    assert "nbseg ground-truth: error: Got 1 expert folder" in error and "two or more" in error
    assert not out.exists()


def test_ground_truth_refuses_to_overwrite(experts, tmp_path, capsys):
    out = tmp_path / "consensus"
    assert main(["ground-truth", "--output", str(out), *experts]) == 0
    before = (out / "expert_scores.csv").read_bytes()
    assert main(["ground-truth", "--method", "majority", "--output", str(out), *experts]) == 2
    assert "never replaces" in capsys.readouterr().err
    assert (out / "expert_scores.csv").read_bytes() == before


def test_ground_truth_refuses_labels_for_binary_staple(experts, tmp_path, capsys):
    labels = square() * 3
    tifffile.imwrite(tmp_path / "bob" / "cell_02.tif", labels)
    assert main(["ground-truth", "--output", str(tmp_path / "out"), *experts]) == 2
    assert "--multiclass" in capsys.readouterr().err
    assert main(["ground-truth", "--multiclass", "--output", str(tmp_path / "out"), *experts]) == 0


def write_dataset(root, n=6):
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 30, (32, 32), dtype=np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[4 + i:10 + i, 8:14] = 1
        if i == 0:
            mask[:] = 0  # one empty mask
        tifffile.imwrite(root / "images" / f"img{i}.tif", image)
        tifffile.imwrite(root / "masks" / f"img{i}.tif", mask)
    return str(root / "images"), str(root / "masks")


def test_qc_prints_flagged_images_and_writes_csv(tmp_path, capsys):
    images, masks = write_dataset(tmp_path)
    csv = tmp_path / "qc.csv"
    assert main(["qc", "--images", images, "--masks", masks, "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 6 images flagged" in printed and "empty_mask: 1" in printed
    assert "- img0: empty_mask: the mask marks nothing" in printed
    table = pd.read_csv(csv, index_col="name")
    assert len(table) == 6 and table.at["img0", "empty_mask"]
    assert main(["qc", "--images", images, "--masks", masks, "--csv", str(csv)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["qc", "--images", images, "--masks", masks, "--csv", str(csv), "--overwrite", "--strict"]) == 1


def test_qc_with_a_missing_folder_says_so(tmp_path, capsys):
    assert main(["qc", "--images", str(tmp_path / "nope"), "--masks", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [
    ("ground-truth", ["EXPERT_DIR", "STAPLE", "majority", "--multiclass", "never replaced"]),
    ("qc", ["--images", "--masks", "--csv", "empty masks", "--n-classes"]),
])
def test_help_speaks_plainly(command, words, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for word in words:
        assert word in text
