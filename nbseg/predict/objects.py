"""What the objects of a label image are: one table row per object (``<stem>.objects.csv``, from
scikit-image's ``regionprops_table``) and their outlines as ImageJ ROIs (``<stem>.rois.zip``, written
with ``roifile``) that Fiji's ROI Manager opens over the labels or the image."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..project import atomic_write

if TYPE_CHECKING:
    import pandas

__all__ = ["object_rois", "object_table", "write_object_table", "write_rois"]

PHYSICAL_UNIT = "µm"  # what nbseg's readers convert pixel sizes to (io.pixel_sizes)


def object_table(labels, image=None, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT) -> "pandas.DataFrame":
    """One row per object of ``labels``: centroid, size, bounding box and mean intensity.

    Parameters
    ----------
    labels : ([Z,] Y, X) ndarray of int
        Object labels, 0 = background.
    image : ([Z,] Y, X) or (C, [Z,] Y, X) ndarray, optional
        The input image, for the mean intensity of each object (one column per channel).
    pixel_sizes : ([Z,] Y, X) sequence of float or None, optional
        Physical pixel sizes in ``unit``.
    unit : str or None
        ``"µm"`` (nbseg's readers convert every length unit to it). Any other unit (Fiji's
        ``"relative"``: sizes known only as ratios) or None counts as unknown pixel sizes.

    Returns
    -------
    DataFrame
        Columns ``label``; ``centroid_{z,y,x}_px`` and ``centroid_{z,y,x}_um``; ``area_px`` and
        ``area_um2`` (2D) or ``volume_px`` and ``volume_um3`` (3D); ``bbox_min_{z,y,x}`` and
        ``bbox_max_{z,y,x}`` in pixels (min inclusive, max exclusive, as numpy slices); ``mean_intensity``
        (or ``mean_intensity_c0``, ``_c1``, ... for several channels; absent without ``image``).
        The µm columns are NaN when any pixel size is unknown (None, 0, or not in µm).
    """
    from skimage.measure import regionprops_table

    import pandas as pd

    labels = np.asarray(labels)
    axes = "ZYX"[-labels.ndim:]
    intensity = None if image is None else _channels_last(image, labels.shape)
    props = ["label", "centroid", "area", "bbox"] + (["intensity_mean"] if intensity is not None else [])
    raw = regionprops_table(labels, intensity_image=intensity, properties=props)
    sizes = _known_sizes(pixel_sizes, unit, labels.ndim)
    physical = regionprops_table(labels, properties=("centroid", "area"), spacing=sizes) if sizes else None
    n, size = len(raw["label"]), "area" if labels.ndim == 2 else "volume"
    columns = {"label": raw["label"]}
    for i, a in enumerate(axes):
        columns[f"centroid_{a.lower()}_px"] = raw[f"centroid-{i}"]
    for i, a in enumerate(axes):
        columns[f"centroid_{a.lower()}_um"] = physical[f"centroid-{i}"] if physical else np.full(n, np.nan)
    columns[f"{size}_px"] = raw["area"].astype(np.int64)
    columns[f"{size}_um{labels.ndim}"] = physical["area"] if physical else np.full(n, np.nan)
    for i, a in enumerate(axes):
        columns[f"bbox_min_{a.lower()}"] = raw[f"bbox-{i}"]
    for i, a in enumerate(axes):
        columns[f"bbox_max_{a.lower()}"] = raw[f"bbox-{i + labels.ndim}"]
    if intensity is not None:
        means = [k for k in raw if k.startswith("intensity_mean")]
        for k, key in enumerate(means):
            columns["mean_intensity" if len(means) == 1 else f"mean_intensity_c{k}"] = raw[key]
    return pd.DataFrame(columns)


def write_object_table(path, labels, image=None, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT) -> Path:
    """Write :func:`object_table` as CSV to ``path`` atomically (a temporary name, then a rename)."""
    table = object_table(labels, image, pixel_sizes, unit)
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def object_rois(labels) -> list:
    """The outline of every object as an ImageJ ROI (``roifile.ImagejRoi``), in ImageJ's pixel
    coordinates (x = column, y = row, pixel (0, 0) covering [0, 1) x [0, 1)).

    Parameters
    ----------
    labels : ([Z,] Y, X) ndarray of int
        Object labels, 0 = background.

    Returns
    -------
    list of roifile.ImagejRoi
        One per object (2D), or one per object and slice it appears in (3D), ordered by object
        then slice. Names say the object (``obj0007``, in 3D ``obj0007-z0012``, slices from 1) so that
        Fiji's ROI Manager lists an object's slices together; in 3D the ROI position is the slice (from 1).
        An outline runs half-way between the object's pixel centres and the background's, so
        ImageJ's mask of it (pixel centres inside) is the object. A slice of an object in several
        pieces, or with holes, is one composite ROI.
    """
    from skimage.measure import regionprops

    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels of shape {labels.shape} are neither 2D (Y, X) nor 3D (Z, Y, X).")
    stack = labels[np.newaxis] if labels.ndim == 2 else labels
    regions = regionprops(stack)
    width = len(str(max((r.label for r in regions), default=0)))
    z_width = len(str(stack.shape[0]))
    rois = []
    for region in regions:
        zs, ys, xs = region.slice
        inside = stack[region.slice] == region.label
        for dz, plane in enumerate(inside):
            if not plane.any():
                continue
            z = zs.start + dz
            name = f"obj{region.label:0{width}d}" + (f"-z{z + 1:0{z_width}d}" if labels.ndim == 3 else "")
            rois.append(_outline_roi(plane, (ys.start, xs.start), name, None if labels.ndim == 2 else z))
    return rois


def write_rois(labels, path) -> Path:
    """Write :func:`object_rois` of ``labels`` as an ImageJ ROI set (``.zip``, opened by Fiji's ROI
    Manager) to ``path`` atomically. Labels without objects give an empty set."""
    import roifile

    rois = object_rois(labels)
    with atomic_write(path) as tmp:
        roifile.roiwrite(tmp, rois, mode="w")  # a list always makes a zip, whatever the name
    return Path(path)


def _outline_roi(plane: np.ndarray, origin: tuple, name: str, z: int | None):
    """One ROI of the object pixels ``plane`` (a 2D bool crop whose corner is at ``origin`` (row, col))."""
    import roifile
    from skimage.measure import find_contours

    # padded so that outlines at the crop's edge close; "high": pieces and holes wind opposite ways
    contours = find_contours(np.pad(plane, 1).astype(np.float32), 0.5, positive_orientation="high")
    # (row, col) of the padded crop -> ImageJ (x, y): pixel centres sit at +0.5 in ImageJ
    outlines = [np.column_stack([c[:-1, 1] + origin[1] - 0.5, c[:-1, 0] + origin[0] - 0.5]) for c in contours]
    if len(outlines) == 1:
        roi = roifile.ImagejRoi.frompoints(outlines[0], name=name)
    else:  # a composite (shape) ROI: a MOVETO, LINETOs and a CLOSE per outline
        roi = roifile.ImagejRoi.frompoints(np.vstack(outlines), name=name)  # for the bounds and options
        path = []
        for xy in outlines:
            path += [0.0, *xy[0]]
            for x, y in xy[1:]:
                path += [1.0, x, y]
            path.append(4.0)
        roi.roitype = roifile.ROI_TYPE.RECT
        roi.multi_coordinates = np.asarray(path, np.float32)
        roi.shape_roi_size = len(path)
        roi.integer_coordinates = roi.subpixel_coordinates = None
        roi.n_coordinates = 0
        roi.options &= ~roifile.ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    if z is not None:
        roi.position = z + 1  # ImageJ counts slices from 1; a plain Z stack reads this field
    return roi


def _known_sizes(pixel_sizes, unit, ndim: int) -> tuple | None:
    """``pixel_sizes`` as floats when all ``ndim`` are known and in µm, else None."""
    if unit != PHYSICAL_UNIT or pixel_sizes is None or len(pixel_sizes) != ndim:
        return None
    if any(s is None or not np.isfinite(s) or s <= 0 for s in pixel_sizes):
        return None
    return tuple(float(s) for s in pixel_sizes)


def _channels_last(image, shape: tuple) -> np.ndarray:
    """``image`` as ``(*shape)`` or ``(*shape, C)`` for regionprops (a view where possible)."""
    image = np.asarray(image) if not hasattr(image, "shape") else image
    if tuple(image.shape) == tuple(shape):
        return image
    if tuple(image.shape[1:]) == tuple(shape):
        return image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    raise ValueError(f"image of shape {tuple(image.shape)} does not match labels of shape {tuple(shape)}; give the "
                     "image the labels were made from, as ([Z,] Y, X) or (C, [Z,] Y, X).")
