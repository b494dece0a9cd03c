"""UNet(spatial_dims, ...) — one class for 2D and 3D — and its model file.

Layout (size "M", 2D)::

    in -> [32] ------------------------------------> [32] -> head -> n_classes
            \\pool                                   /up
             [64] --------------------------> [64]
               \\pool                        /up
                [128] -------------> [128]
                   \\pool            /up
                      [256] bottleneck

Each [n] is two same-padded 3x3(x3) convolutions, each followed by batch norm and ReLU.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from .blurpool import MaxBlurPool
from .shift import InputShift
from ..project import atomic_write

SIZES = {
    "S": (16, 32, 64, 128),
    "M": (32, 64, 128, 256),
    "L": (32, 64, 128, 256, 512),
}
MIN_POOLED_Z = 8  # below this many slices Z is not pooled (see CAREamics #296)


class PatchSizeError(ValueError):
    """A patch size the U-Net cannot take; the message names the nearest valid sizes."""


def _conv_block(conv, norm, in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        conv(in_ch, out_ch, 3, padding=1, bias=False), norm(out_ch), nn.ReLU(inplace=True),
        conv(out_ch, out_ch, 3, padding=1, bias=False), norm(out_ch), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net for 2D (``spatial_dims=2``) or 3D (``spatial_dims=3``) images.

    Parameters
    ----------
    spatial_dims : {2, 3}
    in_channels : int
    n_classes : int
        Output channels (logits); 2 for a binary target.
    size : {"S", "M", "L"}
        Width and depth: S and M pool 3 times, L 4 times.
    pool_z : bool
        3D only: pool along Z too. Off for stacks with few slices.
    norm : {"batch", "instance"}
        Batch norm (statistics over the batch) or instance norm (over each patch, as nnU-Net): a
        3D batch of two patches gives batch norm too few samples, and its running statistics
        then misjudge validation images.
    slices : bool
        3D only: a 2D U-Net applied to every Z slice (Z folded into the batch). It takes and gives
        ``(N, C, Z, Y, X)`` like a 3D model, so training and prediction treat it as one; it suits thin
        or strongly anisotropic stacks, and learns faster per CPU minute than 3D convolutions.
    input_shift : sequence of float, optional
        Per axis of the convolutions (Y, X or Z, Y, X), between -1 and 1: move the input by this many
        pixels first (fixed linear interpolation), so images line up with labels that sit a fraction of
        a pixel off their structures. The plan measures it (``nbseg.data.alignment``).
    top_skip : bool
        The skip connection of the top level. N2V2 (``nbseg.denoise``) leaves it out: a blind-spot network
        that sees its full-resolution input again at the end paints checkerboards.
    pool : {"max", "maxblur"}
        Max pooling, or max-blur-pool (:class:`nbseg.model.blurpool.MaxBlurPool`, N2V2's choice).
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, n_classes: int = 2, size: str = "M",
                 pool_z: bool = True, slices: bool = False, norm: str = "batch", input_shift=None,
                 top_skip: bool = True, pool: str = "max"):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims is {spatial_dims}; use 2 for images, 3 for stacks.")
        if size not in SIZES:
            raise ValueError(f"size {size!r} is unknown; use one of {', '.join(SIZES)}.")
        if slices and spatial_dims != 3:
            raise ValueError("slices=True applies a 2D U-Net to each slice of a stack; it needs spatial_dims=3.")
        self.slices = bool(slices)
        pool_z = bool(pool_z) and not self.slices  # a slice model never mixes slices
        self.spec = dict(spatial_dims=spatial_dims, in_channels=in_channels, n_classes=n_classes, size=size,
                         pool_z=pool_z)
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm is {norm!r}; use 'batch' or 'instance'.")
        if self.slices:  # only recorded when set, so earlier model files keep their spec
            self.spec["slices"] = True
        if norm != "batch":
            self.spec["norm"] = norm
        if pool not in ("max", "maxblur"):
            raise ValueError(f"pool is {pool!r}; use 'max' or 'maxblur' (max-blur-pool, as N2V2).")
        self.top_skip = bool(top_skip)
        if not self.top_skip:
            self.spec["top_skip"] = False
        if pool != "max":
            self.spec["pool"] = pool
        planar = spatial_dims == 2 or self.slices
        self.align = InputShift(input_shift, in_channels, 2 if planar else 3)
        if self.align.kernel is not None:
            self.spec["input_shift"] = [float(v) for v in input_shift]
        conv = nn.Conv2d if planar else nn.Conv3d
        if norm == "instance":  # learnt scale and shift, no running statistics: train and eval alike
            norm = functools.partial(nn.InstanceNorm2d if planar else nn.InstanceNorm3d, affine=True)
        else:
            norm = nn.BatchNorm2d if planar else nn.BatchNorm3d
        up = nn.ConvTranspose2d if planar else nn.ConvTranspose3d
        max_pool = nn.MaxPool2d if planar else nn.MaxPool3d
        step = 2 if planar or pool_z else (1, 2, 2)
        widths = SIZES[size]

        self.encoders = nn.ModuleList(
            _conv_block(conv, norm, w_in, w_out) for w_in, w_out in zip((in_channels,) + widths[:-1], widths)
        )
        self.pool = max_pool(step) if pool == "max" else MaxBlurPool(2 if planar else 3, step)
        self.ups = nn.ModuleList(up(w, w // 2, step, stride=step) for w in widths[:0:-1])
        # without the top skip, the top decoder takes the up-sampled features alone (half the channels)
        ins = [w if k < len(widths) - 2 or self.top_skip else w // 2 for k, w in enumerate(widths[:0:-1])]
        self.decoders = nn.ModuleList(_conv_block(conv, norm, n, w // 2) for n, w in zip(ins, widths[:0:-1]))
        self.head = conv(widths[0], n_classes, 1)

    @property
    def depth(self) -> int:
        return len(self.encoders) - 1

    def forward(self, x: torch.Tensor, aligned: bool = False) -> torch.Tensor:
        """``(N, C, [Z,] Y, X)`` -> logits. ``aligned``: ``x`` went through :attr:`align` already; whoever
        flips or turns the input (training augmentation, test-time augmentation) aligns it first, since
        a flip would turn the shift around."""
        if not aligned:
            x = self.align(x)
        if self.slices:  # (N, C, Z, Y, X) -> (N*Z, C, Y, X) -> the 2D U-Net -> back
            n, c, z, h, w = x.shape
            out = self._unet(x.transpose(1, 2).reshape(n * z, c, h, w))
            return out.reshape(n, z, out.shape[1], h, w).transpose(1, 2)
        return self._unet(x)

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encode in self.encoders[:-1]:
            x = encode(x)
            skips.append(x)
            x = self.pool(x)
        x = self.encoders[-1](x)  # bottleneck
        for level, (up, decode, skip) in enumerate(zip(self.ups, self.decoders, reversed(skips))):
            top = level == len(skips) - 1
            x = decode(up(x) if top and not self.top_skip else torch.cat([skip, up(x)], dim=1))
        return self.head(x)


def pool_z_for(patch_z: int) -> bool:
    """Pool along Z only when the patch has enough slices."""
    return patch_z >= MIN_POOLED_Z


def receptive_field(size: str) -> int:
    """Pixels along an axis that one output pixel of a U-Net of ``size`` sees (pooled axes).

    Two 3x3 convolutions per level on the way down and up, a 2x pooling and a 2x up-convolution
    between levels: each adds its kernel's reach times the level's stride.
    """
    depth = len(SIZES[size]) - 1
    convs = 4 * (2 ** (depth + 1) - 1) + 4 * (2**depth - 1)  # down (bottleneck included), then up
    return 1 + convs + 2 * (2**depth - 1)  # pooling and up-sampling


def pooling_divisors(spatial_dims: int, size: str, *, pool_z: bool = True) -> tuple:
    """What each spatial side of a U-Net's input must be divisible by: ``2**depth`` on every pooled
    axis, 1 on an unpooled Z. The one rule for training patches and prediction tiles.

    Parameters
    ----------
    spatial_dims : {2, 3}
    size : {"S", "M", "L"}
    pool_z : bool
        3D only: whether Z is pooled.

    Returns
    -------
    ([Z,] Y, X) tuple of int
    """
    depth = len(SIZES[size]) - 1
    divisors = [2**depth] * spatial_dims
    if spatial_dims == 3 and not pool_z:
        divisors[0] = 1
    return tuple(divisors)


def patch_divisors(patch, size: str) -> tuple:
    """What each patch axis must be divisible by: ``2**depth``, or 1 for an unpooled Z."""
    return pooling_divisors(len(patch), size, pool_z=len(patch) != 3 or pool_z_for(patch[0]))


def divisibility_problem(shape, divisors, *, noun: str = "sizes") -> str | None:
    """None if every side of ``shape`` is a positive multiple of its divisor; else the sides that
    are not and the nearest valid shapes, for an error message.

    Parameters
    ----------
    shape, divisors : ([Z,] Y, X) sequences of int
    noun : str
        What the nearest valid shapes are called in the message, e.g. ``"tiles"``.

    Returns
    -------
    str or None
        E.g. ``"Y=100 is not divisible by 8. Nearest valid sizes: [96, 128] or [104, 128]"``.
    """
    names = "ZYX"[-len(shape):]
    bad = [i for i, (n, d) in enumerate(zip(shape, divisors)) if n % d or n < d]
    if not bad:
        return None
    detail = "; ".join(f"{names[i]}={shape[i]} is not divisible by {divisors[i]}" for i in bad)
    nearest = nearest_choices([_nearest(n, d) for n, d in zip(shape, divisors)])
    return f"{detail}. Nearest valid {noun}: {' or '.join(str(list(c)) for c in nearest)}"


def check_patch_size(patch, *, size: str) -> None:
    """Raise PatchSizeError unless every pooled axis of ``patch`` is divisible by ``2**depth``.

    Parameters
    ----------
    patch : sequence of int
        ``([Z,] Y, X)``.
    size : {"S", "M", "L"}
    """
    problem = divisibility_problem(patch, patch_divisors(patch, size))
    if problem:
        raise PatchSizeError(f"Patch size {list(patch)} does not fit model size {size!r}: {problem}.")


def _nearest(n: int, d: int) -> tuple[int, int]:
    low = max(d, (n // d) * d)
    return low, low + d if low < n else low


def nearest_choices(pairs) -> list:
    lows = [p[0] for p in pairs]
    highs = [p[1] for p in pairs]
    return [lows] if lows == highs else [lows, highs]


# ---------------------------------------------------------------- model file


def save_model_file(path, model: UNet, *, meta: dict) -> Path:
    """Write weights, architecture and ``meta`` (normalisation, labels, ...) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": "nbseg-model-1", "spec": dict(model.spec), "meta": meta, "state_dict": state}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _unreadable_model(path: Path, err: Exception) -> str:
    """Why a model file did not load, without torch's advice to load it unsafely."""
    import re

    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
    if found:  # weights_only refused a reference to code: it was never called
        return (f"{path} holds code ({found.group(1)}), not only weights; nbseg refused to load it and never runs "
                "code from a model file. Use a model file written by nbseg (models/fold*.pt), from a source you trust.")
    # torch's own text would advise loading the file unsafely; say only what kind of failure it was
    detail = "not a PyTorch file's contents" if "Weights only load failed" in str(err) else str(err).split(". ")[0]
    return (f"{path} is not a readable nbseg model file ({type(err).__name__}: {detail[:200]}): it is truncated or "
            "corrupt. Train again or copy it again.")


def load_model_file(path, *, map_location="cpu") -> tuple[UNet, dict]:
    """Load a model file written by :func:`save_model_file` (``weights_only=True``).

    Returns
    -------
    model : UNet, in eval mode
    meta : dict
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(_unreadable_model(path, err)) from err
    if not isinstance(payload, dict) or payload.get("format") != "nbseg-model-1":
        raise ValueError(f"{path} is not an nbseg model file (no 'nbseg-model-1' marker).")
    model = UNet(**payload["spec"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]
