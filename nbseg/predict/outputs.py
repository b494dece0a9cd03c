"""The files prediction writes for one image, and the one writer of masks and object labels that
:func:`~nbseg.predict.files.predict_files` and the export of notebook 06 share (both keep the
input's pixel sizes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.images import write_ome_tiff
from .image import Prediction
from .post import classes, find_threshold, instances as label_instances

RESULT_KINDS = ("prob", "interior", "uncertainty", "labels", "mask")  # writing order: the mask last marks it done


def result_paths(output_dir, stem: str, *, instances: bool, interior: bool = False) -> dict:
    """``{kind: Path}`` of the files :func:`predict_files` writes for one input (``interior``: the
    interior probability of ``instances`` projects, which seeds the watershed that splits objects)."""
    kinds = [k for k in RESULT_KINDS if (instances or k != "labels") and (interior or k != "interior")]
    return {k: Path(output_dir) / f"{stem}.{k}.ome.tif" for k in kinds}


def spatial_axes(ndim: int) -> str:
    """``"YX"`` or ``"ZYX"`` for a 2D or 3D array."""
    return "ZYX"[-ndim:]


def write_mask(path, mask, *, pixel_sizes=None) -> Path:
    """Write a mask as uint8 OME-TIFF: a boolean mask as 0/255, class numbers as they are."""
    mask = np.asarray(mask)
    data = mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8)
    return write_ome_tiff(path, data, axes=spatial_axes(mask.ndim), pixel_sizes=pixel_sizes, overwrite=True)


def write_labels(path, labels, *, pixel_sizes=None) -> Path:
    """Write object labels as uint16 OME-TIFF (uint32 from 65,536 objects on)."""
    labels = np.asarray(labels)
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    return write_ome_tiff(path, labels.astype(dtype), axes=spatial_axes(labels.ndim), pixel_sizes=pixel_sizes,
                          overwrite=True)


def export_objects(output_dir, objects: dict, *, pixel_sizes: dict | None = None,
                   threshold: float | None = None) -> list[Path]:
    """Write chosen objects: ``<stem>.mask.ome.tif`` (0/255) and ``<stem>.labels.ome.tif`` for each image.

    Parameters
    ----------
    output_dir : str or Path
        Created when missing.
    objects : dict of stem -> ([Z,] Y, X) ndarray of int
        Object labels of each image (0 = background).
    pixel_sizes : dict of stem -> tuple, optional
        Each image's ``([Z,] Y, X)`` pixel sizes, kept in the files (read them from the probability map).
    threshold : float, optional
        The threshold the objects were made with; written to ``threshold.txt``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, labels in objects.items():
        paths, sizes, labels = result_paths(output_dir, stem, instances=True), (pixel_sizes or {}).get(stem), \
            np.asarray(labels)
        written.append(write_mask(paths["mask"], labels > 0, pixel_sizes=sizes))
        written.append(write_labels(paths["labels"], labels, pixel_sizes=sizes))
    if threshold is not None:
        (output_dir / "threshold.txt").write_text(f"{threshold:.4f}\n")
    return written


def write_results(prediction: Prediction, paths: dict, *, threshold, instances: bool, min_size: int = 10) -> dict:
    """Write one prediction's OME-TIFF files (``paths`` from :func:`result_paths`); returns its summary row."""
    axes = spatial_axes(prediction.uncertainty.ndim)
    shape = prediction.uncertainty.shape
    prob8, unc8 = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    for part, fg, unc in prediction.foreground_slabs():
        prob8[part], unc8[part] = _to_uint8(fg), _to_uint8(unc)
    write = dict(pixel_sizes=prediction.pixel_sizes, overwrite=True)
    if prediction.kind == "multiclass":
        write_ome_tiff(paths["prob"], _to_uint8(prediction.probabilities), axes="C" + axes, **write)
        mask, used = classes(prediction.probabilities), None
    else:
        write_ome_tiff(paths["prob"], prob8, axes=axes, **write)
        used = threshold
        if threshold == "otsu":  # on the saved 8-bit probability, so the mask matches the file
            used = find_threshold(prob8, method="otsu") / 255 if prob8.min() < prob8.max() else 0.5
        mask = prob8 > used * 255
    if "interior" in paths and prediction.interior is not None:
        write_ome_tiff(paths["interior"], _slabs_to_uint8(prediction.interior), axes=axes, **write)
    write_ome_tiff(paths["uncertainty"], unc8, axes=axes, **write)
    row = {"uncertainty": prediction.uncertainty_score, "foreground_fraction": float(np.mean(prob8 >= 128)),
           "threshold": used}
    if instances:
        interior = prediction.interior
        labels = label_instances(mask > 0, interior=interior, min_size=min_size)
        row["objects"] = int(labels.max(initial=0))
        write_labels(paths["labels"], labels, pixel_sizes=prediction.pixel_sizes)
    write_mask(paths["mask"], mask, pixel_sizes=prediction.pixel_sizes)
    return row


def _slabs_to_uint8(values, step: int = 16) -> np.ndarray:
    """``_to_uint8`` a slab at a time along the first axis (``values`` may live on disk)."""
    out = np.empty(values.shape, np.uint8)
    for start in range(0, values.shape[0], step):
        out[start:start + step] = _to_uint8(values[start:start + step])
    return out


def _to_uint8(values) -> np.ndarray:
    return np.clip(np.rint(np.asarray(values, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
