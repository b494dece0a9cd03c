"""Max-blur-pool (Zhang 2019, "Making convolutional networks shift-invariant again"), the down-sampling
that N2V2 (Höck et al. 2022) puts in place of max pooling against the checkerboard artefacts of Noise2Void.

A max over each 2x2(x2) window taken at every position (stride 1), then a fixed binomial blur
``[1, 2, 1]`` applied with the pooling's stride: the maximum is kept, but sampling every second pixel no
longer aliases the high frequencies that a blind-spot network turns into a checkerboard.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BINOMIAL = (1.0, 2.0, 1.0)


class MaxBlurPool(nn.Module):
    """Max-blur-pool over 2 or 3 spatial axes; the output is the input's size divided by ``step``.

    Parameters
    ----------
    dims : {2, 3}
        Spatial axes of the input ``(N, C, [Z,] Y, X)``.
    step : int or tuple of int
        The down-sampling per axis (``(1, 2, 2)``: a 3D network that does not pool Z); each 1 or 2.
    """

    def __init__(self, dims: int, step=2):
        super().__init__()
        steps = (step,) * dims if isinstance(step, int) else tuple(step)
        if len(steps) != dims or not set(steps) <= {1, 2}:
            raise ValueError(f"step {step} must be 1 or 2 per spatial axis ({dims} axes), e.g. 2 or (1, 2, 2).")
        self.dims, self.steps = dims, steps
        profile = torch.tensor(BINOMIAL)
        kernel = torch.ones(())
        for s in steps:  # an unpooled axis is neither maxed nor blurred
            kernel = kernel[..., None] * (profile if s == 2 else torch.ones(1))
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, [Z,] Y, X)`` -> ``(N, C, [Z/sz,] Y/2, X/2)``; pooled sides must be even."""
        window = tuple(s for s in self.steps)  # 2 where pooled, 1 where not
        # one pixel of padding at the far end keeps the size through the stride-1 max
        pad = [p for s in reversed(self.steps) for p in (0, s - 1)]
        pooled = (F.max_pool2d if self.dims == 2 else F.max_pool3d)(F.pad(x, pad, mode="replicate"), window, 1)
        channels = x.shape[1]
        blur = [p for s in reversed(self.steps) for p in ((s - 1,) * 2)]
        conv = F.conv2d if self.dims == 2 else F.conv3d
        kernel = self.kernel.to(pooled.dtype).expand(channels, *self.kernel.shape[1:])
        return conv(F.pad(pooled, blur, mode="reflect"), kernel, stride=self.steps, groups=channels)


__all__ = ["MaxBlurPool"]
