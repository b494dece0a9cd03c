"""Benchmark of nbseg's label tools on real data.

1. Ground truth from 10 expert annotations (BU-BIL dataset 1, 35 phase-contrast images):
   majority voting and STAPLE, mean Dice against the GoldStandard. The GoldStandard is
   pixel-identical to Person2's annotation (twice in the set, as Person2_Amira and
   Person2_ImageJ), so the fair comparison leaves Person2 out; both are reported.
2. QC over the whole of DSB 2018 (565 images): how many images each check flags, with examples.

Usage: python bench/labels.py [--data ../shared/data] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbseg.labels.consensus import estimate_ground_truth  # noqa: E402
from nbseg.io.images import read_mask  # noqa: E402
from nbseg.labels.qc import FLAGS, qc_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
README_MAJORITY = 0.950  # strict majority of the 10 experts vs GoldStandard, bubil-multirater/README.md
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 2.0 * np.count_nonzero(a & b) / total if total else 1.0


def bubil_ground_truth(root: Path, *, limit: int | None = None) -> list[dict]:
    """Mean Dice vs GoldStandard per method and expert set (the first ``limit`` images)."""
    experts = sorted(p.name for p in (root / "experts").iterdir() if p.is_dir())
    expert_sets = {
        "all 10 experts": experts,
        "9 (Person2 duplicate dropped)": [e for e in experts if e != "Person2_ImageJ"],
        "8 (Person2 = GoldStandard left out)": [e for e in experts if not e.startswith("Person2")],
    }
    names = sorted(p.stem for p in (root / "masks").glob("*.tif"))[:limit]
    dices: dict = {}
    started = time.perf_counter()
    for name in names:
        gold = read_mask(root / "masks" / f"{name}.tif") > 0
        masks = {e: read_mask(root / "experts" / e / f"{name}.tif") for e in experts}
        for set_name, chosen in expert_sets.items():
            stack = [masks[e] for e in chosen]
            majority = estimate_ground_truth(stack, method="majority").mask > 0
            _add(dices, (set_name, "majority vote (strict, ties -> background) (default)"), dice(majority, gold))
            staple = estimate_ground_truth(stack, method="staple")
            for t in THRESHOLDS:
                label = f"STAPLE, pixels any expert marked, p > {t}"
                _add(dices, (set_name, label), dice(staple.probability > t, gold))
            if set_name == "all 10 experts":  # the classical whole-image STAPLE, slow: one set only
                whole = estimate_ground_truth(stack, method="staple", region="image")
                _add(dices, (set_name, "STAPLE, whole image (Warfield 2004)"), dice(whole.mask > 0, gold))
    seconds = time.perf_counter() - started
    return [{"experts": s, "method": m, "mean_dice": float(np.mean(v)), "min_dice": float(np.min(v)),
             "max_dice": float(np.max(v)), "images": len(v), "seconds_all_methods": round(seconds, 1)}
            for (s, m), v in dices.items()]


def dsb_qc(root: Path, *, limit: int | None = None, work: Path | None = None) -> dict:
    started = time.perf_counter()
    if limit:  # the first images only, linked into a folder of their own
        names = sorted(p.name for p in (root / "images").iterdir())[:limit]
        for kind in ("images", "masks"):
            folder = work / kind
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in names:
                os.symlink((root / kind / name).resolve(), folder / name)
        root = work
    report = qc_dataset(root / "images", root / "masks")
    seconds = time.perf_counter() - started
    table = report.table
    flags = {flag: {"count": int(table[flag].sum()), "examples": list(table.index[table[flag]][:3]),
                    "first_reason": next((_reason(r, flag) for r in table.loc[table[flag], "reasons"]), "")}
             for flag in FLAGS}
    return {"images": len(table), "flagged": int((table["n_flags"] > 0).sum()), "seconds": round(seconds, 1),
            "smallest_object_px": int(table["smallest_object"].min()), "flags": flags, "notes": report.notes}


def _reason(reasons: str, flag: str) -> str:
    return next(r for r in reasons.split("; ") if r.startswith(flag + ":"))


def _add(store: dict, key, value) -> None:
    store.setdefault(key, []).append(value)


def print_markdown(gt_rows: list[dict], qc: dict) -> None:
    print("## Ground truth from 10 experts, BU-BIL ds1 (35 images), Dice vs GoldStandard\n")
    print(f"Data README reference: strict majority of the 10 experts = {README_MAJORITY:.3f}.\n")
    print("| experts | method | mean Dice | min | max |")
    print("|---|---|---|---|---|")
    for row in gt_rows:
        print(f"| {row['experts']} | {row['method']} | {row['mean_dice']:.4f} | {row['min_dice']:.4f} | "
              f"{row['max_dice']:.4f} |")
    print(f"\n({gt_rows[0]['seconds_all_methods']} s for all estimates)\n")
    print(f"## QC of DSB 2018: {qc['flagged']} of {qc['images']} images flagged ({qc['seconds']} s)\n")
    print("| flag | images | examples | first reason |")
    print("|---|---|---|---|")
    for flag, found in qc["flags"].items():
        examples = ", ".join(n[:12] for n in found["examples"])
        reason = found["first_reason"].replace("|", "/")[:160]
        print(f"| {flag} | {found['count']} | {examples} | {reason} |")
    print(f"\nSmallest object in any mask: {qc['smallest_object_px']} px.")
    for note in qc["notes"]:
        print(f"- note: {note}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="5 BU-BIL images and 40 DSB images: a smoke run")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"Data folder {args.data} not found; pass --data.", file=sys.stderr)
        return 2
    limit = (5, 40) if args.quick else (None, None)
    gt_rows = bubil_ground_truth(args.data / "bubil-multirater" / "ds1", limit=limit[0])
    qc = dsb_qc(args.data / "dsb2018", limit=limit[1], work=HERE / "_work" / "labels_quick")
    print_markdown(gt_rows, qc)
    if args.json:
        args.json.write_text(json.dumps({"ground_truth": gt_rows, "qc_dsb2018": qc}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
