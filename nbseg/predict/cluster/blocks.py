"""Cut a large image into blocks that workers predict on their own, and stitch their objects.

A block reads its own pixels plus a halo made of every tile of the whole image's sliding-window
grid that reaches into it, so its prediction (by the one tiled predictor, :mod:`nbseg.model.tiling`) sees
the same tiles, blended with the same weights, as a prediction of the whole image: the
probabilities agree up to float rounding. The halo is cropped before anything is written.

Objects are labelled per block; those that touch across a block face are joined (a graph of
face pairs, split into connected components) and numbered once over the whole image.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ...data.resample import is_native, scaled_shape
from ...data.windows import restore_source, source_window
from ..outputs import to_uint8
from ..post import DEFAULT_SEED_THRESHOLD, classes, instances as label_instances
from ...model.tiling import axis_placements

__all__ = ["Block", "plan_blocks", "block_results", "face_pairs", "mutual_best", "merge_lookup"]


@dataclass(frozen=True)
class Block:
    """One block of an image.

    Attributes
    ----------
    index : tuple of int
        Its place in the grid of blocks.
    out : tuple of slice
        The ``([Z,] Y, X)`` pixels it writes.
    src : tuple of slice
        The pixels it reads: ``out`` and the halo of tiles that reach into it.
    work : tuple of slice, optional
        For models at another working scale: the pixels of the resampled image it predicts (the
        tiles that reach into what restoring ``out`` reads); ``src`` then holds what resampling
        them reads.
    """

    index: tuple
    out: tuple
    src: tuple
    work: tuple | None = None

    @property
    def crop(self) -> tuple:
        """``out`` within ``src``."""
        return tuple(slice(o.start - s.start, o.stop - s.start) for o, s in zip(self.out, self.src))


def plan_blocks(shape, block, tile, overlap: float, factors=None) -> list[Block]:
    """The blocks of an image of ``([Z,] Y, X)`` ``shape``, in row-major order.

    Parameters
    ----------
    shape, block : ([Z,] Y, X) tuple of int
    tile : ([Z,] Y, X) tuple of int
        The predictor's, at the models' working scale.
    overlap : float
        The predictor's tile overlap (it sets the tile grid, hence the halo).
    factors : ([Z,] Y, X) sequence of float, optional
        The working scale the models predict this image at (:func:`nbseg.data.resample.image_factors`);
        blocks then read what resampling, tiling and restoring their pixels needs (``Block.work``).
    """
    work_shape = shape if is_native(factors) else scaled_shape(shape, factors)
    grids = [axis_placements(n, t, overlap) for n, t in zip(work_shape, tile)]
    spans = [[(start, min(start + b, n)) for start in range(0, n, b)] for n, b in zip(shape, block)]
    blocks = []
    for index in itertools.product(*(range(len(s)) for s in spans)):
        out = tuple(slice(*spans[d][i]) for d, i in enumerate(index))
        if is_native(factors):
            blocks.append(Block(index, out, tuple(_reach(g, o) for g, o in zip(grids, out))))
            continue
        work = tuple(_reach(g, r) for g, r in zip(grids, restore_source(out, shape, work_shape)))
        blocks.append(Block(index, out, source_window(work, shape, factors), work))
    return blocks


def _reach(placements, out: slice) -> slice:
    """From the first to the last pixel of the tiles that reach into ``out``."""
    hit = [p for p in placements if p.start < out.stop and p.stop > out.start]
    return slice(min(p.start for p in hit), max(p.stop for p in hit))


def block_results(prediction, crop, *, threshold: float, instances: bool,
                  seed_threshold: float = DEFAULT_SEED_THRESHOLD) -> tuple[dict, dict]:
    """The result arrays of one block (halo cropped) and its share of the image's summary.

    The rules are those of :func:`nbseg.predict.outputs.write_results` for Zarr files: float32
    probabilities, and the mask from the 8-bit probability so that both paths agree.

    Returns
    -------
    arrays : dict of kind -> ndarray
        ``prob`` (``(K, ...)`` for multi-class), ``uncertainty``, ``interior`` (instance projects),
        ``mask`` (uint8) and, with ``instances``, ``labels`` (uint32, 1..n in this block).
    stats : dict
        ``uncertainty_sum``, ``uncertainty_count``, ``foreground`` and ``pixels`` (summed over blocks),
        and ``counts``: pixels per label (index 0 unused) with ``instances``.
    """
    stored = np.asarray(prediction.stored, dtype=np.float32)
    full = (slice(None),) + tuple(crop)
    fg = stored[0] if prediction.kind == "binary" else stored[:-1].sum(axis=0)
    unc, prob8 = stored[-1], to_uint8(fg)
    arrays = {"uncertainty": unc[crop]}
    if prediction.kind == "multiclass":
        probabilities = prediction.class_probabilities().astype(np.float32)
        arrays["prob"], mask = probabilities[full], classes(probabilities).astype(np.uint8)
    else:
        arrays["prob"], mask = fg[crop], (prob8 > threshold * 255).astype(np.uint8) * 255
    if prediction.kind == "instances":
        arrays["interior"] = stored[0][crop]
    arrays["mask"] = mask[crop]
    region = (fg[crop] >= 0.5) | (unc[crop] >= 0.5)
    stats = {"uncertainty_sum": float(unc[crop][region].sum(dtype=np.float64)), "uncertainty_count": int(region.sum()),
             "foreground": int((prob8[crop] >= 128).sum()), "pixels": int(prob8[crop].size)}
    if instances:  # on the block alone: the halo's probabilities are not the whole image's. min_size: once stitched
        interior = stored[0][crop] if prediction.kind == "instances" else None
        labels = label_instances(mask[crop] > 0, interior=interior, min_size=0, seed_threshold=seed_threshold)
        arrays["labels"], stats["counts"] = labels.astype(np.uint32), np.bincount(labels.ravel())
    return arrays, stats


def face_pairs(labels, block: Block, size, offsets, *, mask=None, mutual: bool = False) -> np.ndarray:
    """Objects that touch across ``block``'s far faces (edges and corners included, as scikit-image's
    full connectivity counts them), as image-wide ids with the number of touching pixel pairs.

    Parameters
    ----------
    labels : array-like
        The image's per-block labels (1..n in each block), e.g. a Zarr array.
    size : ([Z,] Y, X) tuple of int
        The block size (a block's index is a pixel's position divided by it).
    offsets : ndarray of int, shaped as the grid of blocks
        What to add to each block's labels to make them unique over the image.
    mask : array-like, optional
        The mask: only its pixels join objects (holes a block filled do not).
    mutual : bool
        Keep only :func:`mutual_best` pairs of each face (for objects split by a watershed).

    Returns
    -------
    (n, 3) ndarray of int64
        ``id on this side, id on the far side, touching pixel pairs``.
    """
    shape, found = labels.shape, [np.zeros((0, 3), np.int64)]
    for axis, face in enumerate(s.stop for s in block.out):
        if face >= shape[axis]:
            continue
        near = _global_ids(labels, tuple(slice(face - 1, face) if d == axis else o for d, o in enumerate(block.out)),
                           size, offsets, mask)
        wide = tuple(slice(face, face + 1) if d == axis else slice(o.start - 1, o.stop + 1)
                     for d, o in enumerate(block.out))
        far = _global_ids(labels, wide, size, offsets, mask)  # one pixel wider: the diagonal neighbours too
        pairs = _touching(np.squeeze(near, axis), np.squeeze(far, axis))
        found.append(mutual_best(pairs) if mutual else pairs)
    return np.concatenate(found)


def _touching(near, far) -> np.ndarray:
    """``(id, id, count)`` of the pixels of ``near`` and their neighbours in ``far`` (padded by one) that
    are both objects."""
    found = [np.zeros((0, 2), np.int64)]
    for shift in itertools.product((0, 1, 2), repeat=near.ndim):
        other = far[tuple(slice(k, k + n) for k, n in zip(shift, near.shape))]
        touching = (near > 0) & (other > 0)
        found.append(np.stack([near[touching], other[touching]], axis=1))
    pairs = np.concatenate(found)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return np.concatenate([unique, np.bincount(inverse.ravel(), minlength=len(unique))[:, None]], axis=1)


def _global_ids(labels, region, size, offsets, mask=None) -> np.ndarray:
    """``labels[region]`` made unique over the image; pixels outside the image (region padded) or
    outside ``mask`` are 0."""
    inside = tuple(slice(max(0, r.start), min(n, r.stop)) for r, n in zip(region, labels.shape))
    local = np.asarray(labels[inside]).astype(np.int64)
    if mask is not None:
        local[np.asarray(mask[inside]) == 0] = 0
    blocks = np.ix_(*[np.arange(s.start, s.stop) // b for s, b in zip(inside, size)])
    ids = np.where(local > 0, local + offsets[blocks], 0)
    pad = [(i.start - r.start, r.stop - i.stop) for r, i in zip(region, inside)]
    return np.pad(ids, pad)


def mutual_best(pairs) -> np.ndarray:
    """The pairs in which each side touches the other more than anything else across that face:
    two touching objects that a watershed split stay apart, while the halves of a cut object join."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 3)
    order = np.lexsort((-pairs[:, 2], pairs[:, 0]))
    best_a = {a: b for a, b, _ in pairs[order][::-1]}  # the last write per id wins: the largest contact
    order = np.lexsort((-pairs[:, 2], pairs[:, 1]))
    best_b = {b: a for a, b, _ in pairs[order][::-1]}
    keep = [best_a[a] == b and best_b[b] == a for a, b, _ in pairs]
    return pairs[np.asarray(keep, bool)] if len(pairs) else pairs


