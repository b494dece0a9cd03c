"""Which images the models have seen: scores of images a model was trained on, or validated with, are inflated.

A model file names the images its training used (``meta["images"]``: ``train``, ``val`` and the held-back
``test``, :func:`nbseg.train.checkpoint.model_meta`); models trained before it did are read from their
project's ``split.json``. :func:`seen_images` gathers them over an ensemble, :func:`roles_of` gives each
image's role (``new`` where no model saw it; ``nbseg predict`` records them:
:func:`nbseg.predict.files.recorded_roles`) and :func:`inflated_note` is the warning every scoring place
shows (``nbseg predict``, ``nbseg evaluate``, notebooks 06 and 07).
"""
from __future__ import annotations

from pathlib import Path

from ..data.split import read_split
from ..project import fold_number

# the roles, most telling first: an image one fold trained on and another validated with is "train"
ROLES = ("train", "val", "test", "new")
WORDS = {"train": "trained on", "val": "used for validation", "test": "test (held back)", "new": "new"}
SEEN = ("train", "val")  # roles whose scores are inflated


def seen_images(ensemble) -> dict[str, str]:
    """``{name: role}`` of the images the models of ``ensemble`` trained on, validated with or held back.

    Parameters
    ----------
    ensemble : list of (model, meta)
        As :func:`nbseg.predict.ensemble.load_ensemble` returns it.

    Returns
    -------
    dict of str -> {"train", "val", "test"}
        Over all models, the most telling role per name (:data:`ROLES`); names no model knows are absent.
    """
    roles: dict[str, str] = {}
    for _, meta in ensemble:
        images = meta.get("images") or _from_split(meta)
        for role in ("train", "val", "test"):
            for name in images.get(role) or ():
                if ROLES.index(role) < ROLES.index(roles.get(name, "new")):
                    roles[name] = role
    return roles


def _from_split(meta) -> dict:
    """The images of a model trained before model files named them: its project's ``split.json``, read for
    the model's fold (``<project>/models/fold<k>.pt``); {} when there is none."""
    source = meta.get("source")
    if not source or Path(source).parent.name != "models":
        return {}
    saved = read_split(Path(source).parent.parent)
    folds = saved.get("folds") or []
    fold = meta.get("fold", fold_number(source))
    if not 0 <= fold < len(folds):
        return {"test": saved.get("test", [])}
    return {**folds[fold], "test": saved.get("test", [])}


def roles_of(names, seen: dict) -> dict[str, str]:
    """``{name: role}`` for each of ``names``: its role in ``seen`` (:func:`seen_images`), else ``"new"``."""
    return {name: seen.get(name, "new") for name in names}


def inflated_note(roles: dict, *, scoring: bool = True) -> str | None:
    """The warning for scores of images the models have seen; None when every image is test or new.

    Parameters
    ----------
    roles : dict of str -> str
        ``{name: role}`` of the images scored (:func:`roles_of`).
    scoring : bool
        True: about scores shown now; False: about scores these images would give (before predicting).
    """
    seen = {role: sorted(n for n, r in roles.items() if r == role) for role in SEEN}
    if not any(seen.values()):
        return None
    parts = [f"{len(names)} {WORDS[role]} ({_names(names)})" for role, names in seen.items() if names]
    verb = "are" if scoring else "would be"
    return (f"Of the {len(roles)} image(s), {' and '.join(parts)}: their scores {verb} inflated (the models have "
            "seen them). For honest scores use the test images (held back in notebook 01, or nbseg train "
            "--test-fraction) or new images nobody trained on.")


def _names(names, shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f", ... {len(names) - shown} more" if len(names) > shown else "")


__all__ = ["ROLES", "WORDS", "inflated_note", "roles_of", "seen_images"]
