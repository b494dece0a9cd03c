"""Transfer: the bundled fluorescence-nuclei model fine-tuned for 1 CPU minute on a modality it never saw
(DSB2018's H&E-like colour brightfield images) against 5 minutes of training from scratch on the same images.

The colour images are split once (seed 0, 20 % held back; bench/datasets.py ``dsb_split``); both runs train on
the same training part with nbseg's defaults and the same seed, predict the held-back images with the
README's command (``nbseg predict ... --instances``, flips TTA) and are scored with ``nbseg.metrics``
(pooled Dice, F1@0.5, mAP). The bundled model was trained on DSB2018 fluorescence images only (CC0), none of
them colour: see nbseg/models/nuclei/README.md.

    python bench/transfer.py [--init nuclei] [--finetune-minutes 1] [--scratch-minutes 5] [--seed 0] [--json out.json]
    python bench/transfer.py --quick     # seconds of training on a few images: a smoke run
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets import WORK, dsb_split  # noqa: E402
from quality import run, score, subset  # noqa: E402

MODALITY = "color-brightfield(H&E-like)"


def train_and_score(tag: str, minutes: float, data: dict, work: Path, extra: list, args) -> dict:
    """Train one project for ``minutes``, predict the held-back images, score them."""
    project, out, log = work / "projects" / tag, work / "predictions" / tag, work / "logs" / f"{tag}.log"
    for path in (project, out):
        shutil.rmtree(path, ignore_errors=True)
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "nbseg", "train", "--images", data["train"]["images"], "--masks",
           data["train"]["masks"], "--project", project, "--minutes", minutes, "--seed", args.seed, *extra]
    row = {"tag": tag, "minutes": minutes, "init": None, "log": str(log.relative_to(HERE.parent))}
    row["train_s"] = round(run(cmd, log=log, threads=args.threads, timeout=60 * minutes * 2 + 600), 1)
    cmd = [sys.executable, "-m", "nbseg", "predict", project, data["test"]["images"], "--output", out,
           "--instances"]
    row["predict_s"] = round(run(cmd, log=log, threads=args.threads, timeout=3600), 1)
    text = log.read_text()
    row["plan"] = next((line for line in text.splitlines() if line.startswith("plan:")), "")
    row["val_dice"] = next((float(line.split()[-1]) for line in text.splitlines()
                            if "best validation Dice" in line), None)
    row.update(score(out, data["test"]["masks"]))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="nuclei", help="what to fine-tune from (default: the bundled model)")
    parser.add_argument("--finetune-minutes", type=float, default=1.0)
    parser.add_argument("--scratch-minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="training seed of both runs (the split stays seed 0)")
    parser.add_argument("--finetune-lr", type=float, help="fine-tuning's peak lr (default: nbseg's, a third of 3e-3)")
    parser.add_argument("--no-scratch", action="store_true", help="fine-tune only (scratch rows of earlier runs)")
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds of training, 3 test images")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    work = WORK / "transfer"
    data = dsb_split(MODALITY, "dsb_colour")
    extra = []
    if args.quick:
        data = subset(data, work, n_train=6, n_test=3)
        args.finetune_minutes, args.scratch_minutes = 0.1, 0.2
        extra = ["--steps-per-epoch", "4", "--batch-size", "2"]
    started = time.perf_counter()
    seed = f"_seed{args.seed}" if args.seed else ""
    lr = ["--lr", args.finetune_lr] if args.finetune_lr else []
    rows = [] if args.no_scratch else [
        train_and_score(f"scratch_{args.scratch_minutes:g}min{seed}", args.scratch_minutes, data, work, extra, args)]
    rows.append(train_and_score(f"init_{args.init}_{args.finetune_minutes:g}min{seed}"
                                f"{f'_lr{args.finetune_lr:g}' if lr else ''}", args.finetune_minutes, data, work,
                                extra + ["--init", args.init, *lr], args))
    rows[-1]["init"] = args.init
    for row in rows:
        print(f"{row['tag']:>24}  Dice {row['dice']:.3f}  F1@0.5 {row['f1@0.5']:.3f}  mAP {row['map']:.3f}  "
              f"(val Dice {row['val_dice']}, train {row['train_s']} s)")
    result = {"modality": MODALITY, "train_images": len(list(data["train"]["images"].iterdir())),
              "test_images": len(list(data["test"]["images"].iterdir())), "rows": rows,
              "wall_s": round(time.perf_counter() - started, 1), "quick": args.quick}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
