"""Defaults chosen by the data (issue 15): `nbseg train` with the plan it makes, on data of other kinds,
scored on held-back data; the plan, the validation Dice it reports and the held-back score side by side.

Cases (each a fixed split of ../shared/data, never tuned on its held-back part):

- ``lucchi``: Lucchi++ FIB-SEM mitochondria, first 80 % of the slices train, the last 20 % are scored
  (foreground IoU), as bench/lucchi3d.py splits it.
- ``bbbc050``: BBBC050 embryo nuclei (Z 2.18x XY): train on the 8-cell stack, predict the 16-cell stack
  with ``--instances``; F1 at IoU 0.5 and pooled Dice.
- ``isbi``: ISBI 2012 EM membranes (2D binary, 20 consecutive sections): sections 0-14 train, 15-19 are
  scored by pixel error (the share of pixels whose membrane/non-membrane call is wrong).
- ``isbi-stack``: the same split, each part given as one stack (as the challenge ships its data): sections 0-14
  in one file to train, 15-19 in another to score; ``--dims`` comes from the files.
- ``epfl``: EPFL 6-class EM organelles (2D multi-class, one class under 0.5 % of pixels): every 4th slice
  (sorted names; spread over the volume, so the rare classes appear in both parts) is scored by IoU per
  class, pooled over the images; the others train.

Variants: ``plan`` (the default plan) and ``3d`` (``--model-dims 3``: the 3D network, forced).

    python bench/planned.py --cases lucchi,bbbc050 --variants plan,3d --minutes 10 --json out.json
    python bench/planned.py --quick      # seconds of training on crops: a smoke run
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datasets import WORK, require_shared  # noqa: E402
from lucchi3d import iou_dice, read, write_split  # noqa: E402
from quality import run  # noqa: E402

DEFAULT_MINUTES = {"lucchi": 10.0, "bbbc050": 3.0, "isbi": 5.0, "isbi-stack": 5.0, "epfl": 5.0}
HELD_BACK = {"isbi": slice(-5, None), "epfl": slice(3, None, 4)}  # scored images, of the sorted names
# "3d" forces the 3D network (warm-started from 2D on a CPU); "3d-scratch" from random weights; "p128": 2D
# patches of 128 px whatever the objects' size (the plan widens them to 256 for large objects); "s05": half
# the working scale; "m": model size M; "init": fine-tuned from the bundled nuclei model ("init-lr1e-3": at that lr)
VARIANTS = {"plan": [], "3d": ["--model-dims", "3"], "3d-scratch": ["--model-dims", "3", "--no-warm-start"],
            "p128": ["--patch", "128,128"], "s05": ["--scale", "0.5"], "m": ["--size", "M"],
            "init": ["--init", "nuclei"], "init-lr1e-3": ["--init", "nuclei", "--lr", "1e-3"]}


def bbbc050_split() -> dict:
    data = require_shared() / "bbbc050-qcanet"
    parts = {}
    for part, name in (("train", "8_cell_stage"), ("test", "16_cell_stage")):
        parts[part] = {}
        for kind in ("images", "masks"):
            folder = WORK / "bbbc050" / part / kind
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / f"{name}.tif"
            if not link.exists():
                link.symlink_to(data / kind / f"{name}.tif")
            parts[part][kind] = folder
    return parts


def held_back_split(case: str, folder: str) -> dict:
    """The images HELD_BACK[case] picks (of the sorted names) held back, the rest for training (links)."""
    data = require_shared() / folder
    names = sorted(p.name for p in (data / "images").iterdir())
    test = names[HELD_BACK[case]]
    parts = {"train": [n for n in names if n not in test], "test": test}
    out = {}
    for part, members in parts.items():
        out[part] = {}
        for kind in ("images", "masks"):
            target = WORK / case / part / kind
            shutil.rmtree(target, ignore_errors=True)  # the split may have changed: links made afresh
            target.mkdir(parents=True)
            for name in members:
                if not (target / name).exists():
                    (target / name).symlink_to(data / kind / name)
            out[part][kind] = target
    return out


def stacked_split(case: str, folder: str) -> dict:
    """held_back_split's parts, each written as one (Z, Y, X) stack of its sections in name order."""
    import tifffile

    parts = held_back_split(case.removesuffix("-stack"), folder)
    out = {}
    for part, kinds in parts.items():
        out[part] = {}
        for kind, source in kinds.items():
            target = WORK / case / part / kind
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            sections = [tifffile.imread(f) for f in sorted(source.iterdir())]
            tifffile.imwrite(target / f"{folder}_{part}.tif", np.stack(sections), compression="zlib")
            out[part][kind] = target
    return out


