"""How much memory a prediction takes, and the settings that keep it under a bound (``--max-memory``).

A prediction holds, at its peak, the input image, the one-tile-high blending buffer of
:func:`~nbseg.model.tiling.sliding_window`, the tiles in flight with the network's activations for the
tile images (tiles x TTA variants) of one forward pass, the results (float16, or a file on disk when
they do not fit), and afterwards the 8-bit results :func:`~nbseg.predict.outputs.write_results` builds.
:func:`plan_memory` estimates each part and picks the largest batch and forward pass, and where the
results are kept, that stay under the bound; the tile is never changed (it changes the result), so a
bound too tight for one tile is refused with the smallest that would do. :func:`batch_for_budget`
halves a batch until its estimate fits (the CUDA out-of-memory retry, :mod:`.oom`, halves the same way).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .inference import forward_images
from .heap import _status_bytes, current_memory, measure_growth, release  # noqa: F401 - this module's face
from .sizes import MemoryBudgetError, format_size, parse_size

# Network activations per voxel of a tile, per channel of the U-Net's first level: measured on CPU
# (peak RSS of one forward pass of the fused inference copy) at 23-31 for sizes S, M and L in
# 2D and 3D; 32 keeps a margin.
ACTIVATION_BYTES = 32

@dataclass(frozen=True)
class MemoryPlan:
    """What :func:`plan_memory` chose.

    Attributes
    ----------
    batch_size : int
        Tiles per step.
    results_in_memory : bool
        False: the results are written to a scratch file as they are made (see ``DiskArray``).
    peak : int
        Estimated peak in bytes, the process's ``baseline`` included.
    parts : dict of str -> int
        The estimate's parts at that peak, in bytes.
    images : int or None
        Tile images (tiles x TTA variants) per forward pass (``TilePredictor.images``).
    """

    batch_size: int
    results_in_memory: bool
    peak: int
    parts: dict = field(default_factory=dict)
    images: int | None = None


def prediction_parts(*, spatial, in_channels: int, n_out: int, tile, batch_size: int, width: int,
                     image_itemsize: int = 4, result_itemsize: int = 2, results_in_memory: bool = True,
                     cpu: bool = True, images: int | None = None, labels: bool = False,
                     network=None, source=None) -> dict:
    """Estimated bytes of each part of a prediction, in its phases.

    Parameters
    ----------
    spatial : ([Z,] Y, X) tuple of int
        The image's spatial shape (at the models' scale).
    in_channels, n_out : int
        Channels of the image, and of the stored results (classes 1..K-1 plus uncertainty).
    tile : ([Z,] Y, X) tuple of int
    batch_size : int
        Tiles per step.
    width : int
        Channels of the U-Net's first level (16 for size S, 32 for M and L).
    image_itemsize, result_itemsize : int
        Bytes per value of the image and of the stored results.
    results_in_memory : bool
    cpu : bool
        On a GPU the activations live on the GPU and are not counted.
    images : int, optional
        Tile images (tiles x TTA variants) per forward pass; default ``batch_size``.
    labels : bool
        Object labels are made afterwards (``instances``).
    network : callable(int) -> int, optional
        Measured bytes the per-tile function takes for forward passes of that many tile images (see
        :func:`network_cost`); default an estimate from ``width``.
    source : ([Z,] Y, X) tuple of int, optional
        The input's spatial shape when the models work at another scale: the whole image is resampled
        to ``spatial`` (a float32 copy) before tiling and the results back to ``source`` afterwards
        (:mod:`nbseg.data.resample`). None: the image is predicted at its own scale.

    Returns
    -------
    dict
        ``{"tiling": {...}, "writing": {...}}``, and ``"restoring"`` with ``source``: each phase's parts.
    """
    voxels, tile_voxels = int(np.prod(spatial)), int(np.prod(tile))
    source_voxels = int(np.prod(source)) if source is not None else voxels
    image = in_channels * source_voxels * image_itemsize
    results = n_out * voxels * result_itemsize if results_in_memory else 0
    images = batch_size if images is None else images
    tiling = {
        "image": image,
        "results": results,
        "blending buffer": n_out * min(tile[0], spatial[0]) * int(np.prod(spatial[1:])) * 4,
        # per tile: the tile cut out, normalised, the running sum of probabilities and the output; per image
        # of a forward pass: its input, its probabilities and one turned back; one weighted tile to blend
        "tiles in flight": tile_voxels * 4 * (batch_size * (2 * in_channels + 2 * n_out)
                                              + images * (in_channels + 2 * n_out) + n_out),
        "network activations": images * tile_voxels * width * ACTIVATION_BYTES if cpu else 0,
    }
    restoring, final = None, n_out * source_voxels * result_itemsize if results_in_memory else 0
    if source is not None:  # the input stays while its working-scale copy is predicted and restored
        tiling["resampled image"] = in_channels * voxels * 4
        restoring = {
            "image": image, "resampled image": tiling["resampled image"], "results": results,
            "restored results": final,
            # one slab of 8 output slices at a time, float32, per class and its stacked copy
            "restore slab": 2 * n_out * min(8, source[0]) * int(np.prod(source[1:])) * 4,
        }
    if network is not None:  # measured: the predictor's whole call, normalising and TTA included
        # outside it: the batch of tiles cut out, its output while it is blended, one weighted tile
        tiling["tiles in flight"] = tile_voxels * 4 * (batch_size * (in_channels + n_out) + n_out)
        tiling["network activations"] = int(network(images))
    # on disk, binary results are read a slab at a time (and released); the interior channel
    # (instances) and multi-class probabilities are read whole; all at the input's shape
    read_whole = n_out * source_voxels * result_itemsize if (labels or n_out > 2) else 0
    writing = {
        "image": image,
        "results": final or read_whole,
        # 8-bit probability and uncertainty, the mask and a comparison's temporary; labels: int32 and more
        "8-bit results and mask": source_voxels * (4 + (12 if labels else 0)),
    }
    return {"tiling": tiling, "writing": writing, **({"restoring": restoring} if restoring else {})}


def plan_memory(max_memory, *, spatial, in_channels: int, n_out: int, tile, batch_size: int, width: int,
                baseline: int | None = None, variants: int = 1, max_images: int | None = None,
                **details) -> MemoryPlan:
    """The largest batch (at most ``batch_size``) and forward pass, and the place of the results, that
    stay under ``max_memory``.

    On a CPU a forward pass takes every TTA variant of the batch's tiles where the bound allows (see
    :func:`steps`); on a GPU, whose activations the bound does not count, one image per tile.

    Parameters
    ----------
    max_memory : int or str
        The bound on the whole process, e.g. ``"2GB"`` (see :func:`parse_size`).
    spatial, in_channels, n_out, tile, batch_size, width, **details
        As for :func:`prediction_parts`.
    variants : int
        TTA variants of each tile a model sees.
    baseline : int, optional
        Bytes the process holds already (the interpreter, torch, the models); default its
        resident memory now (psutil; 0 where psutil is missing).
    max_images : int, optional
        At most this many tile images per forward pass, whatever the bound allows.

    Returns
    -------
    MemoryPlan

    Raises
    ------
    MemoryBudgetError
        If even one tile, with the results on disk, needs more; the message gives the least bound
        that would do and suggests a smaller tile.
    """
    budget = parse_size(max_memory)
    baseline = current_memory() if baseline is None else int(baseline)
    fitting, needs = [], []
    ladder = steps(batch_size, variants if details.get("cpu", True) else 1)
    if max_images:
        ladder = list(dict.fromkeys((b, min(i, int(max_images))) for b, i in ladder))
    for in_memory in (True, False):  # the largest step wins; results stay in memory when it is a tie
        def peak(step, in_memory=in_memory):
            parts = prediction_parts(spatial=spatial, in_channels=in_channels, n_out=n_out, tile=tile,
                                     batch_size=step[0], images=step[1], width=width, results_in_memory=in_memory,
                                     **details)
            return baseline + max(sum(p.values()) for p in parts.values()), parts

        rung = next((k for k, step in enumerate(ladder) if peak(step)[0] <= budget), len(ladder) - 1)
        total, parts = peak(ladder[rung])
        needs.append(total)
        if total <= budget:
            batch, images = ladder[rung]
            fitting.append((rung, MemoryPlan(batch, in_memory, total, parts, images=images)))
    if fitting:
        return min(fitting, key=lambda fit: fit[0])[1]  # min keeps the first of equals
    raise MemoryBudgetError(
        f"max_memory {format_size(budget)} is too little to predict this image ({tuple(spatial)}, tile "
        f"{list(tile)}): one tile at a time with the results on disk needs about {format_size(min(needs), up=True)} "
        f"(of which {format_size(baseline)} is held already by Python, torch and the models). Give at least "
        f"that (CLI: --max-memory), or a smaller tile (CLI: --tile)."
    )


def steps(batch_size: int, variants: int = 1) -> list:
    """``(tiles per step, images per forward pass)`` from the largest to one image: the batch halved, each
    pass taking every variant of its tiles, then one tile with its variants split in halves.

    Examples
    --------
    >>> steps(4, 3)
    [(4, 12), (2, 6), (1, 3), (1, 1)]
    """
    ladder, batch = [], max(1, int(batch_size))
    while True:
        ladder.append((batch, batch * variants))
        if batch == 1:
            break
        batch //= 2
    images = variants // 2
    while images >= 1:
        ladder.append((1, images))
        images //= 2
    return ladder


def plan_prediction(options, ensemble, info, image, spatial, tile, predictor, result_dtype) -> MemoryPlan:
    """:func:`plan_memory` for one image of :func:`~nbseg.predict.image.predict_image` under
    ``options.max_memory``.

    Parameters
    ----------
    options : PredictOptions
    ensemble : list of (model, meta)
    info : EnsembleInfo
    image : Image
        The input (its channels and dtype).
    spatial : ([Z,] Y, X) tuple of int
        The shape predicted (at the models' scale).
    tile : ([Z,] Y, X) tuple of int
    predictor : TilePredictor
        The per-tile function; run on one and two blank tiles to measure what the network takes.
    result_dtype : numpy dtype
    """
    from ..model.unet import SIZES

    width = max(SIZES[model.spec.get("size", "S")][0] for model, _ in ensemble)
    itemsize = getattr(getattr(image.data, "dtype", None), "itemsize", 4)
    cpu = predictor.device.type == "cpu"
    source = tuple(image.spatial_shape) if tuple(image.spatial_shape) != tuple(spatial) else None  # resampled
    return plan_memory(options.max_memory, spatial=tuple(spatial), in_channels=info.in_channels,
                       n_out=info.n_classes, tile=tuple(tile), batch_size=options.batch_size, width=width,
                       source=source,
                       image_itemsize=itemsize, result_itemsize=np.dtype(result_dtype).itemsize, cpu=cpu,
                       labels=options.instances, variants=len(predictor.variants),
                       # a bound never makes a pass larger than an unbounded run's: on a CPU a larger one
                       # buys ~7 % (one oneDNN tile runs as fast per tile as two) for up to 60 % more peak
                       max_images=forward_images(predictor.device, tile, options.batch_size) if cpu else None,
                       network=network_cost(predictor, info.in_channels, tile))


def network_cost(predictor, in_channels: int, tile):
    """Bytes the per-tile function takes for forward passes of ``f`` tile images, measured on one blank tile
    (passes of one image) and two (passes of two).

    The first call at a batch shape costs most (the CPU's convolution library sets itself up
    for it, 100+ MB for a small 3D tile), so both measurements are first calls; beyond two
    images the cost grows by their difference per image (which also counts a tile's running sums
    once per image: at most one per tile). None where it cannot be measured (:func:`measure_growth`):
    the estimate from the network's width is used then.
    """
    import torch

    from .heap import trim

    def call(b):
        predictor.images = b
        predictor(torch.zeros((b, in_channels) + tuple(tile)))

    before = predictor.images
    try:
        one, two = (measure_growth(lambda b=b: call(b)) for b in (1, 2))
    finally:
        predictor.images = before
    trim()  # what the measurements freed is not part of the baseline measured next
    if one is None or two is None:
        return None
    return lambda images: one + max(0, two - one) * (images - 1)


def batch_for_budget(budget: int, need, batch_size: int) -> int:
    """Halve ``batch_size`` until ``need(batch)`` (bytes) fits ``budget``; 1 if nothing fits.

    Parameters
    ----------
    budget : int
        Bytes available.
    need : callable(int) -> int
        Bytes a batch of that many tiles needs.
    batch_size : int
        The batch wanted (the most returned).
    """
    batch = max(1, int(batch_size))
    while batch > 1 and need(batch) > budget:
        batch //= 2
    return batch


__all__ = ["MemoryBudgetError", "MemoryPlan", "batch_for_budget", "current_memory", "format_size",
           "parse_size", "plan_memory", "plan_prediction", "prediction_parts", "release"]
