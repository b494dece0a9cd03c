"""What a bioimage.io package of nbseg's holds that depends on the task: segmentation (class probabilities of an
ensemble, normalised by the declared ``scale_range``) or denoising (the restored image of an N2V2 or CARE
denoiser, in the input's intensity scale). :func:`nbseg.predict.bioimageio_export.export_bioimageio` writes
either one way from a :class:`PackageTask`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..config import DEFAULT_PERCENTILES
from ..model.bioimageio_load import BioimageioError
from ..model.unet import load_model_file
from ..project import ProjectLayout
from .bioimageio_docs import (default_metadata, default_name, denoiser_readme, readme_text, training_data_text,
                              validation_figures)
from .ensemble import EnsembleInfo, _divisors, _working_scale, ensemble_info, load_ensemble
from .inference import fuse_conv_bn
from .export import _Normalize, script_ensemble

DENOISE = "denoise"  # the kind in a denoiser's model file (nbseg.denoise.train.KIND)
METHODS = {  # a denoiser's method: its name, what it learnt from, its papers
    "n2v2": ("Noise2Void (N2V2)", "trained on the noisy images themselves", [
        {"text": "Höck, Buchholz, Brachmann, Jug and Freytag. N2V2 - Fixing Noise2Void Checkerboard Artifacts with "
                 "Modified Sampling Strategies and a Tweaked Network Architecture. ECCV 2022 Workshops.",
         "doi": "10.48550/arXiv.2211.08512"},
        {"text": "Krull, Buchholz and Jug. Noise2Void - Learning Denoising from Single Noisy Images. CVPR 2019.",
         "doi": "10.48550/arXiv.1811.10980"}]),
    "care": ("CARE", "trained on pairs of noisy and clean images", [
        {"text": "Weigert et al. Content-aware image restoration: pushing the limits of fluorescence microscopy. "
                 "Nature Methods 15, 1090-1097 (2018).", "doi": "10.1038/s41592-018-0216-7"}]),
}


@dataclass
class PackageTask:
    """What a package of one task holds.

    Attributes
    ----------
    ensemble : list of (model, meta)
    info : EnsembleInfo
    percentiles : (float, float)
    module : torch.jit.ScriptModule
        The package's weights: ``(B, C, [Z,] Y, X)`` -> ``(B, K, [Z,] Y, X)``.
    declared_normalisation : bool
        True: the input is normalised by the declared ``scale_range`` before ``module``; False: ``module`` takes
        raw intensities.
    output_id, output_description : str
    output_range : (float or None, float or None)
    meta : dict
        Default ``name``, ``description``, ``tags``, ``cite``.
    training_data : str
    readme : callable(meta, tile_rule_text) -> str
    config : dict
        The task's entries of the package's ``config.nbseg``.
    """

    ensemble: list
    info: EnsembleInfo
    percentiles: tuple
    module: object
    declared_normalisation: bool
    output_id: str
    output_description: str
    output_range: tuple
    meta: dict
    training_data: str
    readme: Callable
    config: dict = field(default_factory=dict)


def package_task(project, tta: str = "none") -> PackageTask:
    """The segmentation or denoising task of ``project``'s model(s)."""
    denoiser = _denoiser(project)
    return denoising_task(project, denoiser, tta) if denoiser else segmentation_task(project, tta)


def segmentation_task(project, tta: str = "none") -> PackageTask:
    """An ensemble's class probabilities; ``scale_range`` is declared, the module holds no normalisation."""
    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    percentiles = _shared_percentiles(ensemble)
    _refuse_working_scale(info)
    module, _ = script_ensemble(ensemble, info, tta=tta, normalize=False)

    def readme(meta, rule):
        return readme_text(meta["name"], meta["description"], info, percentiles=percentiles, tile_rule=rule,
                           figures=validation_figures(project, ensemble), n_models=len(ensemble), tta=tta,
                           training_data=meta["training_data"], cite=meta["cite"])

    return PackageTask(ensemble, info, percentiles, module, True, "probabilities", "class probabilities (softmax)",
                       (0.0, 1.0), default_metadata(project, info, len(ensemble)), training_data_text(project, info),
                       readme, {"kind": info.kind, "class_names": list(info.class_names), "tta": tta,
                                "models": len(ensemble)})


