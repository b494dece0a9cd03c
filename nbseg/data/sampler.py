"""Patch sampling with foreground oversampling (as deepflash2 and nnU-Net do), padding small images."""
from __future__ import annotations

import itertools

import numpy as np

from .targets import IGNORE

MAX_FOREGROUND_COORDS = 200_000  # per image: enough variety, bounded memory on big stacks


def crop(array: np.ndarray, start, patch, *, fill) -> np.ndarray:
    """``array[..., start:start+patch]`` over the last ``len(patch)`` axes, padding with ``fill`` outside."""
    spatial = array.shape[-len(patch):]
    lead = array.shape[:-len(patch)]
    out = np.full(lead + tuple(patch), fill, dtype=array.dtype)
    src, dst = [], []
    for s, p, n in zip(start, patch, spatial):
        lo, hi = max(s, 0), min(s + p, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[(Ellipsis, *dst)] = array[(Ellipsis, *src)]
    return out


class PatchSampler:
    """Draws training patches; a share ``foreground_fraction`` is centred on labelled objects.

    Parameters
    ----------
    samples : list of nbseg.data.dataset.Sample
    patch : sequence of int
        ``([Z,] Y, X)``.
    foreground_fraction : float
    seed : int or numpy Generator
    """

    def __init__(self, samples, patch, *, foreground_fraction: float = 0.5, seed=0):
        self.samples = samples
        self.patch = tuple(int(p) for p in patch)
        self.foreground_fraction = foreground_fraction
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sizes = np.array([s.target.size for s in samples], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.fg_coords = [self._foreground_coords(s.target) for s in samples]

    def _foreground_coords(self, target):
        coords = np.flatnonzero(target > 0)
        if coords.size > MAX_FOREGROUND_COORDS:
            coords = self.rng.choice(coords, MAX_FOREGROUND_COORDS, replace=False)
        return coords

    def _start(self, index: int):
        shape = self.samples[index].target.shape
        fg = self.fg_coords[index]
        if fg.size and self.rng.random() < self.foreground_fraction:
            centre = np.unravel_index(fg[self.rng.integers(fg.size)], shape)
            jitter = [self.rng.integers(-(p // 4), p // 4 + 1) for p in self.patch]
            return [int(c) - p // 2 + j for c, p, j in zip(centre, self.patch, jitter)]
        return [int(self.rng.integers(0, max(n - p, 0) + 1)) for n, p in zip(shape, self.patch)]

    def batch(self, batch_size: int):
        """Return ``x`` (B, C, [Z,] Y, X) float32 and ``y`` (B, [Z,] Y, X) int64."""
        xs, ys = [], []
        for index in self.rng.choice(len(self.samples), size=batch_size, p=self.weights):
            start = self._start(index)
            sample = self.samples[index]
            xs.append(crop(sample.image, start, self.patch, fill=0.0))
            ys.append(crop(sample.target, start, self.patch, fill=IGNORE))
        return np.stack(xs), np.stack(ys)


def grid_starts(shape, patch) -> list[tuple]:
    """Starts of non-overlapping tiles covering ``shape`` (the last one padded)."""
    axes = [range(0, max(n, 1), p) for n, p in zip(shape, patch)]
    return list(itertools.product(*axes))


def grid_patches(samples, patch, *, limit: int | None = None, seed: int = 0):
    """Samples cut into non-overlapping tiles of ``patch`` (padded), for a deterministic validation pass.

    With ``limit``, a fixed seeded draw of at most that many tiles, spread over all samples.
    """
    tiles = [(i, start) for i, s in enumerate(samples) for start in grid_starts(s.target.shape, patch)]
    if limit is not None and len(tiles) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(tiles), limit, replace=False))
        tiles = [tiles[k] for k in keep]
    images = np.stack([crop(samples[i].image, start, patch, fill=0.0) for i, start in tiles])
    targets = np.stack([crop(samples[i].target, start, patch, fill=IGNORE) for i, start in tiles])
    return images, targets
