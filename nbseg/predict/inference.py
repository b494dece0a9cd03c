"""The models as prediction runs them: inference copies (batch norms folded into their convolutions, a
channels-last layout, 3D convolutions kept on oneDNN), and how many tile images one forward pass takes.
"""
from __future__ import annotations

import copy
import functools

import numpy as np

CPU_VOXELS = 2**19  # tile voxels a CPU forward pass takes by default: one 32x128x128 tile, eight 256x256 ones


def inference_copy(model, device):
    """A copy of ``model`` for fast inference: batch norms folded into their convolutions and a
    channels-last layout, which CPU (oneDNN) and GPU convolution kernels both prefer.

    Forward hooks of the model's modules (e.g. :mod:`.suggest`'s) are deep-copied with it.
    """
    import torch

    model = copy.deepcopy(model).eval()
    fuse_conv_bn(model)
    model = model.to(device)
    if device.type in ("cpu", "cuda"):
        # a scripted package hides its Conv3d layers; its spec says the input's dims
        scripted = getattr(model, "spec", {}).get("divisors") is not None
        dims = (model.spec["spatial_dims"] if scripted
                else 3 if any(isinstance(m, torch.nn.Conv3d) for m in model.modules()) else 2)
        model = model.to(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last)
    if device.type == "cpu":
        _keep_on_onednn(model)
    return model


def fuse_conv_bn(module) -> None:
    """Fold each batch norm that follows a convolution in an ``nn.Sequential`` into it, in place (eval only)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.children():
        fuse_conv_bn(child)
    if not isinstance(module, nn.Sequential):
        return
    for i in range(len(module) - 1):
        conv, norm = module[i], module[i + 1]
        if isinstance(conv, nn.modules.conv._ConvNd) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            module[i] = fuse_conv_bn_eval(conv, norm)
            module[i + 1] = nn.Identity()


def _keep_on_onednn(module) -> None:
    """Turn the 3x3x3 ``Conv3d`` layers of ``module`` into :func:`onednn_conv3d`'s class (same weights and hooks)."""
    import torch

    for child in module.modules():
        if (type(child) is torch.nn.Conv3d and child.kernel_size != (1, 1, 1) and child.padding_mode == "zeros"
                and not isinstance(child.padding, str)):
            child.__class__ = onednn_conv3d()


@functools.lru_cache(maxsize=1)
def onednn_conv3d():
    """A ``Conv3d`` subclass that calls oneDNN directly on CPU float32 inputs (else ``Conv3d``'s own forward).

    PyTorch picks the convolution backend by a rule written for 2D: with one tile in the batch it sends a
    3D convolution whose N*C*D*H is below 20480 to its slow im2col path, whatever the tile's width (for a
    32x128x128 tile, six of the 3D U-Net's 15 layers). One tile then took 1.3x the time per tile of two
    (1.00 against 0.75 CPU seconds, U-Net S, one thread); on oneDNN one tile runs as fast per tile as two.
    """
    import torch

    class OneDNNConv3d(torch.nn.Conv3d):
        def forward(self, x):
            if (x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.dtype != torch.float32
                    or torch.is_autocast_enabled("cpu") or not torch.backends.mkldnn.is_available()):
                return super().forward(x)
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, self.dilation,
                                            self.groups)

    return OneDNNConv3d


def forward_images(device, tile, batch_size: int) -> int:
    """Tile images (tiles x TTA variants) per forward pass when no memory bound is given.

    On a CPU the network's activations grow with the images in a pass (about 260 MB per 32x128x128 tile
    for a 3D U-Net of size S) while the speed gained beyond one is small (one 3D tile on oneDNN runs as
    fast per tile as two), so a CPU takes at most :data:`CPU_VOXELS` voxels and at most ``batch_size``
    images at a time. A GPU takes ``batch_size``.
    """
    if getattr(device, "type", str(device)) != "cpu":
        return int(batch_size)
    return max(1, min(int(batch_size), CPU_VOXELS // int(np.prod(tile))))
