"""Train a Noise2Void denoiser (N2V2) on noisy images alone, with segmentation's own loop.

The images are read and normalised as for segmentation (percentiles), planned from what they show
(:func:`nbseg.data.fingerprint.image_fingerprint`: patch, batch, a 2D network over the slices of an
anisotropic stack), split into training and validation images (one image: a held-back band), and trained by
:class:`nbseg.train.fold.FoldRun` with the blind-spot objective: the time budget, checkpoints every epoch,
``resume`` after a kill and the progress events are the ones segmentation has. The kept model is the one
with the best validation score: the blind-spot error on the validation images, as a PSNR against their
noisy values (higher is better; it reads lower than the PSNR against clean images, which are not at hand).

With clean targets (``data.masks``: a folder of clean images named as the noisy ones) it trains CARE instead
(:mod:`.care`): the same plan, loop and files; validation is the PSNR against the held-out clean images.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import IGNORE, Config, update_config
from ..data.dataset import DataError, Dataset, Sample
from ..data.fingerprint import image_fingerprint
from ..data.normalize import intensity_bounds, percentile_normalize
from ..data.pairs import Pair, find_pairs
from ..data.split import load_or_make_split
from ..io.images import file_stem, image_files, read_image
from ..model.tiling import sliding_window
from ..model.unet import load_model_file, save_model_file
from ..project import ProjectLayout, write_json
from ..runtime import autocast
from ..train import distributed
from ..train.fold import VALIDATION_PIXELS, FoldRun
from ..train.plan import make_plan
from ..train.setup import Objective
from ..train.validation import OVERLAP, validation_regions
from .blindspot import SHARE, WINDOW, BlindSpotSampler, augmentation, blind_spot_input, blind_spots, masked_mse
from .care import care_objective, validation_pairs

KIND = "denoise"  # the model file's kind: `nbseg predict` refuses it, `nbseg denoise predict` takes it
PAIRED = "care"  # the kind of a Dataset of noisy/clean pairs
NETWORK = {"top_skip": False, "pool": "maxblur"}  # N2V2's U-Net


def n2v2_objective(share: float = SHARE, window: int = WINDOW) -> Objective:
    """Noise2Void with the N2V2 changes, for :class:`nbseg.train.fold.FoldRun`."""
    return Objective(loss=masked_mse, augmentation=augmentation, network=dict(NETWORK),
                     sampler=lambda samples, patch, rng: BlindSpotSampler(samples, patch, rng, share=share,
                                                                          window=window))


def load_noisy(data_config, *, progress=None) -> Dataset:
    """The noisy images ``data_config.images`` names, normalised by their percentiles; with ``data_config.masks``
    (CARE) each paired by name with its clean image, scaled by the noisy image's bounds.

    Returns
    -------
    nbseg.data.Dataset
        ``kind`` "denoise" (or "care" for pairs), as many outputs (``n_classes``) as channels ``C``; each
        sample's image is (C, [Z,] Y, X), or (2C, [Z,] Y, X) for a pair (noisy, then clean), its target marks
        nothing (a zero array that takes no memory).

    Raises
    ------
    DataError
        Images of different dimensionality or channel counts; a clean image whose shape is not its noisy one's.
    nbseg.data.pairs.PairingError
        Noisy and clean images that do not pair up by name.
    """
    cfg, samples, first = data_config, [], None
    pairs = (find_pairs(cfg.images, cfg.masks, role="clean target") if cfg.masks is not None
             else [Pair(file_stem(path), path) for path in image_files(cfg.images)])
    for i, pair in enumerate(pairs):
        path = pair.image
        image = read_image(path, axes=cfg.axes, channels=cfg.channels, dims=cfg.dims)
        first = first or image
        if (image.spatial_dims, image.data.shape[0]) != (first.spatial_dims, first.data.shape[0]):
            raise DataError(f"{path.name} is {image.spatial_dims}D with {image.data.shape[0]} channel(s) but "
                            f"{first.path.name} is {first.spatial_dims}D with {first.data.shape[0]}: keep one kind of "
                            "image per denoiser (set --axes or --channels, or move the others out).")
        bounds = intensity_bounds(image.data, cfg.percentiles, name=str(path))
        pixels = percentile_normalize(image.data, bounds=bounds)
        if pair.mask is not None:
            pixels = np.concatenate([pixels, percentile_normalize(_clean(pair, image, cfg), bounds=bounds)])
        sizes, unit = (tuple(cfg.pixel_sizes), "µm") if cfg.pixel_sizes else (image.pixel_sizes, image.unit)
        nothing = np.broadcast_to(np.int8(0), image.spatial_shape)  # no labels: every pixel is image
        samples.append(Sample(pair.name, pixels, nothing, sizes, unit))
        if progress:
            progress(i + 1, len(pairs), path.name)
    channels, paired = first.data.shape[0], cfg.masks is not None
    what = "noisy/clean pair(s)" if paired else "noisy image(s)"
    return Dataset(samples, PAIRED if paired else KIND, channels, channels, first.spatial_dims,
                   notes=[f"{len(samples)} {what}, {first.spatial_dims}D, {channels} channel(s)"])


def _clean(pair, noisy, cfg) -> np.ndarray:
    """The clean image of ``pair``, read as its noisy one was; it must cover the same pixels."""
    clean = read_image(pair.mask, axes=cfg.axes, channels=cfg.channels, dims=noisy.spatial_dims)
    if clean.data.shape != noisy.data.shape:
        raise DataError(f"The clean target {pair.mask.name} has shape {tuple(clean.data.shape)} (axes {clean.axes}) "
                        f"but its noisy image {pair.image.name} has {tuple(noisy.data.shape)} (axes {noisy.axes}): a "
                        "target is the clean image of the same field of view, pixel for pixel. Crop or register it "
                        "to the noisy image, or give --axes/--channels if one file was read wrongly.")
    return np.asarray(clean.data)


def plan_denoising(config, dataset, *, device=None):
    """The training plan for ``dataset`` (what segmentation would plan for these images, at their own scale).

    Returns
    -------
    (nbseg.train.plan.Plan, nbseg.data.fingerprint.Fingerprint)
    """
    from ..runtime import pick_device

    fingerprint = image_fingerprint(dataset.samples, dataset.spatial_dims)
    plan = make_plan(config, fingerprint, device=device or pick_device(config.train.device))
    network = ("CARE: a U-Net with its top skip connection, L1 loss against the clean targets; "
               if dataset.kind == PAIRED else "N2V2: a U-Net without its top skip connection, max-blur-pool; ")
    reasons = {**plan.reasons, "network": network + plan.reasons.get("network", f"{plan.model_dims}D"),
               "lr": f"{plan.lr:.1e} (train.lr)"}
    return replace(plan, reasons=reasons), fingerprint


def denoise_config(images, *, base=None, data=None, train=None, model=None) -> Config:
    """Settings for a denoiser: ``base`` (a project's saved settings, or None) with the noisy ``images`` and the
    ``data``, ``train`` and ``model`` settings given (None values are left out); 5 minutes of training when
    neither ``minutes`` nor ``epochs`` is set."""
    def given(values):
        return {k: v for k, v in (values or {}).items() if v is not None}

    train = given(train)
    if "minutes" in train or "epochs" in train:  # one budget: the one given replaces a saved one
        train = {"minutes": None, "epochs": None, **train}
    config = update_config(base, {"data": {"images": images, **given(data)}, "train": train, "model": given(model)})
    if config.train.minutes is None and config.train.epochs is None:
        config = update_config(config, {"train": {"minutes": 5.0}})
    return config


class DenoiseRun(FoldRun):
    """Segmentation's fold loop with the blind-spot objective, validation and model file."""

    method, score_name, score_key = "n2v2", "val PSNR vs noisy", "val_psnr_noisy"

    def _hold_back_validation(self) -> None:
        """Fixed blind spots in the validation regions (seeded), so each epoch is scored on the same pixels."""
        val_tiles = self.config.train.val_tiles
        budget = val_tiles * int(np.prod(self.patch)) if val_tiles else VALIDATION_PIXELS
        rng = np.random.default_rng(self.config.train.seed + 7)
        self.val_regions = []
        for image, target in validation_regions(self.val_samples, self.patch, budget):
            valid = (np.asarray(target) != IGNORE)[None]
            mask = blind_spots(valid, rng=rng)
            self.val_regions.append((blind_spot_input(image[None], mask, valid)[0], image, mask[0]))

    def _validate(self) -> tuple[float, float]:
        return blind_spot_score(self.model, self.val_regions, tile=self.patch, batch_size=self.batch_size,
                                device=self.device, precision=self.precision, layout=self.layout)

    def _save_model(self, score: float) -> None:
        if not distributed.is_main():
            return
        meta = {"kind": KIND, "method": self.method, "percentiles": list(self.config.data.percentiles),
                "in_channels": self.dataset.in_channels, "spatial_dims": self.dataset.spatial_dims,
                "patch": list(self.patch), "axes": self.config.data.axes, "channels": self.config.data.channels,
                "epoch": self.epoch, self.score_key: float(score), "plan": self.plan.to_dict(),
                "nbseg_version": __version__}
        save_model_file(self.paths["model"], self.model, meta=meta)


class CareRun(DenoiseRun):
    """The same loop for CARE: held-out noisy/clean pairs, scored by the PSNR of the output against the clean
    image (normalised range 1: the noisy image's percentile span)."""

    method, score_name, score_key = "care", "val PSNR", "val_psnr"

    def _hold_back_validation(self) -> None:
        val_tiles = self.config.train.val_tiles
        budget = val_tiles * int(np.prod(self.patch)) if val_tiles else VALIDATION_PIXELS
        self.val_regions = validation_pairs(validation_regions(self.val_samples, self.patch, budget))


@torch.no_grad()
def blind_spot_score(model, regions, *, tile, batch_size: int, device, precision: str, layout) -> tuple[float, float]:
    """The error of ``model`` at the masked pixels of ``regions`` ``[(input, reference, mask), ...]``, predicted
    tile by tile as prediction does, and it as a PSNR in dB (normalised range 1). N2V2: the blind spots against
    their noisy values; CARE (:func:`.care.validation_pairs`): every pixel against the clean image.

    Returns
    -------
    (mse, psnr) : float
    """
    model.eval()

    def predict(x):
        with autocast(device, precision):
            return model(x.to(device).contiguous(memory_format=layout)).float().cpu()

    error, count = 0.0, 0
    for masked, noisy, mask in regions:
        out = sliding_window(masked, predict, tile=tile, n_out=noisy.shape[0], overlap=OVERLAP, batch_size=batch_size)
        error += float((((out - noisy) ** 2) * mask).sum())
        count += int(mask.sum()) * noisy.shape[0]
    model.train()
    mse = error / max(count, 1)
    return mse, float(-10 * np.log10(max(mse, 1e-12)))


def train_denoiser(config, project, *, callbacks=(), resume: bool = False, dataset=None, plan=None):
    """Train a denoiser on ``config.data.images``; write everything under ``project``: N2V2, or CARE when
    ``config.data.masks`` names the clean targets (the model file's ``method`` says which).

    Parameters
    ----------
    config : nbseg.config.Config
        ``data.images`` (and ``data.masks``: clean images for CARE), ``train.minutes`` or ``epochs``, ...
    project : str or Path
    callbacks : sequence of nbseg.train.callbacks.Callback
    resume : bool
        Continue from the last checkpoint (of the same method: DataError otherwise).
    dataset, plan : optional
        Already loaded (:func:`load_noisy`) and planned (:func:`plan_denoising`).

    Returns
    -------
    nbseg.train.fold.FoldResult
    """
    dataset = dataset or load_noisy(config.data)
    notes = list(dataset.notes)
    if plan is None:
        plan, fingerprint = plan_denoising(config, dataset)
        notes += fingerprint.notes + plan.lines()
    project = Path(project)
    run, objective = (CareRun, care_objective()) if dataset.kind == PAIRED else (DenoiseRun, n2v2_objective())
    if resume:
        _check_method(project, run.method)
    split = load_or_make_split(project, dataset.names, folds=1, val_fraction=config.data.val_fraction,
                               seed=config.train.seed)[0]
    config.save(project)
    write_json(ProjectLayout(project).plan, plan.to_dict())
    return run(config, project, dataset, plan, fold=0, n_folds=1, split=split, callbacks=callbacks,
               notes=notes, resume=resume, objective=objective).run()


def _check_method(project, method: str) -> None:
    """Resuming continues a denoiser of the same method only (the networks differ)."""
    path = ProjectLayout(project).model(0)
    if not path.exists():
        return
    found = load_model_file(path)[1].get("method", "n2v2")
    if found != method:
        given = "clean targets (--targets)" if method == "care" else "no clean targets"
        raise DataError(f"{project} holds a {found.upper()} denoiser but {given} were given, which trains "
                        f"{method.upper()}: a run resumes the method it started with. Give the same data as before, "
                        "or train the other method in a new --project.")


__all__ = ["CareRun", "DenoiseRun", "KIND", "PAIRED", "blind_spot_score", "denoise_config", "load_noisy",
           "n2v2_objective", "plan_denoising", "train_denoiser"]
