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


def training_dataset_for(config: Config, project):
    """:func:`dataset_for` without the project's test images: what notebooks 04 and 05 plan and sweep on, as
    training does (:func:`nbseg.train.trainer.training_dataset`)."""
    from ..train.trainer import training_dataset

    return training_dataset(config, project, dataset_for(config))


def remember(config: Config, dataset) -> None:
    _DATASETS.clear()
    _DATASETS[config.data.model_dump_json()] = dataset


def project_path(project) -> Path:
    return Path(project)
