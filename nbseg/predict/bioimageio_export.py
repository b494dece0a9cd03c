"""Export a project's ensemble as a bioimage.io model package (format 0.5), written and then tested
with the spec's own libraries (``bioimageio.spec``, ``bioimageio.core``; install ``nbseg[bioimageio]``).

The package holds the ensemble as one TorchScript module (softmax and fold averaging inside, no
normalisation: that is declared as ``scale_range`` preprocessing), the tile rule, a test input
cropped from a training image with the module's output on it, a cover and a README whose
``# Validation`` section carries the project's validation figures. A denoiser (``nbseg denoise train``) is
written the same way with what differs taken from :func:`nbseg.predict.bioimageio_tasks.denoising_task`: its
output is the restored image, and its module normalises the input and maps the output back itself.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..model.unet import save_model_file
from ..project import ProjectLayout, atomic_write
from .bioimageio_docs import author_dicts, pixel_sizes, write_cover
from ..model.bioimageio_load import BioimageioError, bioimageio_modules
from .bioimageio_tasks import package_task
from .export import refuse_denoiser

INPUT_ID = "raw"
EPS = 1e-6  # scale_range's: (x - low) / (high - low + eps)
DEFAULT_LICENSE = "CC-BY-4.0"  # the bioimage.io model zoo's usual license for weights
STATE_DICT_FILE = "nbseg_model.pt"  # the first model as an nbseg model file (nbseg.train.init reads it)


def tile_rule(info) -> list[tuple]:
    """Per spatial axis ``(min, step, halo)``: sides ``min + n*step``, of which ``halo`` pixels at each
    border are cropped. ``step`` is what the U-Net pools (:func:`nbseg.model.unet.pooling_divisors`);
    ``min`` is twice that so a halo of half a step leaves a step of output."""
    return [(2 * d, d, d // 2) for d in info.divisors]


def export_bioimageio(project, output=None, *, authors=None, name: str | None = None, description: str | None = None,
                      license: str = DEFAULT_LICENSE, tags=None, cite=None, training_data: str | None = None,
                      sample=None, tta: str = "none", overwrite: bool = False) -> Path:
    """Write ``project``'s models as a tested bioimage.io model package: a segmentation ensemble's class
    probabilities, or a denoiser's restored image (the project of ``nbseg denoise train``).

    Parameters
    ----------
    project : str or Path
        Trained project folder (all folds), or model file(s); or a denoiser's project or model file.
    output : str or Path, optional
        The ``.zip`` to write. Default ``export/<project>.bioimageio.zip`` in the project folder.
    authors : str, dict or list of them
        Who made the model (required by bioimage.io): ``"Name"``, ``"Name; Affiliation; github-user"``
        (the last two optional) or ``{"name": ..., "affiliation": ..., "github_user": ...}``.
    name, description : str, optional
        Default: the project folder's name; a sentence from the models' task.
    license : str
        An SPDX identifier.
    tags : list of str or comma-separated str, optional
    cite : list of dict, optional
        ``{"text": ..., "doi": ...}`` or ``{"text": ..., "url": ...}``; default the U-Net paper(s) (a denoiser:
        N2V2's or CARE's).
    training_data : str, optional
        What the models learnt from (README's ``## Training data``, ``config.nbseg.training_data``).
        Default: the project's image/mask folders, image count, pixel size and classes.
    sample : str, Path or (C, [Z,] Y, X) ndarray, optional
        The image to crop the test input from. Default the project's first training image.
    tta : {"none", "flips", "all"}
        Test-time augmentation baked into the module (segmentation only).
    overwrite : bool

    Returns
    -------
    Path
        ``output``, written only once ``bioimageio.core.test_model`` passed on it.
    """
    refuse_denoiser(project, "a bioimage.io package")
    bio, save_package, test_model = bioimageio_modules()
    output = Path(output) if output is not None else ProjectLayout(project).bioimageio_package
    if output.suffix.lower() != ".zip":
        raise BioimageioError(f"{output}: a bioimage.io package is a .zip file; give a name ending in .zip.")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists already; pass overwrite=True (CLI: --overwrite) to replace it.")
    authors = author_dicts(authors)
    task = package_task(project, tta)
    meta = dict(task.meta)
    meta["spec"] = dict(getattr(task.ensemble[0][0], "spec", {}))  # the U-Net's arguments, for fine-tuning (train.init)
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    meta.update({k: v for k, v in {"name": name, "description": description, "tags": tags, "cite": cite}.items()
                 if v is not None})
    meta["training_data"] = training_data.strip() if training_data else task.training_data
    meta["pixel_sizes"] = pixel_sizes(project, task.info)
    with atomic_write(output, keep_suffix=True) as tmp:  # a half-written or untested package is never left
        with tempfile.TemporaryDirectory(prefix="nbseg-bioimageio-") as folder:
            files = _write_files(Path(folder), project, task, meta, sample)
            descr = _describe(bio, files, task, meta, authors, license)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                save_package(descr, output_path=tmp)
        check_package(tmp, test_model)
    return output


def _write_files(folder: Path, project, task, meta, sample) -> dict:
    """Weights, test tensors, cover and README in ``folder``; returns their paths by role."""
    import torch

    info = task.info
    files = {"weights": folder / "weights_torchscript.pt", "input": folder / "test_input.npy",
             "output": folder / "test_output.npy", "cover": folder / "cover.png", "readme": folder / "README.md",
             "state_dict": folder / STATE_DICT_FILE}
    # the first model's own file rides along as an attachment: `nbseg train --init PACKAGE` fine-tunes it
    # (the TorchScript weights have batch norm folded in; consumers other than nbseg ignore attachments)
    save_model_file(files["state_dict"], task.ensemble[0][0], meta=task.ensemble[0][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(task.module, str(files["weights"]))
    raw = test_crop(project, info, sample)
    given = scale_range(raw, task.percentiles) if task.declared_normalisation else raw  # what the module takes
    with torch.no_grad():
        result = task.module(torch.from_numpy(given[np.newaxis])).numpy()[0]
    np.save(files["input"], raw[np.newaxis])
    np.save(files["output"], result[np.newaxis].astype(np.float32))
    write_cover(files["cover"], given, result, info.kind)
    rule = tile_rule(info)
    rule_text = ("Tiles: each spatial side (" + ", ".join("zyx"[-info.spatial_dims:]) + ") is "
                 + ", ".join(f"{m} + n*{s}" for m, s, _ in rule) + "; halo (cropped at each border) "
                 + ", ".join(str(h) for _, _, h in rule) + ".")
    files["readme"].write_text(task.readme(meta, rule_text), encoding="utf-8")
    return files


def scale_range(image, percentiles) -> np.ndarray:
    """bioimage.io's ``scale_range`` over the spatial axes of each channel of ``image`` (C, [Z,] Y, X):
    what a consumer does before running the package's model."""
    image = np.asarray(image, dtype=np.float32)
    out = np.empty_like(image)
    for c, channel in enumerate(image):
        low, high = np.percentile(channel, percentiles)
        out[c] = (channel - low) / (high - low + EPS)
    return out


def test_crop(project, info, sample=None) -> np.ndarray:
    """A ``(C, [Z,] Y, X)`` float32 crop from the middle of ``sample`` (default the project's first
    training image): the training patch, cut to the tile rule."""
    from .image import as_image

    image = as_image(sample if sample is not None else _training_image(project), info)
    data = image.data
    size = []
    for side, patch, (low, step, _) in zip(image.spatial_shape, info.patch, tile_rule(info)):
        if side < low:
            raise BioimageioError(f"The test image {image.path or ''} is too small: {image.spatial_shape}, but "
                                  f"the model needs at least {low} pixels per side along every axis. Give a "
                                  "larger image (sample=..., CLI: --sample FILE).")
        size.append(low + (min(side, max(patch, low)) - low) // step * step)
    region = tuple(slice((s - n) // 2, (s - n) // 2 + n) for s, n in zip(image.spatial_shape, size))
    return np.ascontiguousarray(np.asarray(data[(slice(None),) + region], dtype=np.float32))


def _training_image(project):
    from ..config import Config
    from ..io.images import image_files

    layout = ProjectLayout(project) if isinstance(project, (str, os.PathLike)) else None
    if layout is None or not layout.config.exists():
        raise BioimageioError("No image for the package's test input: the models come without a project "
                              "config that names the training images. Give one (sample=..., CLI: --sample FILE).")
    images = Path(Config.load(layout.config).data.images)
    if not images.is_absolute() and not images.exists():
        images = layout.root / images
    return images if images.is_file() else image_files(images)[0]


def _describe(bio, files, task, meta, authors, license):
    """The spec's ModelDescr of the files in ``files``."""
    import torch

    info, percentiles = task.info, task.percentiles
    spatial = "zyx"[-info.spatial_dims:]
    rule = tile_rule(info)
    in_axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=[f"channel{i}" for i in range(info.in_channels)])]
    spacing = meta["pixel_sizes"]  # µm per pixel, where the training plan or config.yaml says
    unit = [{"scale": float(s), "unit": "micrometer"} for s in spacing] if spacing else [{}] * len(spatial)
    in_axes += [bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=m, step=s), **u)
                for a, (m, s, _), u in zip(spatial, rule, unit)]
    out_axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=list(info.class_names))]
    for a, (_, _, halo), u in zip(spatial, rule, unit):
        size = bio.SizeReference(tensor_id=bio.TensorId(INPUT_ID), axis_id=bio.AxisId(a))
        out_axes.append(bio.SpaceOutputAxisWithHalo(id=bio.AxisId(a), size=size, halo=halo, **u) if halo
                        else bio.SpaceOutputAxis(id=bio.AxisId(a), size=size, **u))
    normalise = bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
        axes=[bio.AxisId(a) for a in spatial], min_percentile=percentiles[0], max_percentile=percentiles[1], eps=EPS))
    inputs = bio.InputTensorDescr(
        id=bio.TensorId(INPUT_ID), description="raw intensities", axes=in_axes,
        test_tensor=bio.FileDescr(source=files["input"]), data=bio.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[normalise] if task.declared_normalisation else [])
    outputs = bio.OutputTensorDescr(
        id=bio.TensorId(task.output_id), description=task.output_description, axes=out_axes,
        test_tensor=bio.FileDescr(source=files["output"]),
        data=bio.IntervalOrRatioDataDescr(type="float32", range=task.output_range))
    weights = bio.WeightsDescr(torchscript=bio.TorchscriptWeightsDescr(
        source=files["weights"], pytorch_version=bio.Version(torch.__version__.split("+")[0])))
    cite = [bio.CiteEntry(**{k: (bio.Doi(v) if k == "doi" else bio.HttpUrl(v) if k == "url" else v)
                             for k, v in entry.items()}) for entry in meta["cite"]]
    from pydantic import ValidationError

    nbseg = {**task.config, "patch": list(info.patch), "percentiles": list(percentiles), "nbseg_version": __version__,
             "spec": meta["spec"], "state_dict": files["state_dict"].name, "training_data": meta["training_data"]}
    try:
        return bio.ModelDescr(
            name=meta["name"], description=meta["description"], authors=_author_descrs(bio, authors),
            cite=cite, license=bio.LicenseId(license), tags=list(meta["tags"]),
            documentation=bio.FileDescr(source=files["readme"]), covers=[bio.FileDescr(source=files["cover"])],
            inputs=[inputs], outputs=[outputs], weights=weights, config=bio.Config(nbseg=nbseg),
            attachments=[bio.FileDescr(source=files["state_dict"])])
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise BioimageioError(f"bioimage.io refuses the model description: {problems}. Fix the named field "
                              "(e.g. license='MIT', name= of 5 to 128 characters; CLI: --license, --name) and "
                              "export again.") from None