def denoising_task(project, denoiser, tta: str = "none") -> PackageTask:
    """A denoiser's restored image in its input's scale: the module normalises each image and channel by the
    training percentiles and maps the network's output back, as ``nbseg denoise predict`` does."""
    model, meta = denoiser
    if tta != "none":
        raise BioimageioError(f"test-time augmentation ({tta!r}) is for segmentation packages; export a denoiser "
                              "with tta='none' (CLI: leave out --tta).")
    method = meta.get("method", "n2v2")
    title, learnt, cite = METHODS[method]
    spec, dims = dict(model.spec), model.spec["spatial_dims"]
    info = EnsembleInfo(dims, spec["in_channels"], spec["n_classes"], DENOISE,
                        tuple(f"channel{i}" for i in range(spec["in_channels"])),
                        tuple(meta.get("patch") or ((32, 128, 128) if dims == 3 else (256, 256))),
                        tuple(_divisors(spec)), meta.get("axes"),
                        tuple(meta["channels"]) if meta.get("channels") is not None else None,
                        str(meta.get("source", "the denoiser")), slices=bool(spec.get("slices")),
                        **_working_scale([denoiser]))
    _refuse_working_scale(info)
    percentiles = tuple(float(p) for p in meta.get("percentiles") or DEFAULT_PERCENTILES)
    description = (f"{dims}D denoising of microscopy images by {title}, {learnt}, with nbseg (a U-Net); outputs the "
                   "restored image in the input's intensity scale (float32, the same axes and channels).")
    defaults = {"name": default_name(project), "description": description, "cite": cite,
                "tags": ["nbseg", "unet", "denoising", "restoration", "pytorch", f"{dims}d", method]}
    score = ("val_psnr", "PSNR against the held-out clean images") if method == "care" else \
        ("val_psnr_noisy", "PSNR of the blind spots against the held-out noisy values")
    figures = {"score": meta.get(score[0]), "what": score[1], "epoch": meta.get("epoch")}

    def readme(text, rule):
        return denoiser_readme(text, info, title=title, percentiles=percentiles, tile_rule=rule, figures=figures)

    return PackageTask([denoiser], info, percentiles, script_denoiser(model, percentiles, info.patch), False,
                       "restored", f"the restored (denoised) image, {title}", (None, None), defaults,
                       training_data_text(project, info), readme, {"kind": DENOISE, "method": method, "tta": "none", "models": 1})


def _denoiser(project):
    """``(model, meta)`` of the denoiser ``project`` holds (a project folder or model file); None otherwise."""
    if not isinstance(project, (str, os.PathLike)) or str(project).lower().endswith((".zip", ".yaml")):
        return None
    path = Path(project)
    if path.is_dir():
        files = ProjectLayout(path).model_files()
        path = files[0] if len(files) == 1 else None
    if path is None or not path.is_file():
        return None
    model, meta = load_model_file(path)
    meta.setdefault("source", str(path))
    return (model, meta) if meta.get("kind") == DENOISE else None


class DenoiseModule(nn.Module):
    """Raw ``(B, C, [Z,] Y, X)`` intensities -> the restored image in the same scale: each image and channel is
    normalised by its percentiles, denoised, and mapped back by the same affine map."""

    def __init__(self, net: nn.Module, percentiles):
        super().__init__()
        self.net = net
        self.norm = _Normalize(*percentiles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        low, span = self.norm.bounds(x)
        return self.net((x - low) / span).float() * span + low


def script_denoiser(model, percentiles, patch):
    """The denoiser as one scripted :class:`DenoiseModule` (batch norm folded in)."""
    import copy
    import warnings

    net = copy.deepcopy(model).cpu().eval().requires_grad_(False)
    fuse_conv_bn(net)
    example = torch.zeros((1, model.spec["in_channels"]) + tuple(patch))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(DenoiseModule(torch.jit.trace(net, example), percentiles))


def _shared_percentiles(ensemble) -> tuple:
    found = {tuple(float(p) for p in (meta.get("percentiles") or DEFAULT_PERCENTILES)) for _, meta in ensemble}
    if len(found) > 1:
        raise BioimageioError(
            f"The models normalise images differently (percentiles {sorted(found)}); a bioimage.io package "
            "declares one normalisation. Export models trained with the same data.percentiles, or use "
            "export_torchscript (CLI: nbseg export PROJECT OUTPUT.pt), which keeps each model's own.")
    return found.pop()


def _refuse_working_scale(info) -> None:
    scale = getattr(info, "scale", None)
    if scale and any(float(s) != 1 for s in scale):
        raise BioimageioError(
            f"The models were trained at working scale {list(scale)} (images shrunk before the network, results "
            "brought back): a bioimage.io package cannot declare that resampling, so its consumers would feed "
            "full-resolution images to a network that never saw them. Retrain at the images' own resolution "
            "(model.scale=1, CLI: --scale 1) to export a package; nbseg predict runs this project at its scale.")


__all__ = ["DENOISE", "DenoiseModule", "METHODS", "PackageTask", "denoising_task", "package_task",
           "script_denoiser", "segmentation_task"]
