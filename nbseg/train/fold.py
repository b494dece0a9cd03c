"""One fold's training (:class:`FoldRun`): set-up, the epoch loop, validation, checkpoints and the best model.

:func:`nbseg.train.trainer.fit` plans the run and makes one per fold. Every epoch writes the training state
atomically, so a resumed run continues where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .callbacks import BatchEnd, EpochEnd, TrainBegin, TrainEnd, emit, overfitting_warning
from ..model.history import write_history
from .checkpoint import load_training_state, model_meta, restore_rng, save_training_state
from .oom import halve_batch_on_out_of_memory
from ..data.fingerprint import intensity_stats
from ..data.split import split_samples
from ..model.unet import save_model_file
from ..project import ProjectLayout
from ..runtime import pick_device, pick_precision
from .schedule import ProgressSchedule
from .setup import set_up_training
from .validation import validate, validation_regions

VALIDATION_PIXELS = 2 * 2**20  # pixels predicted per validation pass when val_tiles is not set
SMOOTHING = 0.5  # weight of the previous epochs in the moving average of the validation Dice


@dataclass(frozen=True)
class FoldResult:
    """One fold's training: its best model, that model's validation Dice, the history, why it stopped."""

    model_path: Path
    best_dice: float
    history: list
    stopped: str


def smoothed_dice(dices) -> float:
    """Exponential moving average of the validation Dice over epochs (weight ``SMOOTHING`` on the past)."""
    value = dices[0]
    for dice in dices[1:]:
        value = SMOOTHING * value + (1 - SMOOTHING) * dice
    return float(value)


class FoldRun:
    """Training of one fold: set-up, the epoch loop, validation and checkpoints.

    Another task (:mod:`nbseg.denoise`) runs the same loop: it gives an ``objective`` (loss, augmentation,
    sampler) and overrides :meth:`_hold_back_validation`, :meth:`_validate` and :meth:`_save_model`; its
    validation score (higher is better) is called :attr:`score_name`.
    """

    score_name = "val Dice"

    def __init__(self, config, project, dataset, plan, *, fold: int, n_folds: int, split, callbacks=(),
                 notes=(), resume: bool = False, objective=None):
        """Set up fold ``fold`` of ``n_folds``; :meth:`run` trains it.

        Parameters
        ----------
        config : nbseg.config.Config
        project : str or Path
        dataset : nbseg.data.Dataset
            At the plan's working scale.
        plan : nbseg.train.plan.Plan
        fold, n_folds : int
        split : dict
            This fold's ``{"train": names, "val": names}``.
        callbacks : sequence of nbseg.callbacks.Callback
        notes : sequence of str
            Shown when training begins.
        resume : bool
            Continue from this fold's checkpoint when there is one.
        objective : nbseg.train.setup.Objective, optional
            What the run learns when it is not segmentation.
        """
        self.config, self.dataset, self.plan, self.objective = config, dataset, plan, objective
        self.fold, self.n_folds, self.resume = fold, n_folds, resume
        self.patch, self.batch_size = plan.patch, plan.batch_size
        self.callbacks, self.notes = (list(callbacks) if distributed.is_main() else []), list(notes)
        self._place_files(project)
        self.train_samples, self.val_samples = split_samples(dataset, split)
        if "region_split" in split and len(split["val"]) > 1:  # one image is said by TrainBegin.parts already
            self.notes.append(f"each of the {len(split['val'])} images holds back a central band "
                              f"({split['region_split']:.0%} of its longest axis) for validation and trains on the "
                              "rest: too few images to hold back whole ones (nbseg.data.split)")
        self._pick_device()
        self._set_up_training()
        self._plan_time()
        self._hold_back_validation()
        self.epoch, self.best_dice, self.best_epoch, self.elapsed, self.history = 0, -1.0, 0, 0.0, []
        self.intensity = intensity_stats(self.train_samples)
        self.messages = []  # for the person watching (e.g. a smaller batch after running out of memory)
        self.warned_for = None  # the best epoch the over-fitting warning last named: said once per best model

    def _place_files(self, project) -> None:
        layout = ProjectLayout(project)
        self.paths = {"model": layout.model(self.fold), "checkpoint": layout.checkpoint(self.fold),
                      "history": layout.history_file(self.fold)}

    def _pick_device(self) -> None:
        self.device = distributed.local_device(pick_device(self.config.train.device))
        # one precision for all processes
        self.precision = distributed.from_main(pick_precision(self.device, self.config.train.precision))

    def _resuming(self) -> bool:
        return self.resume and self.paths["checkpoint"].exists()

    def _set_up_training(self) -> None:
        """The network, optimiser, step and sampler, as the learning-rate finder sweeps them; a resumed run
        takes its weights from the checkpoint, not from ``train.init``."""
        setup = set_up_training(self.config, self.dataset, self.plan, self.train_samples, device=self.device,
                                precision=self.precision, seed=self.config.train.seed + 1000 * self.fold,
                                init=not self._resuming(), objective=self.objective)
        self.model, self.layout, self.optimizer, self.step = setup.model, setup.layout, setup.optimizer, setup.step
        self.sampler, self.rng, self.generator, self.init_notes = setup.sampler, setup.rng, setup.generator, setup.notes

    def _plan_time(self) -> None:
        train = self.config.train
        self.minutes = train.minutes / self.n_folds if train.minutes else None
        total = train.epochs * self.plan.steps_per_epoch if train.epochs else None
        self.schedule = ProgressSchedule(train.schedule, self.plan.lr, total_steps=total, minutes=self.minutes)

    def _hold_back_validation(self) -> None:
        val_tiles = self.config.train.val_tiles
        budget = val_tiles * int(np.prod(self.patch)) if val_tiles else VALIDATION_PIXELS
        self.val_regions = validation_regions(self.val_samples, self.patch, budget)
        if not any((target > 0).any() for _, target in self.val_regions):
            self.notes = self.notes + ["the validation part holds no labelled object: its Dice (1.0, nothing to "
                                       "find) says nothing; hold back images with objects (val_fraction, folds)"]

    # ------------------------------------------------------------ state

    def _restore(self) -> None:
        state = load_training_state(self.paths["checkpoint"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        restore_rng(self.rng, state["numpy_rng"])
        self.generator.set_state(state["torch_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.best_dice, self.best_epoch = state["epoch"] + 1, state["best_dice"], state["best_epoch"]
        self.elapsed, self.history = state["elapsed"], list(state["history"])
        distributed.shard_streams(self.rng, self.generator)  # the checkpoint holds rank 0's streams

    def _save_state(self) -> None:
        if not distributed.is_main():
            return
        save_training_state(self.paths["checkpoint"], model=self.model, optimizer=self.optimizer,
                            schedule=self.schedule, rng=self.rng, generator=self.generator, epoch=self.epoch,
                            best_dice=self.best_dice, best_epoch=self.best_epoch, elapsed=self.elapsed,
                            history=self.history)
        write_history(self.paths["history"], self.history)

    def _save_model(self, val_dice: float) -> None:
        if not distributed.is_main():
            return
        meta = model_meta(self.config, self.dataset, patch=self.patch, fold=self.fold, epoch=self.epoch,
                          val_dice=val_dice, plan=self.plan, intensity=self.intensity, images=self._images())
        save_model_file(self.paths["model"], self.model, meta=meta)

    def _images(self) -> dict:
        """The names this fold trained on, validated with, and the test images it never saw; fine-tuned, also
        those the source's models trained on and validated with (its weights learnt from them)."""
        source = (self.plan.init or {}).get("images") or {}
        return {"train": sorted({s.name for s in self.train_samples} | set(source.get("train") or ())),
                "val": sorted({s.name for s in self.val_samples} | set(source.get("val") or ())),
                "test": sorted(self.dataset.test or [])}

    # ------------------------------------------------------------ loop

    def run(self) -> FoldResult:
        if self._resuming():
            self._restore()
        self.notes = self.notes + self.init_notes  # fine-tuning: where the starting weights came from
        if self.resume and self.epoch == 0:  # stopped before its first epoch ended: nothing was saved, nor lost
            self.notes = self.notes + [f"no checkpoint in {self.paths['checkpoint'].parent} to resume from (the run "
                                       "stopped before its first epoch ended): training starts from epoch 1"]
        emit(self.callbacks, "on_train_begin", TrainBegin(
            fold=self.fold, folds=self.n_folds, n_train=len(self.train_samples), n_val=len(self.val_samples),
            patch=list(self.patch), device=str(self.device), precision=self.precision,
            max_epochs=self.config.train.max_epochs, minutes=self.minutes, start_epoch=self.epoch, notes=self.notes,
            n_images=len(self.dataset.samples)))
        stopped = "epochs"
        try:
            while self.epoch < self.config.train.max_epochs:
                stopped = self._epoch() or stopped
                if stopped != "epochs":
                    break
                self.epoch += 1
        except KeyboardInterrupt:
            stopped = "interrupted"
            if not self.paths["model"].exists():  # keep something usable even before the first epoch ends
                self._save_model(self._validate()[1])
        emit(self.callbacks, "on_train_end", TrainEnd(fold=self.fold, best_dice=self.best_dice,
                                                      best_epoch=self.best_epoch, model_path=str(self.paths["model"]),
                                                      stopped=stopped, score_name=self.score_name))
        return FoldResult(self.paths["model"], self.best_dice, self.history, stopped)

    def _epoch(self):
        started = time.monotonic()
        self.model.train()
        losses = []
        for step in range(self.plan.steps_per_epoch):
            losses.append(self._step())
            self.elapsed += time.monotonic() - started
            started = time.monotonic()
            emit(self.callbacks, "on_batch_end", BatchEnd(fold=self.fold, epoch=self.epoch, step=step,
                                                          steps_per_epoch=self.plan.steps_per_epoch, loss=losses[-1],
                                                          lr=self.optimizer.param_groups[0]["lr"]))
            if self._out_of_time():
                break
        train_loss = distributed.average(float(np.mean(losses)))  # over every process's patches
        distributed.agree_on_weights(self.model)
        val_loss, val_dice = self._validate()
        self.elapsed += time.monotonic() - started
        # the kept model is the best by the smoothed Dice: one lucky epoch of a small validation set
        # neither wins nor gets reported (nnU-Net keeps its best checkpoint by a moving average too)
        score = smoothed_dice([h["val_dice"] for h in self.history] + [val_dice])
        is_best = score > self.best_dice
        if is_best:
            self.best_dice, self.best_epoch = score, self.epoch
            self._save_model(score)
        lr = self.optimizer.param_groups[0]["lr"]
        self.history.append({"fold": self.fold, "epoch": self.epoch, "train_loss": train_loss,
                             "val_loss": val_loss, "val_dice": val_dice, "lr": lr, "seconds": self.elapsed})
        self._save_state()
        overfit = overfitting_warning(self.history, self.best_epoch, said_for=self.warned_for)
        self.warned_for = self.best_epoch if overfit else self.warned_for
        emit(self.callbacks, "on_epoch_end", EpochEnd(
            fold=self.fold, epoch=self.epoch, train_loss=train_loss, val_loss=val_loss, val_dice=val_dice,
            best_dice=self.best_dice, is_best=is_best, lr=lr, seconds=self.elapsed, history=list(self.history),
            warning=" ".join(filter(None, [*self.messages, overfit])), score_name=self.score_name))
        self.messages = []
        if self._out_of_time():
            return "time budget"
        patience = self.config.train.patience
        if patience is not None and self.epoch - self.best_epoch >= patience:
            return "early stopping"
        return None

    def _out_of_time(self) -> bool:
        # every process goes by rank 0's clock: one decision to stop (none is left waiting alone in an
        # all-reduce) and one learning rate under a time budget
        self.elapsed = distributed.from_main(self.elapsed)
        return self.minutes is not None and self.elapsed >= 60 * self.minutes

    def _step(self) -> float:
        self.step.set_lr(self.schedule.lr(self.elapsed))
        loss, self.batch_size = halve_batch_on_out_of_memory(  # kept smaller for the rest of the run
            lambda n: self.step(*self.sampler.batch(n)), self.batch_size, report=self.messages.append,
            patch=self.patch, device=self.device)
        self.schedule.step_count += 1
        return loss

    def _validate(self) -> tuple[float, float]:
        """Loss and foreground Dice of the validation regions, predicted as prediction does.

        Several processes: rank 0 validates alone and sends the result; the others wait for it. The pixel
        budget is small and fixed, one pass gives the single-process number (a Dice pooled over all
        regions), and the checkpoint rank 0 writes next is waited for anyway.
        """
        return distributed.run_on_main(validate, self.model, self.val_regions, tile=self.patch,
                                       batch_size=self.batch_size, device=self.device, precision=self.precision,
                                       layout=self.layout, per_class=self.dataset.kind == "multiclass")


__all__ = ["FoldResult", "FoldRun", "SMOOTHING", "VALIDATION_PIXELS", "smoothed_dice"]
