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
from ..data.sampler import PatchSampler
from ..data.split import split_samples
from ..model.unet import save_model_file
from ..project import ProjectLayout
from ..runtime import pick_device, pick_precision
from .init import load_init_weights
from .schedule import ProgressSchedule
from .step import TrainStep, build_model
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
    """Training of one fold: set-up, the epoch loop, validation and checkpoints."""

    def __init__(self, config, project, dataset, plan, fold, n_folds, split, callbacks, notes):
        self.cfg, self.tcfg, self.plan = config, config.train, plan
        self.batch_size = plan.batch_size
        patch = plan.patch
        self.dataset, self.patch, self.fold, self.n_folds = dataset, patch, fold, n_folds
        self.callbacks, self.notes = (list(callbacks) if distributed.is_main() else []), notes
        layout = ProjectLayout(project)
        self.paths = {"model": layout.model(fold), "checkpoint": layout.checkpoint(fold),
                      "history": layout.history_file(fold)}
        self.train_samples, self.val_samples = split_samples(dataset, split)
        self.device = distributed.local_device(pick_device(self.tcfg.device))
        self.precision = distributed.from_main(pick_precision(self.device, self.tcfg.precision))  # one for all processes
        seed = self.tcfg.seed + 1000 * fold
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        distributed.shard_streams(self.rng, self.generator)  # each process its own patches
        self.model, self.layout = build_model(dataset, plan, self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=plan.lr,  # plan.lr: fine-tuning's own
                                           weight_decay=self.tcfg.weight_decay)
        self.step = TrainStep(self.model, self.optimizer, device=self.device, precision=self.precision,
                              layout=self.layout, augment=self.tcfg.augment, generator=self.generator,
                              class_weights=plan.class_weights)
        minutes = self.tcfg.minutes / n_folds if self.tcfg.minutes else None
        total = self.tcfg.epochs * self.plan.steps_per_epoch if self.tcfg.epochs else None
        self.schedule = ProgressSchedule(self.tcfg.schedule, plan.lr, total_steps=total, minutes=minutes)
        self.minutes = minutes
        balance = range(1, dataset.n_classes) if plan.class_weights else None  # multi-class: each class alike
        self.sampler = PatchSampler(self.train_samples, patch, foreground_fraction=self.tcfg.foreground_fraction,
                                    seed=self.rng, classes=balance)
        budget = self.tcfg.val_tiles * int(np.prod(patch)) if self.tcfg.val_tiles else VALIDATION_PIXELS
        self.val_regions = validation_regions(self.val_samples, patch, budget)
        if not any((target > 0).any() for _, target in self.val_regions):
            self.notes = self.notes + ["the validation part holds no labelled object: its Dice (1.0, nothing to "
                                       "find) says nothing; hold back images with objects (val_fraction, folds)"]
        self.epoch, self.best_dice, self.best_epoch, self.elapsed, self.history = 0, -1.0, 0, 0.0, []
        self.intensity = intensity_stats(self.train_samples)
        self.said = []  # for the person watching (e.g. a smaller batch after running out of memory)
        self.said_for = None  # the best epoch the over-fitting warning last named: said once per best model

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
        meta = model_meta(self.cfg, self.dataset, patch=self.patch, fold=self.fold, epoch=self.epoch,
                          val_dice=val_dice, plan=self.plan, intensity=self.intensity)
        save_model_file(self.paths["model"], self.model, meta=meta)

    # ------------------------------------------------------------ loop

    def run(self, resume: bool) -> FoldResult:
        if resume and self.paths["checkpoint"].exists():
            self._restore()
        elif self.plan.init:  # fine-tuning starts from the source's weights; a resumed run from its checkpoint
            self.notes = self.notes + load_init_weights(self.model, self.plan.init)
        if resume and self.epoch == 0:  # stopped before its first epoch ended: nothing was saved, nor lost
            self.notes = self.notes + [f"no checkpoint in {self.paths['checkpoint'].parent} to resume from (the run "
                                       "stopped before its first epoch ended): training starts from epoch 1"]
        emit(self.callbacks, "on_train_begin", TrainBegin(
            fold=self.fold, folds=self.n_folds, n_train=len(self.train_samples), n_val=len(self.val_samples),
            patch=list(self.patch), device=str(self.device), precision=self.precision,
            max_epochs=self.tcfg.max_epochs, minutes=self.minutes, start_epoch=self.epoch, notes=self.notes,
            n_images=len(self.dataset.samples)))
        stopped = "epochs"
        try:
            while self.epoch < self.tcfg.max_epochs:
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
                                                      stopped=stopped))
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
        overfit = overfitting_warning(self.history, self.best_epoch, said_for=self.said_for)
        self.said_for = self.best_epoch if overfit else self.said_for
        emit(self.callbacks, "on_epoch_end", EpochEnd(
            fold=self.fold, epoch=self.epoch, train_loss=train_loss, val_loss=val_loss, val_dice=val_dice,
            best_dice=self.best_dice, is_best=is_best, lr=lr, seconds=self.elapsed, history=list(self.history),
            warning=" ".join(filter(None, [*self.said, overfit]))))
        self.said = []
        if self._out_of_time():
            return "time budget"
        patience = self.tcfg.patience
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
            lambda n: self.step(*self.sampler.batch(n)), self.batch_size, report=self.said.append,
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
