"""Label curation: Seg1/Seg2 merging, excluding masks, drawn polygons and regions (ground truth
from several experts is :mod:`.consensus`).

Merging follows Allen Cell Segmenter ML's curation: two candidate segmentations of an image
(Seg1, Seg2) and a merging mask that says where Seg2 is the better one. Excluding masks mark
pixels the loss ignores (the dataset loader sets the target to -1 there).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import IGNORE
from ..io.images import read_mask, write_ome_tiff


def merge_segmentations(seg1, seg2, merging_mask):
    """Take Seg2 inside the merging mask and Seg1 elsewhere.

    Parameters
    ----------
    seg1, seg2 : ([Z,] Y, X) ndarray
        Two segmentations of the same image.
    merging_mask : ([Z,] Y, X) ndarray
        Nonzero where Seg2 replaces Seg1.

    Returns
    -------
    merged : ([Z,] Y, X) ndarray
        Of the dtype that holds both segmentations' values.

    Raises
    ------
    ValueError
        If the three arrays differ in shape.
    """
    seg1, seg2, merging_mask = np.asarray(seg1), np.asarray(seg2), np.asarray(merging_mask)
    shapes = {"Seg1": seg1.shape, "Seg2": seg2.shape, "merging mask": merging_mask.shape}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            "Seg1, Seg2 and the merging mask must have the same shape; got "
            + ", ".join(f"{k} {v}" for k, v in shapes.items())
            + ". They must all be drawn on the same image: re-export the odd one at the image's size."
        )
    return np.where(merging_mask > 0, seg2, seg1)


def write_region_masks(folder, regions: dict, *, pixel_sizes: dict | None = None) -> list[Path]:
    """Write drawn regions (excluding or merging masks) as ``<name>.ome.tif``, 1 inside, 0 outside.

    Parameters
    ----------
    folder : str or Path
        Created when missing; this is the folder to enter as ``excluding_masks`` / ``merging_masks``.
    regions : dict of name -> ([Z,] Y, X) ndarray of bool
        The region of each image (named like the image, so pairing by name finds it).
    pixel_sizes : dict of name -> tuple, optional
        Each image's pixel sizes, kept in the mask file.
    """
    folder = Path(folder)
    written = []
    for name, region in regions.items():
        region = np.asarray(region)
        written.append(write_ome_tiff(folder / f"{name}.ome.tif", region.astype(np.uint8),
                                      axes="ZYX"[-region.ndim:], pixel_sizes=(pixel_sizes or {}).get(name),
                                      overwrite=True))
    return written


def polygons_to_mask(polygons, shape, *, z=None, values=1, clip=False) -> np.ndarray:
    """Fill polygons (as a drawing widget gives them) into a label mask.

    Parameters
    ----------
    polygons : sequence of (N, 2) array_like
        Vertices as (row, col) pixel coordinates, N >= 3 per polygon.
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)`` of the mask to make.
    z : sequence of int, optional
        For a 3D ``shape``: the slice each polygon lies in (one per polygon). Required in 3D;
        not allowed in 2D.
    values : int or sequence of int
        Label filled into each polygon (later polygons draw over earlier ones).
    clip : bool
        Move vertices outside the image onto its edge instead of refusing them.

    Returns
    -------
    mask : ([Z,] Y, X) ndarray of uint8 (uint16 or int32 for larger values)

    Raises
    ------
    ValueError
        For malformed polygons, vertices outside the image (unless ``clip``), or wrong ``z``.
    """
    from skimage.draw import polygon as fill_polygon

    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape {shape} has {len(shape)} dimensions; give (Y, X) or (Z, Y, X).")
    polygons = [_check_polygon(p, i) for i, p in enumerate(polygons)]
    values = np.broadcast_to(np.asarray(values), (len(polygons),))
    slices = _check_z(z, shape, len(polygons))
    dtype = np.uint8 if values.max(initial=0) < 256 else np.uint16 if values.max() < 2 ** 16 else np.int32
    mask = np.zeros(shape, dtype)
    for i, (vertices, value, plane) in enumerate(zip(polygons, values, slices)):
        vertices = _inside(vertices, shape[-2:], i, clip)
        rows, cols = fill_polygon(vertices[:, 0], vertices[:, 1], shape=shape[-2:])
        target = mask if plane is None else mask[plane]
        target[rows, cols] = value
    return mask


def excluding_mask(shape, *, polygons=None, z=None, masks=(), clip=False) -> np.ndarray:
    """Pixels the loss should ignore: the union of drawn polygons and given masks.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    polygons : sequence of (N, 2) array_like, optional
        Drawn regions, (row, col) vertices; see :func:`polygons_to_mask`.
    z : sequence of int, optional
        Slice of each polygon, for 3D.
    masks : sequence of ([Z,] Y, X) ndarray or path
        Masks (arrays or image files) whose nonzero pixels are excluded too.
    clip : bool
        Clip polygon vertices to the image instead of refusing them.

    Returns
    -------
    excluded : ([Z,] Y, X) ndarray of uint8
        1 where the loss ignores the pixel, else 0; save it with the image's name in the
        excluding-masks folder.
    """
    excluded = np.zeros(tuple(shape), np.uint8)
    if polygons:
        excluded |= polygons_to_mask(polygons, shape, z=z, clip=clip) > 0
    for i, mask in enumerate(masks):
        mask = _load(mask)
        if mask.shape != excluded.shape:
            raise ValueError(f"Excluding mask {i} has shape {mask.shape} but the image is {excluded.shape}; "
                             "draw it on the same image or re-export it at the image's size.")
        excluded |= mask > 0
    return excluded


def apply_excluding_mask(target, excluded, *, ignore=IGNORE) -> np.ndarray:
    """A copy of ``target`` (int64) with ``ignore`` wherever ``excluded`` is nonzero.

    Parameters
    ----------
    target : ([Z,] Y, X) ndarray of int
    excluded : ([Z,] Y, X) ndarray
    ignore : int
        The value the loss skips (-1 in nbseg).
    """
    target, excluded = np.asarray(target), np.asarray(excluded)
    if target.shape != excluded.shape:
        raise ValueError(f"The excluding mask has shape {excluded.shape} but the target has {target.shape}; "
                         "they must cover the same pixels.")
    out = target.astype(np.int64, copy=True)
    out[excluded > 0] = ignore
    return out


def disagreement_mask(expert_masks, *, min_agreement=1.0) -> np.ndarray:
    """Pixels where the experts agree too little, e.g. to exclude them from training.

    Parameters
    ----------
    expert_masks : sequence of ([Z,] Y, X) ndarray
        Two or more masks of the same image.
    min_agreement : float
        Pixels where fewer than this share of experts gave the most common label are marked;
        1.0 marks every pixel on which any two experts differ.

    Returns
    -------
    disputed : ([Z,] Y, X) ndarray of uint8
    """
    masks = [np.asarray(m) for m in expert_masks]
    if len(masks) < 2 or len({m.shape for m in masks}) > 1:
        given = ", ".join(str(m.shape) for m in masks) or "none"
        raise ValueError(f"Need two or more expert masks of one shape; got shapes {given}. "
                         "Give every expert's mask of the same image.")
    stack = np.stack(masks)
    if not 0 < min_agreement <= 1:
        raise ValueError(f"min_agreement is {min_agreement}; give a share in (0, 1], e.g. 0.8.")
    best = np.zeros(stack.shape[1:], np.int64)
    for label in np.unique(stack):
        best = np.maximum(best, (stack == label).sum(axis=0))
    return (best < min_agreement * len(stack) - 1e-9).astype(np.uint8)


# ---------------------------------------------------------------- polygon checks


def _check_polygon(vertices, index: int) -> np.ndarray:
    array = np.asarray(vertices, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < 3:
        raise ValueError(
            f"Polygon {index} has shape {array.shape}; a polygon is an (N, 2) array of (row, col) vertices "
            "with N >= 3."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Polygon {index} has vertices that are NaN or infinite; redraw it.")
    return array


def _check_z(z, shape: tuple, n: int) -> list:
    if len(shape) == 2:
        if z is not None:
            raise ValueError(f"z is given but shape {shape} is 2D; leave z out, or give a (Z, Y, X) shape.")
        return [None] * n
    if z is None:
        raise ValueError(f"shape {shape} is 3D, so each polygon needs its slice: pass z=[slice of polygon 0, ...].")
    z = [int(k) for k in np.atleast_1d(z)]
    if len(z) != n:
        raise ValueError(f"Got {len(z)} z values for {n} polygons; give one slice number per polygon.")
    bad = [(i, k) for i, k in enumerate(z) if not 0 <= k < shape[0]]
    if bad:
        raise ValueError(
            "Polygons lie in slices outside the stack: " + ", ".join(f"polygon {i} in z={k}" for i, k in bad)
            + f". The stack has slices 0..{shape[0] - 1}."
        )
    return z


def _inside(vertices: np.ndarray, plane: tuple, index: int, clip: bool) -> np.ndarray:
    upper = np.array(plane, float) - 1
    # half a pixel of slack: a widget's click at the very edge may land just outside
    outside = np.any((vertices < -0.5) | (vertices > upper + 0.5), axis=1)
    if outside.any() and not clip:
        row, col = vertices[np.argmax(outside)]
        raise ValueError(
            f"Polygon {index} has {int(outside.sum())} of {len(vertices)} vertices outside the image, "
            f"e.g. (row {row:g}, col {col:g}); the image has rows 0..{plane[0] - 1} and columns 0..{plane[1] - 1}. "
            "Check that the vertices are (row, col), not (x, y), or pass clip=True to move them onto the edge."
        )
    return np.clip(vertices, 0, upper)


def _load(mask) -> np.ndarray:
    return np.asarray(mask) if isinstance(mask, np.ndarray) else read_mask(mask)


__all__ = [
    "merge_segmentations", "polygons_to_mask", "excluding_mask", "apply_excluding_mask", "disagreement_mask",
    "write_region_masks",
]
