"""Validation is scored the way prediction works: sliding-window inference with blending over whole images
or pieces spread over each validation image, within a pixel budget."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nbseg.data.dataset import Sample
from nbseg.train.validation import validate, validation_regions


class Threshold(nn.Module):
    """A stand-in 'model' whose answer is known: class 1 where the image is above 0.5."""

    spec = {"n_classes": 2}

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), 20 * (x - 0.5)], 1)


def test_regions_fit_the_budget_and_spread_over_the_image():
    z = np.broadcast_to(np.arange(40)[:, None, None], (40, 300, 200))
    sample = Sample("a", z[None].astype(np.float32), np.zeros(z.shape, np.int64))
    regions = validation_regions([sample], (1, 64, 64), budget=200_000)
    assert 1 < len(regions) and sum(r.size for _, r in regions) <= 200_000
    assert all(r.shape[1:] >= (64, 64) and i.shape[1:] == r.shape for i, r in regions)
    depths = np.unique(np.concatenate([i[0, :, 0, 0] for i, _ in regions]))
    assert depths.min() == 0 and depths.max() == 39  # both ends of the stack are scored, not only its middle
    one = Sample("c", np.zeros((1, 300, 300), np.float32), np.zeros((300, 300), np.int64))
    (image, region), = validation_regions([one], (128, 128), budget=150 * 150)
    assert region.shape == (150, 150) and image.shape[1:] == (150, 150)  # one piece: the centre
    small = Sample("b", np.zeros((1, 30, 30), np.float32), np.zeros((30, 30), np.int64))
    assert validation_regions([small], (64, 64), budget=10)[0][1].shape == (30, 30)  # never below the image


@pytest.mark.parametrize("shape, tile", [((90, 70), (32, 32)), ((5, 40, 50), (1, 32, 32))])
def test_validation_dice_is_the_dice_of_the_blended_prediction(shape, tile):
    rng = np.random.default_rng(0)
    truth = (rng.random(shape) > 0.6).astype(np.int64)
    image = truth.astype(np.float32)
    wrong = rng.random(shape) > 0.9  # the 'model' is wrong on a tenth of the pixels
    image[wrong] = 1 - image[wrong]
    truth[0, :3] = -1  # ignored pixels count nowhere
    samples = [Sample("a", image[None], truth)]
    regions = validation_regions(samples, tile, budget=10**9)
    loss, dice = validate(Threshold(), regions, tile=tile, batch_size=4, device=torch.device("cpu"),
                          precision="fp32", layout=torch.contiguous_format)
    pred, valid = image > 0.5, truth >= 0
    expected = 2 * (pred & (truth == 1) & valid).sum() / ((pred & valid).sum() + ((truth == 1) & valid).sum())
    assert dice == pytest.approx(expected, abs=1e-6) and 0 < loss < 5


def test_multiclass_validation_dice_is_the_mean_over_classes():
    # classes 1 and 2 swapped everywhere: every object pixel is "some object", none is the right one
    from nbseg.data.targets import IGNORE
    from nbseg.model.loss import foreground_counts, mean_class_dice

    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, :4, :4], target[0, 4:, 4:] = 1, 2
    swapped = torch.where(target == 1, 2, torch.where(target == 2, 1, 0))
    target[0, 0, 7], swapped[0, 0, 7] = IGNORE, 1  # an ignored pixel counts nowhere, whatever is predicted
    logits = torch.nn.functional.one_hot(swapped.clamp_min(0), 4).movedim(-1, 1).float()
    a, b = foreground_counts(logits, target)
    assert a / b == 1.0, "any object class: perfect"
    inter, total = foreground_counts(logits, target, per_class=True)
    assert inter.tolist() == [0, 0, 0] and total.tolist() == [32, 32, 0]
    assert mean_class_dice(inter, total) == 0.0, "per class: all wrong; class 3, absent and never predicted, skipped"
    right = torch.nn.functional.one_hot(target.clamp_min(0), 4).movedim(-1, 1).float()
    assert mean_class_dice(*foreground_counts(right, target, per_class=True)) == 1.0