def case_data(case: str, quick: bool) -> dict:
    if case == "lucchi":
        parts = write_split(WORK / "lucchi", quick=quick)
        return {"train": parts["train"], "test": parts["val"], "args": ["--dims", "3", "--labels", "binary"],
                "score": "iou"}
    if case == "bbbc050":
        return {**bbbc050_split(), "args": ["--dims", "3", "--labels", "instances"], "score": "instances"}
    if case == "isbi":
        return {**held_back_split(case, "isbi2012"), "args": ["--dims", "2", "--labels", "binary"], "score": "pixel"}
    if case == "isbi-stack":
        return {**stacked_split(case, "isbi2012"), "args": ["--labels", "binary"], "score": "pixel"}
    if case == "epfl":
        return {**held_back_split(case, "epfl-6class-train"), "args": ["--dims", "2", "--labels", "multiclass",
                                                                  "--n-classes", "7"], "score": "classes"}
    raise ValueError(f"unknown case {case!r}: lucchi, bbbc050, isbi, isbi-stack or epfl")


def challenge_pixel_error(probs, masks) -> float:
    """Pixel error as the ISBI 2012 challenge defined it: 1 - the best F-score over thresholds 0.05..0.95, with
    the cell interior (mask 0) as the positive class, pooled over the images (Fiji's trainableSegmentation
    PixelError scores the challenge's interior-white label images this way). The U-Net paper's 0.0611 is this
    figure on the challenge's test set; ``pixel_error`` (the misclassified share at 0.5) is the issue's measure.

    probs : 8-bit (0..255) or 0..1 membrane probability maps; masks : arrays with membrane > 0.
    """
    interior = np.concatenate([np.ravel(g == 0) for g in masks])
    scale = 255.0 if max(float(np.max(p)) for p in probs) > 1 else 1.0
    p_interior = 1 - np.concatenate([np.ravel(p) for p in probs]).astype(np.float32) / scale
    best = 0.0
    for t in np.arange(1, 20) / 20:
        called = p_interior > t
        tp = np.count_nonzero(called & interior)
        best = max(best, 2 * tp / (np.count_nonzero(called) + np.count_nonzero(interior)))
    return 1 - best


def score(case: str, data: dict, out: Path) -> dict:
    pairs = [(read(out / f"{Path(m.name).stem}.mask.ome.tif"), read(m)) for m in sorted(data["test"]["masks"].iterdir())]
    if data["score"] == "iou":
        return iou_dice(pairs[0][0], pairs[0][1])
    if data["score"] == "pixel":
        wrong = sum(int(np.count_nonzero((p > 0) != (g > 0))) for p, g in pairs)
        probs = [read(out / f"{Path(m.name).stem}.prob.ome.tif") for m in sorted(data["test"]["masks"].iterdir())]
        return {"pixel_error": wrong / sum(g.size for _, g in pairs),
                "challenge_pixel_error": challenge_pixel_error(probs, [g for _, g in pairs])}
    if data["score"] == "classes":
        from nbseg.metrics import dice_iou

        inter, union = np.zeros(7), np.zeros(7)
        for p, g in pairs:
            for c, s in dice_iou(p, g, classes=range(1, 7)).items():
                inter[c] += s["intersection"]
                union[c] += s["pred"] + s["gt"] - s["intersection"]
        iou = {f"iou class {c}": inter[c] / union[c] if union[c] else 1.0 for c in range(1, 7)}
        return {"mean_fg_iou": float(np.mean(list(iou.values()))), "min_class_iou": min(iou.values()), **iou}
    from nbseg.metrics import evaluate_folders

    summary = evaluate_folders(out, data["test"]["masks"], kind="instances").summary
    return {k: summary[k] for k in ("dice", "iou", "f1@0.5", "map") if k in summary}


