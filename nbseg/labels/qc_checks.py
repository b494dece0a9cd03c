"""Checks and measurements of one image and its mask, for :func:`nbseg.qc.qc_dataset`.

Each check appends ``(flag, reason)`` to a list instead of raising, so one bad file does not
hide the others.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..io.images import read_image

COLUMNS = ("image", "mask", "dims", "shape", "channels", "image_dtype", "mask_dtype", "n_label_values",
           "labelled_fraction", "foreground_fraction", "n_objects", "smallest_object", "median_object_size", "n_tiny", "n_split",
           "n_border", "intensity_median", "intensity_contrast", "image_hash", "mask_hash")
MAX_SAMPLE = 2_000_000  # pixels for intensity percentiles: plenty for a median, cheap for big stacks


def check_pair(name, image_path, mask_path, *, n_classes=None, min_object_size=10, max_border_fraction=0.5,
               dims=None, unlabelled=None):
    """Measure one image and its mask and list what looks wrong.

    Parameters
    ----------
    name : str
    image_path, mask_path : Path or None
        None where the file is missing.
    n_classes, min_object_size, max_border_fraction, dims, unlabelled
        As for :func:`nbseg.qc.qc_dataset`.

    Returns
    -------
    record : dict
        ``name`` and every column of ``COLUMNS`` (None where not measured).
    issues : list of (flag, reason)
    """
    record = dict.fromkeys(COLUMNS)
    record.update(name=name, image=str(image_path) if image_path else None, mask=str(mask_path) if mask_path else None)
    issues: list = []
    if image_path is None:
        issues.append(("unpaired", f"mask {mask_path.name} has no image of that name"))
        return record, issues
    if mask_path is None:
        issues.append(("unpaired", f"image {image_path.name} has no mask of that name"))
    image = _read(image_path, "image", issues, dims=dims)
    if image is not None:
        record.update(image_measures(image.data, issues))
        record.update(dims=image.spatial_dims, shape="x".join(map(str, image.spatial_shape)))
    if mask_path is None:
        return record, issues
    mask_image = _read(mask_path, "mask", issues, dims=dims or (image.spatial_dims if image is not None else None))
    mask = _as_mask(mask_image, issues) if mask_image is not None else None
    if mask is None:
        return record, issues
    record["mask_dtype"] = str(mask_image.data.dtype)
    if image is not None and mask.shape != image.spatial_shape:
        issues.append(("shape_mismatch", f"mask shape {mask.shape} but image shape {image.spatial_shape} "
                       f"(axes {image.axes}), re-export the mask at the image's size"))
    record.update(mask_measures(mask, issues, n_classes=n_classes, min_object_size=min_object_size,
                                max_border_fraction=max_border_fraction, unlabelled=unlabelled))
    return record, issues


def image_measures(data: np.ndarray, issues: list) -> dict:
    """Channel count, dtype, a hash of the pixels, and median and contrast of the channel mean.

    Parameters
    ----------
    data : (C, [Z,] Y, X) ndarray
    issues : list
        ``("odd_intensity", reason)`` is appended for a constant image.
    """
    data = np.ascontiguousarray(data)
    digest = hashlib.sha1(f"{data.shape}{data.dtype}".encode())
    digest.update(memoryview(data).cast("B"))  # no copy of the pixels, even for a large stack
    per_channel = data.reshape(data.shape[0], -1)
    grey = per_channel[:, :: max(1, per_channel.shape[1] // MAX_SAMPLE)].mean(axis=0, dtype=np.float64)
    low, median, high = np.percentile(grey, [1, 50, 99])
    if data.min() == data.max():
        issues.append(("odd_intensity", f"the image is constant (every pixel {data.min():g}): "
                       "an empty or failed acquisition?"))
    return {"channels": data.shape[0], "image_dtype": str(data.dtype), "image_hash": digest.hexdigest(),
            "intensity_median": float(median), "intensity_contrast": float(high - low)}


def mask_measures(mask: np.ndarray, issues: list, *, n_classes=None, min_object_size=10,
                  max_border_fraction=0.5, unlabelled=None) -> dict:
    """Labels, labelled share, objects (count, size, tiny, split, touching the border) of one mask.

    Parameters
    ----------
    mask : ([Z,] Y, X) ndarray of int
    issues : list
        Found problems are appended as ``(flag, reason)``.
    n_classes, min_object_size, max_border_fraction, unlabelled
        As for :func:`nbseg.qc.qc_dataset`. Shares and objects count labelled pixels only.
    """
    digest = hashlib.sha1(f"{mask.shape}".encode() + np.ascontiguousarray(mask).tobytes()).hexdigest()
    labelled = np.ones(mask.shape, bool) if unlabelled is None else mask != unlabelled
    if not labelled.any():
        issues.append(("no_labels", f"every pixel holds the 'not labelled' value {unlabelled}: label part of "
                       "the image or leave it out (training refuses it)"))
        return {"labelled_fraction": 0.0, "n_objects": 0, "mask_hash": digest}
    mask = np.where(labelled, mask, 0)
    values = np.unique(mask)
    _check_values(values, n_classes, issues)
    foreground = mask > 0
    share = lambda pixels: float(np.count_nonzero(pixels & labelled) / np.count_nonzero(labelled))  # noqa: E731
    out = {"n_label_values": int(np.count_nonzero(values > 0)), "labelled_fraction": float(labelled.mean()),
           "foreground_fraction": share(foreground), "mask_hash": digest}
    for k in range(n_classes or 0):
        out[f"fraction_{k}"] = share(mask == k)
    if not foreground.any():
        issues.append(("empty_mask", "the mask marks nothing (all background): annotate it or leave the image out"))
        return {**out, "n_objects": 0}
    instances = n_classes is None and out["n_label_values"] > 1
    objects = np.where(foreground, mask, 0) if instances else _components(mask, values[values > 0])
    sizes = np.bincount(objects.ravel())
    ids = np.flatnonzero(sizes)
    ids = ids[ids > 0]
    border = np.intersect1d(ids, _border_ids(objects))
    tiny = ids[sizes[ids] < min_object_size]
    split = _split_ids(objects, foreground) if instances else np.array([], int)
    unit = "voxels" if mask.ndim == 3 else "pixels"
    if tiny.size:
        shown = ", ".join(str(s) for s in np.sort(sizes[tiny])[:5])
        issues.append(("tiny_objects", f"{tiny.size} object(s) smaller than {min_object_size} {unit} "
                       f"(sizes {shown}{' ...' if tiny.size > 5 else ''}): stray strokes or leftovers?"))
    if split.size:
        issues.append(("split_objects", f"{split.size} object number(s) label separate pieces "
                       f"(e.g. {', '.join(map(str, split[:5]))}): give each piece its own number or join them"))
    if border.size > max_border_fraction * ids.size:
        issues.append(("border_objects", f"{border.size} of {ids.size} objects touch the image border (cut off)"))
    return {**out, "n_objects": int(ids.size), "smallest_object": int(sizes[ids].min()),
            "median_object_size": float(np.median(sizes[ids])), "n_tiny": int(tiny.size),
            "n_split": int(split.size), "n_border": int(border.size)}


def _check_values(values: np.ndarray, n_classes, issues: list) -> None:
    if values[0] < 0:
        issues.append(("bad_labels", f"negative label {values[0]}, labels start at 0 (background)"))
    if n_classes is not None and values[-1] >= n_classes:
        extra = values[values >= n_classes]
        issues.append(("bad_labels", f"label(s) {', '.join(map(str, extra[:5]))} outside the {n_classes} classes "
                       f"0..{n_classes - 1}: fix the mask or raise n_classes"))


def _components(mask: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Connected pieces of each class, numbered 1.. across classes (diagonal neighbours connect)."""
    from scipy import ndimage

    structure = np.ones((3,) * mask.ndim, bool)
    objects = np.zeros(mask.shape, np.int64)
    offset = 0
    for value in classes:
        pieces, n = ndimage.label(mask == value, structure=structure)
        objects[pieces > 0] = pieces[pieces > 0] + offset
        offset += n
    return objects


