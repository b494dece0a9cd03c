"""Which images to correct next: the ones the model is least sure of, most useful first.

A correction loop (notebook 02_correct, ``nbseg suggest``) labels a few images per round. The
images whose prediction is most uncertain, or where the folds' models and the TTA variants disagree most,
teach the next round the most; this ranks a pool of images by that score without writing any file.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import SUGGEST_CHOICES, SUGGEST_DEFAULT, check_choice

if TYPE_CHECKING:
    import pandas

# "uncertain": the entropy of the averaged prediction; "disagree": the mutual information between the
# models x TTA variants (how much they disagree), as in Bayesian active learning (BALD); "representative":
# the images that together look most like the whole pool; "diverse": among the 2n most uncertain, the n
# that together look most like the pool (suggestive annotation, Yang et al. 2017); "crowded": the same among the
# 3n images where the model finds the most objects (a corrected image teaches by its objects); "dense": among the 3n
# where it finds the most foreground (a surer sign of what the truth holds than its object count)
SUGGEST_BY = {"uncertain": "entropy", "disagree": "mutual_info", "representative": "entropy", "diverse": "entropy",
              "crowded": "entropy", "dense": "entropy"}
assert tuple(SUGGEST_BY) == SUGGEST_CHOICES  # the CLI's and the panel's choices (nbseg.choices) name these
BATCH = 8  # images picked together by the covering rules when n is not given
# "crowded" and "dense" cover among this many times n images with the most objects or foreground (pool protocol,
# bands, 12 epochs: for crowded 3n gave mean F1@0.5 0.724 and Dice 0.878 over 3 parts, 2n 0.700 and 0.876; over 9
# pick sets both beat random picks by 0.02 F1 and Dice and tie with each other; docs/benchmarks.md)
CROWDED_SHARE = 3


def suggest_images(models, images, *, n: int | None = None, by: str = SUGGEST_DEFAULT, tta: str = "flips",
                   skip=(), device: str = "auto", progress=None, batch: int | None = None) -> "pandas.DataFrame":
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
    by : {"uncertain", "disagree", "representative", "diverse", "crowded", "dense"}
        ``"uncertain"``: mean uncertainty (entropy) over the objects and disputed borders;
        ``"disagree"``: the disagreement between the models (folds) and TTA variants there;
        ``"representative"``: the images whose network features (the deepest layer, averaged) cover the
        pool best, picked greedily; ``"diverse"``: the same among the ``2 n`` most uncertain; ``"crowded"``:
        the same among the ``3 n`` images in which the model finds the most objects; ``"dense"``: among the
        ``3 n`` in which it finds the most foreground (pixels at probability 0.5 or more). These pick ``n``
        (default 8) together; the rest follow by uncertainty. Models without nbseg's U-Net features rank by
        uncertainty.
    tta : {"none", "flips", "all"}
        Test-time augmentation: the variants whose disagreement counts (``"none"`` with one model leaves
        only the entropy).
    skip : collection of str
        Image names (file stems) to leave out, e.g. those corrected already.
    device : str
    progress : callable(done, total, name), optional
    batch : int, optional
        How many images the covering rules pick together (default ``n``, else 8); the table still ranks all.

    Returns
    -------
    DataFrame
        ``rank``, ``image`` (the path), ``name``, ``score``, ``foreground_fraction``, ``foreground_px``,
        ``objects``; best first.
    """
    import pandas as pd

    from ..io.images import file_stem
    from .files import input_files

    check_choice(by, tuple(SUGGEST_BY), what="by", hint=f" (one of {', '.join(SUGGEST_BY)})")
    skip = set(skip)
    paths = [p for p in input_files(images) if file_stem(p) not in skip]
    rows, features = image_scores(models, paths, uncertainty=SUGGEST_BY[by], tta=tta, device=device,
                                  progress=progress)
    table = pd.DataFrame(rows, columns=["image", "name", "score", "foreground_fraction", "foreground_px", "objects"])
    order = rank_order(table["score"].to_numpy(), features, by=by, n=batch or n or BATCH,
                       objects=table["objects"].to_numpy(), foreground=table["foreground_px"].to_numpy())
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table if n is None else table.head(int(n))


def image_scores(models, paths, *, uncertainty: str = "entropy", tta: str = "flips", device: str = "auto",
                 progress=None) -> tuple[list, list]:
    """Each image's uncertainty score and network features: what :func:`rank_order` ranks by.

    Returns
    -------
    rows : list of dict
        ``image`` (the path), ``name``, ``score``, ``foreground_fraction``, ``foreground_px`` (pixels at
        probability 0.5 or more), ``objects`` (the number :func:`propose_labels` would propose), in the order
        of ``paths``.
    features : list of (F,) arrays or None
        The deepest layer's activations averaged over the image (unit length); None for models without them.
    """
    from ..io.images import file_stem
    from .ensemble import load_ensemble
    from .image import predict_image
    from .options import PredictOptions

    ensemble = models if isinstance(models, list) else load_ensemble(models)
    options = PredictOptions(tta=tta, device=device, uncertainty=uncertainty)
    rows, features = [], []
    with _Features(ensemble) as taken:
        for i, path in enumerate(paths):
            prediction = predict_image(ensemble, path, options)
            features.append(taken.pop())
            fg = sum(int((part >= 0.5).sum()) for _, part, _ in prediction.foreground_slabs())
            objects = _objects(ensemble, prediction, options)
            rows.append({"image": str(path), "name": file_stem(path), "score": float(prediction.uncertainty_score),
                         "foreground_fraction": fg / max(1, prediction.uncertainty.size), "foreground_px": fg,
                         "objects": objects})
            if progress:
                progress(i + 1, len(paths), file_stem(path))
    return rows, features


