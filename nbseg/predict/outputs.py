"""The files prediction writes for one image, and the one writer of masks and object labels that
:func:`~nbseg.predict.files.predict_files` and the export of notebook 07 share (both keep the
input's pixel sizes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DEFAULT_MIN_SIZE
from ..io.images import write_ome_tiff
from ..io.zarr import is_zarr, write_ome_zarr
from .image import Prediction
from .objects import PHYSICAL_UNIT, write_object_table, write_rois
from .post import DEFAULT_SEED_THRESHOLD, classes, find_threshold, instances as label_instances

RESULT_KINDS = ("prob", "interior", "uncertainty", "labels", "objects", "rois", "mask")  # writing order: the
# mask last marks it done
TABLE_SUFFIXES = {"objects": ".csv", "rois": ".zip"}  # the objects' table and their Fiji ROIs, whatever the format


def result_paths(output_dir, stem: str, *, instances: bool, interior: bool = False, format: str = "tiff",
                 rois: bool = False) -> dict:
    """``{kind: Path}`` of the files :func:`predict_files` writes for one input (``interior``: the
    interior probability of ``instances`` projects, which seeds the watershed that splits objects;
    ``format``: "tiff" for ``<stem>.<kind>.ome.tif``, "zarr" for ``<stem>.<kind>.ome.zarr``; with
    ``instances`` also the objects' table ``<stem>.objects.csv``, and with ``rois`` their outlines as
    Fiji ROIs ``<stem>.rois.zip``)."""
    if not stem or any(sep in stem for sep in ("/", "\\", "\0")):  # a name must not lead out of output_dir
        raise ValueError(f"Result name {stem!r} is not a plain file name: results are written inside {output_dir} "
                         "only. Name images without '/' or '\\' (their file names are used).")
    kinds = [k for k in RESULT_KINDS if (instances or k not in ("labels", "objects", "rois"))
             and (interior or k != "interior") and (rois or k != "rois")]
    suffix = {"tiff": ".ome.tif", "zarr": ".ome.zarr"}[format]
    return {k: Path(output_dir) / f"{stem}.{k}{TABLE_SUFFIXES.get(k, suffix)}" for k in kinds}


def predicted_names(output_dir) -> list[str]:
    """The input names (stems) ``output_dir`` holds probability maps of, in either format, sorted: how
    results are found again by name (see :func:`result_paths`)."""
    suffixes = [result_paths("", "_", instances=False, format=f)["prob"].name[1:] for f in ("tiff", "zarr")]
    folder = Path(output_dir)
    found = {p.name[: -len(s)] for s in suffixes for p in folder.glob(f"*{s}")} if folder.is_dir() else set()
    return sorted(found)


def read_probability(path, *, return_pixel_sizes: bool = False):
    """A probability map :func:`write_results` wrote, back as float32 in 0..1 (OME-TIFF keeps 0-255,
    OME-Zarr float32): the foreground's, or a multi-class map's "any class" (1 - background, its first
    channel); :func:`read_classes` gives the classes.

    Returns
    -------
    ([Z,] Y, X) float32 ndarray, or with ``return_pixel_sizes`` (it, its pixel sizes, their unit: "µm",
    "relative" or None)
    """
    from ..io.images import read_image

    image = read_image(path)  # not read_mask, which refuses Zarr's float values
    data = np.asarray(image.data[0])
    prob = data.astype(np.float32) / 255 if np.issubdtype(data.dtype, np.integer) else data.astype(np.float32)
    if image.data.shape[0] > 1:  # multi-class: every class, background first
        prob = 1 - prob
    return (prob, tuple(image.pixel_sizes), image.unit) if return_pixel_sizes else prob


def read_classes(path) -> np.ndarray:
    """The most probable object class of each pixel of a multi-class probability map (1 .. C-1, never the
    background), as ``([Z,] Y, X)`` uint8; where a pixel is foreground at all is :func:`read_probability`'s."""
    from ..io.images import read_image

    data = np.asarray(read_image(path).data)
    if data.shape[0] < 3:
        raise ValueError(f"{path} holds {data.shape[0]} channel(s); a multi-class map has the background and at "
                         "least two classes.")
    return (np.argmax(data[1:], axis=0) + 1).astype(np.uint8)


