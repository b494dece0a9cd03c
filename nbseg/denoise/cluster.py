"""Denoise on a dask cluster (``nbseg denoise predict --cluster``) with the pieces of segmentation's
(:mod:`nbseg.predict.cluster`): the same clusters (:func:`~nbseg.predict.cluster.connect`), blocks that read the
halo of every tile reaching into them (:func:`~nbseg.predict.cluster.blocks.plan_blocks`), sized as there
(:class:`~nbseg.predict.cluster.block_size.BlockSizing`), and its OME-Zarr writer of blocked results.

A whole image is denoised on a worker by :func:`.predict.denoise_files`, so it is the file a local run writes. A
blocked one is normalised by the whole image's percentiles and each block is denoised over the whole image's tiles,
so the blocks agree with the whole image's result up to float rounding; it is written as OME-Zarr.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..data.normalize import intensity_bounds
from ..io.images import file_stem, read_image
from ..io.zarr import remove_tree
from ..metrics.restoration import DENOISED
from ..model.unet import SIZES, pooling_divisors
from ..predict.cluster import ClusterError, connect
from ..predict.cluster.block_size import BlockSizing, baseline_memory, memory_bound
from ..predict.cluster.blocks import plan_blocks
from ..predict.cluster.distributed import RETRIES, workers_per_host
from ..predict.cluster.workers import share_cores, write_result
from ..predict.files import input_files
from .predict import _check, _tile, denoise_files, denoise_image, load_denoiser

__all__ = ["denoise_on_cluster"]

_LOADED: dict = {}  # denoiser -> (model, meta), in each worker process


def denoise_on_cluster(denoiser, inputs, output, *, cluster: str = "local", block=None, max_memory=None,
                       overwrite: bool = False, suffix: str = DENOISED, progress=None, report=None,
                       timeout: float = 30, **settings) -> list[Path]:
    """:func:`.predict.denoise_files` on a dask cluster: the same files, blocked images as OME-Zarr.

    Parameters
    ----------
    denoiser : str or Path
        A denoiser project or model file that every worker can read.
    inputs, output, overwrite, suffix, progress
        As for ``denoise_files``; ``output`` must be reachable by every worker.
    cluster : str
        ``local``, ``local:N``, ``slurm`` or a scheduler's address (:func:`nbseg.predict.cluster.connect`).
    block : ([Z,] Y, X) sequence of int, optional
        Images larger than this are cut into blocks of it (rounded up to whole tiles). Default: an image a
        worker's memory bound (``max_memory``, else a share of the workers' memory where known) cannot hold
        whole is cut into the largest blocks of whole tiles it holds.
    max_memory : str or int, optional
        The bytes one worker may take, e.g. "2GB".
    report : callable(str), optional
        Told how blocks were rounded or chosen (default: print).
    **settings
        ``tile``, ``overlap``, ``batch_size``, ``device``, ``axes``, ``channels``.

    Returns
    -------
    list of Path
        The results (``<name><suffix>.ome.tif``, or ``.ome.zarr`` for blocked images), in input order.
    """
    model, meta = load_denoiser(denoiser)
    settings["axes"] = settings.get("axes") or meta.get("axes")
    settings["channels"] = settings["channels"] if settings.get("channels") is not None else meta.get("channels")
    output, files = Path(output), input_files(inputs)
    spec = model.spec
    sizing = BlockSizing(block, *memory_bound(max_memory, cluster, denoiser if Path(denoiser).is_dir() else None),
                         width=SIZES[spec.get("size", "S")][0], baseline=baseline_memory())
    jobs = {path: _plan(path, output, suffix, spec, meta, sizing, settings) for path in files}
    for line in sizing.lines():
        (report or print)(line)
    todo = [p for p in files if overwrite or not jobs[p]["target"].exists()]
    if todo:
        output.mkdir(parents=True, exist_ok=True)
        with connect(cluster, project=denoiser if Path(denoiser).is_dir() else None, timeout=timeout) as client:
            _run(client, denoiser, todo, jobs, output, suffix, settings, progress)
    return [jobs[p]["target"] for p in files]


def _plan(path, output: Path, suffix: str, spec: dict, meta: dict, sizing: BlockSizing, settings: dict) -> dict:
    """Check one input (nothing is written yet) and plan its blocks."""
    image = read_image(path, axes=settings["axes"], channels=settings["channels"], dims=spec["spatial_dims"])
    _check(image.data, spec, path)
    shape, channels = image.spatial_shape, image.data.shape[0]
    tile = _tile(settings.get("tile"), shape, spec, meta)
    # what block_size asks of the models and the run: a denoiser gives as many outputs as it takes channels
    divisors = pooling_divisors(spec["spatial_dims"], spec["size"], pool_z=spec.get("pool_z", True))
    info = SimpleNamespace(divisors=divisors, in_channels=channels, n_classes=channels)
    run = SimpleNamespace(batch_size=settings.get("batch_size") or 4, instances=False)
    size = sizing.size(path, shape, tile, None, info, run, getattr(image.data.dtype, "itemsize", 4))
    blocks = plan_blocks(shape, size, tile, settings.get("overlap", 0.5)) if size is not None and any(
        n > b for n, b in zip(shape, size)) else []
    target = output / f"{file_stem(path)}{suffix}.ome.{'zarr' if blocks else 'tif'}"
    # one channel is written without a C axis, as denoise_files does
    axes = image.axes[1:] if channels == 1 else image.axes
    return {"target": target, "tile": tile, "blocks": blocks, "shape": shape, "channels": channels, "axes": axes,
            "pixel_sizes": image.pixel_sizes}


def _run(client, denoiser, todo, jobs, output: Path, suffix: str, settings: dict, progress) -> None:
    """Submit every image (or its blocks), report each as it finishes, then write the blocked ones."""
    from dask.distributed import as_completed

    hosts, futures, names, scratch = workers_per_host(client), [], {}, {}
    for path in todo:
        job = jobs[path]
        if not job["blocks"]:
            futures.append(client.submit(_denoise_whole, denoiser, path, output, suffix, settings, hosts,
                                         retries=RETRIES, pure=False))
            names[futures[-1].key] = path.name
            continue
        scratch[path] = _scratch_array(output / f".{file_stem(path)}.blocks", job)
        bounds = client.submit(_image_bounds, denoiser, path, settings, hosts, retries=RETRIES, pure=False)
        for b in job["blocks"]:
            futures.append(client.submit(_denoise_block, denoiser, path, b, job["tile"], bounds, scratch[path],
                                         settings, hosts, retries=RETRIES, pure=False))
            names[futures[-1].key] = f"{path.name} block {list(b.index)}"
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            if future.status == "error":
                client.cancel(futures)
                error = future.exception()
                raise ClusterError(f"Denoising {names[future.key]} failed {RETRIES + 1} times; the last error: "
                                   f"{type(error).__name__}: {error}. Run again to continue (finished images are "
                                   "kept).")
            if progress:
                progress(done, len(futures), names[future.key])
        for path, array in scratch.items():
            _write_blocked(client, array, jobs[path])
    finally:  # the blocks' arrays: copied into the results, or incomplete after a failure
        for array in scratch.values():
            remove_tree(Path(array).parent)


def _scratch_array(folder: Path, job: dict) -> str:
    """A Zarr array chunked by block (each block writes whole chunks of its own) that the blocks fill."""
    import zarr

    remove_tree(folder)
    lead = (job["channels"],) if job["channels"] > 1 else ()
    block = tuple(min(s.stop - s.start, n) for s, n in zip(job["blocks"][0].out, job["shape"]))
    zarr.create_array(str(folder / "denoised.zarr"), shape=lead + job["shape"], chunks=lead + block, dtype="float32",
                      fill_value=0)
    return str(folder / "denoised.zarr")


def _write_blocked(client, array: str, job: dict) -> None:
    """The OME-Zarr result, written chunk by chunk on the workers (``write_ome_zarr`` writes to a temporary
    folder and renames it when complete: an interrupted write leaves no result that a rerun would take as done)."""
    target = job["target"]
    try:
        write_result(array, target, job["axes"], job["pixel_sizes"], False, None, scheduler=client)
    except Exception as err:  # noqa: BLE001 - named, with what failed
        raise ClusterError(f"Writing {target.name} failed: {type(err).__name__}: {err}.") from err


def _loaded(denoiser, hosts: dict):
    """The denoiser, loaded once per worker process; torch gets this worker's share of the cores."""
    key = str(Path(denoiser).resolve())
    if key not in _LOADED:
        _LOADED[key] = load_denoiser(denoiser)
    share_cores(hosts)
    return _LOADED[key]


