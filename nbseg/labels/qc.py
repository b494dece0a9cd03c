"""Quality checks over a training set (images + masks, 2D or 3D) before training, and ranking of
training images by how much a model's out-of-fold prediction disagrees with their annotation.

Every flag comes with a reason a biologist can act on. Per-image checks live in
:mod:`nbseg.qc_checks`; this module runs them over folders and compares images with each other.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.images import files_by_stem
from .qc_checks import check_pair

FLAGS = {
    "unpaired": "an image without a mask, or a mask without an image",
    "unreadable": "the file could not be read",
    "shape_mismatch": "the mask's shape differs from the image's",
    "format_differs": "dimensions, channel count or data type differ from most images",
    "bad_labels": "label values outside the declared classes, or an odd kind of mask for this dataset",
    "empty_mask": "the mask marks nothing",
    "no_labels": "every pixel holds the 'not labelled' value",
    "tiny_objects": "objects smaller than min_object_size pixels (voxels in 3D)",
    "split_objects": "one object number used for several separate pieces",
    "border_objects": "more than max_border_fraction of the objects touch the image border",
    "odd_foreground": "the share of labelled pixels is far from the rest of the dataset",
    "odd_object_count": "the number of objects is far from the rest of the dataset",
    "odd_intensity": "brightness or contrast far from similar images, or a constant image",
    "duplicate": "the same pixels as another image (or the same mask as another image)",
}
MIN_GROUP = 5  # fewer images than this give no meaningful median and spread
# spread floor on the log scale: in a uniform dataset a value must differ about 4.7-fold
# (exp(3.5 * 0.3 / 0.6745)) to count as an outlier, never by one object or one grey level
MIN_LOG_SPREAD = 0.3


@dataclass
class QCReport:
    """What :func:`qc_dataset` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per image (index: name): a boolean column per flag (see ``FLAGS``), the
        measurements, and ``reasons``, a readable sentence per flag.
    summary : pandas.DataFrame
        One row per flag: ``count``, ``examples`` (a few names) and ``meaning``.
    notes : list of str
        Checks that could not run, and why.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    notes: list = field(default_factory=list)

    def to_csv(self, path) -> Path:
        """Write the full table (every image, every measurement); the folder is created when missing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path)
        return path

    @property
    def flagged(self) -> pd.DataFrame:
        """The rows with at least one flag."""
        return self.table[self.table["n_flags"] > 0]

    def __str__(self) -> str:
        lines = [f"{len(self.flagged)} of {len(self.table)} images flagged"]
        lines += [f"  {flag}: {row['count']}" for flag, row in self.summary.iterrows() if row["count"]]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def qc_dataset(images, masks, *, n_classes=None, min_object_size=10, max_border_fraction=0.5,
               z_threshold=3.5, dims=None, unlabelled=None, progress=None) -> QCReport:
    """Check a folder of images and a folder of masks for problems worth fixing before training.

    Parameters
    ----------
    images, masks : str or Path
        Folders; a mask has its image's name (the suffix may differ).
    n_classes : int, optional
        For multi-class masks: labels must lie in 0..n_classes-1, and objects are the
        connected pieces of each class. Without it, masks with one foreground value are
        binary (objects are connected pieces) and others are instance masks (one number
        per object).
    min_object_size : int
        Objects with fewer pixels (voxels in 3D) are flagged as tiny.
    max_border_fraction : float
        Flag images where more than this share of the objects touch the border.
    z_threshold : float
        Flag measurements whose robust z-score (median and MAD over the dataset, on a log
        scale) exceeds this; 3.5 is the usual cut for outliers (Iglewicz and Hoaglin).
        Intensities are compared only among images of the same channel count and data type.
    dims : {2, 3}, optional
        Spatial dimensions, for files whose third axis could be Z or channels.
    unlabelled : int, optional
        The mask value meaning "not labelled": shares, objects and checks count the other pixels only.
    progress : callable(done, total, name), optional

    Returns
    -------
    QCReport
    """
    image_by_stem, mask_by_stem = files_by_stem(images), files_by_stem(masks)
    names = sorted(set(image_by_stem) | set(mask_by_stem))
    options = dict(n_classes=n_classes, min_object_size=min_object_size,
                   max_border_fraction=max_border_fraction, dims=dims, unlabelled=unlabelled)
    records, issues = [], {}
    for i, name in enumerate(names):
        record, issues[name] = check_pair(name, image_by_stem.get(name), mask_by_stem.get(name), **options)
        records.append(record)
        if progress:
            progress(i + 1, len(names), name)
    table = pd.DataFrame.from_records(records, index="name")
    notes: list[str] = []
    _check_formats(table, issues)
    if n_classes is None:
        _check_label_kinds(table, issues)
    _check_duplicates(table, issues)
    _check_outliers(table, issues, z_threshold, notes)
    return _report(table, issues, notes)


def robust_z(values, *, min_spread=0.0) -> np.ndarray:
    """Robust z-scores, ``0.6745 (x - median) / MAD``.

    Parameters
    ----------
    values : (N,) array_like
        NaN stays NaN.
    min_spread : float
        Floor for the MAD, so that in a dataset of near-identical values a tiny difference
        does not look extreme. Where more than half the values are equal (MAD 0) the mean
        absolute deviation stands in (``1.2533 * mean |x - median|``, Iglewicz and Hoaglin).
    """
    values = np.asarray(values, dtype=float)
    median = np.nanmedian(values)
    mad = np.nanmedian(np.abs(values - median))
    if not mad > 0:
        mad = 0.6745 * 1.2533 * np.nanmean(np.abs(values - median))
    mad = max(mad, min_spread)
    if not mad > 0:
        return np.where(np.isnan(values), np.nan, 0.0)
    return 0.6745 * (values - median) / mad


def rank_by_disagreement(predictions, masks, *, threshold=0.5) -> pd.DataFrame:
    """Rank training images by how much a model's prediction disagrees with their annotation.

    Use out-of-fold predictions (the model never trained on the image it predicts), so a
    large disagreement points at an annotation worth a second look, or at an image unlike
    the rest.

    Parameters
    ----------
    predictions : dict of str to ([Z,] Y, X) ndarray
        Foreground probability in [0, 1] per image name.
    masks : dict of str to ([Z,] Y, X) ndarray
        Label image per name; any label > 0 is foreground.
    threshold : float
        Probability above which a pixel counts as predicted foreground.

    Returns
    -------
    pandas.DataFrame
        Most suspect first, indexed by name: ``rank`` (1 = most suspect), ``disagreement``
        (1 - Dice of the thresholded prediction against the mask), ``dice``,
        ``mean_abs_error`` (mean |p - label|), ``unannotated_fraction`` (share of pixels
        predicted but not annotated: objects missing from the mask?) and ``missed_fraction``
        (annotated but not predicted: spurious annotations, or objects the model fails on).
    """
    missing = sorted(set(masks) ^ set(predictions))
    if missing:
        raise ValueError(
            f"Predictions and masks must name the same images; {len(missing)} do not pair up, e.g. "
            f"{', '.join(missing[:5])}. Predict every annotated image (out of fold) and pass both dicts."
        )
    rows = {name: _disagreement(np.asarray(predictions[name]), np.asarray(masks[name]), name, threshold)
            for name in sorted(masks)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "name"
    table = table.sort_values(["disagreement", "mean_abs_error"], ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


# ---------------------------------------------------------------- across images


def _flag(issues, name, flag, reason) -> None:
    issues[name].append((flag, reason))


def _check_formats(table, issues) -> None:
    described = {"dims": "{}D where most are {}D", "channels": "{} channel(s) where most images have {}",
                 "image_dtype": "image data type {} where most are {}",
                 "mask_dtype": "mask data type {} where most are {}"}
    for column, sentence in described.items():
        values = table[column].dropna()
        if values.dtype.kind == "f":  # counts turn float beside unreadable rows
            values = values.astype(int)
        if values.nunique() < 2:
            continue
        common = Counter(values).most_common(1)[0][0]
        for name, value in values[values != common].items():
            _flag(issues, name, "format_differs", sentence.format(value, common))


def _check_label_kinds(table, issues) -> None:
    values = table["n_label_values"].dropna()
    values = values[values > 0]
    if len(values) < MIN_GROUP:
        return
    if (values == 1).mean() >= 0.8:  # a binary dataset: several numbers in one mask stand out
        for name, n in values[values > 1].items():
            _flag(issues, name, "bad_labels", f"{int(n)} different labels where most masks are binary (0/1): "
                  "an instance or multi-class mask among binary ones? Binarise it or set n_classes")


def _check_duplicates(table, issues) -> None:
    for column, what in (("image_hash", "image has the same pixels as"), ("mask_hash", "mask is identical to")):
        hashes = table[column].dropna()
        if column == "mask_hash":
            hashes = hashes[table.loc[hashes.index, "n_objects"] > 0]  # empty masks alike are no news
        for _, group in hashes.groupby(hashes):
            for name in group.index if len(group) > 1 else ():
                others = [n for n in group.index if n != name]
                _flag(issues, name, "duplicate", f"{what} {', '.join(others[:3])}")


def _check_outliers(table, issues, z_threshold, notes) -> None:
    groups = table.groupby(["channels", "image_dtype"], dropna=True).groups
    everything = {"all images": table.index}
    # brightness, density and counts vary by factors, so compare them on a log-like scale
    checks = [("intensity_median", "odd_intensity", "median brightness", groups, np.arcsinh),
              ("intensity_contrast", "odd_intensity", "contrast (1st to 99th percentile)", groups, np.arcsinh),
              ("foreground_fraction", "odd_foreground", "labelled share", everything, np.log),
              ("n_objects", "odd_object_count", "object count", everything, np.log)]
    for column, flag, what, by, scale in checks:
        for key, index in by.items():
            values = table.loc[index, column].dropna().astype(float)
            if flag != "odd_intensity":  # empty masks are flagged as such already
                values = values[values.index.map(table["n_objects"]) > 0]
            if len(values) < MIN_GROUP:
                notes.append(f"{what}: not compared for {key} ({len(values)} images; needs {MIN_GROUP} or more)")
                continue
            z = pd.Series(robust_z(scale(values), min_spread=MIN_LOG_SPREAD), index=values.index)
            for name in z.index[np.abs(z) > z_threshold]:
                _flag(issues, name, flag,
                      f"{what} {values[name]:.3g} vs typical {values.median():.3g} (robust z {z[name]:+.1f})")


def _report(table, issues, notes) -> QCReport:
    for flag in FLAGS:
        table[flag] = [any(f == flag for f, _ in issues[name]) for name in table.index]
    table["n_flags"] = table[list(FLAGS)].sum(axis=1)
    table["reasons"] = ["; ".join(f"{f}: {r}" for f, r in issues[name]) for name in table.index]
    summary = pd.DataFrame({
        "count": [int(table[flag].sum()) for flag in FLAGS],
        "examples": [", ".join(table.index[table[flag]][:3]) for flag in FLAGS],
        "meaning": list(FLAGS.values()),
    }, index=pd.Index(list(FLAGS), name="flag"))
    return QCReport(table, summary, notes)


# ---------------------------------------------------------------- model-assisted


def _disagreement(probability: np.ndarray, mask: np.ndarray, name: str, threshold: float) -> dict:
    if probability.shape != mask.shape:
        raise ValueError(
            f"Prediction for {name} has shape {probability.shape} but its mask has {mask.shape}; give the "
            "foreground probability ([Z,] Y, X) of the same image, not the class probabilities (C, ...)."
        )
    if probability.size and (np.nanmin(probability) < 0 or np.nanmax(probability) > 1):
        raise ValueError(
            f"Prediction for {name} holds values in [{np.nanmin(probability):.3g}, {np.nanmax(probability):.3g}]; "
            "it must be a probability in [0, 1]. Apply a sigmoid or softmax to the model's raw output first."
        )
    label = mask > 0
    predicted = probability > threshold
    both = np.count_nonzero(predicted & label)
    total = np.count_nonzero(predicted) + np.count_nonzero(label)
    dice = 2.0 * both / total if total else 1.0  # both empty: full agreement
    return {
        "disagreement": 1.0 - dice,
        "dice": dice,
        "mean_abs_error": float(np.abs(probability - label).mean()),
        "unannotated_fraction": float(np.count_nonzero(predicted & ~label) / label.size),
        "missed_fraction": float(np.count_nonzero(label & ~predicted) / label.size),
    }


__all__ = ["QCReport", "qc_dataset", "rank_by_disagreement", "robust_z", "FLAGS"]
