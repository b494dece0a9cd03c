"""Patch sampling with foreground oversampling (as deepflash2 and nnU-Net do), padding small images."""
from __future__ import annotations

import numpy as np

from .targets import IGNORE

MAX_FOREGROUND_COORDS = 200_000  # per image: enough variety, bounded memory on big stacks
UNIFORM_TRIES = 8  # uniform draws tried before a patch is centred on a labelled pixel


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
    classes : sequence of int, optional
        Balance these classes: a foreground patch is centred on one of them drawn with equal chance
        (rare classes of a multi-class set are seen as often as common ones). Default: any object pixel.
    """

    def __init__(self, samples, patch, *, foreground_fraction: float = 0.5, seed=0, classes=None):
        self.samples = samples
        self.patch = tuple(int(p) for p in patch)
        self.foreground_fraction = foreground_fraction
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sizes = np.array([s.target.size for s in samples], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        # where parts of an image are not labelled (IGNORE), its labelled pixels: a patch needs one
        self._partial = [self._labelled_coords(s.target) for s in samples]
        groups = [None] if classes is None else list(classes)
        self.fg_coords = {g: [self._foreground_coords(s.target, g) for s in samples] for g in groups}
        # a class is drawn only where some image has it
        self.groups = [g for g in groups if any(c.size for c in self.fg_coords[g])]

    def _foreground_coords(self, target, cls=None):
        coords = np.flatnonzero(target > 0 if cls is None else target == cls)
        if coords.size > MAX_FOREGROUND_COORDS:
            coords = self.rng.choice(coords, MAX_FOREGROUND_COORDS, replace=False)
        return coords

    def _start(self, index: int):
        target = self.samples[index].target
        fg = self.fg_coords[None][index] if None in self.fg_coords else np.zeros(0, int)
        if fg.size and self.rng.random() < self.foreground_fraction:
            return self._around(fg, target.shape)
        for _ in range(UNIFORM_TRIES):  # uniform over the patches that hold a labelled pixel
            start = [int(self.rng.integers(0, max(n - p, 0) + 1)) for n, p in zip(target.shape, self.patch)]
            if self._partial[index] is None or (crop(target, start, self.patch, fill=IGNORE) != IGNORE).any():
                return start
        return self._around(self._partial[index], target.shape)

    def _labelled_coords(self, target):
        if not (target == IGNORE).any():
            return None
        coords = np.flatnonzero(target != IGNORE)
        if coords.size > MAX_FOREGROUND_COORDS:
            coords = self.rng.choice(coords, MAX_FOREGROUND_COORDS, replace=False)
        return coords

    def _around(self, coords, shape):
        centre = np.unravel_index(coords[self.rng.integers(coords.size)], shape)
        jitter = [self.rng.integers(-(p // 4), p // 4 + 1) for p in self.patch]
        return [int(c) - p // 2 + j for c, p, j in zip(centre, self.patch, jitter)]

    def _balanced(self):
        """(image, start) of a patch around a class drawn with equal chance, in an image that has it."""
        group = self.groups[self.rng.integers(len(self.groups))]
        sizes = np.array([c.size for c in self.fg_coords[group]], dtype=np.float64)
        index = int(self.rng.choice(len(self.samples), p=sizes / sizes.sum()))
        return index, self._around(self.fg_coords[group][index], self.samples[index].target.shape)

    def batch(self, batch_size: int):
        """Return ``x`` (B, C, [Z,] Y, X) float32 and ``y`` (B, [Z,] Y, X) int64."""
        xs, ys = [], []
        for index in self.rng.choice(len(self.samples), size=batch_size, p=self.weights):
            if None in self.fg_coords or not self.groups or self.rng.random() >= self.foreground_fraction:
                start = self._start(index)
            else:
                index, start = self._balanced()
            sample = self.samples[index]
            xs.append(crop(sample.image, start, self.patch, fill=0.0))
            ys.append(crop(sample.target, start, self.patch, fill=IGNORE))
        return np.stack(xs), np.stack(ys)