def _denoise_whole(denoiser, path, output, suffix: str, settings: dict, hosts: dict) -> None:
    import dask

    with dask.config.set(scheduler="synchronous"):  # Zarr inputs are read in this worker, not on the cluster
        denoise_files(_loaded(denoiser, hosts), [path], output, overwrite=True, suffix=suffix, **settings)


def _image_bounds(denoiser, path, settings: dict, hosts: dict) -> tuple:
    """The whole image's normalisation, which every block of it then uses."""
    import dask

    model, meta = _loaded(denoiser, hosts)
    with dask.config.set(scheduler="synchronous"):
        image = read_image(path, axes=settings["axes"], channels=settings["channels"],
                           dims=model.spec["spatial_dims"], lazy=False)
    return intensity_bounds(image.data, meta["percentiles"])


def _denoise_block(denoiser, path, block, tile, bounds, array: str, settings: dict, hosts: dict) -> None:
    import dask
    import zarr

    loaded = _loaded(denoiser, hosts)
    with dask.config.set(scheduler="synchronous"):
        image = read_image(path, axes=settings["axes"], channels=settings["channels"],
                           dims=loaded[0].spec["spatial_dims"])
        part = np.asarray(image.data[(slice(None),) + block.src])
    result = denoise_image(loaded, part, tile=tile, bounds=bounds, overlap=settings.get("overlap", 0.5),
                           batch_size=settings.get("batch_size") or 4, device=settings.get("device") or "auto")
    values = result[(slice(None),) + block.crop]
    target = zarr.open_array(array, mode="r+")
    target[((slice(None),) if values.shape[0] > 1 else ()) + block.out] = values if values.shape[0] > 1 else values[0]
