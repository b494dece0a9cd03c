"""Which images to correct next: the ones the model is least sure of, most useful first.

A correction loop (notebook 02_correct, ``nbseg suggest``) labels a few images per round. The
images whose prediction is most uncertain, or where the folds' models and the TTA variants disagree most,
teach the next round the most; this ranks a pool of images by that score without writing any file.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import check_choice

if TYPE_CHECKING:
    import pandas

# "uncertain": the entropy of the averaged prediction; "disagree": the mutual information between the
# models x TTA variants (how much they disagree), as in Bayesian active learning (BALD)
SUGGEST_BY = {"uncertain": "entropy", "disagree": "mutual_info"}


def suggest_images(models, images, *, n: int | None = None, by: str = "uncertain", tta: str = "flips",
                   skip=(), device: str = "auto", progress=None) -> "pandas.DataFrame":
    """Rank ``images`` by how much correcting them would teach, most useful first.

    Parameters
    ----------
    models : str, Path or list
        A trained project, a model file, a bioimage.io package or a bundled model's name (``"nuclei"``),
        or ``load_ensemble``'s result.
    images : str, Path or sequence of them
        Image files or folders of images (the pool).
    n : int, optional
        Keep the first ``n`` (default all).
    by : {"uncertain", "disagree"}
        Mean uncertainty (entropy) over the objects and disputed borders, or the disagreement between
        the models (folds) and TTA variants there.
    tta : {"none", "flips", "all"}
        Test-time augmentation: the variants whose disagreement counts (``"none"`` with one model leaves
        only the entropy).
    skip : collection of str
        Image names (file stems) to leave out, e.g. those corrected already.
    device : str
    progress : callable(done, total, name), optional

    Returns
    -------
    DataFrame
        ``rank``, ``image`` (the path), ``name``, ``score``, ``foreground_fraction``; best first.
    """
    import pandas as pd

    from ..io.images import file_stem
    from .ensemble import load_ensemble
    from .files import input_files
    from .image import predict_image
    from .options import PredictOptions

    check_choice(by, tuple(SUGGEST_BY), what="by", hint=" ('uncertain' or 'disagree')")
    ensemble = models if isinstance(models, list) else load_ensemble(models)
    options = PredictOptions(tta=tta, device=device, uncertainty=SUGGEST_BY[by])
    paths = [p for p in input_files(images) if file_stem(p) not in set(skip)]
    rows = []
    for i, path in enumerate(paths):
        prediction = predict_image(ensemble, path, options)
        fg = sum(int((part >= 0.5).sum()) for _, part, _ in prediction.foreground_slabs())
        rows.append({"image": str(path), "name": file_stem(path), "score": float(prediction.uncertainty_score),
                     "foreground_fraction": fg / max(1, prediction.uncertainty.size)})
        if progress:
            progress(i + 1, len(paths), file_stem(path))
    table = pd.DataFrame(rows, columns=["image", "name", "score", "foreground_fraction"])
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table if n is None else table.head(int(n))


def propose_labels(models, image, *, tta: str = "flips", device: str = "auto"):
    """The objects a model proposes for one image, to accept or correct: instance labels as
    ``nbseg predict --instances`` makes them (threshold 0.5, the plan's smallest object, seeded watershed).

    Parameters
    ----------
    models : str, Path or list
        As for :func:`suggest_images`.
    image : str or Path
        An image file.

    Returns
    -------
    labels : ([Z,] Y, X) ndarray of int32
        0 background, 1..N objects (for multi-class models, the class of each pixel).
    prediction : nbseg.predict.image.Prediction
    """
    from .ensemble import ensemble_info, load_ensemble
    from .image import predict_image
    from .options import PredictOptions
    from .post import classes, instances

    ensemble = models if isinstance(models, list) else load_ensemble(models)
    info, options = ensemble_info(ensemble), PredictOptions(tta=tta, device=device)
    prediction = predict_image(ensemble, image, options)
    if prediction.kind == "multiclass":
        return classes(prediction.probabilities).astype(np.int32), prediction
    foreground = np.concatenate([fg for _, fg, _ in prediction.foreground_slabs()], axis=0)
    min_size = options.min_size_for(info, prediction.pixel_sizes)
    return instances(foreground, interior=prediction.interior, min_size=min_size), prediction


def suggestion_paths(table) -> list[Path]:
    """The ranked images of :func:`suggest_images`' table, as paths."""
    return [Path(p) for p in table["image"]]


__all__ = ["SUGGEST_BY", "propose_labels", "suggest_images", "suggestion_paths"]
