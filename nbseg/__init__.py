"""nbseg: segment 2D and 3D microscopy images with a U-Net, from notebooks, Python or the command line.

The public face, imported on first use (``import nbseg`` stays light)::

    from nbseg import Config, PredictOptions, fit, find_lr, predict_files, predict_image, read_image
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {"Config": "nbseg.config", "fit": "nbseg.train.trainer", "find_lr": "nbseg.train.lr_finder",
           "predict_files": "nbseg.predict.files", "predict_image": "nbseg.predict.image",
           "read_image": "nbseg.io.images", "PredictOptions": "nbseg.predict.options"}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'nbseg' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
