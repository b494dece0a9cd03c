"""A fixed sub-pixel shift of a network's input (:class:`InputShift`), for labels that sit a fraction of a
pixel off the structures they mark (measured by :mod:`nbseg.data.alignment`, planned by
:mod:`nbseg.train.working_scale`). The U-Net holds one; whoever flips its input applies it first."""
from __future__ import annotations

import torch
from torch import nn


class InputShift(nn.Module):
    """Moves an image by a fixed shift of at most a pixel per axis (linear interpolation, as
    ``scipy.ndimage.shift(..., order=1, mode="nearest")``), so it lines up with labels that sit off
    their structures (:mod:`nbseg.data.alignment`); the identity for no shift. Holds no weights."""

    def __init__(self, shift, channels: int, dims: int):
        super().__init__()
        kernel = None
        if shift is not None and any(shift):
            if len(shift) != dims or any(abs(v) > 1 for v in shift):
                raise ValueError(f"input_shift is {list(shift)}; give {dims} values between -1 and 1 "
                                 "(pixels per axis).")
            kernel = torch.ones(())
            for v in shift:  # out[i] = in[i - v]: the weights of the taps at -1, 0, +1
                kernel = kernel[..., None] * torch.tensor([max(v, 0.0), 1 - abs(v), max(-v, 0.0)])
            kernel = kernel.expand(channels, 1, *kernel.shape).clone()
        self.register_buffer("kernel", kernel, persistent=False)  # rebuilt from the spec: no state_dict key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is None:
            return x
        kernel = self.kernel.to(device=x.device, dtype=x.dtype)
        pad = [1, 1, 1, 1]
        if kernel.dim() == 4 and x.dim() == 5:  # a slice model's stack: in-plane only
            kernel, pad = kernel.unsqueeze(2), [1, 1, 1, 1, 0, 0]
        elif kernel.dim() == 5:
            pad = [1, 1, 1, 1, 1, 1]
        padded = nn.functional.pad(x, pad, mode="replicate")  # the image's edge continues, as scipy's "nearest"
        if kernel.dim() == 4:
            return nn.functional.conv2d(padded, kernel, groups=x.shape[1])
        return nn.functional.conv3d(padded, kernel, groups=x.shape[1])
