"""Validation is scored the way prediction works: sliding-window inference with blending over centred
regions of every validation image, within a pixel budget."""
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


def test_regions_fit_the_budget_and_keep_the_centre():
    target = np.zeros((40, 300, 200), np.int64)
    target[20, 150, 100] = 1
    sample = Sample("a", target[None].astype(np.float32), target)
    (image, region), = validation_regions([sample], (1, 64, 64), budget=200_000)
    assert region.size <= 200_000 and region.shape[1:] >= (64, 64) and image.shape[1:] == region.shape
    assert region.sum() == 1  # the centre is kept
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
