"""Predict on a dask.distributed cluster: a local one, SLURM jobs (dask-jobqueue), or a running scheduler.

Images are mapped over the workers; an image larger than ``block``, or than a worker's memory bound
holds whole (:mod:`.block_size`), is cut into blocks (:mod:`.blocks`) that workers predict with nbseg's
own tiled predictor and write straight into Zarr as they finish, so no image passes through this
process. Each worker loads the models once.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ...data.resample import image_factors, is_native, scaled_shape
from ...io.images import file_stem
from ...io.zarr import is_zarr, remove_tree
from ...project import write_json
from ...model.unet import SIZES
from .block_size import BlockSizing, baseline_memory, memory_bound
from .blocks import merge_lookup, plan_blocks
from ..ensemble import check_image, ensemble_info, load_ensemble
from ..files import (RECORD_FILE, TABLE_FILE, _check_earlier_results, _plan_outputs, _ranked, _resolved, input_files,
                     record_roles)
from ..image import choose_tile, read_for_models
from . import workers
from .connect import ClusterError, connect, slurm_settings
from ..options import PredictOptions
from ..outputs import spatial_axes

__all__ = ["ClusterError", "connect", "predict_on_cluster", "slurm_settings"]

RETRIES = 2  # a failed task is run again this often (on any worker) before the run stops


def predict_on_cluster(project, inputs, output_dir, options: PredictOptions | None = None, *, cluster: str = "local",
                       block=None, overwrite: bool = False, progress=None, report=None, timeout: float = 30,
                       **settings):
    """:func:`~nbseg.predict.files.predict_files` on a cluster: the same files and table.

    Parameters
    ----------
    project : str or Path
        A trained project folder (or model files), which every worker must be able to read.
    inputs, output_dir, options, overwrite, **settings
        As for ``predict_files``; ``output_dir`` must be reachable by every worker.
    cluster : str
        See :func:`connect`.
    block : ([Z,] Y, X) sequence of int, optional
        Images larger than this are cut into blocks of it, written as OME-Zarr; a block smaller than one
        tile of the models (in the input's pixels) or, at the models' own scale, not a multiple of what
        the U-Net pools is rounded up (:func:`.block_size.fit_block`). Default: an image that a worker's
        memory bound (``max_memory``, else a share of the workers' memory where known) cannot hold whole
        is cut into the largest blocks of whole tiles it holds (:func:`.block_size.choose_block`); the
        others are predicted whole.
    progress : callable(done, total, name), optional
        Called as each image or block finishes.
    report : callable(str), optional
        Told, one line each, how blocks were rounded or chosen (default: a warning).
    timeout : float
        Seconds to wait for a scheduler at an address.

    Returns
    -------
    DataFrame
        One row per input, most uncertain first; blocked images also give ``blocks`` and, with
        instances, ``merges`` (objects joined across block faces).
    """
    options = PredictOptions.build(options, **settings)
    loaded = isinstance(project, (list, tuple)) and project and isinstance(project[0], (list, tuple))
    if loaded or not isinstance(project, (str, os.PathLike, list, tuple)):
        raise ValueError("On a cluster each worker loads the models itself: give the project folder or model "
                         "files, not loaded models.")
    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    output_dir, files = Path(output_dir), input_files(inputs)
    sizing = BlockSizing(block, *memory_bound(options.max_memory, cluster, project),
                         width=max(SIZES[model.spec.get("size", "S")][0] for model, _ in ensemble),
                         baseline=baseline_memory())
    jobs = _plan_images(files, info, options, sizing)
    for line in sizing.lines():
        (report or (lambda text: warnings.warn(text, UserWarning, stacklevel=3)))(line)
    plans = _plan_outputs(files, output_dir, options.instances, interior=info.kind == "instances",
                          format_for=lambda path: "zarr" if jobs[path]["blocks"] else options.format_for(path),
                          rois=options.rois)
    record = _check_earlier_results(output_dir, plans, options.record([_resolved(m.get("source"))
                                                                       for _, m in ensemble]), overwrite)
    record_roles(record, ensemble, files)
    todo = [p for p in files if overwrite or not all(q.exists() for q in plans[file_stem(p)].values())]
    rows = {}
    if todo:
        # connected before writing: a bad address writes nothing
        with connect(cluster, project=project, timeout=timeout) as client:
            if options.precision == "auto":  # resolved once, on a worker (its device): every block alike, no seams
                precision = client.submit(workers.pick_precision, options.device, pure=False).result()
                options = PredictOptions.build(options, precision=precision)
            output_dir.mkdir(parents=True, exist_ok=True)
            write_json(output_dir / RECORD_FILE, record)
            rows = _run(client, project, todo, jobs, plans, options, output_dir, progress)
    for stem, row in rows.items():
        record["images"][stem] = {k: v for k, v in row.items() if k != "status"}
    write_json(output_dir / RECORD_FILE, record)
    table = [rows.get(file_stem(p)) or {**(record["images"].get(file_stem(p)) or {"image": file_stem(p),
                                                                                  "input": str(p)}),
                                         "status": "done earlier"} for p in files]
    return _ranked(table, output_dir / TABLE_FILE, record["roles"])


def _plan_images(files, info, options: PredictOptions, sizing: BlockSizing) -> dict:
    """Check every input (nothing is written yet) and plan its blocks: ``{path: {tile, blocks, shape, ...}}``."""
    jobs = {}
    for path in files:
        image = read_for_models(path, info, axes=options.axes, channels=options.channels)
        check_image(image, info)
        factors = image_factors(info.scale, info.spacing, image.pixel_sizes, image.unit)
        native = is_native(factors)  # else blocks are resampled to the models' scale, tiled there and restored
        tile = choose_tile(options.tile, image.spatial_shape if native else scaled_shape(image.spatial_shape, factors),
                           info)
        itemsize = getattr(getattr(image.data, "dtype", None), "itemsize", 4)
        size = sizing.size(path, image.spatial_shape, tile, factors, info, options, itemsize)
        blocks = []
        if size is not None and any(n > b for n, b in zip(image.spatial_shape, size)):
            blocks = plan_blocks(image.spatial_shape, size, tile, options.overlap, None if native else factors)
        why = "with --block" if sizing.block is not None else "too large for a worker's memory bound"
        if blocks and options.threshold == "otsu":
            raise ValueError(f"threshold 'otsu' is chosen from a whole image, but {path} is cut into blocks ({why}); "
                             "give a number (CLI: --threshold 0.5), or no --block and a --max-memory that holds it.")
        if blocks and options.format == "tiff":
            raise ValueError(f"{path} is cut into blocks ({why}), which are written into OME-Zarr; use format 'zarr' "
                             "or 'auto' (CLI: --format zarr), or no --block and a --max-memory that holds it.")
        jobs[path] = {"tile": tile, "blocks": blocks, "shape": image.spatial_shape, "pixel_sizes": image.pixel_sizes,
                      "unit": image.unit, "block": size, "classes": info.n_classes if info.kind == "multiclass" else None,
                      "interior": info.kind == "instances",
                      "min_size": options.min_size_for(info, image.pixel_sizes, image.unit)}
    return jobs


def _run(client, project, todo, jobs, plans, options, output_dir, progress) -> dict:
    """Submit every image (or its blocks), report each as it finishes, then stitch and write the blocked ones."""
    futures, names, scratch = [], {}, {}
    hosts = workers_per_host(client)
    for path in todo:
        stem, job = file_stem(path), jobs[path]
        if not job["blocks"]:
            future = client.submit(workers.predict_whole, project, path, plans[stem], options, output_dir, hosts,
                                   retries=RETRIES, pure=False)
            names[future.key] = (stem, None, None)
            futures.append(future)
            continue
        scratch[path] = _scratch_arrays(output_dir / f".{stem}.blocks", job, plans[stem])
        bounds = client.submit(workers.image_bounds, project, path, options, hosts, retries=RETRIES, pure=False)
        for block in job["blocks"]:
            future = client.submit(workers.predict_block, project, path, block, job["tile"], bounds, scratch[path],
                                   options, hosts, retries=RETRIES, pure=False)
            names[future.key] = (stem, block, len(job["blocks"]))
            futures.append(future)
    try:
        return _collect(client, project, futures, names, jobs, plans, scratch, options, hosts, progress)
    finally:  # the blocks' arrays: copied into the results, or incomplete after a failure
        for arrays in scratch.values():
            remove_tree(Path(next(iter(arrays.values()))).parent)


def _collect(client, project, futures, names, jobs, plans, scratch, options, hosts, progress) -> dict:
    """Report each image or block as it finishes, then stitch and write the blocked images."""
    from dask.distributed import as_completed

    rows, stats = {}, {}
    for done, future in enumerate(as_completed(futures), start=1):
        stem, block, _ = names[future.key]
        if future.status == "error":
            client.cancel(futures)
            _failed(future, stem, block)
        if block is None:
            rows[stem] = future.result()
        else:
            stats.setdefault(stem, {})[block.index] = future.result()
        if progress:
            progress(done, len(futures), stem if block is None else f"{stem} block {list(block.index)}")
    for path, arrays in scratch.items():
        stem = file_stem(path)
        rows[stem] = _finish_blocked(client, project, path, jobs[path], plans[stem], arrays, stats[stem], options,
                                     hosts)
    return rows


def _failed(future, stem: str, block) -> None:
    error = future.exception()
    where = stem if block is None else f"block {list(block.index)} of {stem} (pixels " + \
        ", ".join(f"{s.start}:{s.stop}" for s in block.out) + ")"
    raise ClusterError(f"Predicting {where} failed {RETRIES + 1} times; the last error: {type(error).__name__}: "
                       f"{error}. Nothing more was started; run again to continue (finished images are kept).")


def _scratch_arrays(folder: Path, job: dict, plan: dict) -> dict:
    """Zarr arrays, chunked by block (each block writes whole chunks of its own), that blocks fill."""
    import zarr

    remove_tree(folder)
    shape, block = job["shape"], tuple(min(b, n) for b, n in zip(job["block"], job["shape"]))
    arrays = {}
    for kind in (k for k, target in plan.items() if is_zarr(target)):  # not the objects' table and ROIs
        channels = (job["classes"],) if kind == "prob" and job["classes"] else ()
        dtype = {"mask": "uint8", "labels": "uint32"}.get(kind, "float32")
        zarr.create_array(str(folder / f"{kind}.zarr"), shape=channels + shape, chunks=channels + block, dtype=dtype,
                          fill_value=0)
        arrays[kind] = str(folder / f"{kind}.zarr")
    return arrays


def _finish_blocked(client, project, path, job, plan, arrays, stats, options, hosts) -> dict:
    """Stitch objects across block faces, write the OME-Zarr results (on the cluster) and return the row."""

    total = {k: sum(s[k] for s in stats.values()) for k in ("uncertainty_sum", "uncertainty_count", "foreground",
                                                             "pixels")}
    row = {"image": file_stem(path), "input": str(path),
           "uncertainty": total["uncertainty_sum"] / total["uncertainty_count"] if total["uncertainty_count"] else 0.0,
           "foreground_fraction": total["foreground"] / max(1, total["pixels"]),
           "threshold": None if job["classes"] else options.threshold, "blocks": len(job["blocks"])}
    if "labels" in arrays:
        row["objects"], row["merges"] = _stitch(client, job, arrays["labels"], stats, job["min_size"],
                                                mask=arrays["mask"], mutual=job["interior"])
    spatial = spatial_axes(len(job["shape"]))
    dtypes = {"labels": "uint16" if row.get("objects", 0) < 2**16 else "uint32"}

    def write(kinds):  # from the blocks' Zarr arrays, chunk by chunk on every worker
        for k in kinds:
            axes = ("C" if k == "prob" and job["classes"] else "") + spatial
            try:
                workers.write_result(arrays[k], plan[k], axes, job["pixel_sizes"], k in ("mask", "labels"),
                                     dtypes.get(k), scheduler=client, unit=job["unit"])
            except Exception as err:  # noqa: BLE001 - named, with what failed
                raise ClusterError(f"Writing {Path(plan[k]).name} of {path} failed: {type(err).__name__}: "
                                   f"{err}.") from err

    write([k for k in plan if k in arrays and k != "mask"])
    tables = {k: v for k, v in plan.items() if k not in arrays}  # the objects' table and ROIs, from the labels
    if tables:
        _gather(client, [client.submit(workers.write_tables, tables, plan["labels"], path, project, options, hosts,
                                       retries=RETRIES, pure=False)], f"writing the objects' table of {path}")
    write(["mask"])  # last: it marks the image done
    return {**row, "status": "predicted"}


def _stitch(client, job, labels: str, stats: dict, min_size: int, *, mask: str | None = None,
            mutual: bool = False) -> tuple[int, int]:
    """Give objects that touch across block faces one id, unique over the image; returns (objects, merges).
    ``mask``: only its pixels join objects; ``mutual``: join only the pairs that touch each other most
    (objects a watershed split)."""
    blocks = sorted(job["blocks"], key=lambda b: b.index)
    total = 0
    grid = tuple(max(b.index[d] for b in blocks) + 1 for d in range(len(blocks[0].index)))
    offsets = np.zeros(grid, np.int64)
    for b in blocks:
        offsets[b.index], total = total, total + len(stats[b.index]["counts"]) - 1
    size = tuple(s.stop - s.start for s in blocks[0].out)
    pairs = _gather(client, [client.submit(workers.block_face_pairs, labels, mask, b, size, offsets, mutual,
                                           retries=RETRIES, pure=False) for b in blocks],
                    "finding objects across block faces")
    lookup, merges = merge_lookup({b.index: stats[b.index]["counts"] for b in blocks},
                                  {b.index: int(offsets[b.index]) for b in blocks}, np.concatenate(pairs), min_size)
    shared = client.scatter(lookup, broadcast=True)
    _gather(client, [client.submit(workers.relabel_block, labels, b, int(offsets[b.index]), shared, retries=RETRIES,
                                   pure=False) for b in blocks], "numbering the stitched objects")
    return int(lookup.max(initial=0)), merges


def _gather(client, futures, what: str) -> list:
    try:
        return client.gather(futures)
    except Exception as err:
        raise ClusterError(f"{what.capitalize()} failed {RETRIES + 1} times: {type(err).__name__}: {err}.") from err


def workers_per_host(client) -> dict:
    """``{host: number of workers}`` of ``client``'s cluster."""
    workers = client.scheduler_info().get("workers", {}).values()
    hosts: dict = {}
    for worker in workers:
        hosts[worker.get("host")] = hosts.get(worker.get("host"), 0) + 1
    return hosts
