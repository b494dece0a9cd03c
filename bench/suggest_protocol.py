"""How `nbseg suggest` ranks by default, chosen on the pool only: cross-validation inside the correction loop's pool.

correction_loop.py scores its picks on held-back test images; choosing the ranking rule on those would tune to
them. Here the pool (the H&E-like training images of bench/datasets.py's split, seed 0) is cut into ``--folds``
parts. For each part, the other parts are the candidates: each rule picks K of them with the bundled model
(``nbseg.predict.suggest_images``, TTA flips as the CLI), their ground truth is the correction, ``nbseg train
--init nuclei`` fine-tunes for a fixed number of epochs (a time budget would make the result depend on what
else runs), and the held-out part is scored (F1@0.5 and pooled Dice of ``nbseg predict --instances``).
A rule becomes SUGGEST_DEFAULT by its mean F1@0.5 and Dice over the parts (the criterion said before the run,
docs/benchmarks.md); random picks (``--random-seeds``) give the bar it must clear. ``--repeats`` cuts the pool
anew (seeds 0, 1, ...), so each rule gets repeats x folds pick sets; the summary gives each rule's mean
difference (F1@0.5 and Dice) to the random picks of the same part, with its standard error over the parts (one
split's three parts could not tell rules apart by 0.02).

A change to fine-tuning is tried the same way: ``--tag NAME`` keeps its runs apart (the bundled model's pool
scores are shared), ``--train-args`` passes options to every fine-tune (a change to the code: run a changed copy, e.g. a git
worktree, with a tag); the summary then adds each rule's paired difference to the untagged runs that picked the
same images ("against the defaults").

    python bench/suggest_protocol.py [--rules dense,crowded,representative] [--folds 3] [--repeats 3] [--epochs 12]
                                     [--tag NAME] [--train-args "..."]
    python bench/suggest_protocol.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from correction_loop import MODALITY  # noqa: E402
from datasets import WORK, dsb_split  # noqa: E402
from quality import run, score, subset  # noqa: E402


def link(names, source: dict, folder: Path) -> Path:
    """``folder/images`` and ``folder/masks`` holding links to ``names`` of ``source``."""
    shutil.rmtree(folder, ignore_errors=True)
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True)
        for name in names:
            os.symlink((source[kind] / name).resolve(), folder / kind / name)
    return folder


def pick(rule: str, candidates: list, ranked: dict, k: int, fold: int, repeat: int = 0) -> list:
    """K of ``candidates`` by ``rule``: nbseg's own ranking (rank_order, as `nbseg suggest` ranks) over the
    scores and features of the pool computed once, or random (a seed per rule, fold and repeat)."""
    if rule.startswith("random"):
        seed = int(rule.split("-")[1])
        return list(np.random.default_rng(seed + 100 * fold + 1000 * repeat).choice(candidates, k, replace=False))
    from nbseg.predict.suggest import rank_order

    scores = np.array([ranked["scores"][name] for name in candidates])
    features = [ranked["features"][name] for name in candidates]
    objects = np.array([ranked["objects"][name] for name in candidates])
    foreground = np.array([ranked["foreground"][name] for name in candidates])  # all pool images: one size
    return [candidates[i] for i in rank_order(scores, features, by=rule, n=k, objects=objects,
                                              foreground=foreground)[:k]]


def pool_scores(pool: dict, cache: Path, start: str = "nuclei") -> dict:
    """The ``start`` model's uncertainty, objects and features for every pool image (TTA flips, as the CLI);
    kept in ``cache``."""
    from nbseg.predict.suggest import image_scores

    if not cache.exists() or "objects" not in json.loads(cache.read_text())[0]:
        rows, features = image_scores(start, sorted(pool["images"].iterdir()), tta="flips")
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([dict(r, feature=None if f is None else f.tolist())
                                     for r, f in zip(rows, features)]))
    rows = json.loads(cache.read_text())
    return {"scores": {Path(r["image"]).name: r["score"] for r in rows},
            "objects": {Path(r["image"]).name: r["objects"] for r in rows},
            "foreground": {Path(r["image"]).name: r["foreground_fraction"] for r in rows},
            "features": {Path(r["image"]).name: None if r["feature"] is None else np.array(r["feature"])
                         for r in rows}}


def arm(rule: str, fold: int, parts: list, pool: dict, ranked: dict, work: Path, args, repeat: int = 0) -> dict:
    """One rule on one part: pick, fine-tune, score; kept in ``result.json``, which a rerun reuses while the
    rule still picks the same images with the same epochs (a changed rule or split reruns)."""
    held = parts[fold]
    candidates = sorted(n for j, part in enumerate(parts) if j != fold for n in part)
    chosen = pick(rule, candidates, ranked, args.k, fold, repeat)
    where = work / (f"fold{fold}" if repeat == 0 else f"repeat{repeat}/fold{fold}") / rule
    done = where / "result.json"
    if done.exists():
        kept = json.loads(done.read_text())
        same = (kept.get("epochs"), kept.get("picked"), kept.get("train_args", ""))
        if same == (args.epochs, chosen, args.train_args):
            return dict(kept, rule=rule, repeat=repeat)
    log = work / "logs" / f"repeat{repeat}_fold{fold}_{rule}.log"
    train = link(chosen, pool, where / "train")
    project = where / "project"
    shutil.rmtree(project, ignore_errors=True)
    extra = (["--steps-per-epoch", "2", "--batch-size", "2"] if args.quick else []) + args.train_args.split()
    run([sys.executable, "-m", "nbseg", "train", "--images", train / "images", "--masks", train / "masks",
         "--project", project, "--init", args.start, "--epochs", args.epochs, "--seed", "0", *extra],
        log=log, threads=args.threads, timeout=3600)
    evaluation = link(held, pool, where / "held")
    out = where / "predictions"
    shutil.rmtree(out, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "predict", project, evaluation / "images", "--output", out, "--instances",
         "--tta", "none"], log=log, threads=args.threads, timeout=3600)
    found = score(out, evaluation / "masks")
    row = {"rule": rule, "repeat": repeat, "fold": fold, "epochs": args.epochs, "train_args": args.train_args,
           "picked": chosen, "f1@0.5": round(found["f1@0.5"], 4), "dice": round(found["dice"], 4)}
    done.write_text(json.dumps(row))
    return row


def summary(rows: list, rules: list) -> dict:
    """Each rule's mean F1@0.5 and Dice over its pick sets, and (``... over random``, ``... se``) its mean
    difference to the random picks of the same part (paired: the part's images and candidates are the same),
    with the standard error over parts."""
    randoms = [o for o in rows if o["rule"].startswith("random")]
    means = {}
    for rule in rules:
        mine = [r for r in rows if r["rule"] == rule]
        out = {"sets": len(mine)}
        for m in ("f1@0.5", "dice"):
            out[m] = round(float(np.mean([r[m] for r in mine])), 4)
            gaps = [r[m] - np.mean(bar) for r in mine
                    if (bar := [o[m] for o in randoms if (o["repeat"], o["fold"]) == (r["repeat"], r["fold"])])]
            if gaps and not rule.startswith("random"):
                out[f"{m} over random"] = round(float(np.mean(gaps)), 4)
                out[f"{m} se"] = round(float(np.std(gaps, ddof=1) / np.sqrt(len(gaps))), 4) if len(gaps) > 1 else None
        means[rule] = out
    return means


def against_defaults(rows: list, rules: list) -> dict:
    """A ``--tag`` variant's mean difference (F1@0.5, Dice; with its standard error) to the untagged runs of
    the same rule that picked the same images: what the variant's change did, paired."""
    out = {}
    for rule in (r for r in rules if not r.startswith("random")):
        pairs = []
        for row in (r for r in rows if r["rule"] == rule):
            part = f"fold{row['fold']}" if row["repeat"] == 0 else f"repeat{row['repeat']}/fold{row['fold']}"
            path = WORK / "suggest_protocol" / part / rule / "result.json"
            kept = json.loads(path.read_text()) if path.exists() else {}
            if kept.get("picked") == row["picked"]:
                pairs.append((row, kept))
        if len(pairs) > 1:
            out[rule] = {"sets": len(pairs)}
            for m in ("f1@0.5", "dice"):
                gaps = [a[m] - b[m] for a, b in pairs]
                out[rule][m] = round(float(np.mean(gaps)), 4)
                out[rule][f"{m} se"] = round(float(np.std(gaps, ddof=1) / np.sqrt(len(gaps))), 4)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="dense,crowded,representative")
    parser.add_argument("--random-seeds", type=int, default=2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="partitions of the pool, each cut into --folds parts (default 3: 9 pick sets a rule)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs (default 12, as measured)")
    parser.add_argument("--train-args", default="",
                        help="more options for every fine-tune, e.g. \"--seed 1\" (with --tag: the default's runs "
                             "stay as they are)")
    parser.add_argument("--tag", default="", help="work in bench/_work/suggest_protocol_TAG: a variant's runs apart")
    parser.add_argument("--start", default="nuclei",
                        help="the model that proposes and is fine-tuned (default the bundled nuclei model; a project: "
                             "a candidate for it, bench/bundled_model.py; use a --tag)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.k, args.epochs, args.folds, args.random_seeds, args.repeats = 2, 1, 2, 1, 1
    name = "suggest_protocol_quick" if args.quick else "suggest_protocol" + (f"_{args.tag}" if args.tag else "")
    work = WORK / name
    data = subset(dsb_split(MODALITY, "dsb_he"), work, n_train=8 if args.quick else None, n_test=None)
    pool = data["train"]  # the test part is never read here
    names = sorted(p.name for p in pool["images"].iterdir())
    rules = [r for r in args.rules.split(",") if r] + [f"random-{s}" for s in range(args.random_seeds)]
    # the bundled model's scores: one file for every variant that starts from it
    scores = work if args.quick or args.start != "nuclei" else WORK / "suggest_protocol"
    ranked, rows = pool_scores(pool, scores / "pool_scores.json", args.start) if args.rules else {}, []
    for repeat in range(args.repeats):
        order = np.random.default_rng(repeat).permutation(names)
        parts = [sorted(p) for p in np.array_split(order, args.folds)]
        for fold in range(args.folds):
            for rule in rules:
                rows.append(arm(rule, fold, parts, pool, ranked, work, args, repeat))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "picked"}), flush=True)
    means = summary(rows, rules)
    if args.tag:
        means["against the defaults"] = against_defaults(rows, rules)
    print(json.dumps(means, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"k": args.k, "epochs": args.epochs, "folds": args.folds,
                                         "repeats": args.repeats, "rows": rows,
                                         "means": means}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
