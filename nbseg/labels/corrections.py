"""The correction loop's record: every decision on a proposed segmentation, written into the project at once.

A user goes through images the model proposes (``nbseg suggest``, the correction notebook) and for each one
accepts the proposal, corrects it, or leaves the image out. Each decision is saved the moment it is made:

- the label image (accepted or corrected) as ``corrections/masks/NAME.ome.tif``, with the image's pixel sizes;
- a line in ``corrections/decisions.jsonl``: the image, the decision, the model that proposed it, the edits
  and the time. The last line of an image wins, so a decision can be changed later.

A killed kernel or a new Colab session reads the file back and goes on at the next image. The training set
is the accepted and corrected images plus the masks the user had before (:func:`training_set`).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io.images import file_stem, files_by_stem, read_image, write_ome_tiff
from ..project import ProjectLayout

DECISIONS = ("accepted", "corrected", "left out")


@dataclass
class Decision:
    """One decision on one image (a line of ``decisions.jsonl``)."""

    name: str
    image: str
    decision: str
    model: str = ""
    time: str = ""
    edits: dict = field(default_factory=dict)
    mask: str | None = None  # the saved label image, for accepted and corrected images
    round: int = 0


def record_decision(project, image, decision: str, labels=None, *, model: str = "", edits=None,
                    round_number: int = 0) -> Decision:
    """Save one decision, and the label image it keeps, into ``project`` now.

    Parameters
    ----------
    project : str or Path
        The correction project's folder.
    image : str or Path
        The image file decided on.
    decision : {"accepted", "corrected", "left out"}
    labels : ([Z,] Y, X) ndarray of int, optional
        The label image to keep: the proposal (accepted) or the corrected one. Not for "left out".
    model : str
        What proposed the segmentation (a project, a bundled model's name, "classic workflow").
    edits : dict of str -> int, optional
        Edits made, by kind (``nbseg.labels.edit``), for the round table.
    round_number : int

    Returns
    -------
    Decision
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}.")
    if (labels is None) != (decision == "left out"):
        raise ValueError(f"'{decision}' {'needs' if labels is None else 'takes no'} label image: give the labels "
                         "for accepted and corrected images, none for an image left out.")
    layout, image = ProjectLayout(project), Path(image)
    mask = None
    if labels is not None:
        mask = _write_labels(layout.corrected_masks / f"{file_stem(image)}.ome.tif", np.asarray(labels), image)
    record = Decision(file_stem(image), str(image.resolve()), decision, str(model),
                      datetime.datetime.now().isoformat(timespec="seconds"), dict(edits or {}),
                      None if mask is None else str(mask), int(round_number))
    _append_line(layout.decisions, asdict(record))
    return record


def read_decisions(project) -> dict[str, Decision]:
    """The last decision on each image of ``project``, by image name (empty when none was made)."""
    path = ProjectLayout(project).decisions
    found = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():  # a line cut short by a crash is not valid JSON: the decisions before it stand
                try:
                    record = Decision(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    continue
                found[record.name] = record
    return found


def next_image(ranked, project):
    """The first of ``ranked`` (paths or names, most useful first) not yet decided on, or None."""
    done = read_decisions(project)
    return next((item for item in ranked if file_stem(item) not in done), None)


def training_set(project, images=None, masks=None) -> dict[str, Path]:
    """The images and masks to train on: accepted and corrected images, plus earlier masks.

    Writes ``corrections/training_set/{images,masks}``: links to the files (copies where links are not
    allowed). An earlier mask (``masks``, paired with ``images`` by name) is replaced by a correction of the
    same image, and left out with the image.

    Returns
    -------
    dict
        ``{"images": folder, "masks": folder, "count": int}``.
    """
    layout, decisions = ProjectLayout(project), read_decisions(project)
    chosen = {}
    if images is not None and masks is not None:
        image_by_name = files_by_stem(images)
        # resolved now: the training set's own folders may be what is given (they are written anew below)
        chosen = {name: (image_by_name[name].resolve(), mask.resolve()) for name, mask in files_by_stem(masks).items()
                  if name in image_by_name}
    for name, record in decisions.items():
        if record.decision == "left out":
            chosen.pop(name, None)
        else:
            chosen[name] = (Path(record.image), Path(record.mask))
    if not chosen:
        raise ValueError(f"Nothing to train on in {layout.root}: accept or correct at least one image first.")
    folders = {kind: layout.training_set / kind for kind in ("images", "masks")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for name, (image, mask) in sorted(chosen.items()):
        _link(image, folders["images"] / image.name)
        _link(mask, folders["masks"] / mask.name)
    return {**folders, "count": len(chosen)}


def record_round(project, number: int, **facts) -> dict:
    """Append a row to the round table (``corrections/rounds.jsonl``): the model, images, edits, scores."""
    row = {"round": int(number), "time": datetime.datetime.now().isoformat(timespec="seconds"), **facts}
    _append_line(ProjectLayout(project).rounds, row)
    return row


def read_rounds(project) -> list[dict]:
    """The round table, one dict per round, in order."""
    path = ProjectLayout(project).rounds
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def _write_labels(path: Path, labels: np.ndarray, image: Path) -> Path:
    # the image's pixel sizes travel with the labels, so a corrected mask opens at scale in Fiji and napari
    source = read_image(image, lazy=True)
    if labels.shape != tuple(source.data.shape[1:]):
        raise ValueError(f"The labels have shape {labels.shape} but {image} has spatial shape "
                         f"{tuple(source.data.shape[1:])}: edit the image's own label image.")
    dtype = np.uint16 if labels.max() < 2 ** 16 else np.uint32
    return write_ome_tiff(path, labels.astype(dtype), axes="ZYX"[-labels.ndim:], pixel_sizes=source.pixel_sizes,
                          unit=source.unit, overwrite=True)


def _append_line(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:  # on disk before the call returns: a kill loses nothing
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(Path(source).resolve(), target)
    except OSError:  # no symbolic links here (Windows without developer mode, some mounted drives)
        shutil.copy2(source, target)


__all__ = ["DECISIONS", "Decision", "next_image", "read_decisions", "read_rounds", "record_decision",
           "record_round", "training_set"]
