"""Training: :func:`fit` (:mod:`.trainer`; one fold's loop in :mod:`.fold`), the learning-rate finder that
runs inside the same training step (:mod:`.lr_finder`), the schedule, callback events and checkpoints."""
from .callbacks import BatchEnd, Callback, EpochEnd, PrintProgress, TrainBegin, TrainEnd
from .lr_finder import LRFinderResult, find_lr
from .trainer import TrainResult, fit

__all__ = ["BatchEnd", "Callback", "EpochEnd", "LRFinderResult", "PrintProgress", "TrainBegin", "TrainEnd",
           "TrainResult", "find_lr", "fit"]
