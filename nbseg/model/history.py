"""A model's training history (``history.csv``: one row per fold and epoch), written by training and read by
the panels and the bioimage.io documentation, so it sits below both."""
from __future__ import annotations

import csv

from ..project import atomic_write

HISTORY_FIELDS = ["fold", "epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds"]


def write_history(path, history: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def read_history(path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: float(v) if k not in ("fold", "epoch") else int(v) for k, v in row.items()}
                for row in csv.DictReader(handle)]