def _objects(ensemble, prediction, options) -> int:
    """How many objects the model finds: those :func:`propose_labels` proposes (any object class of a
    multi-class model, as connected regions)."""
    from scipy.ndimage import label

    from .post import classes

    if prediction.kind == "multiclass":
        return int(label(classes(prediction.probabilities) > 0)[1])
    return int(_proposal(ensemble, prediction, options).max())


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
    from .ensemble import load_ensemble
    from .image import predict_image
    from .options import PredictOptions
    from .post import classes

    ensemble = models if isinstance(models, list) else load_ensemble(models)
    options = PredictOptions(tta=tta, device=device)
    prediction = predict_image(ensemble, image, options)
    if prediction.kind == "multiclass":
        return classes(prediction.probabilities).astype(np.int32), prediction
    return _proposal(ensemble, prediction, options), prediction


def _proposal(ensemble, prediction, options) -> np.ndarray:
    """The objects of a binary or instances ``prediction``, as ``nbseg predict --instances`` labels them."""
    from .ensemble import ensemble_info
    from .post import instances

    info = ensemble_info(ensemble)
    foreground = np.concatenate([fg for _, fg, _ in prediction.foreground_slabs()], axis=0)
    min_size = options.min_size_for(info, prediction.pixel_sizes)
    return instances(foreground, interior=prediction.interior, min_size=min_size,
                     seed_threshold=options.seed_threshold_for(info))


def rank_order(scores, features, *, by: str = SUGGEST_DEFAULT, n: int = BATCH, objects=None,
               foreground=None) -> list[int]:
    """Indices of the images, most useful first.

    Parameters
    ----------
    scores : (N,) array
        Uncertainty per image (higher: less sure).
    features : sequence of N (F,) arrays or None
        Unit-length feature vectors per image; None where the model gives none.
    by : str
        As for :func:`suggest_images`.
    n : int
        How many images are picked together by the covering rules.
    objects : (N,) array, optional
        Objects the model finds per image ("crowded"; without them it ranks as "representative").
    foreground : (N,) array, optional
        Foreground pixels the model finds per image ("dense"; without them it ranks as "representative").
    """
    by_score = [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]
    if by in ("uncertain", "disagree") or any(f is None for f in features) or len(by_score) <= 1:
        return by_score
    candidates, most = by_score, {"crowded": objects, "dense": foreground}.get(by)
    if by == "diverse":
        candidates = by_score[:2 * n]
    elif most is not None:
        candidates = [int(i) for i in np.argsort(-np.asarray(most), kind="stable")[:CROWDED_SHARE * n]]
    first = cover(np.stack(features), candidates, n)
    picked = set(first)
    return first + [i for i in by_score if i not in picked]


def cover(features, candidates, n: int) -> list[int]:
    """Greedy facility location: ``n`` of ``candidates`` (indices into ``features``, (N, F) unit rows) that
    together are most similar to every image, each pick adding the most cosine similarity. Ties go to the
    candidate listed first."""
    similarity = features @ features.T
    best, chosen = np.zeros(len(features)), []
    left = list(candidates)
    for _ in range(min(n, len(left))):
        gains = np.maximum(best[:, None], similarity[:, left]).sum(axis=0)
        pick = left.pop(int(np.argmax(gains)))
        chosen.append(pick)
        best = np.maximum(best, similarity[:, pick])
    return chosen


class _Features:
    """Sums the spatial mean of each network's deepest layer over every forward pass (tiles, TTA variants,
    models) while open; :meth:`pop` gives one image's sum as a unit vector. None for models without
    nbseg's U-Net encoders (a foreign bioimage.io package)."""

    def __init__(self, ensemble):
        self.layers = [getattr(model, "encoders", [None])[-1] for model, _ in ensemble]
        self.total, self.hooks = None, []

    def __enter__(self):
        # a plain function, not a bound method: prediction runs deep copies of the models (inference_copy),
        # which keep the hook, and a deep-copied function is the same function, adding to this sum
        def add(module, inputs, output):
            self._add(output)

        if all(layer is not None for layer in self.layers):
            self.hooks = [layer.register_forward_hook(add) for layer in self.layers]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()

    def _add(self, output):
        mean = output.detach().float().mean(dim=tuple(range(2, output.ndim))).sum(dim=0).cpu().numpy()
        self.total = mean if self.total is None else self.total + mean

    def pop(self):
        total, self.total = self.total, None
        if total is None or not np.any(total):
            return None
        return total / np.linalg.norm(total)


def suggestion_paths(table) -> list[Path]:
    """The ranked images of :func:`suggest_images`' table, as paths."""
    return [Path(p) for p in table["image"]]


__all__ = ["BATCH", "CROWDED_SHARE", "SUGGEST_BY", "SUGGEST_DEFAULT", "cover", "image_scores", "propose_labels",
           "rank_order", "suggest_images", "suggestion_paths"]
