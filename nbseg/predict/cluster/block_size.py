"""How large the blocks of an image are: a given block rounded up to what the models predict, or, when
none is given, one of whole tiles chosen so that a worker's memory bound holds it.

Sizes here are in the input's own pixels. A model that works at another scale (e.g. 0.5 in-plane)
predicts tiles of its own pixels: a tile of 256 model pixels covers 512 pixels of the input, and a
block must hold at least that. At the input's own scale a block's sides are also multiples of what
the U-Net pools.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...data.resample import is_native, scaled_shape
from ...io.images import file_stem
from ..memory import current_memory, prediction_parts
from ..sizes import format_size, parse_size

__all__ = ["WORKER_SHARE", "BlockSizing", "block_peak", "choose_block", "fit_block", "input_tile", "memory_bound"]

# of a dask worker's memory limit that a block may take: dask pauses a worker at 80 % of it, and the
# estimate (nbseg.predict.memory) is an estimate
WORKER_SHARE = 0.7


def input_tile(tile, factors=None) -> tuple:
    """The pixels of the input one tile of the models covers (``tile`` at ``factors``, the models' scale)."""
    if is_native(factors):
        return tuple(int(t) for t in tile)
    return tuple(int(math.ceil(t / f)) for t, f in zip(tile, factors))


def fit_block(block, tile, divisors, factors=None) -> tuple[tuple, str | None]:
    """``block`` rounded up to the nearest block the models predict, and a sentence when it changed.

    Parameters
    ----------
    block : ([Z,] Y, X) sequence of int
        As given (CLI ``--block``).
    tile : ([Z,] Y, X) tuple of int
        The predictor's tile, at the models' working scale.
    divisors : ([Z,] Y, X) tuple of int
        What the U-Net pools; only a block at the models' own scale must be a multiple of it.
    factors : ([Z,] Y, X) sequence of float, optional
        The working scale the models predict this image at; None or ones: the input's own.

    Returns
    -------
    size : tuple of int
        Each side at least one tile of the input's pixels (:func:`input_tile`) and, at the input's own
        scale, a multiple of ``divisors``.
    note : str or None

    Raises
    ------
    ValueError
        For a block with another number of sides than the tile, or sides below 1.
    """
    given = tuple(int(b) for b in block)
    names = "ZYX"[-len(tile):]
    if len(given) != len(tile) or min(given) < 1:
        raise ValueError(f"block {list(given)} does not fit images with {len(tile)} spatial axes; give {len(tile)} "
                         f"positive numbers ({', '.join(names)}), e.g. {[4 * t for t in input_tile(tile, factors)]}.")
    least = input_tile(tile, factors)
    step = tuple(divisors) if is_native(factors) else (1,) * len(tile)  # a resampled block needs no multiple
    size = tuple(max(-(-b // d) * d, t) for b, d, t in zip(given, step, least))
    if size == given:
        return size, None
    why = [f"a block holds at least one tile of the model ({list(tile)}"
           + ("" if is_native(factors) else f" at working scale {'x'.join(f'{f:g}' for f in factors)}, "
                                            f"{list(least)} pixels of the image") + ")"]
    if any(b % d for b, d in zip(given, step)):
        why.append(f"each side a multiple of {list(step)} (what the U-Net pools)")
    return size, f"block {list(given)} rounded up to {list(size)}: {' and '.join(why)}."


def block_peak(block, shape, tile, factors, *, in_channels: int, n_out: int, width: int, batch_size: int,
               itemsize: int = 4, labels: bool = False, baseline: int = 0) -> int:
    """Estimated peak bytes of a worker predicting one block of ``block`` pixels of an image of ``shape``.

    The block reads its tiles' halo (at most a tile a side) and, for models at another scale, resamples
    it; the parts are :func:`nbseg.predict.memory.prediction_parts`'s, with the network on a CPU (its
    activations counted) and the results in memory, as a worker without ``max_memory`` keeps them.

    Parameters
    ----------
    block, shape : ([Z,] Y, X) tuple of int
        In the input's pixels; a block as large as ``shape`` is the whole image (no halo).
    tile : ([Z,] Y, X) tuple of int
        At the models' scale.
    factors : ([Z,] Y, X) sequence of float or None
    in_channels, n_out, width, batch_size, itemsize, labels
        As for ``prediction_parts`` (``itemsize``: the input's bytes per value).
    baseline : int
        Bytes a worker holds before predicting (Python, torch, the models).
    """
    halo = input_tile(tile, factors)
    src = tuple(min(b + 2 * t, n) if b < n else n for b, t, n in zip(block, halo, shape))
    native = is_native(factors)
    work = src if native else scaled_shape(src, factors)
    parts = prediction_parts(spatial=work, in_channels=in_channels, n_out=n_out, tile=tuple(tile),
                             batch_size=batch_size, width=width, image_itemsize=itemsize, result_itemsize=4,
                             labels=labels, source=None if native else src)
    return int(baseline) + max(sum(p.values()) for p in parts.values())


def choose_block(shape, tile, factors, fits) -> tuple | None:
    """The largest block of whole tiles (in the input's pixels) that ``fits``, or None when the whole
    image does.

    Blocks grow a tile at a time along their shortest side (near-cubic blocks have the least halo for
    their pixels) while ``fits(block)`` holds; one tile a side is the least, even where it does not fit.
    """
    shape = tuple(int(n) for n in shape)
    if fits(shape):
        return None
    step = input_tile(tile, factors)
    counts, growing = [1] * len(shape), set(range(len(shape)))
    growing = {d for d in growing if step[d] < shape[d]}
    while growing:
        axis = min(growing, key=lambda d: (counts[d] * step[d], d))
        trial = list(counts)
        trial[axis] += 1
        if fits(tuple(c * s for c, s in zip(trial, step))):
            counts = trial
            if counts[axis] * step[axis] >= shape[axis]:
                growing.discard(axis)
        else:
            growing.discard(axis)
    return tuple(c * s for c, s in zip(counts, step))


def memory_bound(max_memory, cluster, project=None) -> tuple[int | None, str]:
    """The bytes a block may take on one worker, and where that comes from.

    ``max_memory`` (CLI ``--max-memory``) where given; else :data:`WORKER_SHARE` of what a worker of
    ``cluster`` has, where that is known before connecting (:func:`.connect.worker_memory`); else None
    (images are predicted whole).
    """
    from .connect import worker_memory

    if max_memory is not None:
        return parse_size(max_memory), "--max-memory"
    memory, where = worker_memory(cluster, project)
    if memory is None:
        return None, where
    return int(memory * WORKER_SHARE), f"{WORKER_SHARE:.0%} of the {format_size(memory)} {where}"


def baseline_memory() -> int:
    """What a worker holds before predicting, taken as this process's resident memory: Python, torch and
    the models, as a worker loads them."""
    return current_memory()


@dataclass
class BlockSizing:
    """How images are cut: the given block (rounded up per image) or a memory bound to choose one for; and
    what was rounded or chosen, to say once."""

    block: tuple | None
    bound: int | None
    bound_from: str
    width: int = 16
    baseline: int = 0
    said: dict = field(default_factory=dict)  # line -> names of the images it is about

    def size(self, path, shape, tile, factors, info, options, itemsize: int) -> tuple | None:
        """The block for an image of ``shape`` (its pixels), or None to predict it whole."""
        native = is_native(factors)
        if self.block is not None:
            size, note = fit_block(self.block, tile, info.divisors, None if native else factors)
            if note and any(n > b for n, b in zip(shape, size)):
                self.said.setdefault(note, [])
            return size
        if self.bound is None:
            return None

        def fits(block):
            return block_peak(block, shape, tile, None if native else factors, in_channels=info.in_channels,
                              n_out=info.n_classes, width=self.width, batch_size=options.batch_size,
                              itemsize=itemsize, labels=options.instances, baseline=self.baseline) <= self.bound

        size = choose_block(shape, tile, None if native else factors, fits)
        if size is not None:
            line = (f"cut into blocks of {list(size)} pixels, whole tiles of the model, as the whole image is more "
                    f"than a worker's memory bound ({format_size(self.bound)}, {self.bound_from}) holds; give "
                    "--block to choose")
            self.said.setdefault(line, []).append(file_stem(path))
        return size

    def lines(self) -> list[str]:
        return [(f"{', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}: " if names
                 else "") + line for line, names in self.said.items()]