def _split_ids(objects: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Object numbers whose pixels form more than one connected piece."""
    from scipy import ndimage

    pieces, n = ndimage.label(foreground, structure=np.ones((3,) * objects.ndim, bool))
    pairs = np.unique(objects[foreground].astype(np.int64) * (n + 1) + pieces[foreground])
    counts = np.bincount(pairs // (n + 1))
    return np.flatnonzero(counts > 1)


def _border_ids(objects: np.ndarray) -> np.ndarray:
    faces = [np.take(objects, index, axis=axis).ravel() for axis in range(objects.ndim) for index in (0, -1)]
    return np.unique(np.concatenate(faces))


def _read(path, role: str, issues: list, *, dims):
    try:
        return read_image(path, dims=dims)
    except (ValueError, OSError) as err:  # ImageReadError is a ValueError and names the file
        issues.append(("unreadable", f"{role}: {err}"))
        return None


def _as_mask(image, issues: list):
    data = image.data
    if data.shape[0] != 1:
        issues.append(("bad_labels", f"the mask has {data.shape[0]} channels (RGB?), a mask needs one, "
                       "with 0 = background"))
        return None
    mask = np.asarray(data[0])
    if mask.dtype.kind == "f":
        if not np.all(mask == np.round(mask)):
            issues.append(("bad_labels", "the mask holds fractional values, labels are whole numbers"))
            return None
        return mask.astype(np.int64)
    return mask.astype(np.uint8) if mask.dtype == bool else mask
