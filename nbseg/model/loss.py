"""Cross-entropy + soft Dice, both skipping ignored pixels (excluding masks, padding)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import IGNORE


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 1.0,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy plus (1 - soft Dice over the object classes), pooled over the batch.

    Parameters
    ----------
    logits : (B, K, [Z,] Y, X) tensor
    target : (B, [Z,] Y, X) long tensor; ``IGNORE`` pixels count in neither term
    class_weights : (K,) tensor, optional
        Cross-entropy weight of each class (rare classes of an imbalanced set weigh more).
    """
    logits = logits.float()
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0.0  # an all-ignored batch: no signal, but keep the graph
    ce = F.cross_entropy(logits, target.clamp_min(0), reduction="none")
    if class_weights is None:
        ce = (ce * valid).sum() / valid.sum()
    else:  # a weighted mean, so the loss keeps its scale
        weight = class_weights.to(logits.device)[target.clamp_min(0)] * valid
        ce = (ce * weight).sum() / weight.sum().clamp_min(1e-6)
    probs = logits.softmax(1)
    onehot = F.one_hot(target.clamp_min(0), logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    dims = (0,) + tuple(range(2, logits.ndim))
    intersection = (probs * onehot * mask).sum(dims)[1:]
    total = ((probs + onehot) * mask).sum(dims)[1:]
    dice = (2 * intersection + 1.0) / (total + 1.0)
    return ce + dice_weight * (1 - dice.mean())


def foreground_counts(logits: torch.Tensor, target: torch.Tensor, *, per_class: bool = False):
    """(2·|P∩T|, |P|+|T|) of 'any object class', for a Dice pooled over many tiles; with ``per_class``,
    two ``(K-1,)`` arrays, one entry per object class (a multi-class set's classes are separate things:
    mitochondria found where membranes are is not a success)."""
    valid = target != IGNORE
    label = logits.argmax(1)
    if not per_class:
        predicted, truth = (label > 0) & valid, (target > 0) & valid
        return int(2 * (predicted & truth).sum()), int(predicted.sum() + truth.sum())
    classes = torch.arange(1, logits.shape[1]).view(-1, *([1] * target.ndim))
    predicted, truth = (label[None] == classes) & valid, (target[None] == classes) & valid
    dims = tuple(range(1, truth.ndim))
    return (2 * (predicted & truth).sum(dims)).numpy(), (predicted.sum(dims) + truth.sum(dims)).numpy()


def mean_class_dice(intersections, totals) -> float:
    """The mean of the per-class Dice over the classes predicted or present (1.0 when none is)."""
    intersections, totals = np.asarray(intersections, float), np.asarray(totals, float)
    seen = totals > 0
    return float(np.mean(intersections[seen] / totals[seen])) if seen.any() else 1.0
