"""Correct and retrain with a simulated annotator: H&E-like brightfield nuclei from the bundled fluorescence model.

The DSB2018 H&E-like colour images are split once (bench/datasets.py, seed 0): a pool to pick from and held-back
test images. Each round, K images are picked from the pool and "corrected" by copying their ground truth; the
edits that would take are counted (objects added, deleted, split, merged, matched at IoU 0.5 between the
proposal, ``nbseg predict MODEL --instances``, and the ground truth). ``nbseg train --init MODEL --minutes B``
fine-tunes on every image corrected so far, and the test images are scored (F1@0.5, pooled Dice, mAP).

Picks compared, each its own processes with the same threads:
- ``suggest``: ``nbseg suggest MODEL POOL -n K`` (most uncertain first), MODEL the last round's project;
- ``random-S``: K random images (seeds 0, 1, ...);
- ``scratch``: ``nbseg train`` from scratch on the whole pool for ``--scratch-minutes`` (default 5).
The start (the bundled model, no training) is scored too.

``--train-seeds 0,1,2`` fine-tunes each round's picks (and scratch) once per training seed (``nbseg train --seed``)
and reports their mean and each; the next round goes on from the first seed's model. ``--split-seed S`` splits the
images into pool and test anew (seed S; 0 is the split the pool protocol's pool comes from), for the same
comparison on other test images.

    python bench/correction_loop.py [--k 8] [--rounds 1] [--minutes 2] [--random-seeds 2] [--train-seeds 0]
                                    [--split-seed 0] [--json out.json]
    python bench/correction_loop.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datasets import WORK, dsb_split  # noqa: E402
from quality import run, score, subset, thread_env  # noqa: E402

MODALITY = "color-brightfield(H&E-like)"


def suggest(model, pool: Path, k: int, skip: Path, log: Path, threads: int) -> list[str]:
    """The names ``nbseg suggest`` proposes, best first (images with a mask in ``skip`` left out)."""
    cmd = [sys.executable, "-m", "nbseg", "suggest", str(model), str(pool), "-n", str(k), "--skip", str(skip)]
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        out = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads), cwd=ROOT, check=True)
        handle.write(out.stderr[-4000:] + out.stdout)
    return [Path(line).name for line in out.stdout.split()]


def edits_for(names, model, data: dict, work: Path, log: Path, threads: int) -> dict:
    """Edits a person would make on ``names``: the model's proposals against the ground truth."""
    import tifffile

    from nbseg.metrics.edits import count_edits

    folder = work / "proposals_in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in names:
        os.symlink((data["pool"]["images"] / name).resolve(), folder / name)
    out = work / "proposals"
    shutil.rmtree(out, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "predict", model, folder, "--output", out, "--instances", "--tta", "flips"],
        log=log, threads=threads, timeout=3600)
    total: dict = {}
    for name in names:
        stem = Path(name).stem
        found = count_edits(tifffile.imread(out / f"{stem}.labels.ome.tif"),
                            tifffile.imread(data["pool"]["masks"] / name))
        for key, value in found.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def fine_tune(names, data: dict, init, tag: str, work: Path, args, log: Path, seed: int = 0) -> Path:
    """Train on the ground truth of ``names`` from ``init`` (or from scratch when None); returns the project."""
    train = work / tag / "train"
    shutil.rmtree(train, ignore_errors=True)
    for kind in ("images", "masks"):
        (train / kind).mkdir(parents=True)
        for name in names:
            os.symlink((data["pool"][kind] / name).resolve(), train / kind / name)
    project = work / tag / "project"
    shutil.rmtree(project, ignore_errors=True)
    minutes = args.minutes if init is not None else args.scratch_minutes
    extra = ["--init", str(init)] if init is not None else []
    extra += ["--steps-per-epoch", "2", "--batch-size", "2"] if args.quick else []
    run([sys.executable, "-m", "nbseg", "train", "--images", train / "images", "--masks", train / "masks",
         "--project", project, "--minutes", minutes, "--seed", seed, *extra], log=log, threads=args.threads,
        timeout=60 * minutes * 3 + 600)
    return project


def test_scores(model, data: dict, tag: str, work: Path, args, log: Path) -> dict:
    out = work / tag / "test_predictions"
    shutil.rmtree(out, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "predict", model, data["test"]["images"], "--output", out, "--instances",
         "--tta", "flips"], log=log, threads=args.threads, timeout=3600)
    found = score(out, data["test"]["masks"])
    return {"f1@0.5": round(found["f1@0.5"], 4), "dice": round(found["dice"], 4), "map": round(found["map"], 4)}


