"""Train a Noise2Void denoiser (N2V2) on noisy images alone, with segmentation's own loop.

The images are read and normalised as for segmentation (percentiles), planned from what they show
(:func:`nbseg.data.fingerprint.image_fingerprint`: patch, batch, a 2D network over the slices of an
anisotropic stack), split into training and validation images (one image: a held-back band), and trained by
:class:`nbseg.train.fold.FoldRun` with the blind-spot objective: the time budget, checkpoints every epoch,
``resume`` after a kill and the progress events are the ones segmentation has. The kept model is the one
with the best validation score: the blind-spot error on the validation images, as a PSNR against their
noisy values (higher is better; it reads lower than the PSNR against clean images, which are not at hand).
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
from ..data.normalize import percentile_normalize
from ..data.split import load_or_make_split
from ..io.images import file_stem, image_files, read_image
from ..model.tiling import sliding_window
from ..model.unet import save_model_file
from ..project import ProjectLayout, write_json
from ..runtime import autocast
from ..train import distributed
from ..train.fold import VALIDATION_PIXELS, FoldRun
from ..train.plan import make_plan
from ..train.setup import Objective
from ..train.validation import OVERLAP, validation_regions
from .blindspot import SHARE, WINDOW, BlindSpotSampler, augmentation, blind_spot_input, blind_spots, masked_mse

KIND = "denoise"  # the model file's kind: `nbseg predict` refuses it, `nbseg denoise predict` takes it
NETWORK = {"top_skip": False, "pool": "maxblur"}  # N2V2's U-Net


def n2v2_objective(share: float = SHARE, window: int = WINDOW) -> Objective:
    """Noise2Void with the N2V2 changes, for :class:`nbseg.train.fold.FoldRun`."""
    return Objective(loss=masked_mse, augmentation=augmentation, network=dict(NETWORK),
                     sampler=lambda samples, patch, rng: BlindSpotSampler(samples, patch, rng, share=share,
                                                                          window=window))


def load_noisy(data_config, *, progress=None) -> Dataset:
    """The noisy images ``data_config.images`` names, normalised by their percentiles; no masks.

    Returns
    -------
    nbseg.data.Dataset
        ``kind`` "denoise", as many outputs (``n_classes``) as channels; each sample's target marks nothing
        (a zero array that takes no memory).

    Raises
    ------
    DataError
        Images of different dimensionality or channel counts.
    """
    cfg, samples, first = data_config, [], None
    files = image_files(cfg.images)
    for i, path in enumerate(files):
        image = read_image(path, axes=cfg.axes, channels=cfg.channels, dims=cfg.dims)
        first = first or image
        if (image.spatial_dims, image.data.shape[0]) != (first.spatial_dims, first.data.shape[0]):
            raise DataError(f"{path.name} is {image.spatial_dims}D with {image.data.shape[0]} channel(s) but "
                            f"{first.path.name} is {first.spatial_dims}D with {first.data.shape[0]}: keep one kind of "
                            "image per denoiser (set --axes or --channels, or move the others out).")
        pixels = percentile_normalize(image.data, percentiles=cfg.percentiles, name=str(path))
        sizes, unit = (tuple(cfg.pixel_sizes), "µm") if cfg.pixel_sizes else (image.pixel_sizes, image.unit)
        nothing = np.broadcast_to(np.int8(0), image.spatial_shape)  # no labels: every pixel is image
        samples.append(Sample(file_stem(path), pixels, nothing, sizes, unit))
        if progress:
            progress(i + 1, len(files), path.name)
    channels = first.data.shape[0]
    return Dataset(samples, KIND, channels, channels, first.spatial_dims,
                   notes=[f"{len(samples)} noisy image(s), {first.spatial_dims}D, {channels} channel(s)"])


def plan_denoising(config, dataset, *, device=None):
    """The training plan for ``dataset`` (what segmentation would plan for these images, at their own scale).

    Returns
    -------
    (nbseg.train.plan.Plan, nbseg.data.fingerprint.Fingerprint)
    """
    from ..runtime import pick_device

    fingerprint = image_fingerprint(dataset.samples, dataset.spatial_dims)
    plan = make_plan(config, fingerprint, device=device or pick_device(config.train.device))
    reasons = {**plan.reasons, "network": "N2V2: a U-Net without its top skip connection, max-blur-pool; "
                                          + plan.reasons.get("network", f"{plan.model_dims}D"),
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

    score_name = "val PSNR vs noisy"

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
        meta = {"kind": KIND, "method": "n2v2", "percentiles": list(self.config.data.percentiles),
                "in_channels": self.dataset.in_channels, "spatial_dims": self.dataset.spatial_dims,
                "patch": list(self.patch), "axes": self.config.data.axes, "channels": self.config.data.channels,
                "epoch": self.epoch, "val_psnr_noisy": float(score), "plan": self.plan.to_dict(),
                "nbseg_version": __version__}
        save_model_file(self.paths["model"], self.model, meta=meta)


@torch.no_grad()
def blind_spot_score(model, regions, *, tile, batch_size: int, device, precision: str, layout) -> tuple[float, float]:
    """The blind-spot error of ``model`` over ``regions`` ``[(input, noisy, mask), ...]``, predicted tile by
    tile as prediction does, and it as a PSNR in dB against the noisy values (normalised range 1).

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
    """Train a denoiser on ``config.data.images``; write everything under ``project``.

    Parameters
    ----------
    config : nbseg.config.Config
        ``data.images`` (no masks), ``train.minutes`` or ``epochs``, ``train.seed``, ...
    project : str or Path
    callbacks : sequence of nbseg.train.callbacks.Callback
    resume : bool
        Continue from the last checkpoint.
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
    split = load_or_make_split(project, dataset.names, folds=1, val_fraction=config.data.val_fraction,
                               seed=config.train.seed)[0]
    config.save(project)
    write_json(ProjectLayout(project).plan, plan.to_dict())
    return DenoiseRun(config, project, dataset, plan, fold=0, n_folds=1, split=split, callbacks=callbacks,
                      notes=notes, resume=resume, objective=n2v2_objective()).run()


__all__ = ["DenoiseRun", "KIND", "blind_spot_score", "denoise_config", "load_noisy", "n2v2_objective",
           "plan_denoising", "train_denoiser"]