def write_image_file(path, data, *, axes: str, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT,
                     overwrite: bool = True, labels: bool = False) -> Path:
    """Write a result as OME-Zarr when ``path`` ends in ``.zarr``, else as OME-TIFF (``unit``: what the pixel
    sizes are in, "µm" or "relative")."""
    if is_zarr(path):
        return write_ome_zarr(path, data, axes=axes, pixel_sizes=pixel_sizes, unit=unit, overwrite=overwrite,
                              labels=labels)
    return write_ome_tiff(path, data, axes=axes, pixel_sizes=pixel_sizes, unit=unit, overwrite=overwrite)


def spatial_axes(ndim: int) -> str:
    """``"YX"`` or ``"ZYX"`` for a 2D or 3D array."""
    return "ZYX"[-ndim:]


def write_mask(path, mask, *, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT) -> Path:
    """Write a mask as uint8 OME-TIFF (or OME-Zarr): a boolean mask as 0/255, class numbers as they are."""
    mask = np.asarray(mask)
    data = mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8)
    return write_image_file(path, data, axes=spatial_axes(mask.ndim), pixel_sizes=pixel_sizes, unit=unit, labels=True)


def write_labels(path, labels, *, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT) -> Path:
    """Write object labels as uint16 OME-TIFF or OME-Zarr (uint32 from 65,536 objects on)."""
    labels = np.asarray(labels)
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    return write_image_file(path, labels.astype(dtype), axes=spatial_axes(labels.ndim), pixel_sizes=pixel_sizes,
                            unit=unit, labels=True)


