"""Noise2Void's blind spot with the N2V2 changes: what a network trained on noisy images alone learns from.

A small share of each patch's pixels (N2V's 0.2 %, one per cell of a regular grid, at a random place in
its cell) is hidden: each is replaced by the median of its neighbourhood without its own value (N2V2,
Höck et al. 2022; N2V drew one neighbour at random), and the loss is the squared error at those pixels
only. Pixel noise that is independent from pixel to pixel cannot be predicted from the neighbours, so the
network learns the signal. The median keeps the hidden pixel's value out of the input altogether.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..config import IGNORE
from ..data.augment import flips_and_turns
from ..data.sampler import PatchSampler

SHARE = 0.002  # of a patch's pixels that are blind spots (N2V's default, 0.198 %)
WINDOW = 5  # side of the neighbourhood whose median replaces a blind spot (on every axis the patch spans)


def blind_spots(valid: np.ndarray, *, share: float = SHARE, rng) -> np.ndarray:
    """One pixel in each cell of a regular grid, placed at random in its cell, where ``valid`` holds.

    Parameters
    ----------
    valid : (B, [Z,] Y, X) bool ndarray
        Pixels that may be chosen (padding may not).
    share : float
        Of the pixels: the grid's cell is ``share ** (-1 / d)`` pixels on each of the ``d`` axes longer than one.
    rng : numpy.random.Generator

    Returns
    -------
    (B, [Z,] Y, X) bool ndarray
    """
    shape = valid.shape[1:]
    axes = [a for a, n in enumerate(shape) if n > 1]
    cell = max(1, int(round(share ** (-1 / max(len(axes), 1)))))
    mask = np.zeros(valid.shape, bool)
    starts = [range(0, n, cell) if a in axes else range(1) for a, n in enumerate(shape)]
    corners = np.array(list(itertools.product(*starts)), int).reshape(-1, len(shape))
    for b in range(valid.shape[0]):
        jitter = rng.integers(0, cell, size=corners.shape) * np.isin(np.arange(len(shape)), axes)
        points = corners + jitter
        points = points[(points < np.array(shape)).all(1)]  # the last cell of an axis may be cut short
        mask[(b, *points.T)] = True
    return mask & valid


def neighbourhood(shape, window: int = WINDOW) -> np.ndarray:
    """Offsets ``(K, len(shape))`` of a pixel's neighbours in a ``window``-wide box, the pixel itself left out;
    axes of length one (a slice of a stack) get no offset."""
    reach = window // 2
    spans = [range(-reach, reach + 1) if n > 1 else range(1) for n in shape]
    offsets = np.array(list(itertools.product(*spans)), int)
    return offsets[np.any(offsets != 0, axis=1)]


def blind_spot_input(x: np.ndarray, mask: np.ndarray, valid: np.ndarray | None = None, *,
                     window: int = WINDOW) -> np.ndarray:
    """``x`` with each blind spot replaced by the median of its neighbours (itself excluded), per channel.

    Parameters
    ----------
    x : (B, C, [Z,] Y, X) float ndarray
    mask : (B, [Z,] Y, X) bool ndarray
        The blind spots (:func:`blind_spots`).
    valid : (B, [Z,] Y, X) bool ndarray, optional
        Pixels whose values count as neighbours (padding does not); default all.
    window : int
        Side of the neighbourhood box.

    Returns
    -------
    (B, C, [Z,] Y, X) ndarray, a copy
    """
    out = np.array(x, copy=True)
    points = np.argwhere(mask)  # (n, 1 + d): batch index, then the spatial coordinates
    if not len(points):
        return out
    shape = np.array(mask.shape[1:])
    around = points[:, None, 1:] + neighbourhood(mask.shape[1:], window)[None]  # (n, K, d)
    around = np.abs(around)  # mirrored at the borders: a neighbour is never the blind spot itself
    around = np.where(around > shape - 1, 2 * (shape - 1) - around, around)
    index = (points[:, None, 0], *np.moveaxis(around, -1, 0))
    values = np.moveaxis(x[(index[0], slice(None), *index[1:])], -1, 1).astype(np.float32)  # (n, C, K)
    if valid is not None:
        values[~np.broadcast_to(valid[index][:, None, :], values.shape)] = np.nan
    median = np.nanmedian(values, axis=-1) if valid is not None else np.median(values, axis=-1)
    spots = (points[:, 0], slice(None), *points[:, 1:].T)
    centre = x[spots]  # (n, C): kept where no neighbour is valid
    out[spots] = np.where(np.isnan(median), centre, median)
    return out


def masked_mse(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error at the blind spots only.

    Parameters
    ----------
    output : (B, C, [Z,] Y, X) tensor
        The network's prediction.
    y : (B, C + 1, [Z,] Y, X) tensor
        The noisy patch (its values at the blind spots are the targets), then the blind-spot mask (1 or 0).
    """
    target, mask = y[:, :-1].float(), y[:, -1:].float()
    error = (output.float() - target) ** 2 * mask
    return error.sum() / (mask.sum() * target.shape[1]).clamp_min(1.0)


class BlindSpotSampler:
    """Patches drawn uniformly from the noisy images, each with its blind spots.

    ``batch(n)`` returns ``x`` (n, C, [Z,] Y, X), the patches with their blind spots replaced, and ``y``
    (n, C + 1, [Z,] Y, X), the patches as they were and the mask, for :func:`masked_mse`.

    Parameters
    ----------
    samples : list of nbseg.data.Sample
        Normalised images; their targets mark nothing (``IGNORE`` marks the padding of small images).
    patch : ([Z,] Y, X) sequence of int
    rng : numpy.random.Generator
        Patches and blind spots both draw from it (a checkpoint saves it).
    share : float
    window : int
    """

    def __init__(self, samples, patch, rng, *, share: float = SHARE, window: int = WINDOW):
        self.patches = PatchSampler(samples, patch, foreground_fraction=0.0, seed=rng)
        self.rng, self.share, self.window = rng, share, window

    def batch(self, n: int):
        x, target = self.patches.batch(n)
        valid = target != IGNORE
        mask = blind_spots(valid, share=self.share, rng=self.rng)
        masked = blind_spot_input(x, mask, valid, window=self.window)
        return masked, np.concatenate([x, mask[:, None].astype(x.dtype)], axis=1)


def augmentation(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """Flips and quarter turns only: a warp would interpolate, and so correlate, the noise the network must
    not be able to predict; an intensity change would alter its statistics."""
    return flips_and_turns(x, y, generator=generator)


__all__ = ["BlindSpotSampler", "SHARE", "WINDOW", "augmentation", "blind_spot_input", "blind_spots", "masked_mse",
           "neighbourhood"]
