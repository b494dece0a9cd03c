"""The seed threshold of the seeded watershed, chosen on the validation images after training.

``nbseg predict --instances`` seeds one object per connected region of ``interior > seed threshold`` and
grows it over the foreground. At 0.5, touching objects whose shared border the model draws faintly (dense
nuclei, blurred or denoised images) share one seed and stay merged; a higher threshold shrinks the seeds
apart. Which value splits best depends on the model and its data, so, as StarDist tunes its thresholds on
the validation images after training, each fold's model is scored on its own validation images (never
trained on) at every value of :data:`SEED_THRESHOLDS`, and the value with the best F1@0.5 is written into
its model file (``meta["seed_threshold"]``), where prediction reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .post import DEFAULT_SEED_THRESHOLD  # where nothing was chosen: a model file from before, or too few objects

SEED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MIN_OBJECTS = 30  # labelled objects the validation images must hold for a choice to mean something
TOLERANCE = 0.002  # F1 this close to the best counts as a tie, which the lower threshold wins (less is moved)


@dataclass
class SeedChoice:
    """The seed threshold one model was given, and what it was chosen from."""

    threshold: float
    f1: dict = field(default_factory=dict)  # candidate threshold -> pooled F1@0.5 on the validation images
    images: int = 0
    objects: int = 0
    reason: str = ""

    def line(self, fold: int = 0) -> str:
        scores = ", ".join(f"{t:g}: {f:.3f}" for t, f in self.f1.items())
        return f"fold {fold}: seed threshold {self.threshold:g} ({self.reason}{'; F1@0.5 ' + scores if scores else ''})"


def choose_seed_threshold(models, pairs, *, candidates=SEED_THRESHOLDS, axes=None, channels=None,
                          device: str = "auto", fallback: float = DEFAULT_SEED_THRESHOLD,
                          held_out: float | None = None) -> SeedChoice:
    """The seed threshold with the best F1@0.5 pooled over ``pairs``' objects.

    Parameters
    ----------
    models : str, Path or list
        A model file or ``load_ensemble``'s result (an instances model).
    pairs : sequence of nbseg.data.pairs.Pair
        Validation images and their label images (objects numbered; 0/1 masks are split into connected
        components).
    candidates : sequence of float
    axes, channels : optional
        How to read the images (the training data's settings).
    fallback : float
        Kept when the images hold fewer than :data:`MIN_OBJECTS` objects. Candidates within :data:`TOLERANCE`
        of the best F1 tie, and the lowest of them wins.
    held_out : float, optional
        A region split's share (``split.json``'s ``region_split``): only the band of each image that
        validated is scored (:func:`nbseg.data.split.held_out_band`), predicted with the whole image around it.
    """
    from ..data.split import held_out_band
    from ..io.images import read_mask
    from ..metrics.evaluation import as_labels
    from ..metrics.scores import instance_scores
    from .ensemble import ensemble_info, load_ensemble
    from .image import predict_image
    from .options import PredictOptions
    from .post import instances, smooth_interior

    ensemble = models if isinstance(models, list) else load_ensemble(models)
    info = ensemble_info(ensemble)
    options = PredictOptions(tta="none", device=device, axes=axes, channels=channels)
    counts = {t: np.zeros(3, int) for t in candidates}  # matched, predicted, labelled
    for pair in pairs:
        prediction = predict_image(ensemble, pair.image, options)
        foreground = np.concatenate([fg for _, fg, _ in prediction.foreground_slabs()], axis=0)
        truth = as_labels(read_mask(pair.mask, dims=info.spatial_dims))
        min_size = options.min_size_for(info, prediction.pixel_sizes)
        interior = prediction.interior
        if held_out is not None:  # objects cut by the band's edges are cut alike in both
            box = held_out_band(truth.shape, prediction.pixel_sizes, held_out)[0]
            foreground, truth = foreground[box], truth[box]
            interior = None if interior is None else interior[box]
        interior = None if interior is None else smooth_interior(interior)  # once, not once per threshold
        for t in candidates:
            found = instance_scores(instances(foreground, interior=interior, seed_threshold=t, min_size=min_size,
                                              seed_smoothing=0), truth, thresholds=(0.5,)).iloc[0]
            counts[t] += (int(found.tp), int(found.tp + found.fp), int(found.tp + found.fn))
    objects = int(counts[candidates[0]][2]) if candidates else 0
    where = (f"{len(pairs)} validation image(s)" if held_out is None
             else f"the validation bands of {len(pairs)} image(s)")
    if objects < MIN_OBJECTS:
        return SeedChoice(float(fallback), {}, len(pairs), objects,
                          f"kept: {objects} labelled object(s) in {where}, fewer than {MIN_OBJECTS}")
    f1 = {float(t): float(2 * c[0] / max(c[1] + c[2], 1)) for t, c in counts.items()}
    best = min(t for t in f1 if f1[t] >= max(f1.values()) - TOLERANCE)
    return SeedChoice(best, f1, len(pairs), objects, f"best F1@0.5 on {where}, {objects} objects")


def calibrate_project(project, data_config) -> list[SeedChoice]:
    """Choose each fold's seed threshold on its validation images and write it into its model file.

    Parameters
    ----------
    project : str or Path
        A trained instances project (a binary or multi-class one is left as it is: returns ``[]``).
    data_config : nbseg.config.DataConfig
        The data it trained on (with ``nbseg train --denoise``, the denoised copies).

    Returns
    -------
    list of SeedChoice
        One per fold, in fold order.
    """
    from ..data.pairs import find_pairs
    from ..data.split import read_split
    from ..model.unet import load_model_file
    from ..project import ProjectLayout

    layout = ProjectLayout(project)
    if data_config.masks is None or data_config.unlabelled is not None:
        return []  # partial labels: an object cut by a not-labelled region is no object to match
    pairs = {p.name: p for p in find_pairs(data_config.images, data_config.masks)}
    choices = []
    for fold, part in enumerate(read_split(project)["folds"]):
        path = layout.model(fold)
        if not path.exists():  # a run stopped before this fold: the folds before it have their choice
            break
        model, meta = load_model_file(path)
        if meta.get("kind") != "instances":
            return []
        init = (meta.get("plan") or {}).get("init") or {}
        fallback = init.get("seed_threshold") or DEFAULT_SEED_THRESHOLD  # a fine-tuned model keeps its source's
        chosen = [pairs[name] for name in part["val"] if name in pairs]
        choice = choose_seed_threshold([(model, meta)], chosen, axes=data_config.axes, channels=data_config.channels,
                                       fallback=fallback, held_out=part.get("region_split"))
        write_choice(path, model, meta, choice)
        choices.append(choice)
    return choices


def write_choice(path, model, meta: dict, choice: SeedChoice) -> None:
    """``choice`` into the model file ``path`` (``model`` and ``meta`` as loaded from it), with what it was
    chosen from."""
    from ..model.unet import save_model_file

    save_model_file(path, model, meta=dict(meta, seed_threshold=choice.threshold, seed_threshold_choice={
        "f1": {str(k): v for k, v in choice.f1.items()}, "images": choice.images, "objects": choice.objects}))


__all__ = ["DEFAULT_SEED_THRESHOLD", "MIN_OBJECTS", "SEED_THRESHOLDS", "TOLERANCE", "SeedChoice", "calibrate_project",
           "choose_seed_threshold", "write_choice"]
