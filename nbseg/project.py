"""Where everything lives in a project folder: one :class:`ProjectLayout` knows every path.

A project folder holds the settings (``config.yaml``), the split, the models of each fold, their
checkpoints and histories, the learning-rate sweep, predictions, exports, drawn labels and logs.
Every writer and reader in nbseg asks the layout instead of joining path names itself.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
LR_FINDER_FILE = "lr_finder.json"
FINGERPRINT_FILE = "fingerprint.json"
PLAN_FILE = "plan.json"
UI_LOG = Path("logs") / "ui.log"
WARM_START = "warm-start-2d"  # the 2D phase of a warm-started 3D network (nbseg.train.warm_start)
MODEL_GLOB = "fold*.pt"
POINTER_FILE = "nbseg-project.json"  # outside any project: names the project to open (nbseg.colab)


def fold_number(path) -> int:
    """The fold of a ``fold<k>.pt`` file (0 when the name holds no number)."""
    found = re.search(r"(\d+)", Path(path).stem)
    return int(found.group(1)) if found else 0


@dataclass(frozen=True)
class ProjectLayout:
    """The paths of one project folder.

    Examples
    --------
    >>> layout = ProjectLayout("myproject")
    >>> layout.model(0).as_posix()
    'myproject/models/fold0.pt'
    """

    root: Path

    def __init__(self, root):
        object.__setattr__(self, "root", Path(root))

    config = property(lambda self: self.root / CONFIG_FILE)
    split = property(lambda self: self.root / SPLIT_FILE)
    lr_finder = property(lambda self: self.root / LR_FINDER_FILE)
    fingerprint = property(lambda self: self.root / FINGERPRINT_FILE)
    plan = property(lambda self: self.root / PLAN_FILE)
    models = property(lambda self: self.root / "models")
    checkpoints = property(lambda self: self.root / "checkpoints")
    history = property(lambda self: self.root / "history")
    predictions = property(lambda self: self.root / "predictions")
    results = property(lambda self: self.root / "results")
    export = property(lambda self: self.root / "export")
    # the bioimage.io model package (nbseg.predict.bioimageio_export), named after the project
    bioimageio_package = property(lambda self: self.export / f"{self.root.resolve().name}.bioimageio.zip")
    labels = property(lambda self: self.root / "labels")
    logs = property(lambda self: self.root / "logs")
    warm_start = property(lambda self: self.root / WARM_START)  # a project of its own (train.warm_start)
    ui_log = property(lambda self: self.root / UI_LOG)
    # the correction loop (nbseg.labels.corrections): corrected masks, the decisions, and the training set
    corrections = property(lambda self: self.root / "corrections")
    corrected_masks = property(lambda self: self.corrections / "masks")
    decisions = property(lambda self: self.corrections / "decisions.jsonl")
    rounds = property(lambda self: self.corrections / "rounds.jsonl")
    training_set = property(lambda self: self.corrections / "training_set")
    correction_loop = property(lambda self: self.corrections / "loop.json")  # the pool and source last used
    # the denoiser a segmentation project carries (nbseg train --denoise): a denoiser project of its own (its
    # models/fold0.pt and config.yaml) with where it came from, and the training images it denoised once
    denoiser = property(lambda self: self.root / "denoiser")
    denoiser_source = property(lambda self: self.denoiser / "source.json")
    denoised_images = property(lambda self: self.root / "denoised_images")
    # `--denoise none` said: the denoiser that made the training images (notebook 00's folder) is not carried
    denoiser_dropped = property(lambda self: self.root / "denoiser-dropped.json")

    def carried_denoiser(self) -> Path | None:
        """The denoiser project this project carries (:attr:`denoiser`), or None when it has none."""
        return self.denoiser if ProjectLayout(self.denoiser).model(0).exists() else None

    def round_project(self, number: int) -> "ProjectLayout":
        """The project the correction loop's round ``number`` trains into: ``rounds/round<k>``."""
        return ProjectLayout(self.root / "rounds" / f"round{number}")

    def model(self, fold: int) -> Path:
        """The best model of ``fold``: ``models/fold<k>.pt``."""
        return self.models / f"fold{fold}.pt"

    def checkpoint(self, fold: int) -> Path:
        """The last training state of ``fold`` (for resuming)."""
        return self.checkpoints / f"fold{fold}.pt"

    def history_file(self, fold: int) -> Path:
        """The per-epoch history of ``fold``: ``history/fold<k>.csv``."""
        return self.history / f"fold{fold}.csv"

    def history_files(self) -> list[Path]:
        """The per-epoch histories written so far, in fold order."""
        found = self.history.glob("fold*.csv") if self.history.is_dir() else []
        return sorted(found, key=fold_number)

    def model_files(self) -> list[Path]:
        """The best model of each fold, in fold order.

        Raises
        ------
        FileNotFoundError
            When the project has no trained model, saying how to train one.
        """
        found = sorted(self.models.glob(MODEL_GLOB), key=fold_number) if self.models.is_dir() else []
        if not found:
            raise FileNotFoundError(
                f"No trained model in {self.models} (looked for fold0.pt, fold1.pt, ...). Train one first "
                f"(`nbseg train --project {self.root} ...`) or point to the project folder that has one.")
        return found

    def status(self) -> dict[str, bool]:
        """Which steps the project has done, read from disk (so a fresh kernel can pick up)."""
        return {
            "config": self.config.exists(),
            "lr_finder": self.lr_finder.exists(),
            "models": self.models.is_dir() and any(self.models.glob(MODEL_GLOB)),
            "predictions": self.predictions.is_dir() and any(self.predictions.iterdir()),
            "export": self.export.is_dir() and any(self.export.iterdir()),
        }

    def append_log(self, text: str) -> Path:
        """Append ``text`` with a time stamp to ``logs/ui.log``; returns the log's path."""
        path = self.ui_log
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"----- {stamp}\n{text.rstrip()}\n")
        return path


@contextlib.contextmanager
def atomic_write(path, *, keep_suffix: bool = False, fsync: bool = False):
    """The one atomic writer: yields a temporary path beside ``path`` to write to; when the block ends
    without error it becomes ``path`` in one rename, so a killed run leaves the old file or the new one,
    never half of one. On an error the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The file to write (its folder is made).
    keep_suffix : bool
        Name the temporary file ``.<stem>.tmp<suffix>`` (for writers that pick the format by the suffix)
        instead of ``.<name>.tmp``.
    fsync : bool
        Flush the file to disk before the rename (checkpoints: a crash leaves the old or the new one).

    Yields
    ------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}" if keep_suffix else f".{path.name}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path, data) -> Path:
    """Write ``data`` as JSON atomically (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)
