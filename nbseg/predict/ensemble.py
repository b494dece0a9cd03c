"""The trained models of a project as one predictor: loading, checks against an image, and the
per-tile function (normalise, run every model on every TTA variant, average the softmax)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import check_choice
from ..model.unet import load_model_file, pooling_divisors
from ..project import ProjectLayout
from .tta import tta_variants

UNCERTAINTY_CHOICES = ("entropy", "mutual_info", "std")


@dataclass(frozen=True)
class EnsembleInfo:
    """What every model of an ensemble agrees on."""

    spatial_dims: int
    in_channels: int
    n_classes: int
    kind: str
    class_names: tuple
    patch: tuple
    divisors: tuple
    axes: str | None
    channels: tuple | None
    source: str
    slices: bool = False  # 2D networks over the slices of a stack: Z flips change nothing
    scale: tuple | None = None  # the working scale the models learnt at (nbseg.data.resample)
    spacing: tuple | None = None  # its pixel size in µm, where the training files gave one
    min_size: int | None = None  # pixels an object needs to be kept (the training plan's; None: not planned)
    bright_objects: bool | None = None  # objects brighter than background in the training data (None: unknown)


def load_ensemble(source) -> list[tuple]:
    """The models of a project, as ``[(model, meta), ...]`` ordered by fold.

    Parameters
    ----------
    source : str, Path, or list
        A project folder (reads ``models/fold*.pt``), one model file, a list of model files,
        or a list of ``(model, meta)`` pairs (returned as given).

    Raises
    ------
    FileNotFoundError
        If the folder holds no model file.
    ValueError
        For a corrupt model file, or models that do not fit together.
    """
    from ..model.bioimageio_load import is_package

    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (list, tuple)):
        ensemble = [(model, dict(meta)) for model, meta in source]
    elif is_package(source):  # a bioimage.io package (.zip or rdf.yaml); --trust-code callers load it themselves
        from ..model.bioimageio_load import load_package

        ensemble = load_package(source)
    else:
        paths = _model_paths(source)
        ensemble = [load_model_file(p) for p in paths]
        for (_, meta), path in zip(ensemble, paths):
            meta.setdefault("source", str(path))
    ensemble_info(ensemble)  # refuse mixed ensembles at load time, not mid-prediction
    return ensemble


def _model_paths(source) -> list[Path]:
    if isinstance(source, (list, tuple)):
        return [Path(p) for p in source]
    path = Path(source)
    if path.is_file():
        return [path]
    if not path.is_dir():
        from ..model.bundled import bundled_model_file, describe_bundled
        if (bundled := bundled_model_file(str(source))) is not None:  # a bundled model's name, e.g. "nuclei"
            return [bundled]
        raise FileNotFoundError(f"{path} is neither a project folder, a model file nor a bundled model's name "
                                f"(bundled: {describe_bundled()}). Check the path (relative to {Path.cwd()}).")
    return ProjectLayout(path).model_files()


def ensemble_info(ensemble) -> EnsembleInfo:
    """Check that the models fit together and return what they share."""
    if not ensemble:
        raise ValueError("The ensemble is empty; give at least one (model, meta) pair or a trained project.")
    specs = [dict(model.spec) for model, _ in ensemble]
    for key in ("spatial_dims", "in_channels", "n_classes"):
        values = {s[key] for s in specs}
        if len(values) > 1:
            raise ValueError(f"The models do not fit together: they differ in {key} ({sorted(values)}). "
                             "Keep only the models of one project in the ensemble.")
    spec, meta = specs[0], ensemble[0][1]
    if meta.get("kind") == "denoise":  # nbseg.denoise's model files: another task's output
        raise ValueError(f"{meta.get('source', 'The model')} is a denoiser, not a segmentation model: denoise with "
                         "`nbseg denoise predict DENOISER IMAGES --output DIR`, then segment the results.")
    dims = spec["spatial_dims"]
    divisors = np.lcm.reduce([_divisors(s) for s in specs]).tolist()
    kind = meta.get("kind") or ("binary" if spec["n_classes"] == 2 else "multiclass")
    names = meta.get("class_names") or [f"class {i}" for i in range(spec["n_classes"])]
    patch = tuple(meta.get("patch") or ((32, 128, 128) if dims == 3 else (256, 256)))
    channels = meta.get("channels")
    return EnsembleInfo(dims, spec["in_channels"], spec["n_classes"], kind, tuple(names), patch, tuple(divisors),
                        meta.get("axes"), tuple(channels) if channels is not None else None,
                        str(meta.get("source", "the given model")), slices=all(s.get("slices") for s in specs),
                        min_size=(meta.get("plan") or {}).get("min_size"), bright_objects=_bright(meta),
                        **_working_scale(ensemble))


def _bright(meta) -> bool | None:
    """Whether the training data's objects were brighter than its background (None: the file does not say)."""
    stats = meta.get("intensity") or {}
    means = [(stats.get(part) or {}).get("mean") for part in ("foreground", "background")]
    return None if None in means else bool(means[0] > means[1])


