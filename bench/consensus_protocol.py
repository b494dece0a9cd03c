"""Choose the default ground-truth method without tuning on one set of experts.

Protocol (leave one expert out), on every multi-expert subset under ``bubil-multirater/``:

1. Expert sets. In BU-BIL ds1 five people each annotated every image twice, with two tools
   (Amira, ImageJ); ``Person2_ImageJ`` is pixel-identical to ``Person2_Amira`` and is dropped as
   a duplicate. Three sets of experts are scored: all 9 distinct annotations, the 5 Amira ones
   and the 5 ImageJ ones (other subsets ``ds2``... are used the same way when they are present).
2. Folds. Each fold holds out one *person* (both of their annotations in the 9-annotation set,
   so a person's own habits never sit on both sides), builds the consensus from the others with
   every method, and scores it (Dice) against each held-out annotation. Against the gold standard
   only where that is fair: the GoldStandard is Person2's annotation, so only Person2's fold.
3. A poor expert. In every fold the protocol runs again with one of the input experts degraded
   (which one rotates with the image): its mask eroded or dilated by ``RADIUS`` pixels, or its
   largest object dropped. A method that resists loses little Dice.
4. The choice: highest mean Dice against the held-out experts with the experts as they are, over
   subsets and folds. Methods within ``TIE`` of the best count as tied, and a tie goes to the
   simpler method (the order of ``METHODS``). The poor-expert conditions are reported beside it,
   as how well each method resists, and not averaged in: which way an expert errs (too little or
   too much) decides which tie rule wins there, so their mean would weigh our choice of errors.

Every estimate comes from nbseg's own :func:`nbseg.labels.consensus.estimate_ground_truth`.
The masks are cropped to the box around every annotation plus a margin, which changes no Dice;
the whole-image STAPLE, whose result depends on how much background it sees, gets the full image.

Usage: python bench/consensus_protocol.py [--data ../shared/data] [--images N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbseg.io.images import read_mask  # noqa: E402
from nbseg.labels.consensus import estimate_ground_truth  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
# simplest first: a tie goes to the earlier one
METHODS = {
    "majority (ties -> background)": dict(method="majority"),
    "majority (ties -> foreground)": dict(method="majority", undecided=1),
    "STAPLE, pixels any expert marked": dict(method="staple", region="union"),
    "STAPLE, whole image": dict(method="staple", region="image"),
}
CONDITIONS = ("clean", "eroded", "dilated", "dropped")
# 10x slower than the others (every pixel of the field of view): only with --whole-image, on clean
# experts only, as a reference; it takes no part in the choice (bench/labels.py: 0.893 against
# 0.973 for STAPLE over the marked pixels, all 10 experts vs the GoldStandard)
REFERENCE_ONLY = {"STAPLE, whole image"}
RADIUS = 8   # pixels an eroded/dilated expert is off by (cells here are ~200 px across)
MARGIN = 24  # crop margin: more than RADIUS, so dilation never reaches the crop's edge
TIE = 0.002  # mean Dice differences below this are ties


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 2.0 * np.count_nonzero(a & b) / total if total else 1.0


def degrade(mask: np.ndarray, how: str) -> np.ndarray:
    """One expert made poor: ``mask`` eroded, dilated (by RADIUS) or without its largest object."""
    disk = _disk(RADIUS)
    if how == "eroded":
        return ndimage.binary_erosion(mask, disk)
    if how == "dilated":
        return ndimage.binary_dilation(mask, disk)
    if how == "dropped":
        labels, n = ndimage.label(mask)
        if n == 0:
            return mask.copy()
        largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        return mask & (labels != largest)
    return mask


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def expert_sets(root: Path) -> dict[str, list[str]]:
    """Named sets of distinct annotations: all of them, and one per tool where names say a tool."""
    experts = sorted(p.name for p in (root / "experts").iterdir() if p.is_dir())
    sets = {"all": _drop_duplicates(root, experts)}
    tools = sorted({e.split("_", 1)[1] for e in experts if "_" in e})
    for tool in tools:  # one annotation per person: no duplicates within a tool
        chosen = [e for e in experts if e.endswith("_" + tool)]
        if len(chosen) >= 3:  # two inputs after holding one out
            sets[tool] = chosen
    return sets


def _drop_duplicates(root: Path, experts: list[str]) -> list[str]:
    """Leave out annotations pixel-identical to an earlier one on every image (a copy is no expert)."""
    names = sorted(p.name for p in (root / "masks").glob("*.tif"))[:3]
    kept = []
    for e in experts:
        if not any(all(np.array_equal(read_mask(root / "experts" / e / n), read_mask(root / "experts" / k / n))
                       for n in names) for k in kept):
            kept.append(e)
    return kept


def person(expert: str) -> str:
    return expert.split("_", 1)[0]


def load_image(root: Path, name: str, experts: list[str]):
    """All experts' masks and the gold standard of one image, cropped around every annotation."""
    masks = {e: read_mask(root / "experts" / e / f"{name}.tif") > 0 for e in experts}
    gold_path = root / "masks" / f"{name}.tif"
    gold = read_mask(gold_path) > 0 if gold_path.exists() else None
    full_shape = next(iter(masks.values())).shape
    every = np.any(list(masks.values()) + ([gold] if gold is not None else []), axis=0)
    ys, xs = np.nonzero(every)
    box = (slice(max(ys.min() - MARGIN, 0), ys.max() + MARGIN + 1),
           slice(max(xs.min() - MARGIN, 0), xs.max() + MARGIN + 1))
    crop = {e: m[box] for e, m in masks.items()}
    return crop, (gold[box] if gold is not None else None), full_shape, box


