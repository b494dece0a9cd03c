"""Segmentation on denoised images (``nbseg train --denoise`` and ``nbseg predict --denoise``): the denoiser a
segmentation project carries, and the denoised copies that training and prediction read in the raw images' stead.

A project trained on denoised images holds a copy of its denoiser (:attr:`nbseg.project.ProjectLayout.denoiser`:
the model file, its settings, and where it came from), so the project can move and prediction still applies the
same one. The copies keep the raw images' names (``<name>.ome.tif``), intensity scale, axes and pixel sizes. A
folder of copies records which denoiser made them (its model file's SHA-256): a rerun or ``--resume`` reuses
them, another denoiser makes them anew. Masks are never denoised.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..io.images import file_stem, read_image
from ..io.names import image_files
from ..io.zarr import remove_tree
from ..project import ProjectLayout, write_json
from .predict import denoise_files, load_denoiser

__all__ = ["PREDICT_FOLDER", "RECORD_FILE", "carry_denoiser", "copies_by", "copies_reading", "denoised_copies",
           "denoised_inputs", "denoised_training_data", "denoiser_file", "made_by", "predict_denoiser",
           "record_copies", "training_denoiser"]

RECORD_FILE = "denoised-by.json"  # in a folder of copies: which denoiser made them
PREDICT_FOLDER = "denoised"  # in nbseg predict's output folder: the denoised images that were segmented


def denoiser_file(denoiser) -> Path:
    """The model file of a denoiser project (or the model file itself)."""
    denoiser = Path(denoiser)
    return ProjectLayout(denoiser).model_files()[0] if denoiser.is_dir() else denoiser


def _identity(denoiser) -> str:
    return hashlib.sha256(denoiser_file(denoiser).read_bytes()).hexdigest()


def record_copies(denoiser, folder) -> None:
    """Say in ``folder`` (:data:`RECORD_FILE`) which denoiser made the images there: a project trained on them
    carries it, and prediction does not denoise them twice."""
    write_json(Path(folder) / RECORD_FILE, {"denoiser": str(Path(denoiser).resolve()), "sha256": _identity(denoiser)})


def copies_by(path) -> dict:
    """``{"denoiser", "sha256"}`` of the denoiser that made the images of folder ``path`` (or of an image file's
    folder), as :func:`record_copies` said; ``{}`` for images no denoiser made."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        return json.loads((folder / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}


def made_by(path, denoiser) -> bool:
    """True when the images of ``path`` (a folder or an image file) are copies ``denoiser`` made."""
    return copies_by(path).get("sha256") == _identity(denoiser)


def carry_denoiser(source, project) -> Path:
    """Copy the denoiser ``source`` (a project made by ``nbseg denoise train``, or its model file) into
    ``project``, replacing one it carried; returns the copy's folder.

    Raises
    ------
    ValueError
        When ``source`` is a segmentation model.
    """
    load_denoiser(source)  # refuses a segmentation model, saying what to give
    source, layout = Path(source), ProjectLayout(project)
    copy = ProjectLayout(layout.denoiser)
    identity = _identity(source)
    if layout.carried_denoiser() is None or _identity(copy.root) != identity:
        remove_tree(copy.root)
        copy.models.mkdir(parents=True)
        shutil.copy2(denoiser_file(source), copy.model(0))
        for name in ("config", "plan"):  # how it was trained, where the source has it
            if source.is_dir() and getattr(ProjectLayout(source), name).exists():
                shutil.copy2(getattr(ProjectLayout(source), name), getattr(copy, name))
    write_json(layout.denoiser_source, {"source": str(source.resolve()), "sha256": identity})
    return copy.root


def training_denoiser(project, given=None, images=None) -> Path | None:
    """The denoiser ``nbseg train`` denoises with: ``given`` (carried into ``project`` first), else the one
    that made the training ``images`` (notebook 00's folder: carried, so prediction denoises new images first),
    else the one the project carries (a resumed or repeated run), else None. ``given`` "none" drops a carried
    one, and keeps the images' own from being carried until a denoiser is given again."""
    layout = ProjectLayout(project)
    if given is not None and str(given).lower() == "none":
        remove_tree(layout.denoiser)
        remove_tree(layout.denoised_images)
        write_json(layout.denoiser_dropped, {"dropped": True})  # and not carried again from 00's record
        return None
    if given is not None:
        layout.denoiser_dropped.unlink(missing_ok=True)
        return carry_denoiser(given, project)
    made = copies_by(images).get("denoiser") if images is not None else None
    if made and Path(made).exists() and made_by(images, made) and not layout.denoiser_dropped.exists():
        return carry_denoiser(made, project)  # replaces a carried one that did not make them
    return layout.carried_denoiser()


def denoised_training_data(data_config, project, denoiser, *, progress=None):
    """``data_config`` reading the training images denoised: its images become the copies in ``project``'s cache
    (:attr:`~nbseg.project.ProjectLayout.denoised_images`, made where missing), read as the copies say (their
    axes and channels are those the raw images were read with)."""
    if made_by(data_config.images, denoiser):  # the images are its copies already (notebook 00's folder)
        return data_config
    cache = ProjectLayout(project).denoised_images
    denoised_copies(denoiser, [data_config.images], cache, axes=data_config.axes, channels=data_config.channels,
                    progress=progress)
    return data_config.model_copy(update={"images": cache, "axes": None, "channels": None})


