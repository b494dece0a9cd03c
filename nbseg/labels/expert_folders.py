"""Ground truth for every image in a set of expert folders (one folder per expert, masks named
like the images), written to an output folder all at once or not at all."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .consensus import check_options, estimate_ground_truth
from ..io.images import file_stem, files_by_stem, read_mask, write_ome_tiff

SCORES_FILE = "expert_scores.csv"


def ground_truth_folders(expert_dirs, output_dir, *, method="majority", labels="binary", threshold=0.5,
                         region="union", save_probability=False, dims=None, progress=None) -> pd.DataFrame:
    """Estimate the ground truth of every image that a set of expert folders holds.

    Each folder holds one expert's masks, named like the images (``cell_01.tif`` in every
    folder). Writes one mask per image to ``output_dir`` with the same file name (TIFF; other
    formats become ``<name>.tif``), optionally the probabilities to ``output_dir/probability``,
    and the per-expert scores to ``output_dir/expert_scores.csv``. The masks keep the pixel
    sizes the experts' files agree on. Nothing is written unless every image succeeds, and
    existing files are never replaced.

    Parameters
    ----------
    expert_dirs : sequence of str or Path
        Two or more folders, one per expert; the folder name is the expert's name.
    output_dir : str or Path
    method, labels, threshold, region
        As for :func:`nbseg.ground_truth.estimate_ground_truth`.
    save_probability : bool
        Also write the probability maps (float32) to ``output_dir/probability``.
    dims : {2, 3}, optional
        Spatial dimensions, for mask files whose third axis could be Z or channels.
    progress : callable(done, total, name), optional

    Returns
    -------
    pandas.DataFrame
        One row per image and expert: ``image``, ``expert``, and the scores.

    Raises
    ------
    ValueError
        Fewer than two folders, file names that differ between experts, or masks that do not fit.
    FileExistsError
        If ``output_dir`` already holds any of the files to write.
    """
    check_options(method=method, labels=labels, region=region, threshold=threshold)
    dirs = [Path(d) for d in expert_dirs]
    if len(dirs) < 2:
        raise ValueError(
            f"Got {len(dirs)} expert folder ({', '.join(map(str, dirs)) or 'none'}); a ground truth needs two or more "
            "experts' masks of the same images. Give one folder per expert."
        )
    names = _expert_names(dirs)
    files = _matched_files(dirs, names)
    output_dir = Path(output_dir)
    targets = {stem: _output_name(path) for stem, path in files[0].items()}
    _refuse_overwrite(output_dir, list(targets.values()) + [SCORES_FILE], save_probability)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-partial-", dir=output_dir.parent))
    try:
        rows = []
        for i, stem in enumerate(sorted(targets)):
            masks, sizes = zip(*(read_mask(f[stem], dims=dims, return_pixel_sizes=True) for f in files))
            masks = list(masks)
            try:
                result = estimate_ground_truth(masks, method=method, labels=labels, threshold=threshold,
                                               names=names, region=region)
            except ValueError as err:
                raise ValueError(f"Image {stem}: {err}") from err
            axes = "ZYX" if result.mask.ndim == 3 else "YX"
            pixel_sizes = _common_pixel_sizes(sizes)
            write_ome_tiff(staging / targets[stem], result.mask, axes=axes, pixel_sizes=pixel_sizes)
            if save_probability:
                write_ome_tiff(staging / "probability" / targets[stem], result.probability, axes=axes,
                               pixel_sizes=pixel_sizes)
            rows.append(result.expert_scores.reset_index().assign(image=stem))
            if progress:
                progress(i + 1, len(targets), stem)
        table = pd.concat(rows, ignore_index=True)
        table = table[["image", "expert"] + [c for c in table.columns if c not in ("image", "expert")]]
        table.to_csv(staging / SCORES_FILE, index=False)
        _move_into(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return table


def summarise_experts(table: pd.DataFrame) -> pd.DataFrame:
    """Per expert, the mean of each score over the images: who disagrees with the others.

    Parameters
    ----------
    table : pandas.DataFrame
        As returned by :func:`ground_truth_folders` (or ``expert_scores.csv`` read back): one row
        per image and expert with ``sensitivity``, ``specificity``, ``dice`` against the ground
        truth and, for STAPLE, ``staple_sensitivity`` and ``staple_specificity``.

    Returns
    -------
    pandas.DataFrame
        Indexed by expert, in the order of the table: the mean ``sensitivity``,
        ``specificity``, ``dice`` (and the STAPLE estimates when present), ``images`` (how many
        were scored) and ``lowest_dice`` (True for the expert who agrees least with the ground
        truth: the first one to look at).
    """
    columns = [c for c in ("sensitivity", "specificity", "dice", "staple_sensitivity", "staple_specificity")
               if c in table.columns]
    grouped = table.groupby("expert", sort=False)
    summary = grouped[columns].mean().dropna(axis=1, how="all")
    summary["images"] = grouped["image"].nunique() if "image" in table.columns else grouped.size()
    summary["lowest_dice"] = summary["dice"] == summary["dice"].min() if len(summary) > 1 else False
    return summary


# ---------------------------------------------------------------- helpers


def _common_pixel_sizes(sizes) -> tuple:
    """Per axis, the pixel size the experts' files agree on; None where none gives one or they differ."""
    # a mask drawn in a tool that drops metadata must not cost the others' sizes
    common = []
    for axis_sizes in zip(*sizes):
        known = {round(s, 9) for s in axis_sizes if s}
        common.append(known.pop() if len(known) == 1 else None)
    return tuple(common)


def _expert_names(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) < len(names):  # e.g. alice/masks and bob/masks
        names = [str(d) for d in dirs]
    if len(set(names)) < len(names):
        raise ValueError(f"The same expert folder is given twice: {', '.join(names)}. Give each expert's folder once.")
    return names


def _matched_files(dirs: list[Path], names: list[str]) -> list[dict]:
    files = [files_by_stem(d) for d in dirs]
    every = set().union(*files)
    missing = {n: sorted(every - set(f)) for n, f in zip(names, files) if every - set(f)}
    if missing:
        lines = "; ".join(f"{n} lacks {', '.join(s[:5])}{' ...' if len(s) > 5 else ''}" for n, s in missing.items())
        raise ValueError(
            f"The expert folders do not hold the same file names: {lines}. Every expert needs a mask of every "
            "image under the image's name; add the missing masks or remove those images from the other folders."
        )
    return files


def _output_name(path: Path) -> str:
    return path.name if path.name.lower().endswith((".tif", ".tiff")) else file_stem(path) + ".tif"


def _refuse_overwrite(output_dir: Path, names: list[str], save_probability: bool) -> None:
    paths = [output_dir / n for n in names]
    if save_probability:
        paths += [output_dir / "probability" / n for n in names if n != SCORES_FILE]
    existing = [str(p.relative_to(output_dir)) for p in paths if p.exists()]
    if existing:
        raise FileExistsError(
            f"{output_dir} already holds {len(existing)} of the files to write ({', '.join(existing[:5])}"
            f"{' ...' if len(existing) > 5 else ''}); nbseg never replaces them. Choose a new output folder "
            "or move those files away."
        )


def _move_into(staging: Path, output_dir: Path) -> None:
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = output_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)


__all__ = ["ground_truth_folders", "summarise_experts", "SCORES_FILE"]
