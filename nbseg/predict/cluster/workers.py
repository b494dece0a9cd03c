"""What the workers of :mod:`.distributed` run: predict a whole image or one block, find the objects
that touch across a block's faces, and renumber a block's objects. Each worker process loads a
project's models once and keeps them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...io.images import Image
from ...io.zarr import write_ome_zarr
from .blocks import block_results, face_pairs
from ..ensemble import ensemble_info, load_ensemble
from ..files import _predict_one
from ..image import model_bounds, predict_image, read_for_models
from ..options import PredictOptions
from ..outputs import write_object_files

__all__ = ["pick_precision", "share_cores", "predict_whole", "image_bounds", "predict_block", "block_face_pairs", "relabel_block",
           "write_result", "write_tables"]

_LOADED: dict = {}  # project -> its models, in each worker process


def _models(project, hosts: dict):
    """The project's models, loaded once per worker process; torch gets this worker's share of the cores."""
    key = str(Path(project).resolve()) if isinstance(project, (str, os.PathLike)) else tuple(map(str, project))
    if key not in _LOADED:
        _LOADED[key] = load_ensemble(project)
    share_cores(hosts)
    return _LOADED[key]


def share_cores(hosts: dict) -> None:
    """Give torch this worker's share of its machine's cores (``hosts``: workers per host)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // hosts.get(_worker_host(), 1)))


def pick_precision(device: str) -> str:
    """The precision "auto" resolves to on this worker's device."""
    from ...runtime import pick_device, pick_precision as pick

    return pick(pick_device(device), "auto")


def _worker_host():
    from dask.distributed import get_worker

    try:
        return get_worker().address.split("://")[-1].rsplit(":", 1)[0]
    except ValueError:  # not in a worker
        return None


def _device(options: PredictOptions) -> str:
    """On a machine with several GPUs, worker N of a local cluster takes GPU N modulo their number."""
    import torch

    if options.device != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return options.device
    from dask.distributed import get_worker

    name = str(get_worker().name)
    return f"cuda:{int(name) % torch.cuda.device_count()}" if name.isdigit() else options.device


def predict_whole(project, path, plan, options, output_dir, hosts) -> dict:
    import dask

    with dask.config.set(scheduler="synchronous"):  # Zarr inputs are read in this worker, not on the cluster
        ensemble = _models(project, hosts)
        options = PredictOptions.build(options, device=_device(options))
        return _predict_one(ensemble, ensemble_info(ensemble), Path(path), plan, options, Path(output_dir))


def image_bounds(project, path, options, hosts) -> list:
    """Each model's normalisation of the whole image, which every block of it then uses."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        ensemble = _models(project, hosts)
        image = read_for_models(path, ensemble_info(ensemble), axes=options.axes, channels=options.channels)
        return model_bounds(ensemble, image)


def predict_block(project, path, block, tile, bounds, arrays, options, hosts) -> dict:
    import dask
    import zarr

    with dask.config.set(scheduler="synchronous"):
        ensemble = _models(project, hosts)
        info = ensemble_info(ensemble)
        image = read_for_models(path, info, axes=options.axes, channels=options.channels)
        part = Image(data=np.asarray(image.data[(slice(None),) + block.src]), axes=image.axes,
                     pixel_sizes=image.pixel_sizes, path=image.path, unit=image.unit)
        if block.work is None:
            prediction = predict_image(ensemble, part, options, tile=tile, dtype=np.float32, bounds=bounds,
                                       device=_device(options))
        else:
            prediction = _scaled_block(ensemble, info, image, part, block, tile, bounds, options)
    crop = block.crop if block.work is None else (slice(None),) * len(block.out)  # restored to ``out`` alone
    results, stats = block_results(prediction, crop, threshold=options.threshold, instances=options.instances,
                                   seed_threshold=options.seed_threshold_for(info))
    for kind, values in results.items():
        lead = (slice(None),) * (values.ndim - len(block.out))
        zarr.open_array(arrays[kind], mode="r+")[lead + block.out] = values
    return stats


def _scaled_block(ensemble, info, image, part, block, tile, bounds, options):
    """A block of a model that works at another scale, as the whole image's prediction has it: its
    input resampled as the whole image is, predicted over the whole image's tiles that reach it,
    and brought back to the block's own pixels."""
    from dataclasses import replace

    from ...data.resample import image_factors, scaled_shape
    from ...data.windows import resample_window, restore_window

    shape = image.spatial_shape
    factors = image_factors(info.scale, info.spacing, image.pixel_sizes, image.unit)
    work = resample_window(part.data, factors, shape, block.work, [s.start for s in block.src])
    prediction = predict_image(ensemble, replace(part, data=work), options, tile=tile, dtype=np.float32,
                               bounds=bounds, device=_device(options), factors=[1.0] * len(shape))
    stored = restore_window(prediction.stored, shape, scaled_shape(shape, factors), block.out,
                            [s.start for s in block.work])
    return replace(prediction, stored=stored)


def block_face_pairs(labels: str, mask: str | None, block, size, offsets, mutual: bool) -> np.ndarray:
    import zarr

    return face_pairs(zarr.open_array(labels, mode="r"), block, size, offsets, mutual=mutual,
                      mask=zarr.open_array(mask, mode="r") if mask else None)


def relabel_block(labels: str, block, offset: int, lookup) -> None:
    import zarr

    array = zarr.open_array(labels, mode="r+")
    local = np.asarray(array[block.out]).astype(np.int64)
    array[block.out] = np.where(local > 0, lookup[local + offset], 0).astype(np.uint32)


def write_tables(paths: dict, labels_path, path, project, options, hosts) -> None:
    """The objects' table (and ROIs) of a blocked image, from its stitched labels; this worker holds
    the whole label image and the input for it."""
    import dask

    from ...io.images import read_image

    with dask.config.set(scheduler="synchronous"):
        ensemble = _models(project, hosts)
        image = read_for_models(path, ensemble_info(ensemble), axes=options.axes, channels=options.channels, lazy=False)
        labels = read_image(labels_path, lazy=False)
    write_object_files(paths, labels.data[0], image=image.data, pixel_sizes=labels.pixel_sizes, unit=image.unit)


def write_result(source: str, target, axes: str, pixel_sizes, labels: bool, dtype, scheduler="synchronous",
                 unit: str | None = "µm") -> None:
    """Write one result of a blocked image as OME-Zarr (with its pyramid) from the blocks' Zarr array.

    ``scheduler``: "synchronous" writes a chunk at a time in this process; a dask.distributed Client spreads
    the chunks of every pyramid level over its workers (each reads its chunk from the blocks' array and writes
    it: nothing passes through the caller). ``unit``: what ``pixel_sizes`` are in ("µm" or "relative")."""
    import dask
    import dask.array as da

    with dask.config.set(scheduler=scheduler):
        data = da.from_zarr(source)
        write_ome_zarr(target, data.astype(dtype) if dtype else data, axes=axes, pixel_sizes=pixel_sizes,
                       unit=unit, overwrite=True, labels=labels)
