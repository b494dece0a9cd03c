"""Seeded train/validation splits and k folds, and the test set held back from all of them, saved in the
project (``split.json``) so every later step reuses them.

``split.json`` holds ``names`` (the images the folds share out), ``seed``, ``val_fraction``, ``folds`` (one
``{"train": names, "val": names}`` per fold, or ``{"train": names, "val": names, "region_split": share}`` where
every image gives a band to validation: :func:`make_folds`) and ``test``: images held back from every fold,
never trained on nor used to choose anything (validation, early stopping, the threshold), so that their scores
are honest. Files written before the test set existed have no ``test`` (read as none); one written by notebook 01
before training has no ``folds`` yet.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from ..project import ProjectLayout, write_json


# with one fold, fewer whole images than this to validate with, and each image holds back a band instead: which
# one or two images a draw holds back decides too much. Fine-tuning on 8 corrected H&E images, the 2 drawn for
# validation held 8 % to 53 % of the 8 images' objects (bench/correction_loop.py); bands keep every image in
# training and validate on a part of each (as BiaPy and ZeroCostDL4Mic hold back a share of each image's patches)
REGION_SPLIT_BELOW = 3


class SplitError(ValueError):
    """The data cannot be split as asked."""


def make_folds(names, *, folds: int = 1, val_fraction: float = 0.2, seed: int = 0) -> list[dict]:
    """Train/validation name lists, one dict per fold.

    With one fold and fewer than :data:`REGION_SPLIT_BELOW` images to validate with (a single image, or
    under 13 at ``val_fraction`` 0.2), every image is split by region instead: ``region_split`` gives the share
    of each image's longest spatial axis (in physical units) held back, a central band, for validation, and
    the rest trains (:func:`held_out_band`).
    """
    names = sorted(names)
    if folds > 1 and len(names) < folds:
        raise SplitError(
            f"{folds} folds need at least {folds} images, but there are {len(names)}: {', '.join(names)}. "
            f"Use folds {max(len(names), 1)} or fewer, or add images."
        )
    if len(names) == 1 and folds > 1:
        raise SplitError(f"One image ({names[0]}) cannot be split into {folds} folds; use folds 1.")
    if folds == 1 and round(len(names) * val_fraction) < REGION_SPLIT_BELOW:
        return [{"train": names, "val": names, "region_split": val_fraction}]
    order = list(np.random.default_rng(seed).permutation(names))
    if folds == 1:
        n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1)
        return [{"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}]
    chunks = np.array_split(np.array(order, dtype=object), folds)
    return [{"train": sorted(n for j, c in enumerate(chunks) if j != k for n in c), "val": sorted(chunks[k])}
            for k in range(folds)]


def load_or_make_split(project, names, *, folds: int, val_fraction: float, seed: int, test=()) -> list[dict]:
    """Reuse ``project/split.json`` when it names the same images, test set and fold count; else make and save one.

    Parameters
    ----------
    names : list of str
        The images to share out; any in ``test`` are left out of every fold.
    test : list of str
        The test images (:func:`hold_back_test`), recorded as ``test``.
    """
    test = sorted(test)
    names = sorted(set(names) - set(test))
    saved = read_split(project)
    if (saved.get("names") == names and saved.get("test") == test and len(saved.get("folds", ())) == folds
            and saved.get("val_fraction") == val_fraction and saved.get("seed") == seed):
        return saved["folds"]
    split = make_folds(names, folds=folds, val_fraction=val_fraction, seed=seed)
    write_json(ProjectLayout(project).split, {"names": names, "seed": seed, "val_fraction": val_fraction,
                                              "folds": split, "test": test})
    return split


def read_split(project) -> dict:
    """``split.json`` of ``project`` as saved, with ``test`` ([] in files from before the test set); {} without one."""
    path = ProjectLayout(project).split
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    return {**saved, "test": sorted(saved.get("test") or [])}


def choose_test(names, *, fraction: float, seed: int = 0, keep=()) -> list[str]:
    """The test images: ``fraction`` of ``names``, rounded (so 0.2 of 2 images is none), never all, drawn with ``seed``.

    The names in ``keep`` (the test set chosen before) stay test as far as the share allows, so adding
    images or changing the training seed never moves a test image into training.
    """
    names = sorted(names)
    n = min(round(len(names) * fraction), len(names) - 1)
    if n <= 0:
        return []
    kept = sorted(set(keep) & set(names))[:n]
    drawn = [str(x) for x in np.random.default_rng(seed).permutation(names) if x not in kept]
    return sorted(kept + drawn[:n - len(kept)])


def hold_back_test(project, names, data, *, seed: int = 0) -> list[str]:
    """The test images among ``names``, as ``data`` asks; recorded in ``project/split.json``.

    Parameters
    ----------
    project : str or Path
    names : list of str
        All images with masks (the test images among them).
    data : nbseg.config.DataConfig
        ``test_images`` (names) or ``test_fraction`` (a seeded share, kept once chosen: :func:`choose_test`).
    seed : int

    Raises
    ------
    SplitError
        For test names that are not among ``names``, or a test set that would leave nothing to train on.
    """
    saved = read_split(project)
    if data.test_images:
        unknown = sorted(set(data.test_images) - set(names))
        if unknown:
            raise SplitError(f"test_images names {', '.join(unknown)}, not among the {len(names)} images with masks "
                             f"(e.g. {', '.join(sorted(names)[:3])}). Give file names without their suffix.")
        test = sorted(set(data.test_images))
        if len(test) >= len(names):
            raise SplitError(f"test_images holds back all {len(names)} images: leave at least one to train on.")
    else:
        test = choose_test(names, fraction=data.test_fraction, seed=seed, keep=saved.get("test", ()))
    if test != saved.get("test") and (test or saved):
        write_json(ProjectLayout(project).split, {**saved, "test": test})
    return test


def without_test(dataset, test):
    """``dataset`` without the samples named in ``test`` (:func:`hold_back_test`), which it names in ``test``."""
    return replace(dataset, samples=[s for s in dataset.samples if s.name not in set(test)], test=sorted(test))


def split_samples(dataset, split: dict) -> tuple[list, list]:
    """The training and validation samples of one fold of ``split`` (from :func:`load_or_make_split`).

    With ``region_split`` each image is cut: a central band across its physically longest axis validates,
    the parts on either side train (:func:`held_out_band`).
    """
    by_name = {s.name: s for s in dataset.samples}
    if "region_split" not in split:
        return [by_name[n] for n in split["train"]], [by_name[n] for n in split["val"]]
    from .dataset import Sample

    train, val = [], []
    for name in split["val"]:
        sample = by_name[name]
        held, kept = held_out_band(sample.target.shape, sample.pixel_sizes, split["region_split"])

        def part(box):
            return Sample(sample.name, sample.image[(slice(None),) + box], sample.target[box], sample.pixel_sizes,
                          sample.unit)

        val.append(part(held))
        train += [part(box) for box in kept]
    return train, val


def held_out_band(shape, pixel_sizes, share: float) -> tuple[tuple, list[tuple]]:
    """The band of an image a region split validates on, and the parts either side of it that train.

    Parameters
    ----------
    shape : ([Z,] Y, X) sequence of int
    pixel_sizes : sequence of float
        Physical size per axis (empty or falsy where unknown): the band crosses the longest extent.
    share : float
        Of that axis held back (``val_fraction``), at least one pixel and never all.

    Returns
    -------
    held : tuple of slice
        Index of the band, e.g. ``array[held]``.
    kept : list of tuple of slice
        The one or two training parts (none empty).
    """
    axis = region_axis(shape, pixel_sizes)
    n = shape[axis]
    width = max(1, min(n - 1, round(n * share)))
    start = (n - width) // 2  # the centre: image borders are often empty (an embryo, a cell)
    box = lambda a, b: (slice(None),) * axis + (slice(a, b),)  # noqa: E731
    kept = [box(a, b) for a, b in ((0, start), (start + width, n)) if b > a]
    return box(start, start + width), kept


def region_axis(shape, pixel_sizes=()) -> int:
    """The axis a single image is split across: the longest in physical units (pixels where unknown).

    A central band across the longest axis spans every other axis: for an embryo stack it holds
    whole nuclei at every depth, where the last slices would hold only caps and the last columns
    only background.
    """
    sizes = [s if s else 1.0 for s in (pixel_sizes or ())] or [1.0] * len(shape)
    extent = [n * s for n, s in zip(shape, sizes)] if len(sizes) == len(shape) else list(shape)
    return int(np.argmax(extent))