def export_objects(output_dir, objects: dict, *, pixel_sizes: dict | None = None, units: dict | None = None,
                   threshold: float | None = None, images: dict | None = None,
                   classes: dict | None = None) -> list[Path]:
    """Write chosen objects: ``<stem>.mask.ome.tif`` (0/255), ``<stem>.labels.ome.tif`` and the objects'
    table ``<stem>.objects.csv`` for each image.

    Parameters
    ----------
    output_dir : str or Path
        Created when missing.
    objects : dict of stem -> ([Z,] Y, X) ndarray of int
        Object labels of each image (0 = background).
    pixel_sizes : dict of stem -> tuple, optional
        Each image's ``([Z,] Y, X)`` pixel sizes, kept in the files (read them from the probability map).
    units : dict of stem -> str, optional
        What each image's pixel sizes are in (default "µm"; "relative" for ratios only).
    threshold : float, optional
        The threshold the objects were made with; written to ``threshold.txt``.
    images : dict of stem -> (C, [Z,] Y, X) ndarray, optional
        The input images, for the objects' mean intensities (left out of the table without them).
    classes : dict of stem -> ([Z,] Y, X) ndarray of int, optional
        A multi-class project's class of each pixel: the mask file holds the class numbers of the objects'
        pixels (as ``nbseg predict`` writes them) instead of 0/255.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, labels in objects.items():
        paths, labels = result_paths(output_dir, stem, instances=True), np.asarray(labels)
        scale = {"pixel_sizes": (pixel_sizes or {}).get(stem), "unit": (units or {}).get(stem, PHYSICAL_UNIT)}
        mask = labels > 0 if stem not in (classes or {}) else np.where(labels > 0, classes[stem], 0)
        written.append(write_mask(paths["mask"], mask, **scale))
        written.append(write_labels(paths["labels"], labels, **scale))
        written += write_object_files(paths, labels, image=(images or {}).get(stem), **scale)
    if threshold is not None:
        (output_dir / "threshold.txt").write_text(f"{threshold:.4f}\n")
    return written


def write_results(prediction: Prediction, paths: dict, *, threshold, instances: bool,
                  min_size: int = DEFAULT_MIN_SIZE, seed_threshold: float = DEFAULT_SEED_THRESHOLD, image=None,
                  unit: str | None = PHYSICAL_UNIT) -> dict:
    """Write one prediction's OME-TIFF files (``paths`` from :func:`result_paths`); returns its summary row.

    ``image`` (the input, ``(C, [Z,] Y, X)``) gives the objects' table its mean intensities, ``unit``
    says what the pixel sizes are in (see :func:`~nbseg.predict.objects.object_table`)."""
    axes = spatial_axes(prediction.uncertainty.ndim)
    shape = prediction.uncertainty.shape
    prob8, unc8 = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    zarr = is_zarr(paths["prob"])  # Zarr keeps probabilities as float32 (chunks compress them), TIFF as 0-255
    prob_out, unc_out = (np.empty(shape, np.float32), np.empty(shape, np.float32)) if zarr else (prob8, unc8)
    for part, fg, unc in prediction.foreground_slabs():
        prob8[part], unc8[part] = to_uint8(fg), to_uint8(unc)
        if zarr:
            prob_out[part], unc_out[part] = fg, unc
    write = dict(pixel_sizes=prediction.pixel_sizes, unit=unit, overwrite=True)
    if prediction.kind == "multiclass":
        probabilities = prediction.probabilities
        write_image_file(paths["prob"], probabilities.astype(np.float32) if zarr else to_uint8(probabilities),
                         axes="C" + axes, **write)
        mask, used = classes(prediction.probabilities), None
    else:
        write_image_file(paths["prob"], prob_out, axes=axes, **write)
        used = threshold
        if threshold == "otsu":  # on the saved 8-bit probability, so the mask matches the file
            used = find_threshold(prob8, method="otsu") / 255 if prob8.min() < prob8.max() else 0.5
        mask = prob8 > used * 255
    if "interior" in paths and prediction.interior is not None:
        interior = np.asarray(prediction.interior, np.float32) if zarr else _slabs_to_uint8(prediction.interior)
        write_image_file(paths["interior"], interior, axes=axes, **write)
    write_image_file(paths["uncertainty"], unc_out, axes=axes, **write)
    row = {"uncertainty": prediction.uncertainty_score, "foreground_fraction": float(np.mean(prob8 >= 128)),
           "threshold": used}
    if instances:
        interior = prediction.interior
        labels = label_instances(mask > 0, interior=interior, min_size=min_size, seed_threshold=seed_threshold)
        row["objects"] = int(labels.max(initial=0))
        write_labels(paths["labels"], labels, pixel_sizes=prediction.pixel_sizes, unit=unit)
        write_object_files(paths, labels, image=image, pixel_sizes=prediction.pixel_sizes, unit=unit)
    write_mask(paths["mask"], mask, pixel_sizes=prediction.pixel_sizes, unit=unit)
    return row


def write_object_files(paths: dict, labels, *, image=None, pixel_sizes=None, unit: str | None = PHYSICAL_UNIT) -> list:
    """Write the objects' table ``paths["objects"]`` and, when ``paths`` names them, their Fiji ROIs."""
    written = [write_object_table(paths["objects"], labels, image, pixel_sizes, unit)] if "objects" in paths else []
    if "rois" in paths:
        written.append(write_rois(labels, paths["rois"]))
    return written


def _slabs_to_uint8(values, step: int = 16) -> np.ndarray:
    """``to_uint8`` a slab at a time along the first axis (``values`` may live on disk)."""
    out = np.empty(values.shape, np.uint8)
    for start in range(0, values.shape[0], step):
        out[start:start + step] = to_uint8(values[start:start + step])
    return out


def to_uint8(values) -> np.ndarray:
    """Probabilities in [0, 1] as the 0-255 values nbseg writes (and thresholds, so masks match files)."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
