"""Export a project's ensemble as one TorchScript file: raw intensities in, mean class probabilities
out, percentile normalisation and softmax averaging inside. Load it with ``torch.jit.load`` alone:
no nbseg needed (e.g. in a Java/C++ plugin or a plain PyTorch script)."""

import copy
import json
import os
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..config import DEFAULT_PERCENTILES
from .ensemble import ensemble_info, load_ensemble
from .inference import fuse_conv_bn
from .tta import tta_variants
from ..project import ProjectLayout, atomic_write

FORMAT = "nbseg-torchscript-1"
META_FILE = "nbseg.json"


class _Normalize(nn.Module):
    """Per sample and channel: the ``low``/``high`` percentiles of a regular subsample map to 0/1,
    as :func:`nbseg.data.normalize.percentile_normalize` does."""

    def __init__(self, low: float, high: float, sample_size: int = 2_000_000):
        super().__init__()
        self.low, self.high, self.sample_size = float(low), float(high), int(sample_size)

    def bounds(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(low, span)`` of each sample and channel of ``x`` (B, C, ...), shaped (B, C, 1, ...) to broadcast."""
        lows: List[torch.Tensor] = []
        spans: List[torch.Tensor] = []
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                flat = x[b, c].reshape(-1)
                values = flat[:: max(1, flat.numel() // self.sample_size)]
                low, high = _percentile(values, self.low), _percentile(values, self.high)
                if bool(high <= low):
                    low, high = values.min(), values.max()
                span = high - low
                if bool(span <= 0):  # a constant image: nothing to scale
                    span = torch.ones_like(span)
                lows.append(low)
                spans.append(span)
        shape = [x.shape[0], x.shape[1]] + [1] * (x.dim() - 2)
        return torch.stack(lows).view(shape), torch.stack(spans).view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        low, span = self.bounds(x)
        return (x - low) / span


def _percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """numpy's default (linear) percentile of a 1D tensor, via two k-th values (no full sort)."""
    n = values.numel()
    position = q / 100.0 * (n - 1)
    below = int(position)
    above = min(below + 1, n - 1)
    low = torch.kthvalue(values, below + 1).values
    high = torch.kthvalue(values, above + 1).values
    return low + (high - low) * (position - below)


class EnsembleModule(nn.Module):
    """Raw ``(B, C, [Z,] Y, X)`` intensities -> mean softmax ``(B, K, [Z,] Y, X)`` over models x TTA."""

    variants: List[Tuple[int, List[int]]]  # (quarter turns in Y-X, dims flipped after the turn)
    divisors: List[int]

    def __init__(self, nets: List[nn.Module], percentiles: List[Tuple[float, float]],
                 variants: List[Tuple[int, List[int]]], divisors: List[int], normalize: bool = True,
                 aligns: Optional[List[nn.Module]] = None):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        # each net's input shift (nbseg.model.shift.InputShift), applied before the flips turn it around
        self.aligns = nn.ModuleList(aligns if aligns is not None else [nn.Identity() for _ in nets])
        # normalize=False: the input comes normalised (a bioimage.io package declares it as preprocessing)
        self.norms = nn.ModuleList([_Normalize(low, high) if normalize else nn.Identity() for low, high in percentiles])
        self.variants = variants
        self.divisors = divisors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        for i in range(len(self.divisors)):
            if spatial[i] % self.divisors[i] != 0:
                raise ValueError("each spatial side of the input must be divisible by the matching entry of "
                                 "'divisors' in nbseg.json; pad the image (reflect) and crop the output")
        total = torch.zeros(0)
        count = 0
        for net, norm, align in zip(self.nets, self.norms, self.aligns):
            normed = align(norm(x))
            for turns, flips in self.variants:
                y = normed
                if turns != 0:
                    y = torch.rot90(y, turns, [-2, -1])
                if len(flips) > 0:
                    y = torch.flip(y, flips)
                probs = torch.softmax(net(y).float(), dim=1)
                if len(flips) > 0:
                    probs = torch.flip(probs, flips)
                if turns != 0:
                    probs = torch.rot90(probs, -turns, [-2, -1])
                total = probs if count == 0 else total + probs
                count += 1
        return total / count


def refuse_denoiser(project, what: str) -> None:
    """Refuse to export a project trained on denoised images (``nbseg train --denoise``) as ``what``: the file
    would hold the segmentation models alone, which given raw images segment what they never saw.

    Raises
    ------
    ValueError
        Naming the denoiser and what to do instead.
    """
    carried = ProjectLayout(project).carried_denoiser() if isinstance(project, (str, os.PathLike)) else None
    if carried is not None:
        raise ValueError(f"{project} was trained on images denoised by its denoiser ({carried}), which {what} cannot "
                         "carry: its models alone, given raw images, would segment images unlike those they learnt "
                         f"from. Segment with `nbseg predict {project} ...` (it denoises first), or export models "
                         "trained on raw images (nbseg train without --denoise into another project).")


def export_torchscript(project, output, *, tta: str = "none", overwrite: bool = False) -> Path:
    """Write the ensemble of ``project`` as one TorchScript file.

    Parameters
    ----------
    project : str, Path, or list
        Trained project folder (all folds), model file(s), or ``load_ensemble``'s result.
    output : str or Path
        The file to write, e.g. ``model.pt``.
    tta : {"none", "flips", "all"}
        Test-time augmentation baked into the module.
    overwrite : bool

    Returns
    -------
    Path
        The file; its ``nbseg.json`` extra file (``torch.jit.load(path, _extra_files=...)``) says
        the class names, axes and the divisibility the input sides need.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists already; pass overwrite=True (CLI: --overwrite) to replace it.")
    refuse_denoiser(project, "a TorchScript file")
    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    module, percentiles = script_ensemble(ensemble, info, tta=tta)
    meta = {"format": FORMAT, "kind": info.kind, "class_names": list(info.class_names),
            "spatial_dims": info.spatial_dims, "in_channels": info.in_channels, "n_classes": info.n_classes,
            "axes": "BC" + "ZYX"[-info.spatial_dims:], "patch": list(info.patch), "divisors": list(info.divisors),
            "percentiles": [list(p) for p in percentiles], "tta": tta, "models": len(ensemble),
            "usage": "probs = torch.jit.load(path)(image[None].float())  # image (C, [Z,] Y, X); "
                     "for large images predict tiles of about 'patch' and blend them"}
    with atomic_write(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, str(tmp), _extra_files={META_FILE: json.dumps(meta, indent=1)})
    return output


def script_ensemble(ensemble, info, *, tta: str = "none", normalize: bool = True):
    """The ensemble as one scripted :class:`EnsembleModule` and each model's percentiles.

    Parameters
    ----------
    ensemble : list of (model, meta)
    info : EnsembleInfo
    tta : {"none", "flips", "all"}
    normalize : bool
        False: leave out the percentile normalisation (the caller normalises the input).

    Returns
    -------
    module : torch.jit.ScriptModule
        ``(B, C, [Z,] Y, X)`` -> mean softmax ``(B, K, [Z,] Y, X)``.
    percentiles : list of (float, float)
    """
    variants = [(v.turns, [2 + a for a in v.flips]) for v in tta_variants(tta, info.spatial_dims, planar=info.slices)]
    example = torch.zeros((1, info.in_channels) + tuple(info.patch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what Java/C++ plugins load
        return _script(ensemble, example, variants, list(info.divisors), normalize)


def _script(ensemble, example, variants, divisors, normalize=True):
    nets, aligns, percentiles = [], [], []
    for model, meta in ensemble:
        net = copy.deepcopy(model).cpu().eval().requires_grad_(False)  # outputs need no .detach()
        fuse_conv_bn(net)
        unet = isinstance(getattr(net, "align", None), nn.Module)  # nbseg's U-Net (not a loaded package)
        aligns.append(net.align if unet else nn.Identity())
        with torch.no_grad():
            nets.append(torch.jit.trace(_Aligned(net) if unet else net, example))
        percentiles.append(tuple(float(p) for p in meta.get("percentiles") or DEFAULT_PERCENTILES))
    module = EnsembleModule(nets, percentiles, variants, divisors, normalize, aligns=aligns)
    return torch.jit.script(module), percentiles


class _Aligned(nn.Module):
    """A U-Net whose input was shifted already (the ensemble shifts it before any TTA flip)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, aligned=True)


def read_export_meta(path) -> dict:
    """The ``nbseg.json`` stored in an exported file."""
    extra = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[META_FILE])
