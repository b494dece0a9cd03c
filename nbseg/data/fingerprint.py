"""The data fingerprint: what a training set looks like, measured once, so the training plan can
follow the data (working scale, anisotropy, patch, batch) instead of one set of defaults.

Pixel sizes per axis, image shapes, intensity statistics, per-class object sizes (extent per axis
in pixels and, where the files say, in physical units), class fractions, image and voxel counts.
Saved as ``fingerprint.json`` in the project.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

MAX_OBJECTS = 5000  # objects measured per class (a seeded draw beyond this keeps it quick)
QUANTILES = (10, 50, 90)
SIZE_QUANTILES = (1, 50)  # of the objects' pixel counts: the smallest set prediction's minimum object size
SCALES = (0.5, 0.25)  # coarser working scales whose label fidelity is measured
MESH_SHARE = 0.5  # a class with this share of its pixels in objects reaching across their image is a mesh


@dataclass
class Fingerprint:
    """What :func:`fingerprint` measured.

    Attributes
    ----------
    spatial_dims : int
        2 or 3.
    n_images, n_voxels : int
    shapes : list of list of int
        Each image's ``([Z,] Y, X)``.
    pixel_sizes : list of float or None
        The median ``([Z,] Y, X)`` pixel size over the images that give one, per axis; None
        where no image says.
    unit : str or None
        ``"µm"``, ``"relative"`` (only ratios known) or None.
    spacing_differs : list of str
        Images whose pixel sizes differ from the median by more than 5 % on an axis.
    intensity : dict
        Normalised intensity (after percentile normalisation) inside and outside the objects:
        ``{"foreground": {"mean", "std"}, "background": {...}}``.
    class_fractions : list of float
        Share of labelled pixels in each class.
    objects : dict of str -> dict
        Per class name: ``count``, ``extent`` (``{"p10", "p50", "p90"}`` lists, per axis, in pixels) and
        ``spanning``, the share of the class's pixels in objects that reach across their image in-plane.
    scale_fidelity : dict of str -> float
        Per in-plane factor (``"0.5"``, ``"0.25"``): the lowest per-class Dice of the labels taken to
        that scale and back (``nbseg.data.resample.label_fidelity``): how much a coarser working
        scale would cost at best.
    notes : list of str
    label_offset : dict
        Where the labels sit on their images, to a fraction of a pixel, and whether the images agree
        (:func:`nbseg.data.alignment.label_offset`).
    object_size : dict or None
        Pixels per labelled object, ``{"p1", "p50", "count"}``, over every object of every image: the
        connected foreground regions (whole objects, boundary included, for instance labels; touching
        objects count as one). None for multi-class labels.
    """

    spatial_dims: int
    n_images: int
    n_voxels: int
    shapes: list
    pixel_sizes: list
    unit: str | None
    spacing_differs: list
    intensity: dict
    class_fractions: list
    objects: dict
    kind: str = "binary"
    scale_fidelity: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    label_offset: dict = field(default_factory=dict)
    object_size: dict | None = None

    @property
    def anisotropy(self) -> float:
        """Z pixel size over the in-plane one (1.0 for 2D data or when the files do not say)."""
        sizes = self.pixel_sizes
        if self.spatial_dims != 3 or sizes[0] is None or not sizes[-1]:
            return 1.0
        return float(sizes[0] / sizes[-1])

    def typical_extent(self, *, spanning: bool = True) -> list | None:
        """The 90th-percentile object extent per axis (pixels) over the object classes, or None.

        ``spanning=False`` leaves out the classes that form a mesh, such as membranes: their extent is the
        image's, not an object's. A mesh is a class whose large objects reach across the smallest image
        in-plane, or most of whose pixels lie in objects that reach across their image (in a stack the
        sections' meshes join into a few objects, and the 90th percentile no longer shows it)."""
        side = np.min(np.asarray(self.shapes), axis=0)[-2:]
        extents = [np.asarray(o["extent"]["p90"]) for o in self.objects.values()
                   if o["count"] and (spanning or (np.all(np.asarray(o["extent"]["p90"])[-2:] < side)
                                                   and o.get("spanning", 0.0) < MESH_SHARE))]
        return np.max(extents, axis=0).tolist() if extents else None

    def save(self, path) -> Path:
        from ..project import write_json

        return write_json(path, asdict(self))

    @classmethod
    def load(cls, path) -> "Fingerprint":
        return cls(**json.loads(Path(path).read_text()))


def fingerprint(dataset, *, seed: int = 0) -> Fingerprint:
    """Measure a loaded :class:`~nbseg.data.dataset.Dataset`.

    Parameters
    ----------
    dataset : nbseg.data.Dataset
        Normalised images and their targets.
    seed : int
        For the draw of objects when a class has more than ``MAX_OBJECTS``.
    """
    from .alignment import label_offset
    from .targets import CLASS_NAMES

    samples = dataset.samples
    sizes, unit, differs = _pixel_sizes(samples, dataset.spatial_dims)
    names = CLASS_NAMES.get(dataset.kind, [f"class {i}" for i in range(dataset.n_classes)])
    counts = np.zeros(dataset.n_classes)
    for s in samples:
        counts += np.bincount(s.target[s.target >= 0].ravel(), minlength=dataset.n_classes)[:dataset.n_classes]
    rng = np.random.default_rng(seed)
    object_classes = [1] if dataset.kind == "instances" else range(1, dataset.n_classes)  # interior per object
    objects = {names[c]: _object_extents(samples, c, rng) for c in object_classes}
    return Fingerprint(
        spatial_dims=dataset.spatial_dims, n_images=len(samples),
        n_voxels=int(sum(s.target.size for s in samples)), shapes=[list(s.target.shape) for s in samples],
        pixel_sizes=sizes, unit=unit, spacing_differs=differs, intensity=intensity_stats(samples),
        class_fractions=(counts / max(counts.sum(), 1)).round(6).tolist(), objects=objects, kind=dataset.kind,
        scale_fidelity=_scale_fidelity(samples, dataset.n_classes, dataset.spatial_dims),
        notes=_notes(sizes, unit, differs, dataset.spatial_dims), label_offset=label_offset(samples),
        object_size=None if dataset.kind == "multiclass" else object_size(samples))


def image_fingerprint(samples, spatial_dims: int) -> Fingerprint:
    """What images alone tell (shapes, pixel sizes; no labels, so no objects): the fingerprint a run that learns
    from the images themselves is planned from (:mod:`nbseg.denoise`). The plan then keeps the images' own
    scale and patches span whole images where they can.

    Parameters
    ----------
    samples : list of nbseg.data.Sample
    spatial_dims : {2, 3}
    """
    sizes, unit, differs = _pixel_sizes(samples, spatial_dims)
    shapes = [list(s.image.shape[1:]) for s in samples]
    return Fingerprint(spatial_dims=spatial_dims, n_images=len(samples), n_voxels=int(sum(np.prod(s) for s in shapes)),
                       shapes=shapes, pixel_sizes=sizes, unit=unit, spacing_differs=differs, intensity={},
                       class_fractions=[], objects={}, kind="images",
                       notes=_notes(sizes, unit, differs, spatial_dims))


def object_size(samples) -> dict | None:
    """Quantiles of the pixel counts of the connected foreground regions of ``samples``' targets."""
    counts = []
    for s in samples:
        labelled, n = ndimage.label(s.target > 0)
        counts.extend(np.bincount(labelled.ravel(), minlength=n + 1)[1:].tolist())
    if not counts:
        return None
    return {"count": len(counts), **{f"p{q}": float(np.percentile(counts, q)) for q in SIZE_QUANTILES}}


def _scale_fidelity(samples, n_classes: int, dims: int) -> dict:
    from .resample import label_fidelity

    targets = [s.target for s in samples]
    return {str(f): round(label_fidelity(targets, (f,) * dims, n_classes), 4) for f in SCALES}


def _pixel_sizes(samples, dims: int):
    given = np.array([[np.nan if v is None else v for v in (s.pixel_sizes or (None,) * dims)] for s in samples],
                     float).reshape(len(samples), dims)
    with np.errstate(all="ignore"):
        median = [None if np.all(np.isnan(col)) else float(np.nanmedian(col)) for col in given.T]
    differs = [s.name for s, row in zip(samples, given)
               if any(m is not None and not np.isnan(v) and abs(v - m) > 0.05 * m for v, m in zip(row, median))]
    unit = next((getattr(s, "unit", None) for s in samples if getattr(s, "unit", None)), None)
    return median, unit, differs


def _object_extents(samples, cls: int, rng) -> dict:
    extents, across, total = [], 0, 0
    for s in samples:
        labelled, n = ndimage.label(s.target == cls)
        boxes = ndimage.find_objects(labelled)
        sizes = np.bincount(labelled.ravel(), minlength=n + 1)[1:]
        for box, size in zip(boxes, sizes):
            if box is None:
                continue
            extents.append([sl.stop - sl.start for sl in box])
            across += int(size) if extents[-1][-2:] == list(s.target.shape[-2:]) else 0
        total += int(sizes.sum())
    if len(extents) > MAX_OBJECTS:
        extents = [extents[i] for i in rng.choice(len(extents), MAX_OBJECTS, replace=False)]
    if not extents:
        return {"count": 0, "extent": {f"p{q}": None for q in QUANTILES}, "spanning": 0.0}
    array = np.asarray(extents)
    return {"count": len(extents),
            "extent": {f"p{q}": np.percentile(array, q, axis=0).round(1).tolist() for q in QUANTILES},
            "spanning": round(across / max(total, 1), 4)}


def intensity_stats(samples) -> dict:
    """Mean and standard deviation of the normalised first channel inside (``foreground``) and outside
    (``background``) the labelled objects of ``samples``, from every 97th pixel."""
    fg, bg = [], []
    for s in samples:
        first = s.image[0]
        inside = s.target > 0
        fg.append(first[inside][::97])  # a thinned sample: the statistics, not every pixel
        bg.append(first[(s.target == 0)][::97])
    stats = {}
    for name, parts in (("foreground", fg), ("background", bg)):
        values = np.concatenate(parts) if parts else np.zeros(0)
        stats[name] = {"mean": float(values.mean()) if values.size else None,
                       "std": float(values.std()) if values.size else None}
    return stats


def _notes(sizes, unit, differs, dims) -> list:
    notes = []
    if all(v is None for v in sizes):
        notes.append("the files give no pixel sizes: square (cubic) pixels are assumed; give them with "
                     "--pixel-size Z,Y,X (or Y,X) or data.pixel_sizes in config.yaml")
    if unit == "relative":
        notes.append("the files give pixel sizes only as ratios (Fiji's 'relative' unit): anisotropy is known, "
                     "physical sizes are not")
    if differs:
        notes.append(f"pixel sizes differ between images ({', '.join(differs[:5])}"
                     f"{', ...' if len(differs) > 5 else ''}): the median is used for the plan")
    return notes
