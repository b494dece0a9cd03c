"""BBBC050 embryo nuclei (3D, live, low light): segmentation trained on the raw stacks against the same
training on stacks denoised by N2V2 first (`nbseg train --denoise`), scored on the held-back stack.

    python bench/denoise_bbbc050.py [--minutes 3] [--denoise-minutes 3] [--seeds 0,1] [--json out.json]

- Split: bench/planned.py's (train on the 8-cell stack, score on the 16-cell stack).
- The denoiser: `nbseg denoise train` on both raw stacks (Noise2Void learns from the noisy images themselves and
  reads no label; denoising the images one will segment is how it is used), `--minutes M`, seed 0.
- Segmentation: `nbseg train --images train --masks train --minutes M --seed S` once on the raw stack, once with
  `--denoise DN` (the project carries the denoiser and trains on the denoised stack); `nbseg predict PROJECT test
  --instances --tta flips` (the second denoises the test stack first, as a user's prediction would).
- Scores: F1@0.5, pooled Dice and mAP of the 16 nuclei of the held-back stack (bench/quality.py's score).

BBBC050 holds 24 nuclei in all: a sanity check of the 3D path, not a statistically meaningful benchmark.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from datasets import WORK  # noqa: E402
from planned import bbbc050_split  # noqa: E402
from quality import run, score  # noqa: E402


def train_denoiser(split: dict, work: Path, args) -> Path:
    raw = work / "raw_both"
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    for part in ("train", "test"):
        for path in split[part]["images"].iterdir():
            (raw / path.name).symlink_to(path.resolve())
    project = work / "dn"
    shutil.rmtree(project, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "denoise", "train", "--images", raw, "--project", project,
         "--minutes", args.denoise_minutes, "--seed", "0"], log=work / "logs" / "denoise.log", threads=args.threads,
        timeout=60 * args.denoise_minutes * 3 + 600)
    return project


def arm(tag: str, split: dict, work: Path, args, seed: int, extra=()) -> dict:
    project, out = work / f"{tag}_s{seed}", work / f"{tag}_s{seed}_predictions"
    log = work / "logs" / f"{tag}_s{seed}.log"
    for folder in (project, out):
        shutil.rmtree(folder, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "train", "--images", split["train"]["images"], "--masks",
         split["train"]["masks"], "--project", project, "--minutes", args.minutes, "--seed", seed, *extra],
        log=log, threads=args.threads, timeout=60 * args.minutes * 3 + 900)
    run([sys.executable, "-m", "nbseg", "predict", project, split["test"]["images"], "--output", out, "--instances",
         "--tta", "flips"], log=log, threads=args.threads, timeout=3600)
    found = score(out, split["test"]["masks"])
    row = {"arm": tag, "seed": seed, **{k: round(found[k], 4) for k in ("f1@0.5", "dice", "map")}}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="segmentation training budget (default 3)")
    parser.add_argument("--denoise-minutes", type=float, default=3.0, help="N2V2 training budget (default 3)")
    parser.add_argument("--seeds", default="0", help="segmentation seeds, comma-separated (default 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = WORK / "denoise_bbbc050"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    split = bbbc050_split()
    denoiser = train_denoiser(split, work, args)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        rows.append(arm("raw", split, work, args, seed))
        rows.append(arm("denoised", split, work, args, seed, ["--denoise", denoiser]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"minutes": args.minutes, "denoise_minutes": args.denoise_minutes,
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
