"""A bioimage.io model package as an nbseg ensemble, so nbseg's own tiled TTA predictor runs it.

The package's network becomes one ``(model, meta)`` pair: ``meta`` carries its scale_range
percentiles (the predictor normalises as in training), ``model.spec`` its tile step. Packages whose
model outputs probabilities (softmax inside, as nbseg's own packages) are wrapped to return their
logarithm, which the predictor's softmax turns back into the same probabilities.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

PACKAGE_NAMES = ("rdf.yaml", "bioimageio.yaml")


class BioimageioError(ValueError):
    """A package that cannot be made, or that the bioimage.io test refused."""


def bioimageio_modules():
    """``(spec v0_5, save_bioimageio_package, test_model)``, or an error saying what to install."""
    try:
        from bioimageio.core import test_model
        from bioimageio.spec import save_bioimageio_package
        from bioimageio.spec.model import v0_5
    except ImportError as err:
        raise BioimageioError(f"bioimage.io packages need bioimageio.core ({err}). Install it: "
                              "pip install 'nbseg[bioimageio]'") from err
    return v0_5, save_bioimageio_package, test_model


def is_package(source) -> bool:
    """Whether ``source`` names a bioimage.io package: a ``.zip`` or an ``rdf.yaml``."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    name = Path(source).name.lower()
    return name.endswith(".zip") or name.endswith(PACKAGE_NAMES)


def load_package(source, *, trust_code: bool = False) -> list[tuple]:
    """The model of a bioimage.io package as ``[(model, meta)]`` for :func:`load_ensemble`.

    Parameters
    ----------
    source : str or Path
        A package ``.zip`` or its ``rdf.yaml``.
    trust_code : bool
        Allow ``pytorch_state_dict`` weights, whose architecture is Python code from the package
        that runs on loading (CLI: --trust-code). TorchScript weights need no trust.

    Raises
    ------
    BioimageioError
        For packages nbseg cannot run: no PyTorch weights, code not trusted, axes other than
        b,c,[z,]y,x, or pre/postprocessing other than scale_range.
    """
    bioimageio_modules()  # the install hint if missing
    from bioimageio.spec import load_model_description
    from bioimageio.spec.model import v0_5

    descr = load_model_description(source, format_version="latest")
    if not isinstance(descr, v0_5.ModelDescr):
        raise BioimageioError(f"{source} is not a bioimage.io model description nbseg can read "
                              f"({type(descr).__name__}).")
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise BioimageioError(f"{source} has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; nbseg runs "
                              "models with one image in and one probability map out.")
    spatial, channels, divisors = _input_axes(descr.inputs[0], source)
    n_classes = _output_classes(descr.outputs[0], source)
    net = _network(descr, source, trust_code)
    nbseg = dict((descr.config.model_extra or {}).get("nbseg") or {})
    kind = nbseg.get("kind") or ("binary" if n_classes == 2 else "multiclass")
    patch = nbseg.get("patch") or (list(_test_shape(descr)[2:]) if descr.inputs[0].test_tensor else None)
    model = PackageNet(net, {"spatial_dims": len(spatial), "in_channels": channels, "n_classes": n_classes,
                             "divisors": list(divisors)})
    meta = {"kind": kind, "class_names": list(nbseg.get("class_names") or _channel_names(descr.outputs[0])),
            "patch": patch, "percentiles": list(_percentiles(descr.inputs[0], spatial, source)),
            "axes": None, "channels": None, "source": str(source), "format": "bioimageio"}
    return [(model.eval(), meta)]


def _input_axes(tensor, source):
    kinds = [a.type for a in tensor.axes]
    ids = [str(a.id) for a in tensor.axes]
    if kinds[:2] != ["batch", "channel"] or ids[2:] not in (["y", "x"], ["z", "y", "x"]):
        raise BioimageioError(f"{source}: input axes {','.join(ids)}; nbseg runs models whose input axes are "
                              "b,c,y,x or b,c,z,y,x.")
    divisors = []
    for axis in tensor.axes[2:]:
        size = axis.size
        divisors.append(int(size.step) if hasattr(size, "step") else int(size) if isinstance(size, int) else 1)
    return ids[2:], len(tensor.axes[1].channel_names), divisors


def _output_classes(tensor, source) -> int:
    extra = [p.id for p in tensor.postprocessing if p.id != "ensure_dtype"]
    if extra or [a.type for a in tensor.axes][:2] != ["batch", "channel"]:
        raise BioimageioError(f"{source}: the output has postprocessing {extra or 'none'} and axes "
                              f"{','.join(str(a.id) for a in tensor.axes)}; nbseg runs models that output class "
                              "probabilities (axes b,c,[z,]y,x, softmax inside the model, no postprocessing).")
    return len(tensor.axes[1].channel_names)


def _channel_names(tensor) -> list:
    return [str(n) for n in tensor.axes[1].channel_names]


def _percentiles(tensor, spatial, source) -> tuple:
    steps = [p for p in tensor.preprocessing if p.id != "ensure_dtype"]
    axes = sorted(map(str, steps[0].kwargs.axes or [])) if len(steps) == 1 and steps[0].id == "scale_range" else None
    if axes != sorted(spatial):
        described = [f"{p.id}({getattr(p.kwargs, 'axes', None)})" for p in steps]
        raise BioimageioError(f"{source}: input preprocessing {described or 'none'}; nbseg normalises each channel "
                              "of an image by percentiles, so it runs packages whose preprocessing is one "
                              f"scale_range over the axes {','.join(spatial)}.")
    return steps[0].kwargs.min_percentile, steps[0].kwargs.max_percentile


def _test_shape(descr):
    import numpy as np

    from bioimageio.spec.utils import load_array

    return np.shape(load_array(descr.inputs[0].test_tensor))


def _network(descr, source, trust_code):
    weights = descr.weights
    if weights.torchscript is not None:
        return torch.jit.load(weights.torchscript.get_reader(), map_location="cpu")
    if weights.pytorch_state_dict is not None:
        if not trust_code:
            raise BioimageioError(f"{source} has pytorch_state_dict weights: loading them runs the package's "
                                  "Python architecture code on this machine. Check the package comes from someone "
                                  "you trust, then pass trust_code=True (CLI: --trust-code).")
        from bioimageio.core.backends.pytorch_backend import load_torch_model

        return load_torch_model(weights.pytorch_state_dict, devices=["cpu"])
    formats = [name for name, entry in weights if entry is not None]
    raise BioimageioError(f"{source} has {', '.join(formats)} weights; nbseg runs PyTorch models only "
                          "(torchscript or pytorch_state_dict weights). Convert the package or run it with its own "
                          "software.")


class PackageNet(nn.Module):
    """A package's network as the predictor sees it: ``spec`` (dims, channels, classes, tile step) and
    logits whose softmax is the package's output probabilities."""

    def __init__(self, net, spec: dict):
        super().__init__()
        self.net, self.spec = net, dict(spec)

    def forward(self, x):
        probs = self.net(x).float()
        return torch.log(probs.clamp(min=1e-12))
