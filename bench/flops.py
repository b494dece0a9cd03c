"""Convolution FLOP counting and a bare-convolution throughput ceiling, shared by the benchmarks."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


def forward_flops(model: nn.Module, example: torch.Tensor) -> float:
    """Multiply-adds x 2 of every convolution in one forward pass (the bulk of a U-Net's work)."""
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        kernel = float(np.prod(module.kernel_size))
        if isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            spatial = float(np.prod(inputs[0].shape[2:]))
        else:
            spatial = float(np.prod(output.shape[2:]))
        total += 2 * kernel * module.in_channels / module.groups * module.out_channels * spatial * example.shape[0]

    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model.eval()(example)
    for handle in handles:
        handle.remove()
    return total


def bare_conv_gflops(*, spatial_dims: int = 2, channels: int = 32, size: int = 128, batch: int = 8,
                     backward: bool = True, seconds: float = 3.0, channels_last: bool = True) -> float:
    """Achieved GFLOP/s of a lone 3x3 convolution (forward + backward): what this CPU can do at best
    on the U-Net's typical layer."""
    conv = nn.Conv2d(channels, channels, 3, padding=1) if spatial_dims == 2 else nn.Conv3d(channels, channels, 3, padding=1)
    shape = (batch, channels) + (size,) * spatial_dims
    x = torch.randn(shape)
    if channels_last and spatial_dims == 2:
        conv, x = conv.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    x.requires_grad_(backward)
    flops = forward_flops(conv, x) * (3 if backward else 1)  # backward ~ 2x forward (input + weight grads)
    for _ in range(2):
        out = conv(x)
        if backward:
            out.sum().backward()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        out = conv(x)
        if backward:
            out.sum().backward()
        runs += 1
    return flops * runs / (time.perf_counter() - start) / 1e9
