"""Seeded train/validation splits and k folds, saved in the project so every later step reuses them."""
from __future__ import annotations

import json

import numpy as np

from ..project import ProjectLayout, write_json


class SplitError(ValueError):
    """The data cannot be split as asked."""


def make_folds(names, *, folds: int = 1, val_fraction: float = 0.2, seed: int = 0) -> list[dict]:
    """Train/validation name lists, one dict per fold.

    A single image is split by region instead: ``region_split`` gives the share of its longest
    spatial axis (in physical units) held back, a central band, for validation; see
    :func:`region_axis`.
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
    write_json(path, {"names": sorted(names), "seed": seed, "val_fraction": val_fraction, "folds": split})
    return split


def split_samples(dataset, split: dict) -> tuple[list, list]:
    """The training and validation samples of one fold of ``split`` (from :func:`load_or_make_split`).

    A single image (``region_split``) is cut: a central band across its physically longest axis
    validates, the parts on either side train.
    """
    by_name = {s.name: s for s in dataset.samples}
    if "region_split" in split:  # a single image: hold back a central band across its longest axis
        from .dataset import Sample

        sample = by_name[split["train"][0]]
        axis = region_axis(sample.target.shape, sample.pixel_sizes)
        n = sample.target.shape[axis]
        width = max(1, min(n - 1, round(n * split["region_split"])))
        start = (n - width) // 2  # the centre: image borders are often empty (an embryo, a cell)

        def part(s):
            box = (slice(None),) * axis + (s,)
            return Sample(sample.name, sample.image[(slice(None),) + box], sample.target[box], sample.pixel_sizes,
                          sample.unit)

        train = [part(s) for s in (slice(0, start), slice(start + width, n)) if s.stop > s.start]
        return train, [part(slice(start, start + width))]
    return [by_name[n] for n in split["train"]], [by_name[n] for n in split["val"]]


def region_axis(shape, pixel_sizes=()) -> int:
    """The axis a single image is split across: the longest in physical units (pixels where unknown).

    A central band across the longest axis spans every other axis: for an embryo stack it holds
    whole nuclei at every depth, where the last slices would hold only caps and the last columns
    only background.
    """
    sizes = [s if s else 1.0 for s in (pixel_sizes or ())] or [1.0] * len(shape)
    extent = [n * s for n, s in zip(shape, sizes)] if len(sizes) == len(shape) else list(shape)
    return int(np.argmax(extent))
