"""Predict with a trained project: one image, files and folders written as OME-TIFF, or the
out-of-fold predictions of the training images.

The work is done in :mod:`.image` (one image), :mod:`.ensemble` (models and the per-tile function),
:mod:`nbseg.model.tiling` (sliding window) and :mod:`.tta` (test-time augmentation).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .ensemble import check_image, ensemble_info, load_ensemble
from .image import choose_tile, predict_image, read_for_models
from ..config import DEFAULT_PERCENTILES
from ..data.normalize import IntensityError, intensity_bounds
from ..io.images import ImageReadError, by_stem, file_stem, image_files, is_image_file, with_pixel_sizes
from ..io.zarr import is_zarr
from ..project import atomic_write, write_json
from .options import PredictOptions
from .outputs import result_paths, write_results

if TYPE_CHECKING:
    import pandas

__all__ = ["input_files", "predict_files", "prediction_roles", "recorded_roles"]

RECORD_FILE = "nbseg-predict.json"
NOT_READ = "not read"  # the status of an input that could not be read (the others are still predicted)
TABLE_FILE = "uncertainty.csv"


def predict_files(project, inputs, output_dir, options: PredictOptions | None = None, *, overwrite: bool = False,
                  progress=None, **settings) -> "pandas.DataFrame":
    """Predict image files and write the results beside each other as OME-TIFF.

    For each input ``<stem>`` the output folder gets ``<stem>.prob.ome.tif`` (foreground
    probability, uint8 0-255; every class for multi-class projects), ``<stem>.uncertainty.ome.tif``
    (uint8 0-255), ``<stem>.interior.ome.tif`` (interior probability, uint8, for projects trained on
    instances: it seeds the watershed that splits touching objects, here or later in notebook 07),
    ``<stem>.labels.ome.tif`` (objects, with ``instances``, and ``<stem>.objects.csv``, a row per object;
    their outlines as Fiji ROIs in ``<stem>.rois.zip`` with ``rois``) and
    ``<stem>.mask.ome.tif`` (0/255, or class numbers), with the input's pixel sizes, and
    ``uncertainty.csv`` ranks the images by uncertainty.

    Everything is checked before anything is written. An input that cannot be read (truncated,
    empty, not an image) or holds NaN or constant values is skipped, named in the table (status
    ``"not read"`` and the reason in ``error``), and the others are predicted. An interrupted run
    continues where it stopped when started again with the same settings.

    Parameters
    ----------
    project : str, Path, or list
        Trained project folder, model file(s), or ``load_ensemble``'s result.
    inputs : str, Path, or list of them
        Image files and/or folders of images.
    output_dir : str or Path
    options : PredictOptions, optional
        How to predict: tta, threshold (default 0.5: a trained network's probabilities are
        calibrated around it, while Otsu splits even an empty image in two), instances, min_size,
        overlap, tile, batch_size, device, precision, uncertainty, axes, channels.
    overwrite : bool
        Replace earlier results in ``output_dir``; without it they are kept and refused.
    progress : callable(done, total, name), optional
        Called after each image.
    **settings
        Instead of ``options``, or changing some of it: ``tta="none"``, ``instances=True``, ...

    Returns
    -------
    DataFrame
        One row per input, most uncertain first.

    Raises
    ------
    ValueError
        For inputs the models cannot take, unknown options, outputs that would replace an input, or
        when no input can be read.
    FileExistsError
        For earlier results made with other settings (pass ``overwrite=True``).
    """
    options = PredictOptions.build(options, **settings)
    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    output_dir = Path(output_dir)
    files = input_files(inputs)
    plans = _plan_outputs(files, output_dir, options.instances, interior=info.kind == "instances",
                          format_for=options.format_for, rois=options.rois)
    unreadable = _check_inputs(files, ensemble, info, options)
    settings = options.record([_resolved(m.get("source")) for _, m in ensemble])
    record = _check_earlier_results(output_dir, plans, settings, overwrite)
    record_roles(record, ensemble, files)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / RECORD_FILE, record)  # before any result, so an interrupted run can continue
    rows = []
    for i, path in enumerate(files):
        stem = file_stem(path)
        if path in unreadable:  # named in the table; the caller says so
            rows.append({"image": stem, "input": str(path), "status": NOT_READ, "error": unreadable[path]})
        elif not overwrite and all(p.exists() for p in plans[stem].values()):
            rows.append(record["images"].get(stem) or {"image": stem, "input": str(path)})
            rows[-1]["status"] = "done earlier"
        else:
            rows.append(_predict_one(ensemble, info, path, plans[stem], options, output_dir))
            record["images"][stem] = {k: v for k, v in rows[-1].items() if k != "status"}
            write_json(output_dir / RECORD_FILE, record)
        if progress:
            progress(i + 1, len(files), path.name)
    return _ranked(rows, output_dir / TABLE_FILE, record["roles"])


def _check_inputs(files, ensemble, info, options: PredictOptions) -> dict:
    """Read every input once before anything is written: ``{path: why}`` of the files that cannot be
    read or hold no usable values (NaN, constant), which are named and skipped while the others are
    predicted. Files the models cannot take (dimensions, channels, tile) stop the whole run.

    Raises
    ------
    ValueError
        When no input can be predicted, naming each file and why.
    """
    unreadable = {}
    percentiles = {tuple(m.get("percentiles") or DEFAULT_PERCENTILES) for _, m in ensemble}
    for path in files:
        try:
            image = read_for_models(path, info, axes=options.axes, channels=options.channels)
        except ImageReadError as err:
            unreadable[path] = str(err)
            continue
        check_image(image, info)
        choose_tile(options.tile, image.spatial_shape, info)
        try:
            for pair in percentiles:  # NaN or constant: named here, never written as a NaN mask
                intensity_bounds(image.data, pair, name=str(path))
        except IntensityError as err:
            unreadable[path] = str(err)
    if unreadable and len(unreadable) == len(files):
        raise ValueError("No input can be predicted: " + " ".join(unreadable.values()))
    return unreadable


def _predict_one(ensemble, info, path: Path, plan: dict, options: PredictOptions, output_dir: Path) -> dict:
    """Predict one file and write its results (``plan``); returns its row of the table."""
    image = with_pixel_sizes(read_for_models(path, info, axes=options.axes, channels=options.channels),
                             options.pixel_sizes)
    dtype = np.float32 if is_zarr(plan["prob"]) else np.float16  # Zarr results keep float32 probabilities
    prediction = predict_image(ensemble, image, options, scratch_dir=output_dir, dtype=dtype)
    row = write_results(prediction, plan, threshold=options.threshold, instances=options.instances,
                        min_size=options.min_size_for(info, image.pixel_sizes, image.unit),
                        seed_threshold=options.seed_threshold_for(info), image=image.data, unit=image.unit)
    return {"image": file_stem(path), "input": str(path), **row, "status": "predicted"}


def input_files(inputs) -> list[Path]:
    """Image files named, and those in folders named (not recursive), in the order given."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += image_files(item)
        elif item.is_file() and is_image_file(item):
            files.append(item)
        elif item.is_file():
            raise ValueError(f"{item} is not an image file nbseg reads (suffix {item.suffix!r}). "
                             "Give image files or folders of them.")
        else:
            raise FileNotFoundError(f"Input {item} does not exist. Check the path (relative to {Path.cwd()}).")
    if not files:
        raise ValueError("No input given: name image files or folders to predict.")
    return files


