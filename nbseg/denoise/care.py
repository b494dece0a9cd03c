"""CARE (Weigert et al. 2018): supervised restoration, learnt from pairs of noisy and clean images of the same
field of view, for segmentation's loop as N2V2 is.

A pair is read as one sample whose image holds the noisy channels, then the clean ones, both scaled by the
noisy image's percentile bounds (:func:`nbseg.denoise.train.load_noisy`): the network learns noisy -> clean
in the noisy image's scale, so prediction maps its output back to the input's intensities as for N2V2. Patches
are cut from both at once (:class:`PairSampler`); the loss is the mean absolute error (:func:`masked_l1`) and
the network a plain U-Net, its top skip connection kept: with a clean target there is no identity to avoid.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import IGNORE
from ..data.sampler import PatchSampler
from ..train.setup import Objective
from .blindspot import augmentation

NETWORK: dict = {}  # nbseg's U-Net as segmentation has it: top skip connection, max pooling


def masked_l1(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error against the clean patch, padding left out.

    L1 rather than the squared error, as CSBDeep's and CAREamics' CARE default: a clean image still holds some
    noise and the odd hot pixel, which the squared error weighs most; L1 gives the median, sharper edges.

    Parameters
    ----------
    output : (B, C, [Z,] Y, X) tensor
        The network's prediction.
    y : (B, C + 1, [Z,] Y, X) tensor
        The clean patch, then 1 where the patch lies inside its image and 0 on padding.
    """
    target, valid = y[:, :-1].float(), y[:, -1:].float()
    error = (output.float() - target).abs() * valid
    return error.sum() / (valid.sum() * target.shape[1]).clamp_min(1.0)


class PairSampler:
    """Patches of the noisy images and, at the same place, of their clean targets.

    ``batch(n)`` returns ``x`` (n, C, [Z,] Y, X), the noisy patches, and ``y`` (n, C + 1, [Z,] Y, X), the clean
    patches and 1 inside the image (0 on padding), for :func:`masked_l1`.

    Parameters
    ----------
    samples : list of nbseg.data.Sample
        Each image (2C, [Z,] Y, X): the noisy channels, then the clean ones (:func:`split_pair`).
    patch : ([Z,] Y, X) sequence of int
    rng : numpy.random.Generator
        The patches draw from it (a checkpoint saves it).
    """

    def __init__(self, samples, patch, rng):
        self.patches = PatchSampler(samples, patch, foreground_fraction=0.0, seed=rng)

    def batch(self, n: int):
        both, target = self.patches.batch(n)
        noisy, clean = split_pair(both, axis=1)
        valid = (target != IGNORE)[:, None].astype(both.dtype)
        return noisy, np.concatenate([clean, valid], axis=1)


def split_pair(image: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The noisy and the clean half of a pair's channels (``axis``), as :func:`nbseg.denoise.train.load_noisy`
    stacks them."""
    half = image.shape[axis] // 2
    return np.split(image, [half], axis=axis)


def care_objective() -> Objective:
    """CARE, for :class:`nbseg.train.fold.FoldRun`: the pair sampler, L1, flips and turns (a warp would
    interpolate the noise of the input into a kind the network never meets in real images)."""
    return Objective(loss=masked_l1, augmentation=augmentation, network=dict(NETWORK),
                     sampler=lambda samples, patch, rng: PairSampler(samples, patch, rng))


def validation_pairs(regions) -> list[tuple]:
    """``(noisy, clean, inside)`` of each validation region ``(image, target)`` of paired samples, for
    :func:`nbseg.denoise.train.blind_spot_score`: the error over every pixel inside the image."""
    out = []
    for image, target in regions:
        noisy, clean = split_pair(np.asarray(image))
        out.append((noisy, clean, np.asarray(target) != IGNORE))
    return out


__all__ = ["NETWORK", "PairSampler", "care_objective", "masked_l1", "split_pair", "validation_pairs"]
