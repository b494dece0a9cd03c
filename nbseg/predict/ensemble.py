"""The trained models of a project as one ensemble: loading, what the models share, and checks against an
image. The per-tile function that runs them is :mod:`.tile_predictor`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.unet import load_model_file, pooling_divisors
from ..project import ProjectLayout
from .post import DEFAULT_SEED_THRESHOLD

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
    # the seeded watershed's, chosen on validation images (nbseg.predict.seeds); the mean of the models'
    seed_threshold: float = DEFAULT_SEED_THRESHOLD


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
                        seed_threshold=float(np.mean([m.get("seed_threshold") or DEFAULT_SEED_THRESHOLD
                                                      for _, m in ensemble])),
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


def foreground_of(probs, kind: str, *, axis: int = 0):
    """Foreground probability from class probabilities along ``axis`` (ndarray or tensor)."""
    def take(i):
        return probs[(slice(None),) * axis + (i,)]

    if kind == "binary":
        return take(1)
    if kind == "instances":
        return take(1) + take(2)
    return 1 - take(0)


