"""Partial labels: what nbseg learns from masks labelled in part, marked with a "not labelled" value.

Two cases, each run as its own processes with the same threads (see bench/README.md):

- ``dsb``: the DSB2018 fluorescence split of quality.py (train part for training, the 92 held-back images for
  scoring). Three versions of the training masks, each trained ``--minutes B`` (default 5) with seed 0:
  ``dense`` (as shipped), ``partial`` (every second nucleus and a 2-pixel ring around it hold 65535, given as
  ``--unlabelled 65535``), and ``background`` (those nuclei left as background: what users must do without
  partial labels). Predicted with ``--tta flips --instances``; F1@0.5, pooled Dice and mAP on unseen images.
- ``lucchi``: lucchi3d.py's split of Lucchi++ (first 80 % of z trains, last 20 % is unseen). Only every 10th
  training slice is labelled; the other slices hold 2 (``--unlabelled 2``). ``nbseg train --dims 3 --minutes B``
  (default 10), predicted with ``--tta flips``; foreground IoU on the unseen slab.

Both report the validation Dice nbseg printed (best epoch) beside the unseen Dice: with few labelled pixels the
reported figure should stay within 0.05 of the unseen one.

    python bench/partial_labels.py --case dsb,lucchi [--minutes B] [--json out.json]
    python bench/partial_labels.py --quick      # tiny budgets and crops: a smoke run
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datasets import WORK, dsb_fluorescence_split  # noqa: E402
from lucchi3d import iou_dice, read, write_split  # noqa: E402
from quality import run, score, subset  # noqa: E402

V_DSB, V_LUCCHI = 65535, 2
EVERY = 10  # Lucchi++: every 10th slice labelled
RING = 2  # DSB2018: pixels around each hidden nucleus marked not labelled too


def hidden_nuclei(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every second nucleus (by label number) and the ring of ``RING`` pixels around it, as two bool arrays."""
    from scipy import ndimage

    hidden = np.isin(mask, np.unique(mask[mask > 0])[::2])
    return hidden, ndimage.binary_dilation(hidden, iterations=RING)


def dsb_versions(train: dict, work: Path) -> dict:
    """The three mask folders (dense, partial, background) beside the train images."""
    import tifffile

    out = {"dense": train}
    for version in ("partial", "background"):
        folder = work / version / "masks"
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for path in sorted(train["masks"].iterdir()):
                mask = tifffile.imread(path).astype(np.uint16)
                hidden, ring = hidden_nuclei(mask)
                edited = np.where(ring, V_DSB, mask) if version == "partial" else np.where(hidden, 0, mask)
                tifffile.imwrite(folder / path.name, edited.astype(np.uint16), compression="zlib")
        out[version] = {"images": train["images"], "masks": folder}
    return out


def reported_dice(project: Path) -> float | None:
    """The best validation Dice nbseg recorded while training (fold 0)."""
    from nbseg.model.history import read_history
    from nbseg.project import ProjectLayout

    path = ProjectLayout(project).history_file(0)
    rows = read_history(path) if path.exists() else []
    return round(max(r["val_dice"] for r in rows), 4) if rows else None


def train_and_predict(tag: str, images: Path, masks: Path, test_images: Path, work: Path, args, extra: list) -> dict:
    project, out, log = work / "projects" / tag, work / "predictions" / tag, work / "logs" / f"{tag}.log"
    for path in (project, out):
        shutil.rmtree(path, ignore_errors=True)
    log.unlink(missing_ok=True)
    timeout = 60 * args.minutes * 2 + args.predict_timeout
    row = {"version": tag, "log": str(log.relative_to(ROOT))}
    row["train_s"] = round(run([sys.executable, "-m", "nbseg", "train", "--images", images, "--masks", masks,
                                "--project", project, "--minutes", args.minutes, "--seed", "0", *extra],
                               log=log, threads=args.threads, timeout=timeout), 1)
    row["predict_s"] = round(run([sys.executable, "-m", "nbseg", "predict", project, test_images, "--output", out,
                                  "--tta", "flips", *(["--instances"] if "--dims" not in extra else [])],
                                 log=log, threads=args.threads, timeout=args.predict_timeout), 1)
    row["reported_val_dice"] = reported_dice(project)
    row["out"] = out
    return row


def dsb_case(args) -> list:
    work = WORK / "partial_labels" / ("dsb_quick" if args.quick else "dsb")
    data = subset(dsb_fluorescence_split(), work, n_train=12 if args.quick else None, n_test=3 if args.quick else None)
    rows = []
    for version, folders in dsb_versions(data["train"], work).items():
        extra = ["--unlabelled", str(V_DSB)] if version == "partial" else []
        extra += ["--steps-per-epoch", "2", "--batch-size", "2"] if args.quick else []
        row = train_and_predict(f"dsb_{version}", folders["images"], folders["masks"], data["test"]["images"],
                                work, args, extra)
        row.update(score(row.pop("out"), data["test"]["masks"]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    dense = next(r for r in rows if r["version"] == "dsb_dense")
    for row in rows:
        row["f1_vs_dense"] = round(row["f1@0.5"] / dense["f1@0.5"], 3) if dense["f1@0.5"] else None
    return rows


def lucchi_case(args) -> list:
    import tifffile

    work = WORK / "partial_labels" / ("lucchi_quick" if args.quick else "lucchi")
    parts = write_split(WORK / "lucchi", quick=args.quick)
    folder = work / "masks"
    if not (folder / "lucchi.tif").exists():
        folder.mkdir(parents=True, exist_ok=True)
        mask = read(parts["train"]["masks"] / "lucchi.tif")
        partial = np.full_like(mask, V_LUCCHI)
        partial[::EVERY] = mask[::EVERY]
        tifffile.imwrite(folder / "lucchi.tif", partial, compression="zlib")
    extra = ["--dims", "3", "--labels", "binary", "--unlabelled", str(V_LUCCHI)]
    extra += ["--steps-per-epoch", "2", "--batch-size", "1", "--patch", "16,64,64"] if args.quick else []
    row = train_and_predict("lucchi_every10", parts["train"]["images"], folder, parts["val"]["images"], work, args,
                            extra)
    row.update(iou_dice(read(row.pop("out") / "lucchi.mask.ome.tif"), read(parts["val"]["masks"] / "lucchi.tif")))
    depth = read(parts["train"]["images"] / "lucchi.tif").shape[0]
    row["labelled_slices"] = f"{len(range(0, depth, EVERY))} of {depth}"
    print(json.dumps(row), flush=True)
    return [row]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="dsb,lucchi")
    parser.add_argument("--minutes", type=float, help="training budget (default: dsb 5, lucchi 10; quick 0.1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--predict-timeout", type=float, default=3600)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    given, result = args.minutes, {"quick": args.quick, "threads": args.threads}
    started = time.perf_counter()
    for case in [c.strip() for c in args.case.split(",") if c.strip()]:
        args.minutes = given or (0.1 if args.quick else {"dsb": 5.0, "lucchi": 10.0}[case])
        result[case] = {"budget_min": args.minutes, "rows": {"dsb": dsb_case, "lucchi": lucchi_case}[case](args)}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