def seeded_runs(names, data: dict, init, tag: str, work: Path, args, log: Path) -> tuple[Path, dict]:
    """``names`` trained once per ``--train-seeds`` seed and scored: the first seed's project, and a row's
    scores (their mean, and each seed's under ``train_seeds``)."""
    projects, found = [], {}
    for seed in args.train_seeds:
        run_tag = tag + (f"/seed{seed}" if seed else "")
        projects.append(fine_tune(names, data, init, run_tag, work, args, log, seed=seed))
        found[seed] = test_scores(projects[-1], data, run_tag, work, args, log)
    scores = list(found.values())
    mean = {key: round(float(np.mean([f[key] for f in scores])), 4) for key in scores[0]}
    return projects[0], {**mean, "train_seeds": found}


def loop(pick: str, data: dict, work: Path, args) -> list:
    """Rounds of K picked, corrected images for one way of picking; a row per round."""
    names = sorted(p.name for p in data["pool"]["images"].iterdir())
    chosen, model, rows = [], args.start, []
    log = work / "logs" / f"{pick}.log"
    done = work / pick / "done"
    for number in range(1, args.rounds + 1):
        shutil.rmtree(done, ignore_errors=True)
        done.mkdir(parents=True)
        for name in chosen:
            os.symlink((data["pool"]["masks"] / name).resolve(), done / name)
        started = time.perf_counter()
        if pick == "suggest":
            new = suggest(model, data["pool"]["images"], args.k, done, log, args.threads)
        else:
            rest = [n for n in names if n not in chosen]
            seed = int(pick.split("-")[1])
            new = list(np.random.default_rng(seed + 1000 * number).choice(rest, args.k, replace=False))
        pick_s = round(time.perf_counter() - started, 1)
        edits = edits_for(new, model, data, work / pick, log, args.threads)
        chosen += new
        model, scores = seeded_runs(chosen, data, model, f"{pick}/round{number}", work, args, log)
        row = {"pick": pick, "round": number, "images": len(chosen), "pick_s": pick_s, "edits": edits,
               "edits_total": edits.get("edits", 0), **scores}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="images corrected per round (default 8)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=2.0, help="fine-tuning budget per round (default 2)")
    parser.add_argument("--scratch-minutes", type=float, default=5.0)
    parser.add_argument("--random-seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0, help="random picks use seeds from this one on")
    parser.add_argument("--train-seeds", default="0", help="comma-separated training seeds per round (default 0)")
    parser.add_argument("--skip", default="", help="comma-separated: start, suggest, random, scratch")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="another split of the H&E-like images into pool and test (default 0, the one "
                             "suggest_protocol.py's pool comes from): the same comparison on other test images")
    parser.add_argument("--start", default="nuclei",
                        help="the model the loop starts from (default the bundled nuclei model; a project: a "
                             "candidate for it, bench/bundled_model.py)")
    parser.add_argument("--tag", default="",
                        help="work in bench/_work/correction_loop..._TAG: another start's runs apart")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.train_seeds = [int(x) for x in args.train_seeds.split(",") if x.strip()]
    if args.quick:
        args.k, args.minutes, args.scratch_minutes, args.random_seeds = 2, 0.1, 0.1, 1
    again = f"_split{args.split_seed}" if args.split_seed else ""
    tag = f"_{args.tag}" if args.tag else ""
    work = WORK / ("correction_loop_quick" if args.quick else "correction_loop" + again + tag)
    split = dsb_split(MODALITY, "dsb_he" + again, seed=args.split_seed)
    data = subset(split, work, n_train=8 if args.quick else None, n_test=2 if args.quick else None)
    data = {"pool": data["train"], "test": data["test"]}
    skip = set(args.skip.split(","))
    result = {"quick": args.quick, "split_seed": args.split_seed, "k": args.k, "rounds": args.rounds,
              "minutes": args.minutes,
              "pool": len(list(data["pool"]["images"].iterdir())), "test": len(list(data["test"]["images"].iterdir())),
              "rows": []}
    started = time.perf_counter()
    if "start" not in skip:
        start = "bundled model" if args.start == "nuclei" else args.start
        row = {"pick": f"start ({start})", "round": 0, "images": 0,
               **test_scores(args.start, data, "start", work, args, work / "logs" / "start.log")}
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    randoms = [f"random-{s}" for s in range(args.first_seed, args.first_seed + args.random_seeds)]
    picks = ([] if "suggest" in skip else ["suggest"]) + ([] if "random" in skip else randoms)
    for pick in picks:
        result["rows"] += loop(pick, data, work, args)
    if "scratch" not in skip:
        names = sorted(p.name for p in data["pool"]["images"].iterdir())
        log = work / "logs" / "scratch.log"
        row = {"pick": f"scratch, all {len(names)}", "round": 1, "images": len(names),
               **seeded_runs(names, data, None, "scratch", work, args, log)[1]}
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