def merge_lookup(counts: dict, offsets: dict, pairs, min_size: int) -> tuple[np.ndarray, int]:
    """Join objects paired across faces, drop those below ``min_size`` and number the rest 1..N.

    Parameters
    ----------
    counts : dict of index -> (n + 1,) ndarray
        Pixels per label of each block.
    offsets : dict of index -> int
    pairs : (m, 2) or (m, 3) ndarray of image-wide ids (a third column is ignored)
    min_size : int

    Returns
    -------
    lookup : (total + 1,) ndarray of uint32
        Final id of each image-wide id (0 stays 0).
    merges : int
        How many objects were joined into another.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    total = max(offsets[i] + len(c) - 1 for i, c in counts.items()) if counts else 0
    sizes = np.zeros(total + 1, np.int64)
    for index, c in counts.items():
        sizes[offsets[index] + 1:offsets[index] + len(c)] = c[1:]
    pairs = np.asarray(pairs, np.int64)
    pairs = pairs.reshape(-1, pairs.shape[-1] if pairs.ndim == 2 else 2)[:, :2]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(total + 1, total + 1))
    n_components, component = connected_components(graph, directed=False)
    merges = total - (n_components - 1)  # component of id 0 is the background alone
    kept = np.bincount(component, weights=sizes, minlength=n_components) >= max(min_size, 1)
    kept[component[0]] = False
    first_seen = np.unique(component, return_index=True)[1]  # number objects in order of their first id
    order = np.argsort(first_seen[kept])
    new_id = np.zeros(n_components, np.uint32)
    new_id[np.flatnonzero(kept)[order]] = np.arange(1, kept.sum() + 1, dtype=np.uint32)
    return new_id[component], int(merges)
