"""Load a folder of images and masks into normalised arrays and training targets (2D and 3D alike)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io.images import read_image, read_mask
from .normalize import percentile_normalize
from .pairs import find_pairs
from .targets import (IGNORE, LabelError, check_unlabelled_value, detect_label_kind, n_classes_for, split_unlabelled,
                      to_target)


MAX_VALUE_MASKS = 64  # masks whose values are read to check the "not labelled" value against the classes


class DataError(ValueError):
    """The data cannot be used as given; the message names the file and the fix."""


@dataclass
class Sample:
    """One image, normalised, with its target (``IGNORE`` where excluded)."""

    name: str
    image: np.ndarray  # (C, [Z,] Y, X) float32
    target: np.ndarray  # ([Z,] Y, X) int64
    pixel_sizes: tuple = ()
    unit: str | None = None  # of the pixel sizes: "µm", "relative" (ratios only) or None


@dataclass
class Dataset:
    samples: list[Sample]
    kind: str
    n_classes: int
    in_channels: int
    spatial_dims: int
    notes: list[str] = field(default_factory=list)
    # the test images left out of ``samples`` (nbseg.data.split.training_data); None: not asked yet
    test: list[str] | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]


def load_dataset(data_config, *, progress=None) -> Dataset:
    """Read, check and normalise every image/mask pair that ``data_config`` names.

    Parameters
    ----------
    data_config : nbseg.config.DataConfig
    progress : callable(done, total, name), optional

    Raises
    ------
    DataError, LabelError, nbseg.io.ImageReadError, nbseg.data.pairs.PairingError
    """
    cfg = data_config
    if cfg.masks is None:
        raise DataError("Training needs masks: set data.masks (CLI: --masks DIR) to the folder of label images.")
    pairs = find_pairs(cfg.images, cfg.masks, seg2=cfg.seg2, merging=cfg.merging_masks, excluding=cfg.excluding_masks)
    raw = []
    for i, pair in enumerate(pairs):
        image = read_image(pair.image, axes=cfg.axes, channels=cfg.channels, dims=cfg.dims)
        _check_dims(image, cfg.dims)
        mask = _read_label(pair, image, cfg.dims, cfg.unlabelled)
        mask, unlabelled = _split_unlabelled(mask, cfg.unlabelled, pair)
        raw.append((pair, image, mask, unlabelled))
        if progress:
            progress(i + 1, len(pairs), pair.name)
    _check_consistent(raw, cfg)
    kind = cfg.labels if cfg.labels != "auto" else detect_label_kind(
        [m for _, _, m, _ in raw], n_classes=cfg.n_classes, names=[p.mask.name for p, _, _, _ in raw])
    n_classes = cfg.n_classes
    if kind == "multiclass" and not n_classes:  # classes 0..K-1: K from the largest value seen
        n_classes = max(int(m.max()) for _, _, m, _ in raw) + 1
    n_classes = n_classes_for(kind, n_classes)
    if cfg.unlabelled is not None:
        values = set().union(*(np.unique(m).tolist() for _, _, m, _ in raw[:MAX_VALUE_MASKS]))
        check_unlabelled_value(cfg.unlabelled, kind, n_classes, values)
    samples = []
    for pair, image, mask, unlabelled in raw:
        target = to_target(mask, kind, n_classes=n_classes, name=str(pair.mask), unlabelled=unlabelled)
        if pair.excluding is not None:
            excluded = _read_aux(pair.excluding, image, cfg.dims, "excluding mask")
            target[excluded > 0] = IGNORE
        pixels = percentile_normalize(image.data, percentiles=cfg.percentiles, name=str(pair.image))
        sizes, unit = (tuple(cfg.pixel_sizes), "µm") if cfg.pixel_sizes else (image.pixel_sizes, image.unit)
        samples.append(Sample(pair.name, pixels, target, sizes, unit))
    first = raw[0][1]
    return Dataset(samples, kind, n_classes, first.data.shape[0], first.spatial_dims,
                   notes=[f"labels read as {kind!r} ({n_classes} classes)"])


def _split_unlabelled(mask, value, pair):
    mask, unlabelled = split_unlabelled(mask, value)
    if unlabelled is not None and unlabelled.all():
        raise DataError(
            f"The mask {pair.mask} has no labelled pixel: every pixel holds the 'not labelled' value {value}. "
            "Label some objects and background in it, or move the image and its mask out of the folders.")
    return mask, unlabelled


def _read_label(pair, image, dims, unlabelled=None):
    # float masks cannot carry a "not labelled" value: 0.0 and the value would be read by rounding
    mask = _read_aux(pair.mask, image, dims, "mask", allow_float=unlabelled is None)
    if pair.seg2 is not None:
        from ..labels.curation import merge_segmentations  # Seg1/Seg2 curation lives with the other label tools

        seg2 = _read_aux(pair.seg2, image, dims, "Seg2")
        merging = _read_aux(pair.merging, image, dims, "merging mask") if pair.merging else np.ones_like(seg2)
        mask = merge_segmentations(mask, seg2, merging)
    return mask


def _read_aux(path, image, dims, role: str, *, allow_float: bool = True) -> np.ndarray:
    mask = read_mask(path, dims=image.spatial_dims, allow_float=allow_float)
    if mask.shape != image.spatial_shape:
        raise DataError(
            f"The {role} {path} has shape {mask.shape} but its image {image.path} has spatial shape "
            f"{image.spatial_shape} (axes {image.axes}, full shape {image.data.shape}). "
            "They must cover the same pixels: re-export the mask at the image's size, or set the image axes."
        )
    return mask


def _check_dims(image, dims) -> None:
    if dims is not None and image.spatial_dims != dims:
        raise DataError(
            f"The settings say the data is {dims}D but {image.path} is {image.spatial_dims}D "
            f"(axes {image.axes}, shape {image.data.shape}). Set dims to {image.spatial_dims} (CLI: --dims), "
            "or give the file's axes (CLI: --axes)."
        )


def _check_consistent(raw, cfg) -> None:
    dims_seen = {image.spatial_dims for _, image, _, _ in raw}
    if len(dims_seen) > 1:
        raise DataError("The folder mixes 2D images and 3D stacks: " + ", ".join(
            f"{p.image.name}: {image.axes} {image.data.shape}" for p, image, _, _ in raw[:6]) + ". Keep one kind per project.")
    dims = dims_seen.pop()
    if cfg.pixel_sizes is not None and len(cfg.pixel_sizes) != dims:
        raise DataError(f"pixel_sizes {list(cfg.pixel_sizes)} has {len(cfg.pixel_sizes)} numbers but the data is "
                        f"{dims}D: give {'Z,Y,X' if dims == 3 else 'Y,X'} (CLI: --pixel-size).")
    thin = [p.image.name for p, image, _, _ in raw if dims == 3 and image.data.shape[1] == 1]
    if thin:
        raise DataError(f"{', '.join(thin[:5])} {'is a stack' if len(thin) == 1 else 'are stacks'} of one slice: "
                        "that is a 2D image. Set dims to 2 (CLI: --dims 2).")
    channels = {image.data.shape[0] for _, image, _, _ in raw}
    if len(channels) > 1:
        counts = {p.image.name: image.data.shape[0] for p, image, _, _ in raw}
        many = [n for n, c in counts.items() if c == max(channels)][:5]
        raise DataError(
            f"Images have different channel counts {sorted(channels)}; e.g. {', '.join(many)} have {max(channels)} "
            f"(RGB?) where others have {min(channels)}. Pick channels (CLI: --channels 0) or convert them to grey."
        )


__all__ = ["Dataset", "Sample", "DataError", "LabelError", "load_dataset"]