def predict_denoiser(project, given=None) -> tuple[Path | None, str | None]:
    """The denoiser ``nbseg predict`` applies, and the line that says so: ``given``, else the one ``project``
    carries, else none."""
    carried = ProjectLayout(project).carried_denoiser() if Path(project).is_dir() else None
    if given is None:
        return carried, carried and f"Denoising first with the denoiser this project was trained with ({carried})."
    if carried is not None and _identity(given) != _identity(carried):
        return Path(given), (f"Warning: denoising with {given}, but this project was trained on images denoised "
                             f"by another ({carried}); leave out --denoise to use that one.")
    return Path(given), f"Denoising first with {given}."


def denoised_inputs(project, inputs, output_dir, options, *, given=None, overwrite: bool = False, cluster=None,
                    block=None, progress=None, report=None):
    """What ``nbseg predict`` and notebook 06 segment: ``inputs`` as they are, or denoised first into
    ``output_dir/denoised/`` by ``given`` or the denoiser ``project`` was trained with (:func:`predict_denoiser`).

    Parameters
    ----------
    project : str or Path
        The segmentation project (or what else ``nbseg predict`` takes: only a project folder carries a denoiser).
    inputs : sequence of str or Path
        Image files and folders of images.
    output_dir : str or Path
        The prediction's output folder.
    options : nbseg.predict.options.PredictOptions
    given : str or Path, optional
        A denoiser named for this prediction (``--denoise``).
    overwrite, cluster, block, progress, report : optional
        As :func:`denoised_copies` takes them; ``report`` also gets the line that says which denoiser is used.

    Returns
    -------
    inputs, options
        The files to segment and the options that read them (the copies' own axes and channels).
    """
    from ..predict.files import input_files
    from ..predict.options import PredictOptions

    denoiser, line = predict_denoiser(project, given)
    if denoiser is None:
        return inputs, options
    identity = _identity(denoiser)  # hashed once, not once per input
    kept = [p for p in inputs if copies_by(p).get("sha256") == identity]  # its copies already: not denoised twice
    folder = Path(output_dir) / PREDICT_FOLDER
    if report is not None:
        report(f"{line} The denoised images are kept in {folder}." if len(kept) < len(inputs) else
               f"{line} The images are its copies already: segmented as they are.")
    copies = denoised_copies(denoiser, [p for p in inputs if p not in kept], folder, overwrite=overwrite,
                             cluster=cluster, block=block, max_memory=options.max_memory, device=options.device,
                             axes=options.axes, channels=options.channels, progress=progress,
                             report=report) if len(kept) < len(inputs) else []
    files = (input_files(kept) if kept else []) + copies
    return (files, PredictOptions.build(options, **copies_reading(files))) if files else (inputs, options)


def denoised_copies(denoiser, inputs, folder, *, overwrite: bool = False, cluster=None, progress=None,
                    report=None, **settings) -> list[Path]:
    """The images of ``inputs`` denoised by ``denoiser`` into ``folder``, under their own names.

    Copies that ``denoiser`` made earlier are kept (unless ``overwrite``); those another denoiser made, and
    copies of images no longer among ``inputs``, are removed.

    Parameters
    ----------
    denoiser : str or Path
    inputs : sequence of str or Path
        Image files and folders of images.
    folder : str or Path
    overwrite : bool
    cluster : str, optional
        Denoise on this dask cluster (:func:`.cluster.denoise_on_cluster`; ``block``, ``max_memory`` in
        ``settings``); images cut into blocks are copied as OME-Zarr.
    progress, report : callable, optional
    **settings
        ``axes``, ``channels``, ``tile``, ``overlap``, ``batch_size``, ``device``.

    Returns
    -------
    list of Path
        The copies, in input order.
    """
    folder = Path(folder)
    record = folder / RECORD_FILE
    identity = _identity(denoiser)
    if record.exists() and json.loads(record.read_text()).get("sha256") != identity:
        remove_tree(folder)  # made by another denoiser
    record_copies(denoiser, folder)
    if cluster:
        from .cluster import denoise_on_cluster

        made = denoise_on_cluster(denoiser, inputs, folder, cluster=cluster, overwrite=overwrite, suffix="",
                                  progress=progress, report=report, **settings)
    else:
        settings.pop("block", None), settings.pop("max_memory", None)
        made = denoise_files(denoiser, inputs, folder, overwrite=overwrite, suffix="", progress=progress, **settings)
    kept = {file_stem(p) for p in made}
    for stale in image_files(folder):
        if file_stem(stale) not in kept:
            remove_tree(stale)
    return made


def copies_reading(copies) -> dict:
    """How to read the copies whatever the raw images needed: ``{"axes", "channels"}`` as they were written
    (every copy alike: one denoiser made them; one channel is written without a C axis)."""
    image = read_image(copies[0])
    channels = image.data.shape[0]
    return {"axes": image.axes[1:] if channels == 1 else image.axes, "channels": list(range(channels))}
