"""What every panel after 01 needs: the project's config and its data, read from disk (so a fresh
kernel or a new Colab session can open any notebook), kept in memory between panels."""
from __future__ import annotations

from pathlib import Path

from ..config import Config
from .teaching import needs_step

_DATASETS: dict = {}


class MissingStep(FileNotFoundError):
    """An earlier notebook has not written what this one needs."""


def load_config(project) -> Config:
    missing = needs_step(project, "config")
    if missing:
        raise MissingStep(missing)
    return Config.load(project)


def dataset_for(config: Config):
    """The loaded dataset for ``config.data``, cached for this kernel."""
    from ..data import load_dataset

    key = config.data.model_dump_json()
    if key not in _DATASETS:
        _DATASETS.clear()
        _DATASETS[key] = load_dataset(config.data)
    return _DATASETS[key]


def training_data(config: Config, project):
    """``config.data``, or for a project that carries a denoiser (``nbseg train --denoise``) its images' denoised
    copies (made once into the project), as the command trains, sweeps and calibrates on them; images notebook
    00 denoised are read as they are, and the project carries their denoiser."""
    from ..denoise.segment import denoised_training_data, training_denoiser

    denoiser = training_denoiser(project, images=config.data.images)
    return config.data if denoiser is None else denoised_training_data(config.data, project, denoiser)


def training_dataset_for(config: Config, project):
    """:func:`dataset_for` of :func:`training_data` without the project's test images: what notebooks 04 and 05
    plan and sweep on, as training does (:func:`nbseg.train.trainer.training_dataset`)."""
    from ..train.trainer import training_dataset

    config = config.model_copy(update={"data": training_data(config, project)})
    return training_dataset(config, project, dataset_for(config))


def remember(config: Config, dataset) -> None:
    _DATASETS.clear()
    _DATASETS[config.data.model_dump_json()] = dataset


def project_path(project) -> Path:
    return Path(project)
