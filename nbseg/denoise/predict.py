"""Denoise images with a trained denoiser: tiles blended by the sliding window, so memory stays bounded by a
tile batch and the result, and every result keeps its input's intensity scale, axes and pixel sizes.

Each tile is normalised by the whole image's percentiles (those the denoiser was trained with), denoised,
and mapped back by the same affine map, so ``<name>.denoised.ome.tif`` can stand in for the raw image
(float32: a denoised 8-bit image has values between the 8-bit steps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.normalize import intensity_bounds
from ..io.images import Image, file_stem, read_image, write_ome_tiff
from ..metrics.restoration import DENOISED
from ..model.tiling import check_tile, patch_tile, sliding_window
from ..model.unet import divisibility_problem, load_model_file, pooling_divisors
from ..project import ProjectLayout
from ..predict.files import input_files
from ..runtime import autocast, memory_format, pick_device, pick_precision
from .train import KIND


def load_denoiser(source) -> tuple[torch.nn.Module, dict]:
    """The model and meta of a denoiser project (its ``models/fold0.pt``) or model file.

    Raises
    ------
    ValueError
        When ``source`` holds a segmentation model.
    """
    source = Path(source)
    path = ProjectLayout(source).model_files()[0] if source.is_dir() else source
    model, meta = load_model_file(path)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path} is a segmentation model ({meta.get('kind') or 'unknown kind'}), not a denoiser. "
                         f"Train one with `nbseg denoise train --images noisy/ --project {source.name}_dn`, or "
                         f"segment with `nbseg predict {source} ...`.")
    return model, meta


def denoise_image(denoiser, image, *, tile=None, overlap: float = 0.5, batch_size: int = 4, device="auto",
                  precision: str = "fp32", bounds=None, progress=None) -> np.ndarray:
    """The denoised image, in the input's intensity scale.

    Parameters
    ----------
    denoiser : str, Path or (model, meta)
        A denoiser project, model file, or :func:`load_denoiser`'s result.
    image : nbseg.io.Image, or (C, [Z,] Y, X) ndarray
    tile : ([Z,] Y, X) sequence of int, optional
        Default the training patch, clipped to the image.
    overlap, batch_size : see :func:`nbseg.model.tiling.sliding_window`
    device : str
    precision : str
        fp32 by default: a denoised image keeps its fine intensity steps.
    bounds : (low, span) pair of (C,) ndarray, optional
        The normalisation (:func:`nbseg.data.normalize.intensity_bounds`) of the whole image when ``image`` is
        one block of it (:mod:`.cluster`); default the image's own.
    progress : callable(done, total, message), optional

    Returns
    -------
    (C, [Z,] Y, X) ndarray of float32
    """
    model, meta = denoiser if isinstance(denoiser, tuple) else load_denoiser(denoiser)
    data = image.data if isinstance(image, Image) else np.asarray(image)
    _check(data, model.spec, getattr(image, "path", None))
    tile = _tile(tile, data.shape[1:], model.spec, meta)
    device = pick_device(device)
    precision = pick_precision(device, precision)
    model = model.to(device).eval()
    # a slice model folds Z into the batch itself: its 5D inputs stay in the standard layout
    layout = torch.contiguous_format if model.slices else memory_format(device, model.spec["spatial_dims"])
    low, span = bounds if bounds is not None else intensity_bounds(data, meta["percentiles"])  # as in training
    shape = (1, -1) + (1,) * (data.ndim - 1)
    low, span = torch.from_numpy(low).view(shape), torch.from_numpy(span.astype(np.float32)).view(shape)

    @torch.no_grad()
    def denoise(x):
        x = ((x - low) / span).to(device).contiguous(memory_format=layout)
        with autocast(device, precision):
            return model(x).float().cpu() * span + low

    return sliding_window(data, denoise, tile=tile, n_out=data.shape[0], overlap=overlap, batch_size=batch_size,
                          progress=progress)


def _check(data, spec, path) -> None:
    name = path or "the image"
    if data.ndim - 1 != spec["spatial_dims"] or data.shape[0] != spec["in_channels"]:
        raise ValueError(f"{name} is {data.ndim - 1}D with {data.shape[0]} channel(s) (shape {data.shape}) but the "
                         f"denoiser takes {spec['spatial_dims']}D images with {spec['in_channels']} channel(s). Give its "
                         "axes (CLI: --axes) or channels (CLI: --channels), or use a denoiser trained on such images.")


def _tile(tile, spatial, spec, meta) -> tuple:
    divisors = pooling_divisors(spec["spatial_dims"], spec["size"], pool_z=spec.get("pool_z", True))
    if tile is None:
        return patch_tile(meta.get("patch") or (), spatial, divisors)
    tile = check_tile(tile, spatial)
    problem = divisibility_problem(tile, divisors, noun="tiles")
    if problem:
        raise ValueError(f"tile {list(tile)} does not fit the denoiser: {problem}. Give one of them (CLI: --tile), "
                         "or no tile to use the training patch.")
    return tile


def denoise_files(denoiser, inputs, output, *, overwrite: bool = False, suffix: str = DENOISED, progress=None,
                  **settings) -> list[Path]:
    """Denoise image files and folders into ``output`` as ``<name>.denoised.ome.tif``.

    Parameters
    ----------
    denoiser : str, Path or (model, meta)
        A denoiser project or model file, or :func:`load_denoiser`'s result.
    inputs : sequence of str or Path
        Image files and folders of images.
    output : str or Path
        Folder for the results (made).
    overwrite : bool
        Replace earlier results; otherwise an image with a result already is skipped (a rerun continues).
    suffix : str
        After ``<name>``; "" keeps the input's name (images that segmentation reads in their stead).
    progress : callable(done, total, name), optional
        After each image.
    **settings
        ``tile``, ``overlap``, ``batch_size``, ``device``, ``axes``, ``channels``.

    Returns
    -------
    list of Path
        The results, one per input image, in input order.
    """
    loaded = denoiser if isinstance(denoiser, tuple) else load_denoiser(denoiser)
    axes, channels = settings.pop("axes", None) or loaded[1].get("axes"), settings.pop("channels", None)
    channels = channels if channels is not None else loaded[1].get("channels")
    files = input_files(inputs)
    written = []
    for i, path in enumerate(files):
        target = Path(output) / f"{file_stem(path)}{suffix}.ome.tif"
        if overwrite or not target.exists():
            image = read_image(path, axes=axes, channels=channels, dims=loaded[0].spec["spatial_dims"])
            result = denoise_image(loaded, image, **settings)
            # one channel is written without a C axis, as most single-channel files are
            data, letters = (result[0], image.axes[1:]) if result.shape[0] == 1 else (result, image.axes)
            write_ome_tiff(target, data.astype(np.float32), axes=letters, pixel_sizes=image.pixel_sizes,
                           unit=image.unit, overwrite=True)
        written.append(target)
        if progress:
            progress(i + 1, len(files), path.name)
    return written


__all__ = ["denoise_files", "denoise_image", "load_denoiser"]
