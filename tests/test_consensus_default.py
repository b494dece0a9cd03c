"""The default ground-truth method (chosen by bench/consensus_protocol.py, leave one expert out on
BU-BIL), the per-expert table, and the protocol itself on one real image."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbseg.labels import estimate_ground_truth, ground_truth_folders, summarise_experts

ROOT = Path(__file__).resolve().parents[1]


def square(shape=(16, 16), top=4, size=6):
    mask = np.zeros(shape, np.uint8)
    mask[top:top + size, top:top + size] = 1
    return mask


def test_the_default_is_the_protocol_s_choice_everywhere():
    from nbseg.cli.main import build_parser
    from nbseg.labels import expert_folders

    assert inspect.signature(estimate_ground_truth).parameters["method"].default == "majority"
    assert inspect.signature(expert_folders.ground_truth_folders).parameters["method"].default == "majority"
    args = build_parser().parse_args(["ground-truth", "--output", "out", "a", "b"])
    assert args.method == "majority"


def test_default_resists_one_expert_who_marks_far_too_much():
    truth = square()
    sloppy = np.zeros_like(truth)
    sloppy[2:14, 2:14] = 1  # one expert draws well beyond the object
    result = estimate_ground_truth([truth, truth, sloppy, truth])
    assert result.method == "majority" and (result.mask == truth).all()


def test_summary_averages_each_expert_and_flags_who_agrees_least():
    truth = square()
    shifted = np.roll(truth, 3, axis=1)
    table = pd.concat([estimate_ground_truth([truth, truth, shifted], names=["ann", "bob", "cyd"])
                       .expert_scores.reset_index().assign(image=name) for name in ("a", "b")], ignore_index=True)
    summary = summarise_experts(table)
    assert list(summary.index) == ["ann", "bob", "cyd"]
    assert {"sensitivity", "specificity", "dice", "images", "lowest_dice"} <= set(summary.columns)
    assert "staple_sensitivity" not in summary.columns  # majority vote has no STAPLE estimates
    assert summary["images"].tolist() == [2, 2, 2]
    assert summary["lowest_dice"].tolist() == [False, False, True]
    assert summary.loc["cyd", "sensitivity"] == pytest.approx(0.5)  # 3 of 6 columns of the square
    assert summary.loc["ann", "dice"] == 1.0


def test_summary_keeps_staple_s_own_estimates(tmp_path):
    import tifffile

    truth, wide = square(), square(top=3, size=8)
    dirs = []
    for name, mask in (("ann", truth), ("bob", truth), ("cyd", wide)):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "cell.tif", mask)
        dirs.append(tmp_path / name)
    summary = summarise_experts(ground_truth_folders(dirs, tmp_path / "out", method="staple"))
    assert summary.loc["cyd", "staple_specificity"] < summary.loc["ann", "staple_specificity"]
    assert summary["lowest_dice"].tolist() == [False, False, True]


@pytest.mark.slow
def test_protocol_runs_on_one_real_image(shared_data):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import consensus_protocol as protocol
    finally:
        sys.path.remove(str(ROOT / "bench"))
    root = shared_data / "bubil-multirater" / "ds1"
    sets = protocol.expert_sets(root)
    assert "Person2_ImageJ" not in sets["all"] and len(sets["all"]) == 9  # the pixel-identical copy is dropped
    assert len(sets["Amira"]) == len(sets["ImageJ"]) == 5
    rows = protocol.run_subset(root, "ds1", limit=1, progress=False)
    frame, per_set, overall, clean, chosen = protocol.summarise(rows)
    assert set(frame["held_out"]) == {f"Person{i}" for i in range(1, 6)}
    gold = frame.dropna(subset=["dice_gold"])
    assert set(gold["held_out"]) == {"Person2"}  # the GoldStandard is Person2's: scored only when held out
    assert frame["dice_held_out"].between(0.5, 1).all()
    assert chosen in protocol.METHODS
    clean_rows = frame[frame["condition"] == "clean"]
    dilated = frame[frame["condition"] == "dilated"]
    assert len(clean_rows) == len(dilated)