def _working_scale(ensemble) -> dict:
    """The plan's working scale, which every model of an ensemble must share."""
    scales = {tuple((meta.get("plan") or {}).get("scale") or ()) for _, meta in ensemble}
    if len(scales) > 1:
        raise ValueError(f"The models do not fit together: they were trained at different scales ({sorted(scales)}). "
                         "Keep only the models of one project in the ensemble.")
    plan = ensemble[0][1].get("plan") or {}
    return {"scale": tuple(plan["scale"]) if plan.get("scale") else None,
            "spacing": tuple(plan["spacing"]) if plan.get("spacing") else None}


def _divisors(spec) -> tuple:
    if "divisors" in spec:  # a bioimage.io package's tile step
        return tuple(spec["divisors"])
    return pooling_divisors(spec["spatial_dims"], spec["size"], pool_z=spec.get("pool_z", True))


def check_image(image, info: EnsembleInfo) -> None:
    """Raise ValueError unless ``image`` (an nbseg.io.Image) has the models' dimensions and channels."""
    name = image.path or "the image"
    if image.spatial_dims != info.spatial_dims:
        have = "3D stack" if image.spatial_dims == 3 else "2D image"
        want = "3D stacks" if info.spatial_dims == 3 else "2D images"
        raise ValueError(
            f"{name} is a {have} (axes {image.axes}, shape {tuple(image.data.shape)}) but the model "
            f"({info.source}) was trained on {want}. Use a model trained on {have}s, or, if the file's axes "
            f"were misread, give them (axes='{'ZYX' if info.spatial_dims == 3 else 'CYX'}', CLI: --axes)."
        )
    if image.data.shape[0] != info.in_channels:
        raise ValueError(
            f"{name} has {image.data.shape[0]} channel(s) (axes {image.axes}, shape {tuple(image.data.shape)}) "
            f"but the model ({info.source}) was trained on {info.in_channels}-channel images. Pick the "
            f"channel(s) it was trained on (channels=[0], CLI: --channels 0), or train a model on these images."
        )


def inference_copy(model, device):
    """A copy of ``model`` for fast inference: batch norms folded into their convolutions and a
    channels-last layout, which CPU (oneDNN) and GPU convolution kernels both prefer."""
    import torch

    model = copy.deepcopy(model).eval()
    _fuse_conv_bn(model)
    model = model.to(device)
    if device.type in ("cpu", "cuda"):
        # a scripted package hides its Conv3d layers; its spec says the input's dims
        scripted = getattr(model, "spec", {}).get("divisors") is not None
        dims = (model.spec["spatial_dims"] if scripted
                else 3 if any(isinstance(m, torch.nn.Conv3d) for m in model.modules()) else 2)
        model = model.to(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last)
    return model


def _fuse_conv_bn(module) -> None:
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.children():
        _fuse_conv_bn(child)
    if not isinstance(module, nn.Sequential):
        return
    for i in range(len(module) - 1):
        conv, norm = module[i], module[i + 1]
        if isinstance(conv, nn.modules.conv._ConvNd) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            module[i] = fuse_conv_bn_eval(conv, norm)
            module[i + 1] = nn.Identity()


def foreground_of(probs, kind: str, *, axis: int = 0):
    """Foreground probability from class probabilities along ``axis`` (ndarray or tensor)."""
    def take(i):
        return probs[(slice(None),) * axis + (i,)]

    if kind == "binary":
        return take(1)
    if kind == "instances":
        return take(1) + take(2)
    return 1 - take(0)


CPU_VOXELS = 2**19  # one 32x128x128 tile, four 256x256 ones


