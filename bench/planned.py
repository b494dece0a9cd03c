"""Defaults chosen by the data (issue 15): `nbseg train` with the plan it makes, on data of other kinds,
scored on held-back data; the plan, the validation Dice it reports and the held-back score side by side.

Cases (each a fixed split of ../shared/data, never tuned on its held-back part):

- ``lucchi``: Lucchi++ FIB-SEM mitochondria, first 80 % of the slices train, the last 20 % are scored
  (foreground IoU), as bench/lucchi3d.py splits it.
- ``bbbc050``: BBBC050 embryo nuclei (Z 2.18x XY): train on the 8-cell stack, predict the 16-cell stack
  with ``--instances``; F1 at IoU 0.5 and pooled Dice.

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

DEFAULT_MINUTES = {"lucchi": 10.0, "bbbc050": 3.0}
VARIANTS = {"plan": [], "3d": ["--model-dims", "3"]}


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


def case_data(case: str, quick: bool) -> dict:
    if case == "lucchi":
        parts = write_split(WORK / "lucchi", quick=quick)
        return {"train": parts["train"], "test": parts["val"], "args": ["--labels", "binary"], "instances": False}
    if case == "bbbc050":
        return {**bbbc050_split(), "args": ["--labels", "instances"], "instances": True}
    raise ValueError(f"unknown case {case!r}: lucchi or bbbc050")


def score(case: str, data: dict, out: Path) -> dict:
    if not data["instances"]:
        gt = read(next(data["test"]["masks"].iterdir()))
        return iou_dice(read(next(out.glob("*.mask.ome.tif"))), gt)
    from nbseg.metrics import evaluate_folders

    summary = evaluate_folders(out, data["test"]["masks"], kind="instances").summary
    return {k: summary[k] for k in ("dice", "iou", "f1@0.5", "map") if k in summary}


def run_case(case: str, variant: str, minutes: float, args) -> dict:
    data = case_data(case, args.quick)
    tag = f"{case}_{variant}_{minutes:g}min{'_quick' if args.quick else ''}"
    work = WORK / "planned"
    project, out, log = work / "projects" / tag, work / "predictions" / tag, work / "logs" / f"{tag}.log"
    for path in (project, out):
        shutil.rmtree(path, ignore_errors=True)
    log.unlink(missing_ok=True)
    quick = ["--steps-per-epoch", "2", "--patch", "1,64,64" if variant == "plan" else "16,64,64"] if args.quick else []
    row = {"case": case, "variant": variant, "budget_min": minutes, "log": str(log.relative_to(ROOT))}
    started = time.perf_counter()
    try:
        row["train_s"] = round(run(
            [sys.executable, "-m", "nbseg", "train", "--images", data["train"]["images"], "--masks",
             data["train"]["masks"], "--project", project, "--dims", "3", "--minutes", minutes, "--seed", "0",
             *data["args"], *VARIANTS[variant], *quick], log=log, threads=args.threads,
            timeout=60 * minutes * 2 + 1800), 1)
        row["predict_s"] = round(run(
            [sys.executable, "-m", "nbseg", "predict", project, data["test"]["images"], "--output", out, "--tta",
             args.tta, *(["--instances"] if data["instances"] else [])], log=log, threads=args.threads,
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
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        budgets = ([float(m) for m in args.minutes.split(",")] if args.minutes
                   else [0.1 if args.quick else DEFAULT_MINUTES[case]])
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
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