def run_case(case: str, variant: str, minutes: float, args) -> dict:
    data = case_data(case, args.quick)
    tag = (f"{case}_{variant}_{minutes:g}min{f'_seed{args.seed}' if args.seed else ''}"
           f"{f'_{args.label}' if args.label else ''}{'_quick' if args.quick else ''}")
    work = WORK / "planned"
    project, out, log = work / "projects" / tag, work / "predictions" / tag, work / "logs" / f"{tag}.log"
    for path in (project, out):
        shutil.rmtree(path, ignore_errors=True)
    log.unlink(missing_ok=True)
    patch = "64,64" if "2" in data["args"] else "1,64,64" if variant == "plan" else "16,64,64"
    quick = ["--steps-per-epoch", "2", "--patch", patch] if args.quick else []
    row = {"case": case, "variant": variant, "budget_min": minutes, "log": str(log.relative_to(ROOT))}
    started = time.perf_counter()
    try:
        row["train_s"] = round(run(
            [sys.executable, "-m", "nbseg", "train", "--images", data["train"]["images"], "--masks",
             data["train"]["masks"], "--project", project, "--minutes", minutes, "--seed", args.seed,
             *data["args"], *VARIANTS[variant], *args.extra.split(), *quick], log=log, threads=args.threads,
            timeout=60 * minutes * 2 + 1800), 1)
        row["predict_s"] = round(run(
            [sys.executable, "-m", "nbseg", "predict", project, data["test"]["images"], "--output", out, "--tta",
             args.tta, *(["--instances"] if data["score"] == "instances" else [])], log=log, threads=args.threads,
            timeout=3600), 1)
        text = log.read_text()
        row["plan"] = next((line for line in text.splitlines() if line.startswith("plan:")), "")
        found = re.findall(r"best validation Dice ([0-9.]+)", text)
        row["val_dice"] = float(found[-1]) if found else None
        row["epochs"] = len(re.findall(r"^epoch ", text, flags=re.M))
        row.update(score(case, data, out))
        row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - a failed case is reported, the others still run
        row.update(status="error", error=str(err)[-2500:])
    row["wall_s"] = round(time.perf_counter() - started, 1)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="lucchi,bbbc050")
    parser.add_argument("--variants", default="plan,3d")
    parser.add_argument("--minutes", help="comma-separated budgets (default: 10 for lucchi, 3 for bbbc050)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta", choices=("none", "flips"), default="none")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the splits are fixed)")
    parser.add_argument("--extra", default="", help="more `nbseg train` arguments, e.g. \"--lr 1e-3\"")
    parser.add_argument("--label", default="", help="added to the run's name (for --extra runs)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        budgets = ([float(m) for m in args.minutes.split(",")] if args.minutes
                   else [0.1 if args.quick else DEFAULT_MINUTES[case]])
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            if variant.startswith("3d") and case in HELD_BACK:  # 2D data: there is no 3D network to force
                continue
            for minutes in budgets:
                row = run_case(case, variant, minutes, args)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "error"}), flush=True)
                if row["status"] == "error":
                    print(row["error"], file=sys.stderr)
    if args.json:
        earlier = json.loads(args.json.read_text())["rows"] if args.json.exists() else []
        keep = [r for r in earlier if (r["case"], r["variant"], r["budget_min"]) not in
                {(r["case"], r["variant"], r["budget_min"]) for r in rows}]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "tta": args.tta, "rows": keep + rows}, indent=1))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