def _plan_outputs(files, output_dir: Path, instances: bool, *, interior: bool = False,
                  format_for=lambda path: "tiff", rois: bool = False) -> dict:
    plans = {}
    inputs = {Path(os.path.realpath(f)) for f in files}  # realpath: a symlink loop is named later, not raised here
    named = by_stem(files, "inputs", fix="Their results would overwrite each other. Rename one, or predict them "
                                         "into different folders.")
    for stem, path in named.items():
        plans[stem] = result_paths(output_dir, stem, instances=instances, interior=interior, format=format_for(path),
                                   rois=rois)
        clash = [str(p) for p in plans[stem].values() if Path(os.path.realpath(p)) in inputs]
        if clash:
            raise ValueError(f"Writing the results of {path} would replace input image(s) {', '.join(clash)}. "
                             "Choose an output folder that holds no input image.")
    if output_dir.resolve() in {f.parent.resolve() for f in files}:
        raise ValueError(
            f"The output folder {output_dir} is also where input images are: results would be mixed with "
            f"the images and read as images next time. Write them to a new folder, e.g. {output_dir / 'predictions'}."
        )
    return plans


def _check_earlier_results(output_dir: Path, plans, settings, overwrite: bool) -> dict:
    record_path = output_dir / RECORD_FILE
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    existing = sorted(p.name for plan in plans.values() for p in plan.values() if p.exists())
    if overwrite or not existing:
        return {"settings": settings, "images": {}}
    if record is None or record.get("settings") != json.loads(json.dumps(settings)):
        before = (record or {}).get("settings")
        changed = ", ".join(f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items()
                            if before and before.get(k) != v) if before else "no record of how they were made"
        raise FileExistsError(
            f"{output_dir} holds earlier results ({', '.join(existing[:4])}{', ...' if len(existing) > 4 else ''}) "
            f"made with other settings ({changed}). Write to a new folder, or pass overwrite=True "
            "(CLI: --overwrite) to replace them."
        )
    return record


