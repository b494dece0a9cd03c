"""Untrained model projects for prediction tests: U-Nets with non-trivial batch-norm statistics
(as after training), saved as models/fold{k}.pt with the meta that training writes."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nbseg.model.unet import UNet, save_model_file


def make_model(dims=2, channels=1, classes=2, seed=0, pool_z=True, input_shift=None):
    torch.manual_seed(seed)
    model = UNet(dims, channels, classes, "S", pool_z=pool_z, input_shift=input_shift)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def make_project(root: Path, *, dims=2, folds=1, channels=1, kind="binary", patch=None,
                 percentiles=lambda k: [1.0, 99.8], plan=None, input_shift=None, class_names=None) -> Path:
    """``root`` with ``folds`` models; ``percentiles(k)`` gives fold k's normalisation; ``plan`` (a dict,
    e.g. ``{"scale": [1, 0.5, 0.5]}``) the training plan the meta records; ``class_names`` (background
    first) the classes of a multi-class model."""
    classes = len(class_names) if class_names else 3 if kind == "instances" else 2
    patch = patch or ([8, 32, 32] if dims == 3 else [32, 32])
    for k in range(folds):
        meta = {"percentiles": percentiles(k), "kind": kind, "n_classes": classes, "in_channels": channels,
                "spatial_dims": dims, "patch": patch, "axes": None, "channels": None, "fold": k}
        if plan is not None:
            meta["plan"] = dict(plan)
        if class_names:
            meta["class_names"] = list(class_names)
        save_model_file(Path(root) / "models" / f"fold{k}.pt", make_model(dims, channels, classes, seed=k, input_shift=input_shift),
                        meta=meta)
    return Path(root)
