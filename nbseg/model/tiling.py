"""Sliding-window inference over 2D images and 3D stacks with Gaussian blending — one code path.

The tiles form a regular grid on each axis and the Gaussian importance map is a product of 1D
Gaussians, so the summed weight at a pixel is a product of 1D sums: no weight map is stored.
Tiles are visited row by row along the first spatial axis, in batches that run on across rows; a
buffer one tile high collects the weighted sums in place, and each finished slab is divided by its
weight and handed to the output — an array in memory, or a :class:`DiskArray` for volumes beyond
the memory budget.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHT_FLOOR = 1e-3  # keeps tile borders from vanishing entirely where no other tile reaches


@dataclass(frozen=True)
class Placement:
    """Where one tile lies along one axis.

    ``start:stop`` are the image indices it covers; ``offset`` is where they begin inside the
    tile (non-zero only when the image is smaller than the tile and is padded).
    """

    start: int
    stop: int
    offset: int = 0


def axis_placements(size: int, tile: int, overlap: float) -> list[Placement]:
    """Tile positions along one axis: a step of ``tile * (1 - overlap)``, the last flush with the end.

    An axis shorter than the tile gets one tile with the image centred in it (padded).
    """
    if size <= tile:
        return [Placement(0, size, (tile - size) // 2)]
    step = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, size - tile, step)) + [size - tile]
    return [Placement(s, s + tile, 0) for s in starts]


def gaussian_profile(tile: int, sigma_scale: float = 0.125) -> np.ndarray:
    """1D Gaussian importance over a tile side, peak 1, sigma ``sigma_scale * tile``."""
    centre = (tile - 1) / 2
    sigma = max(tile * sigma_scale, 1e-3)
    profile = np.exp(-0.5 * ((np.arange(tile) - centre) / sigma) ** 2)
    return np.maximum(profile / profile.max(), WEIGHT_FLOOR)


def axis_weights(size: int, placements, profile: np.ndarray) -> np.ndarray:
    """Summed 1D importance of all tiles at each index of one axis."""
    weights = np.zeros(size)
    for p in placements:
        weights[p.start:p.stop] += profile[p.offset:p.offset + p.stop - p.start]
    return weights


def outer(vectors) -> np.ndarray:
    """Outer product of 1D arrays: shape ``tuple(len(v) for v in vectors)``."""
    result = np.ones(())
    for v in vectors:
        result = np.multiply.outer(result, v)
    return result


def sliding_window(image, fn, *, tile, n_out: int, overlap: float = 0.5, batch_size: int = 4, out=None,
                   sigma_scale: float = 0.125, progress=None):
    """Apply ``fn`` to overlapping tiles of ``image`` and blend the results with Gaussian weights.

    Parameters
    ----------
    image : (C, [Z,] Y, X) array-like
        Any numeric dtype; a memory-mapped array is read one tile at a time.
    fn : callable
        Takes a float32 torch tensor ``(B, C, *tile)``, returns ``(B, n_out, *tile)`` (tensor or ndarray).
    tile : sequence of int
        Tile shape ``([Z,] Y, X)``. Axes of the image shorter than the tile are padded by reflection.
    n_out : int
        Channels ``fn`` returns.
    overlap : float
        Share of a tile side that neighbouring tiles overlap, in [0, 1).
    batch_size : int
        Tiles per call of ``fn``.
    out : (n_out, [Z,] Y, X) array-like, optional
        Where to write; anything that accepts ``out[:, a:b] = slab`` (ndarray, memmap, DiskArray).
        Default: a new float32 array.
    sigma_scale : float
        Gaussian sigma as a share of the tile side.
    progress : callable(done, total, message), optional

    Returns
    -------
    out : (n_out, [Z,] Y, X)
    """
    spatial = tuple(image.shape[1:])
    tile = check_tile(tile, spatial, overlap)
    grids = [axis_placements(s, t, overlap) for s, t in zip(spatial, tile)]
    profiles = [gaussian_profile(t, sigma_scale) for t in tile]
    weights = [axis_weights(s, g, p) for s, g, p in zip(spatial, grids, profiles)]
    importance = outer(profiles).astype(np.float32)  # once per call: every tile has the same shape
    if out is None:
        out = np.empty((n_out,) + spatial, dtype=np.float32)
    blend = _Blend(out, n_out, spatial, tile, weights, grids[0])
    tiles = np.empty((batch_size, image.shape[0]) + tuple(tile), dtype=np.float32)  # refilled for each batch
    weighted = np.empty((n_out,) + tuple(tile), dtype=np.float32)  # one tile's weighted prediction, reused
    total, done = int(np.prod([len(g) for g in grids])), 0
    # batches run on across rows of tiles, so that every call but the last is full
    for group in _batches(itertools.product(range(len(grids[0])), itertools.product(*grids[1:])), batch_size):
        for i, (row, others) in enumerate(group):
            _extract_into(tiles[i], image, (grids[0][row],) + others, tile)
        preds = _as_numpy(fn(_to_tensor(tiles[:len(group)])), (len(group), n_out) + tuple(tile))
        for pred, (row, others) in zip(preds, group):
            blend.move_to(row)
            _accumulate(blend.buffer, pred, (grids[0][row],) + others, importance, blend.anchor, weighted)
        preds = pred = None  # let go before the next call, which makes its own
        done += len(group)
        if progress:
            progress(done, total, "tiles")
    blend.move_to(len(grids[0]))
    return out


class _Blend:
    """The blending buffer, one tile high along the first axis: each row of tiles adds its weighted
    predictions; when the tiles move on to the next row, the slab no later tile reaches is divided by
    its summed weight (in place) and written to ``out``."""

    def __init__(self, out, n_out: int, spatial, tile, weights, rows):
        self.out, self.rows, self.weights = out, rows, weights
        self.buffer = np.zeros((n_out, min(tile[0], spatial[0])) + tuple(spatial[1:]), dtype=np.float32)
        self.rest_weight = outer(weights[1:]).astype(np.float32)
        self.row, self.anchor = 0, rows[0].start

    def move_to(self, row: int) -> None:
        """Finish the rows before ``row`` (``len(rows)``: all of them)."""
        while self.row < row:
            place = self.rows[self.row]
            stop = self.rows[self.row + 1].start if self.row + 1 < len(self.rows) else place.stop
            slab = self.buffer[:, :stop - self.anchor]  # finished: no later tile reaches above `stop`
            slab /= self.weights[0][self.anchor:stop].astype(np.float32).reshape((-1,) + (1,) * self.rest_weight.ndim)
            slab /= self.rest_weight  # in place, in two steps: no slab-sized temporaries
            self.out[:, self.anchor:stop] = slab
            self.row += 1
            if self.row < len(self.rows):
                _shift(self.buffer, self.rows[self.row].start - self.anchor)
                self.anchor = self.rows[self.row].start


def patch_tile(patch, spatial, divisors) -> tuple:
    """The tile prediction uses by default: the training ``patch`` clipped to the image's ``spatial`` shape,
    rounded up to the ``divisors`` the network pools by (a small image is padded to it)."""
    patch = patch if len(patch) == len(spatial) else (256,) * len(spatial)
    return tuple(min(int(p), -(-int(s) // int(d)) * int(d)) for p, s, d in zip(patch, spatial, divisors))


def check_tile(tile, spatial, overlap=0.5) -> tuple:
    """Validate a tile shape against the image's spatial shape; returns it as a tuple of int."""
    tile = tuple(int(t) for t in tile)
    if len(tile) != len(spatial):
        raise ValueError(
            f"tile {list(tile)} has {len(tile)} sides but the image has {len(spatial)} spatial axes {spatial}; "
            f"give {len(spatial)} numbers ({'Z, Y, X' if len(spatial) == 3 else 'Y, X'})."
        )
    check_tile_sides(tile)
    check_overlap(overlap)
    return tile