def consensus(stack: list[np.ndarray], options: dict, full_shape, box) -> np.ndarray:
    if options.get("region") == "image":  # put the crop back: this variant sees the whole field of view
        full = []
        for m in stack:
            canvas = np.zeros(full_shape, np.uint8)
            canvas[box] = m
            full.append(canvas)
        return estimate_ground_truth(full, **options).mask[box] > 0
    return estimate_ground_truth([m.astype(np.uint8) for m in stack], **options).mask > 0


def run_subset(root: Path, subset: str, *, limit: int | None = None, whole_image: bool = False,
               progress=True) -> list[dict]:
    """One row per (expert set, held-out person, image, condition, method): Dice vs held-out / gold."""
    sets = expert_sets(root)
    names = sorted(p.stem for p in (root / "masks").glob("*.tif"))[:limit]
    all_experts = sorted({e for s in sets.values() for e in s})
    gold_person = _gold_person(root, names[:3], all_experts)
    rows = []
    for i, name in enumerate(names):
        masks, gold, full_shape, box = load_image(root, name, all_experts)
        for set_name, experts in sets.items():
            for held in sorted({person(e) for e in experts}):
                held_out = [masks[e] for e in experts if person(e) == held]
                inputs = [e for e in experts if person(e) != held]
                victim = inputs[i % len(inputs)]  # the degraded expert rotates with the image
                for condition in CONDITIONS:
                    stack = [degrade(masks[e], condition) if e == victim else masks[e] for e in inputs]
                    for method, options in METHODS.items():
                        if method in REFERENCE_ONLY and (condition != "clean" or not whole_image):
                            continue
                        estimate = consensus(stack, options, full_shape, box)
                        rows.append({
                            "subset": subset, "experts": set_name, "held_out": held, "image": name,
                            "condition": condition, "method": method,
                            "dice_held_out": float(np.mean([dice(estimate, h) for h in held_out])),
                            "dice_gold": dice(estimate, gold) if gold is not None and held == gold_person
                            else float("nan"),
                        })
        if progress:
            print(f"{subset}: {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)
    return rows


def _gold_person(root: Path, names: list[str], experts: list[str]) -> str | None:
    """The person whose annotation *is* the gold standard (Person2 in ds1), if any."""
    for e in experts:
        if all((root / "masks" / f"{n}.tif").exists()
               and np.array_equal(read_mask(root / "experts" / e / f"{n}.tif") > 0,
                                  read_mask(root / "masks" / f"{n}.tif") > 0) for n in names):
            return person(e)
    return None


def summarise(rows: list[dict]):
    """Tables of mean Dice and the chosen default (see the module docstring for the rule)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    # a fold's score: mean over its images; then mean over folds, per expert set and condition
    folds = frame.groupby(["subset", "experts", "condition", "method", "held_out"], sort=False).mean(
        numeric_only=True)
    per_set = folds.groupby(["subset", "experts", "condition", "method"], sort=False).mean()
    overall, clean, chosen = choose(per_set)
    return frame, per_set, overall, clean, chosen


def choose(per_set):
    """Mean Dice with a poor expert (over the degraded conditions) and clean, per method; the choice."""
    scores = per_set["dice_held_out"]
    degraded = scores[scores.index.get_level_values("condition") != "clean"]
    poor = degraded.groupby("method", sort=False).mean().reindex(list(METHODS))
    poor[[m for m in REFERENCE_ONLY if m in poor.index]] = np.nan  # scored on clean experts only
    clean = scores.xs("clean", level="condition").groupby("method", sort=False).mean().reindex(list(METHODS))
    best = clean.max()
    chosen = next(m for m in METHODS if clean[m] >= best - TIE and m not in REFERENCE_ONLY)
    return poor, clean, chosen


def print_markdown(per_set, overall, clean, chosen, n_images: int, seconds: float) -> None:
    table = per_set["dice_held_out"].unstack("method").reindex(columns=list(METHODS))
    print(f"Mean Dice against the held-out expert ({n_images} images; folds = held-out people):\n")
    print("| subset | experts | condition | " + " | ".join(METHODS) + " |")
    print("|---|---|---|" + "---|" * len(METHODS))
    for (subset, experts, condition), row in table.iterrows():
        cells = " | ".join("-" if np.isnan(v) else f"**{v:.4f}**" if v == row.max() else f"{v:.4f}"
                           for v in row)
        print(f"| {subset} | {experts} | {condition} | {cells} |")
    gold = per_set["dice_gold"].dropna().unstack("method")
    if len(gold):
        print("\nMean Dice against the GoldStandard, in the fold that holds out its annotator:\n")
        print("| subset | experts | condition | " + " | ".join(METHODS) + " |")
        print("|---|---|---|" + "---|" * len(METHODS))
        for (subset, experts, condition), row in gold.reindex(columns=list(METHODS)).iterrows():
            print(f"| {subset} | {experts} | {condition} | "
                  + " | ".join("-" if np.isnan(v) else f"{v:.4f}" for v in row) + " |")
    print("\n| method | clean: mean over subsets and folds (chooses) | with one poor expert: mean over the 3 kinds |")
    print("|---|---|---|")
    for method in METHODS:
        if np.isnan(clean[method]):  # not run (--whole-image)
            continue
        mark = " (chosen)" if method == chosen else " (reference, clean only)" if method in REFERENCE_ONLY else ""
        print(f"| {method}{mark} | {clean[method]:.4f} | {overall[method]:.4f} |")
    print(f"\nChosen default: {chosen} (ties within {TIE} go to the simpler method). {seconds:.0f} s.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    parser.add_argument("--images", type=int, help="only the first N images of each subset (a smoke run)")
    parser.add_argument("--quick", action="store_true", help="the first 3 images of each subset")
    parser.add_argument("--whole-image", action="store_true",
                        help="also the whole-image STAPLE, on clean experts (10x slower; a reference only)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--from-json", type=Path, metavar="JSON", help="print the tables of an earlier --json run")
    args = parser.parse_args(argv)
    if args.from_json:
        import pandas as pd

        saved = json.loads(args.from_json.read_text())
        per_set = pd.DataFrame(saved["per_set"]).set_index(["subset", "experts", "condition", "method"])
        overall, clean, chosen = choose(per_set)
        print_markdown(per_set, overall, clean, chosen, saved.get("images", 0), saved["seconds"])
        return 0
    root = args.data / "bubil-multirater"
    subsets = sorted(p for p in root.glob("ds*") if (p / "experts").is_dir())
    if not subsets:
        print(f"No multi-expert subsets (ds*/experts) under {root}; pass --data.", file=sys.stderr)
        return 2
    limit = 3 if args.quick else args.images
    started = time.perf_counter()
    rows = [r for s in subsets for r in run_subset(s, s.name, limit=limit, whole_image=args.whole_image)]
    seconds = time.perf_counter() - started
    frame, per_set, overall, clean, chosen = summarise(rows)
    print_markdown(per_set, overall, clean, chosen, frame["image"].nunique(), seconds)
    if args.json:
        out = {"chosen": chosen, "poor_expert": overall.to_dict(), "clean": clean.to_dict(), "tie": TIE,
               "images": int(frame["image"].nunique()),
               "per_set": per_set.reset_index().to_dict(orient="records"), "seconds": round(seconds, 1)}
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