def record_roles(record: dict, ensemble, files) -> None:
    """Keep in ``record`` (``roles``) whether the models trained on, validated with or held back each input
    (:mod:`.seen`): ``nbseg evaluate`` and notebook 07 warn when they score images the models have seen."""
    from .seen import roles_of, seen_images

    roles = roles_of([file_stem(p) for p in files], seen_images(ensemble))
    record["roles"] = {**record.get("roles", {}), **roles}


def recorded_roles(folder) -> dict[str, str] | None:
    """The roles (:mod:`.seen`) ``predict_files`` recorded for the images it predicted into ``folder``; None
    when it recorded none (maps made elsewhere, or by an older nbseg)."""
    path = Path(folder) / RECORD_FILE
    record = json.loads(path.read_text()) if path.exists() else {}
    return dict(record["roles"]) if "roles" in record else None


def prediction_roles(names, folder, models=None, *, models_first: bool = False) -> dict[str, str]:
    """``{name: role}`` (:mod:`.seen`) of predicted images in ``folder``.

    As ``predict_files`` recorded them there, else as ``models`` (a project folder or model file) say, else
    "new" (maps made elsewhere). ``models_first``: the models given win over the record, and a folder without
    models is an error (the user named them: ``nbseg evaluate --project``); otherwise a project that holds no
    model yet (a notebook's) says nothing.
    """
    from .seen import roles_of, seen_images

    recorded = None if models_first and models is not None else recorded_roles(folder)
    if recorded is not None:
        return roles_of(names, recorded)
    if models is None:
        return roles_of(names, {})
    try:
        ensemble = load_ensemble(models)
    except FileNotFoundError:
        if models_first:
            raise
        return roles_of(names, {})
    return roles_of(names, seen_images(ensemble))


def _resolved(source) -> str:
    return str(Path(source).resolve()) if source else ""


def _ranked(rows, table_path: Path, roles: dict | None = None):
    """The table of ``rows``, most uncertain first, with each image's ``role`` (:mod:`.seen`); also written."""
    import pandas as pd

    table = pd.DataFrame(rows)
    if roles is not None and "image" in table:
        table["role"] = table["image"].map(roles).fillna("new")
    if "uncertainty" in table:
        table = table.sort_values("uncertainty", ascending=False, kind="stable", na_position="last")
    table = table.reset_index(drop=True)
    with atomic_write(table_path) as tmp:
        table.to_csv(tmp, index=False)
    return table
