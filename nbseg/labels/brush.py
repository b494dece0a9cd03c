"""Pixels under drawn shapes in one plane: a round brush along a stroke, a one-pixel cut line, a polygon.

Each returns the covered pixels as a boolean array over a bounding box of the plane, so an edit touches
(and a viewer redraws) only that box, however large the image; :func:`mask_box` is the box around an edited
object's pixels in a stack.
"""
from __future__ import annotations

import numpy as np


def stroke_pixels(points, radius: float, plane: tuple) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixels within ``radius`` of a stroke (the polyline through ``points``), clipped to the plane.

    Parameters
    ----------
    points : (N, 2) array_like
        (y, x) positions of the stroke, N >= 1; consecutive points are joined so fast strokes leave no gaps.
    radius : float
        Brush radius in pixels (0 paints the single pixels on the line).
    plane : (Y, X) tuple of int

    Returns
    -------
    box : (slice, slice)
        The part of the plane the brush touched.
    covered : (box height, box width) ndarray of bool
    """
    points = as_points(points, "stroke", 1)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"Brush radius {radius!r} is not a size; give a radius in pixels, 0 or more (e.g. 3).")
    return _cover(points, radius + 0.5, plane)


def _cover(points: np.ndarray, reach: float, plane: tuple):
    """Pixels whose centres lie within ``reach`` of the polyline, over its bounding box."""
    radius = reach
    box = _box(points.min(0) - radius, points.max(0) + radius, plane)
    if box is None:
        raise ValueError(f"The stroke from (y={points[0, 0]:g}, x={points[0, 1]:g}) lies outside the image "
                         f"({plane[0]} x {plane[1]} pixels); draw it on the image.")
    covered = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), bool)
    ends = np.vstack([points, points[-1:]])
    for a, b in zip(ends[:-1], ends[1:]):
        # each segment only looks at its own small box, so a long stroke costs its length, not its box's area
        seg = _box(np.minimum(a, b) - radius, np.maximum(a, b) + radius, plane)
        if seg is None:
            continue
        yy, xx = np.ogrid[seg[0], seg[1]]
        near = _distance_to_segment(yy, xx, a, b) <= reach
        covered[seg[0].start - box[0].start:seg[0].stop - box[0].start,
                seg[1].start - box[1].start:seg[1].stop - box[1].start] |= near
    return box, covered


def polygon_pixels(vertices, plane: tuple) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixels inside a polygon of (y, x) vertices, over the polygon's bounding box in the plane."""
    from .curation import polygons_to_mask

    vertices = as_points(vertices, "polygon", 3)
    box = _box(vertices.min(0), vertices.max(0), plane)
    if box is None:
        raise ValueError(f"The polygon starting at (y={vertices[0, 0]:g}, x={vertices[0, 1]:g}) lies outside the "
                         f"image ({plane[0]} x {plane[1]} pixels); draw it on the image.")
    local = vertices - [box[0].start, box[1].start]
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    return box, polygons_to_mask([local], shape, clip=True) > 0


def line_pixels(start, end, plane: tuple) -> tuple[tuple[slice, slice], np.ndarray]:
    """The 4-connected pixels of the line from ``start`` to ``end`` (so it cuts 8-connected objects too)."""
    # half a diagonal: the thinnest reach that leaves no diagonal gap an 8-connected object could cross
    return _cover(as_points([start, end], "cut line", 2), np.sqrt(0.5) + 1e-9, plane)


def as_points(points, what: str, at_least: int) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim == 1 and array.size == 2:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < at_least or not np.isfinite(array).all():
        raise ValueError(f"The {what} has points of shape {array.shape}; give at least {at_least} finite "
                         "(y, x) pairs, e.g. [(10, 20), (12, 25)].")
    return array


def _box(low, high, plane):
    """The integer box covering [low, high] clipped to the plane, or None when it misses the plane."""
    start = np.maximum(np.floor(low).astype(int), 0)
    stop = np.minimum(np.ceil(high).astype(int) + 1, plane)
    if np.any(stop <= start):
        return None
    return slice(int(start[0]), int(stop[0])), slice(int(start[1]), int(stop[1]))


def mask_box(mask: np.ndarray, z_offset: int = 0) -> tuple:
    """The (z, y, x) slices around the True pixels of a 3D ``mask`` (z shifted by ``z_offset``)."""
    box = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        shift = z_offset if axis == 0 else 0
        box.append(slice(int(hits[0]) + shift, int(hits[-1]) + 1 + shift))
    return tuple(box)


def _distance_to_segment(yy, xx, a, b):
    d = b - a
    length2 = float(d @ d)
    t = 0.0 if length2 == 0 else np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / length2, 0, 1)
    return np.hypot(yy - (a[0] + t * d[0]), xx - (a[1] + t * d[1]))


__all__ = ["as_points", "line_pixels", "mask_box", "polygon_pixels", "stroke_pixels"]