def _author_descrs(bio, authors) -> list:
    """The spec's Author of each dict; bioimage.io asks GitHub whether a ``github_user`` exists."""
    import httpx  # bioimageio.spec's own HTTP client

    try:
        return [bio.Author(**a) for a in authors]
    except httpx.HTTPError as err:
        users = [a["github_user"] for a in authors if a.get("github_user")]
        raise BioimageioError(f"bioimage.io checks GitHub user names with GitHub, which could not be reached ({err}) "
                              f"for {users}. Export while online, or leave the GitHub user empty.") from None


def check_package(path, test_model=None) -> None:
    """Run the spec's ``test_model`` on the package at ``path``; on failure delete it and raise
    :class:`BioimageioError` with the failing checks."""
    test_model = test_model or bioimageio_modules()[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = test_model(str(path))
    if summary.status == "passed":
        return
    Path(path).unlink(missing_ok=True)
    failed = []
    for detail in summary.details:
        if detail.status == "failed":
            reasons = "; ".join(f"{'.'.join(map(str, e.loc)) or '-'}: {e.msg}" for e in detail.errors)
            failed.append(f"{detail.name}: {reasons or 'failed'}")
    raise BioimageioError("The bioimage.io test of the package failed, so nothing was written:\n  "
                          + "\n  ".join(failed or [f"status {summary.status}"]))
