"""Validation scored the way prediction works: sliding-window inference with Gaussian blending over
whole validation images (or pieces of them spread over each image, within a pixel budget), Dice pooled over every
scored pixel. Scoring separate patch-sized tiles instead gives a number that prediction never sees
(no context at tile borders, and few tiles of a 3D stack make a noisy, optimistic best epoch).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..config import IGNORE
from ..model.loss import dice_ce_loss, foreground_counts, mean_class_dice
from ..model.tiling import sliding_window
from ..runtime import autocast

OVERLAP = 0.25  # tiles overlap by a quarter: the blending of prediction at a third of its cost
MAX_PIECES = 4  # pieces per cropped axis: enough to sample a volume's ends as well as its middle


def validation_regions(samples, tile, budget: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(image, target)`` regions of the validation ``samples``, together about ``budget`` pixels.

    Each sample gets an equal share. A sample larger than its share is cropped: the longest side, in
    tiles, is halved until the crop fits, never below one tile; the crop is then cut, along every
    cropped axis, into up to ``MAX_PIECES`` pieces of at least a tile, spread evenly from one end of
    the sample to the other (one piece stays at the centre). One central block of a single volume
    scored Dice 0.81 where the whole held-back band scored 0.72 (Lucchi++, a 3D model): the middle
    of a stack is not its typical part.

    Parameters
    ----------
    samples : list of nbseg.data.dataset.Sample
    tile : ([Z,] Y, X) sequence of int
    budget : int
    """
    share = max(int(np.prod(tile)), budget // max(len(samples), 1))
    regions = []
    for s in samples:
        shape = np.array(s.target.shape)
        size = shape.copy()
        while np.prod(size) > share and np.any(size > tile):
            axis = int(np.argmax(size / np.asarray(tile)))
            size[axis] = max(tile[axis], size[axis] // 2)
        spans = [_spread(int(n), int(k), int(t)) for n, k, t in zip(shape, size, tile)]
        for box in itertools.product(*spans):
            regions.append((s.image[(slice(None),) + box], s.target[box]))
    return regions


def _spread(n: int, size: int, tile: int) -> list[slice]:
    """Slices of one axis of length ``n``: the whole axis, or ``size`` pixels in pieces of at least
    ``tile`` spread evenly over it (a single piece at the centre)."""
    if size >= n:
        return [slice(0, n)]
    pieces = int(np.clip(round(size / max(tile, 1)), 1, MAX_PIECES))
    length = min(n, max(tile, size // pieces))
    if pieces == 1:
        starts = [(n - length) // 2]
    else:
        starts = np.linspace(0, n - length, pieces).round().astype(int).tolist()
    return [slice(a, a + length) for a in starts]


@torch.no_grad()
def validate(model, regions, *, tile, batch_size: int, device, precision: str, layout,
             per_class: bool = False) -> tuple[float, float]:
    """Loss and foreground Dice of ``model`` over ``regions``, predicted tile by tile and blended.

    Parameters
    ----------
    per_class : bool
        A multi-class set: the Dice is the mean over object classes of each class's pooled Dice (as
        nnU-Net reports), not the Dice of "any object class".

    Returns
    -------
    (loss, dice) : float
        The loss of the blended probabilities (averaged over regions by pixel count) and the Dice
        pooled over all regions (1.0 when there is nothing to find).
    """
    model.eval()

    def probabilities(x):
        x = x.to(device).contiguous(memory_format=layout)
        with autocast(device, precision):
            return model(x).float().softmax(1).cpu()

    losses, weights, inter, total = [], [], 0, 0
    n_classes = model.spec["n_classes"]
    for image, target in regions:
        probs = sliding_window(image, probabilities, tile=tile, n_out=n_classes, overlap=OVERLAP,
                               batch_size=batch_size)
        logp = torch.from_numpy(np.log(np.clip(probs, 1e-6, 1.0)))[None]  # softmax(log p) = p: the same loss
        truth = torch.from_numpy(np.ascontiguousarray(target))[None]
        valid = int((truth != IGNORE).sum())
        if valid:
            losses.append(float(dice_ce_loss(logp, truth)) * valid)
            weights.append(valid)
        a, b = foreground_counts(logp, truth, per_class=per_class)
        inter, total = inter + a, total + b
    model.train()
    loss = float(np.sum(losses) / np.sum(weights)) if weights else 0.0
    if per_class:
        return loss, mean_class_dice(inter, total)
    return loss, (inter / total if total else 1.0)
