"""Seeded train/validation splits and k folds, saved in the project so every later step reuses them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..project import ProjectLayout



class SplitError(ValueError):
    """The data cannot be split as asked."""


def make_folds(names, *, folds: int = 1, val_fraction: float = 0.2, seed: int = 0) -> list[dict]:
    """Train/validation name lists, one dict per fold.

    A single image is split by region instead: ``region_split`` gives the share of its first
    spatial axis (Z for stacks, Y for images) held back for validation.
    """
    names = sorted(names)
    if folds > 1 and len(names) < folds:
        raise SplitError(
            f"{folds} folds need at least {folds} images, but there are {len(names)}: {', '.join(names)}. "
            f"Use folds {max(len(names), 1)} or fewer, or add images."
        )
    if len(names) == 1:
        if folds > 1:
            raise SplitError(f"One image ({names[0]}) cannot be split into {folds} folds; use folds 1.")
        return [{"train": names, "val": names, "region_split": val_fraction}]
    order = list(np.random.default_rng(seed).permutation(names))
    if folds == 1:
        n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1)
        return [{"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}]
    chunks = np.array_split(np.array(order, dtype=object), folds)
    return [{"train": sorted(n for j, c in enumerate(chunks) if j != k for n in c), "val": sorted(chunks[k])}
            for k in range(folds)]


def load_or_make_split(project, names, *, folds: int, val_fraction: float, seed: int) -> list[dict]:
    """Reuse ``project/split.json`` when it names the same images and fold count; else make and save one."""
    path = ProjectLayout(project).split
    if path.exists():
        saved = json.loads(path.read_text())
        if (saved.get("names") == sorted(names) and len(saved["folds"]) == folds
                and saved.get("val_fraction") == val_fraction and saved.get("seed") == seed):
            return saved["folds"]
    split = make_folds(names, folds=folds, val_fraction=val_fraction, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"names": sorted(names), "seed": seed, "val_fraction": val_fraction, "folds": split}
    path.write_text(json.dumps(record, indent=1))
    return split
