"""Out-of-fold predictions: each training image predicted by the fold model that did not train on
it, for ranking training images by how much the model disagrees with their labels (nbseg.qc)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .ensemble import load_ensemble
from .image import predict_image
from .options import PredictOptions
from ..data.split import held_out_band, read_split
from ..io.images import files_by_stem, read_mask
from ..project import ProjectLayout


def out_of_fold_predictions(project, options: PredictOptions | None = None, *, progress=None, **settings) -> dict:
    """Foreground probability of each training image from the fold model that did not train on it.

    Uses ``split.json``: every image in fold *k*'s validation list is predicted by
    ``models/fold{k}.pt``. With one fold only its validation images are returned. Images split by
    region (``region_split``: few images, or one) are returned whole, NaN outside the band each held back:
    the rest trained the model (:func:`nbseg.predict.post.threshold_sweep` leaves NaN pixels out).

    Parameters
    ----------
    project : str or Path
        Trained project folder.
    options : PredictOptions, optional
        How to predict (see :func:`predict_image`); the axes and channels are the training data's.
    progress : callable(done, total, name), optional
    **settings
        Instead of ``options``, or changing some of it: ``tta="none"``, ``device="cpu"``, ...

    Returns
    -------
    dict of name -> ([Z,] Y, X) ndarray of float16
    """
    from ..config import Config

    options = PredictOptions.build(options, **settings)  # checked before any file is read
    layout = ProjectLayout(project)
    folds = read_split(project).get("folds")  # notebook 01 writes the test set before any fold exists
    if not folds:
        raise FileNotFoundError(f"No folds in {layout.split}; train the project first (nbseg train).")
    data = Config.load(project).data
    files = _image_files_by_stem(layout.root, data.images)
    jobs: dict = {}
    for k, fold in enumerate(folds):
        model = layout.model(k)
        if not model.exists():
            raise FileNotFoundError(f"{model} is missing: fold {k} has not finished training. Train it "
                                    "(nbseg train --resume) before asking for out-of-fold predictions.")
        for name in fold["val"]:
            if name not in files:
                raise FileNotFoundError(f"Training image {name!r} (split.json) is no longer in {data.images}.")
            jobs.setdefault(name, (model, fold.get("region_split")))
    results, ensembles = {}, {}
    for i, (name, (model, held_out)) in enumerate(jobs.items()):
        if model not in ensembles:
            ensembles[model] = load_ensemble(model)
        ensemble = ensembles[model]
        prediction = predict_image(ensemble, files[name], options, axes=data.axes, channels=data.channels)
        results[name] = np.asarray(prediction.foreground, dtype=np.float16)  # half the memory of float32
        if held_out is not None:
            results[name] = _band_only(results[name], prediction.pixel_sizes, held_out)
        if progress:
            progress(i + 1, len(jobs), name)
    return results


def validation_maps(project, masks, *, tta: str = "flips"):
    """``(probabilities, ground truths)``, dicts by name, of a project's validation images that have a mask in
    folder ``masks``: out of fold (:func:`out_of_fold_predictions`), for choosing a threshold honestly (notebook
    07's sweep). None for a project without folds, models or masks, or whose folds or images are not all there.
    """
    layout = ProjectLayout(project)
    if masks is None or not read_split(layout.root).get("folds") or not layout.status()["models"]:
        return None
    try:
        probs = out_of_fold_predictions(layout.root, tta=tta)
    except FileNotFoundError:  # a fold not trained, or images moved
        return None
    found = files_by_stem(masks)
    probs = {n: p for n, p in probs.items() if n in found}
    return probs, {n: read_mask(found[n], dims=p.ndim) for n, p in probs.items()}


def _band_only(foreground, pixel_sizes, share: float):
    """``foreground`` with NaN outside the band a region split held back (the pixels that trained)."""
    held = held_out_band(foreground.shape, pixel_sizes, share)[0]
    out = np.full_like(foreground, np.nan)
    out[held] = foreground[held]
    return out


def _image_files_by_stem(project: Path, folder) -> dict:
    folder = Path(folder)
    if not folder.is_absolute() and not folder.is_dir() and (project / folder).is_dir():
        folder = project / folder
    return files_by_stem(folder)