def check_tile_sides(tile) -> tuple:
    """``tile`` as a tuple of int; raise ValueError unless it has sides and each is 1 or more."""
    tile = tuple(int(t) for t in tile)
    if not tile:
        raise ValueError("tile [] has no sides; give 2 numbers (Y, X) or 3 (Z, Y, X), or no tile at all.")
    if min(tile) < 1:
        raise ValueError(f"tile {list(tile)} has a side below 1; every side must be 1 or more.")
    return tile


def check_overlap(overlap) -> float:
    """Return ``overlap`` unless it lies outside [0, 1), the share of a tile side tiles may share."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap {overlap} must lie in [0, 1), e.g. 0.5 (half a tile).")
    return overlap


def _batches(iterable, size: int):
    iterator = iter(iterable)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _shift(buffer: np.ndarray, step: int) -> None:
    """Move the buffer's window ``step`` indices forward; what was flushed drops out."""
    if step <= 0:
        return
    depth = buffer.shape[1]
    if step < depth:
        buffer[:, :depth - step] = buffer[:, step:]
    buffer[:, max(0, depth - step):] = 0


def _extract_into(target: np.ndarray, image, places, tile) -> None:
    """Cut one tile out of ``image`` into ``target`` ``(C, *tile)`` float32: one conversion, in place; the
    sides of an image smaller than the tile padded by reflection."""
    region = np.asarray(image[(slice(None),) + tuple(slice(p.start, p.stop) for p in places)])
    pads = [(p.offset, t - p.offset - (p.stop - p.start)) for p, t in zip(places, tile)]
    if any(a or b for a, b in pads):
        region = np.pad(region, [(0, 0)] + pads, mode="reflect")
    np.copyto(target, region, casting="unsafe")


