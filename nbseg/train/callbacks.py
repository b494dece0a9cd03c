"""Training events and the callbacks that receive them. The core reports progress only through
these; the notebook panels and the CLI subscribe with their own callbacks."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class TrainBegin:
    fold: int
    folds: int
    n_train: int
    n_val: int
    patch: list
    device: str
    precision: str
    max_epochs: int
    minutes: float | None
    start_epoch: int = 0
    notes: list = field(default_factory=list)
    n_images: int = 0  # images the parts were cut from, when fewer than the parts (one image: a held-back band)

    def parts(self, joiner: str = "/") -> str:
        """'12 training / 3 validation images', or '2 training / 1 validation pieces of 1 image'."""
        cut = 0 < self.n_images < self.n_train + self.n_val
        noun = f"pieces of {self.n_images} image{'s' * (self.n_images > 1)}" if cut else "images"
        return f"{self.n_train} training {joiner} {self.n_val} validation {noun}"


@dataclass
class BatchEnd:
    fold: int
    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    lr: float


@dataclass
class EpochEnd:
    fold: int
    epoch: int
    train_loss: float
    val_loss: float
    val_dice: float
    best_dice: float
    is_best: bool
    lr: float
    seconds: float
    history: list = field(default_factory=list)  # every epoch so far, as dicts
    warning: str = ""  # e.g. over-fitting: said to the person watching, training goes on
    score_name: str = "val Dice"  # what val_dice holds: another task's validation score (higher is better)


@dataclass
class TrainEnd:
    fold: int
    best_dice: float
    best_epoch: int
    model_path: str
    stopped: str  # "epochs", "time budget", "early stopping", "interrupted"
    score_name: str = "val Dice"


class Callback:
    """Override the events you need; each receives one event object."""

    def on_train_begin(self, event: TrainBegin) -> None: ...

    def on_batch_end(self, event: BatchEnd) -> None: ...

    def on_epoch_end(self, event: EpochEnd) -> None: ...

    def on_train_end(self, event: TrainEnd) -> None: ...


def overfitting_warning(history: list, best_epoch: int, *, epochs: int = 3, said_for: int | None = None) -> str:
    """A sentence when validation loss has risen for ``epochs`` epochs in a row while training loss
    fell (the model starts to learn its training images by heart), else ``""``. ``said_for``: the best
    epoch the last warning named; while it is still the best the warning is not repeated."""
    if len(history) <= epochs or best_epoch == said_for:
        return ""
    recent = history[-(epochs + 1):]
    val = [h["val_loss"] for h in recent]
    train = [h["train_loss"] for h in recent]
    if all(b > a for a, b in zip(val, val[1:])) and train[-1] < train[0]:
        return (f"validation loss has risen for {epochs} epochs while training loss fell: the model is starting "
                f"to over-fit. The best model (epoch {best_epoch + 1}) is kept; more (or more varied) training "
                "images, or stopping here, help.")
    return ""


def emit(callbacks, name: str, event) -> None:
    for callback in callbacks:
        getattr(callback, name)(event)


class PrintProgress(Callback):
    """One line per epoch, for the command line and logs."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_train_begin(self, e: TrainBegin) -> None:
        budget = f"{e.minutes:g} min" if e.minutes else f"{e.max_epochs} epochs"
        self._say(f"fold {e.fold + 1}/{e.folds}: {e.parts()}, "
                  f"patch {e.patch}, {budget}, {e.device} {e.precision}")
        if e.start_epoch:
            self._say(f"  resuming at epoch {e.start_epoch + 1} from the last checkpoint")
        for note in e.notes:
            self._say(f"  note: {note}")

    def on_epoch_end(self, e: EpochEnd) -> None:
        star = " *" if e.is_best else ""
        self._say(f"epoch {e.epoch + 1:3d}  train loss {e.train_loss:.4f}  val loss {e.val_loss:.4f}  "
                  f"{e.score_name} {e.val_dice:.4f}{star}  lr {e.lr:.2e}  {e.seconds:.0f}s")
        if e.warning:
            self._say(f"  warning: {e.warning}")

    def on_train_end(self, e: TrainEnd) -> None:
        self._say(f"fold {e.fold + 1} stopped ({e.stopped}); best {e.score_name} {e.best_dice:.4f} (smoothed) at epoch "
                  f"{e.best_epoch + 1}; model: {e.model_path}")