class TilePredictor:
    """The per-tile function for :func:`nbseg.tiling.sliding_window`: raw tiles in; out, the mean
    probabilities of classes 1..K-1 over models x TTA variants, then an uncertainty channel.

    Parameters
    ----------
    ensemble : list of (model, meta)
    bounds : list of (low, span)
        Per model: the image's normalisation (see :func:`intensity_bounds`).
    info : EnsembleInfo
    tta : {"none", "flips", "all"}
    device : torch.device
    precision : {"fp32", "bf16", "fp16"}
    uncertainty : {"entropy", "mutual_info", "std"}
        ``"entropy"``: entropy of the mean probabilities (spread between passes plus the net's own
        doubt), ``"mutual_info"``: the spread part alone, ``"std"``: standard deviation of the
        foreground probability over passes (deepflash2), times 2. All scaled to [0, 1].
    """

    def __init__(self, ensemble, *, bounds, info: EnsembleInfo, tta: str, device, precision: str,
                 uncertainty: str = "entropy"):
        import torch

        check_choice(uncertainty, UNCERTAINTY_CHOICES, what="uncertainty")
        self.nets = [inference_copy(model, device) for model, _ in ensemble]
        self.bounds = [(torch.as_tensor(low, dtype=torch.float32, device=device),
                        torch.as_tensor(1.0 / span, dtype=torch.float32, device=device)) for low, span in bounds]
        self.variants = tta_variants(tta, info.spatial_dims, planar=info.slices)
        self.info, self.device, self.precision, self.uncertainty = info, device, precision, uncertainty

    @property
    def n_passes(self) -> int:
        return len(self.nets) * len(self.variants)

    def __call__(self, batch):
        import torch


        shape = (1, -1) + (1,) * self.info.spatial_dims
        layout = torch.channels_last_3d if self.info.spatial_dims == 3 else torch.channels_last
        total = spread = None
        with torch.inference_mode():
            x = batch.to(self.device)
            for net, (low, scale) in zip(self.nets, self.bounds):
                normed = (x - low.view(shape)) * scale.view(shape)
                align = getattr(net, "align", None)  # nbseg's U-Net: its input shift comes before the flips
                normed = align(normed) if align is not None else normed
                for variant in self.variants:
                    probs = torch.cat([self._probabilities(net, variant.forward(part).contiguous(memory_format=layout),
                                                           aligned=align is not None)
                                       for part in normed.split(self._chunk(normed), dim=0)])
                    probs = variant.inverse(probs)
                    total = probs if total is None else total + probs
                    spread = self._add_spread(spread, probs)
            mean = total / self.n_passes
            # class 0 is left out: it is 1 minus the others, and storing it would cost a volume's worth
            return torch.cat([mean[:, 1:], self._uncertainty(mean, spread)[:, None]], dim=1).cpu()

    def _probabilities(self, net, x, aligned: bool = False):
        import torch

        from ..runtime import autocast

        with autocast(self.device, self.precision):
            logits = net(x, aligned=True) if aligned else net(x)
        return torch.softmax(logits.float(), dim=1)

    def _chunk(self, batch) -> int:
        """Tiles per forward pass. On a CPU the network's activations grow with the batch (about
        260 MB per 32x128x128 tile for a 3D U-Net of size S) while the speed gained is small (whole
        batches of 4 ran a Lucchi++ volume ~25 % faster at 1.4x the peak memory), so a CPU sees at
        most CPU_VOXELS voxels at a time. GPUs take the whole batch."""
        if self.device.type != "cpu":
            return batch.shape[0]
        return max(1, CPU_VOXELS // int(np.prod(batch.shape[2:])))

    def _add_spread(self, spread, probs):
        import torch

        if self.uncertainty == "entropy":
            return None
        if self.uncertainty == "std":
            fg = foreground_of(probs, self.info.kind, axis=1)
            value = torch.stack([fg, fg * fg])
        else:
            value = _entropy(probs)
        return value if spread is None else spread + value

    def _uncertainty(self, mean, spread):
        if self.uncertainty == "std":
            first, second = spread / self.n_passes
            return 2 * (second - first * first).clamp(min=0).sqrt()
        entropy = _entropy(mean)
        if self.uncertainty == "mutual_info":
            entropy = (entropy - spread / self.n_passes).clamp(min=0)
        return entropy / float(np.log(mean.shape[1]))


def _entropy(probs):
    return -(probs * probs.clamp(min=1e-12).log()).sum(dim=1)