def _accumulate(buffer, pred, places, importance, anchor, weighted) -> None:
    """Add ``pred`` times the tile's importance to ``buffer``, through the reused tile ``weighted``."""
    crop = tuple(slice(p.offset, p.offset + p.stop - p.start) for p in places)
    target = (slice(places[0].start - anchor, places[0].stop - anchor),) + tuple(
        slice(p.start, p.stop) for p in places[1:])
    part = weighted[(slice(None),) + tuple(slice(0, c.stop - c.start) for c in crop)]
    np.multiply(pred[(slice(None),) + crop], importance[crop], out=part)
    buffer[(slice(None),) + target] += part


def _to_tensor(batch: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch))


def _as_numpy(result, shape) -> np.ndarray:
    if hasattr(result, "detach"):
        result = result.detach().float().cpu().numpy()
    result = np.asarray(result, dtype=np.float32)
    if result.shape != shape:
        raise ValueError(f"the tile function returned shape {result.shape}; expected {shape}.")
    return result


class DiskArray:
    """A ``.npy`` file filled slab by slab along axis 1 with plain writes (no mapping, so written
    slabs leave the process's memory), then read back memory-mapped with :meth:`open`.

    Parameters
    ----------
    path : str or Path
    shape : tuple of int
        ``(channels, first axis, ...)``.
    dtype : numpy dtype
    """

    def __init__(self, path, shape, dtype=np.float16):
        self.path = Path(path)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mapped = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)
        self._offset = mapped.offset
        del mapped
        self._row = int(np.prod(self.shape[2:])) * self.dtype.itemsize

    def __setitem__(self, key, value) -> None:
        channels, rows = key
        if channels != slice(None) or rows.step not in (None, 1):
            raise IndexError("DiskArray takes only out[:, a:b] = slab.")
        start = rows.start or 0
        value = np.ascontiguousarray(value, dtype=self.dtype)
        with open(self.path, "r+b") as f:
            for c in range(self.shape[0]):
                f.seek(self._offset + (c * self.shape[1] + start) * self._row)
                f.write(value[c].tobytes())

    def open(self) -> np.ndarray:
        """The filled array, memory-mapped read-only; on POSIX the file is unlinked at once (the
        mapping keeps it alive until the array is dropped), so nothing is left behind."""
        array = np.load(self.path, mmap_mode="r")
        if os.name == "posix":
            self.path.unlink()
        return array
