"""Batch augmentation in torch, the same code for 2D and 3D: flips, in-plane rot90,
small affine + elastic warps, and intensity changes. Labels move with the image."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .targets import IGNORE


def augment_batch(x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator, warp_probability: float = 0.3,
                  intensity: bool = True):
    """Augment a batch.

    Parameters
    ----------
    x : (B, C, [Z,] Y, X) float tensor
    y : (B, [Z,] Y, X) long tensor; ``IGNORE`` marks pixels without a label
    generator : torch.Generator
        Makes the augmentation repeatable.

    Returns
    -------
    x, y : tensors of the same shapes
    """
    x, y = _flips_and_rot90(x, y, generator)
    if warp_probability > 0:
        x, y = _warp(x, y, generator, warp_probability)
    if intensity:
        x = _intensity(x, generator)
    return x, y


def _rand(generator, *shape):
    return torch.rand(*shape, generator=generator)


def _flips_and_rot90(x, y, generator):
    spatial = x.ndim - 2
    xs, ys = [], []
    for xi, yi in zip(x, y):
        xi, yi = _flip_and_turn(xi, yi[None], spatial, generator)
        xs.append(xi)
        ys.append(yi[0])
    return torch.stack(xs), torch.stack(ys)


def flips_and_turns(x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator):
    """Random flips of every spatial axis and quarter turns in-plane, each item of the batch its own, the
    same for ``x`` and ``y``: the augmentation that keeps pixel values (and noise) as they are.

    Parameters
    ----------
    x, y : (B, C, [Z,] Y, X) tensors
        The same spatial shape; the channels may differ.

    Returns
    -------
    x, y : tensors of the same shapes
    """
    pairs = [_flip_and_turn(xi, yi, x.ndim - 2, generator) for xi, yi in zip(x, y)]
    return torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])


def _flip_and_turn(xi, yi, spatial: int, generator):
    """One item ``(C, [Z,] Y, X)`` and its target ``(C', [Z,] Y, X)``, flipped and turned alike."""
    for axis in range(spatial):
        if _rand(generator, 1).item() < 0.5:
            xi, yi = xi.flip(axis + 1), yi.flip(axis + 1)
    if xi.shape[-1] == xi.shape[-2]:  # rot90 keeps the shape only for square planes
        k = int(torch.randint(4, (1,), generator=generator))
        xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
    return xi, yi


def _warp(x, y, generator, probability):
    """Rotation ±15°, scale ±15 % in-plane plus a smooth random displacement, on a share of the batch."""
    batch, spatial = x.shape[0], x.ndim - 2
    chosen = _rand(generator, batch) < probability
    if not chosen.any():
        return x, y
    idx = chosen.nonzero().flatten()
    theta = torch.zeros(len(idx), spatial, spatial + 1)
    theta[:, range(spatial), range(spatial)] = 1.0
    angle = (_rand(generator, len(idx)) - 0.5) * (math.pi / 6)
    scale = 1 + (_rand(generator, len(idx)) - 0.5) * 0.3
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # grid coordinates are ordered (x, y[, z]): the in-plane block is the first two
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    size = (len(idx), 1) + tuple(x.shape[2:])
    grid = F.affine_grid(theta, size, align_corners=False)
    coarse = (_rand(generator, len(idx), spatial, *([4] * spatial)) - 0.5) * 0.08
    mode = "bilinear" if spatial == 2 else "trilinear"
    elastic = F.interpolate(coarse, size=tuple(x.shape[2:]), mode=mode, align_corners=False)
    grid = grid + elastic.movedim(1, -1)
    xw = F.grid_sample(x[idx].float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    yw = F.grid_sample(y[idx, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False)
    x, y = x.clone(), y.clone()
    x[idx] = xw.to(x.dtype)
    y[idx] = yw[:, 0].round().long()
    return x, y


def _intensity(x, generator):
    """Gamma 0.7-1.5 on the patch's own range, contrast ±25 %, brightness ±0.1, noise up to 0.05."""
    batch = x.shape[0]
    view = (batch,) + (1,) * (x.ndim - 1)
    flat = x.reshape(batch, -1)
    low, high = flat.min(1).values.view(view), flat.max(1).values.view(view)
    span = (high - low).clamp_min(1e-6)
    gamma = torch.exp((_rand(generator, batch) - 0.5) * 2 * math.log(1.5)).view(view)
    x = ((x - low) / span).clamp(0, 1) ** gamma * span + low
    contrast = (1 + (_rand(generator, batch) - 0.5) * 0.5).view(view)
    brightness = ((_rand(generator, batch) - 0.5) * 0.2).view(view)
    noise = (_rand(generator, batch) * 0.05).view(view)
    return x * contrast + brightness + noise * torch.randn(x.shape, generator=generator)


__all__ = ["augment_batch", "flips_and_turns", "IGNORE"]
