"""Validation scored the way prediction works: sliding-window inference with Gaussian blending over
whole validation images (or centred regions of them, within a pixel budget), Dice pooled over every
scored pixel. Scoring separate patch-sized tiles instead gives a number that prediction never sees
(no context at tile borders, and few tiles of a 3D stack make a noisy, optimistic best epoch).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.targets import IGNORE
from ..model.loss import dice_ce_loss, foreground_counts
from ..predict.tiling import sliding_window
from ..runtime import autocast

OVERLAP = 0.25  # tiles overlap by a quarter: the blending of prediction at a third of its cost


def validation_regions(samples, tile, budget: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(image, target)`` regions of the validation ``samples``, together about ``budget`` pixels.

    Each sample gets an equal share; a sample larger than its share is cropped about its centre
    (its longest side, in tiles, is halved until it fits), never below one tile.

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
        start = (shape - size) // 2
        box = tuple(slice(int(a), int(a + n)) for a, n in zip(start, size))
        regions.append((s.image[(slice(None),) + box], s.target[box]))
    return regions


@torch.no_grad()
def validate(model, regions, *, tile, batch_size: int, device, precision: str, layout) -> tuple[float, float]:
    """Loss and foreground Dice of ``model`` over ``regions``, predicted tile by tile and blended.

    Returns
    -------
    (loss, dice) : float
        The loss of the blended probabilities (averaged over regions by pixel count) and the Dice
        of "any object class" pooled over all regions (1.0 when there is nothing to find).
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
        a, b = foreground_counts(logp, truth)
        inter, total = inter + a, total + b
    model.train()
    loss = float(np.sum(losses) / np.sum(weights)) if weights else 0.0
    return loss, (inter / total if total else 1.0)
