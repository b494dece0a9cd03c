"""04_train: model size, patch size (rule shown and checked live), epochs or minutes, batch size,
folds; training in the foreground with fastprogress bars and a live loss/Dice plot. The kernel's
stop button ends it keeping the best model; 'Resume' continues from the checkpoints on disk."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w

from ..train.checkpoint import read_history
from ..config import Config
from ..model.unet import SIZES, PatchSizeError, check_patch_size, patch_divisors
from ..project import ProjectLayout
from ..train.trainer import TrainResult, fit
from . import plots
from .common import PanelBase, control, heading, note, primary_button, secondary_button
from .progress import WidgetBarsCallback
from .session import dataset_for, load_config


def parse_patch(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").replace(" ", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"patch size {text!r} is not whole numbers; write e.g. 64,64 (2D) or 16,64,64 (3D).") from None
    if len(values) not in (2, 3):
        raise ValueError(f"patch size {text!r} needs 2 numbers (Y,X) or 3 (Z,Y,X).")
    return values


def patch_rule(text: str, size: str, dims: int | None) -> tuple[bool, str]:
    """``(ok, sentence)`` for a typed patch size: the rule, and whether this one follows it."""
    depth = len(SIZES[size]) - 1
    rule = (f"Rule for model {size}: each pooled side divisible by {2 ** depth}; a Z below 8 is not pooled; "
            f"{'Y,X' if dims == 2 else 'Z,Y,X' if dims == 3 else 'Y,X (2D) or Z,Y,X (3D)'}.")
    try:
        patch = parse_patch(text)
        if dims is not None and len(patch) != dims:
            raise ValueError(f"the data is {dims}D, so give {dims} numbers.")
        check_patch_size(patch, size=size)
    except (ValueError, PatchSizeError) as err:
        return False, f"{rule} ✗ {err}"
    divisors = patch_divisors(patch, size)
    return True, f"{rule} ✓ {patch} fits (divisors {list(divisors)})."


@dataclass
class TrainState:
    project: Path
    config: Config | None = None
    result: TrainResult | None = None
    history: list | None = None


class TrainService:
    def __init__(self, state: TrainState):
        self.state = state

    def open(self) -> Config:
        self.state.config = load_config(self.state.project)
        self.state.history = self.saved_history()
        return self.state.config

    def saved_history(self) -> list:
        folder = ProjectLayout(self.state.project).history
        rows = []
        for path in sorted(folder.glob("fold*.csv")) if folder.is_dir() else []:
            rows += read_history(path)
        return rows

    def apply(self, *, size, patch, budget, epochs, minutes, batch_size, steps_per_epoch, folds, patience, augment,
              lr) -> Config:
        """Validate the settings and save them to config.yaml."""
        cfg = load_config(self.state.project)
        dims = dataset_for(cfg).spatial_dims
        ok, message = patch_rule(patch, size, dims)
        if not ok:
            check_patch_size(parse_patch(patch), size=size) if len(parse_patch(patch)) == dims else None
            raise ValueError(message)
        update = dict(epochs=int(epochs) if budget == "epochs" else None,
                      minutes=float(minutes) if budget == "minutes" else None,
                      batch_size=int(batch_size), steps_per_epoch=int(steps_per_epoch), folds=int(folds),
                      patience=int(patience) if patience else None, augment=bool(augment), lr=float(lr))
        cfg = Config.model_validate({**cfg.model_dump(),
                                     "model": {"size": size, "patch": parse_patch(patch)},
                                     "train": {**cfg.train.model_dump(), **update}})
        cfg.save(self.state.project)
        self.state.config = cfg
        return cfg

    def train(self, *, callbacks=(), resume: bool = False) -> TrainResult:
        cfg = self.state.config or load_config(self.state.project)
        self.state.result = fit(cfg, self.state.project, callbacks=callbacks, resume=resume,
                                dataset=dataset_for(cfg))
        self.state.history = self.saved_history()
        return self.state.result


class TrainPanel(PanelBase):
    title = "04 Train"

    def __init__(self, project):
        super().__init__()
        self.state = TrainState(Path(project))
        self.service = TrainService(self.state)
        self.size = control(w.ToggleButtons, "model_size", "Model size", options=["S", "M", "L"], value="S")
        self.patch = control(w.Text, "patch", "Patch size", value="128,128", continuous_update=True)
        self.rule = w.HTML("")
        self.budget = control(w.ToggleButtons, "minutes", "Train for", options=["epochs", "minutes"], value="epochs")
        self.epochs = control(w.BoundedIntText, "epoch", "Epochs", min=1, max=100000, value=50)
        self.minutes = control(w.BoundedFloatText, "minutes", "Minutes", min=0.1, max=100000, value=10)
        self.batch = control(w.BoundedIntText, "batch_size", "Batch size", min=1, max=1024, value=8)
        self.steps = control(w.BoundedIntText, "steps_per_epoch", "Steps per epoch", min=1, max=100000, value=32)
        self.folds = control(w.BoundedIntText, "folds", "Folds", min=1, max=10, value=1)
        self.patience = control(w.BoundedIntText, "early_stopping", "Patience (0 = off)", min=0, max=1000, value=0)
        self.augment = control(w.Checkbox, "augmentation", "Augment", value=True, indent=False)
        self.lr = control(w.FloatText, "lr", "Learning rate", value=3e-3)
        self.train_button = primary_button("Train", "train", icon="play")
        self.resume_button = secondary_button("Resume from disk", "resume", icon="repeat")
        self.bars = w.HTML("")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.log = w.HTML("")
        self.buttons = [self.train_button]
        self.dims = None
        for ctl in (self.patch, self.size):
            ctl.observe(lambda _c: self._check_patch(), names="value")
        self.budget.observe(lambda _c: self._show_budget(), names="value")
        self.on(self.train_button, "Training", lambda: self._train(resume=False))
        self.on(self.resume_button, "Resuming training", lambda: self._train(resume=True))
        self.widget = w.VBox([
            heading("Training"),
            note("Training runs in this notebook's kernel. The kernel's stop button (■) ends it cleanly and keeps "
                 "the best model; 'Resume from disk' continues later, even after a restart."),
            self.size, self.patch, self.rule, self.budget, self.epochs, self.minutes, self.batch, self.steps,
            self.folds, self.patience, self.augment, self.lr,
            w.HBox([self.train_button, self.resume_button]), self.status.widget, self.errors.widget,
            self.log, self.bars, self.plot,
        ])
        self.run("Open project", self._open)
        self._show_budget()

    def _open(self) -> None:
        cfg = self.service.open()
        self.dims = dataset_for(cfg).spatial_dims
        t = cfg.train
        self.size.value = cfg.model.size
        from ..train.trainer import resolve_patch

        patch = cfg.model.patch or resolve_patch(cfg, dataset_for(cfg))[0]
        self.patch.value = ",".join(map(str, patch))
        self.budget.value = "minutes" if t.minutes else "epochs"
        self.epochs.value = t.epochs or 50
        self.minutes.value = t.minutes or 10
        self.batch.value, self.steps.value, self.folds.value = t.batch_for(self.dims), t.steps_per_epoch, t.folds
        self.patience.value, self.augment.value, self.lr.value = t.patience or 0, t.augment, t.lr
        if self.state.history:
            self.plot.value = plots.history_png(self.state.history)
        self._check_patch()
        self.status.set(f"Project {self.state.project}: {self.dims}D data. Set the options and press Train.", "info")

    def _show_budget(self) -> None:
        epochs = self.budget.value == "epochs"
        self.epochs.layout.display = "" if epochs else "none"
        self.minutes.layout.display = "none" if epochs else ""

    def _check_patch(self) -> bool:
        ok, message = patch_rule(self.patch.value, self.size.value, self.dims)
        color = "#1b5e20" if ok else "#c62828"
        self.rule.value = f"<div style='color:{color};max-width:760px;font-size:90%'>{message}</div>"
        self.train_button.disabled = not ok
        return ok

    def settings(self) -> dict:
        return dict(size=self.size.value, patch=self.patch.value, budget=self.budget.value, epochs=self.epochs.value,
                    minutes=self.minutes.value, batch_size=self.batch.value, steps_per_epoch=self.steps.value,
                    folds=self.folds.value, patience=self.patience.value, augment=self.augment.value,
                    lr=self.lr.value)

    def _train(self, resume: bool) -> None:
        self.service.apply(**self.settings())
        self.callback = WidgetBarsCallback(self.bars, self.plot, self.log)
        result = self.service.train(callbacks=[self.callback], resume=resume)
        if self.state.history:
            self.plot.value = plots.history_png(self.state.history)
        best = ", ".join(f"{d:.3f}" for d in result.best_dice)
        if result.interrupted:
            self.status.set(f"Stopped. The best model so far is kept (validation Dice {best}); press 'Resume from "
                            "disk' to continue.", "warn")
        else:
            self.status.set(f"Trained {len(result.model_paths)} model(s), best validation Dice {best}. "
                            "Next: notebook 05_predict.", "ok")
        self._check_patch()
