"""05_train: model size, patch size (rule shown and checked live), epochs or minutes, batch size,
folds; training in the foreground with fastprogress bars and a live loss/Dice plot. The kernel's
stop button ends it keeping the best model; 'Resume' continues from the checkpoints on disk. A project that
holds a trained model trains again only with 'Replace the trained model' ticked."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w

from ..metrics.verdict import training_verdict
from ..model.history import read_history
from ..choices import parse_ints
from ..config import Config, update_config
from ..model.unet import SIZES, PatchSizeError, check_patch_size, patch_divisors
from ..predict.seeds import calibrate_project
from ..project import ProjectLayout
from ..train.trainer import TrainResult, check_replace, fit
from . import plots
from .common import FEEDBACK, PanelBase, control
from .init_choice import StartFrom
from .progress import WidgetBarsCallback
from .session import dataset_for, load_config, training_data, training_dataset_for


def parse_patch(text: str) -> list[int]:
    """A typed patch (or tile) size: 2 whole numbers ``Y,X`` or 3 ``Z,Y,X``."""
    values = parse_ints(text, what="patch size", example="64,64 (2D) or 16,64,64 (3D)")
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
class TrainSettings:
    """The training settings as the panel's controls hold them; :meth:`TrainService.apply` checks them."""

    size: str = "S"
    patch: str = "128,128"  # as typed
    budget: str = "epochs"  # or "minutes": which of the two limits training
    epochs: int = 50
    minutes: float = 10
    batch_size: int = 8
    steps_per_epoch: int = 32
    folds: int = 1
    patience: int = 0  # 0 = no early stopping
    augment: bool = True
    lr: float = 3e-3
    scale: float = 1.0  # working scale in-plane (the plan's unless changed)
    init: str | None = None  # train.init: a model to fine-tune (nbseg.train.init); None: from scratch


@dataclass
class TrainState:
    project: Path
    config: Config | None = None
    result: TrainResult | None = None
    history: list | None = None
    plan: object = None  # nbseg.train.plan.Plan
    fingerprint: object = None  # nbseg.data.fingerprint.Fingerprint


class TrainService:
    def __init__(self, state: TrainState):
        self.state = state

    def open(self) -> Config:
        self.state.config = load_config(self.state.project)
        self.state.history = self.saved_history()
        return self.state.config

    def saved_history(self) -> list:
        rows = []
        for path in ProjectLayout(self.state.project).history_files():
            rows += read_history(path)
        return rows

    def plan(self):
        """The training plan for the saved settings: the same object `nbseg train` prints."""
        from ..train.plan import plan_training

        config = load_config(self.state.project)
        dataset = training_dataset_for(config, self.state.project)  # without the test images, as training plans
        self.state.plan, self.state.fingerprint = plan_training(config, dataset)
        return self.state.plan

    def has_model(self) -> bool:
        return ProjectLayout(self.state.project).status()["models"]

    def check_replace(self, replace: bool) -> None:
        """Refuse to train over the project's trained model unless ``replace`` (the panel's tick)."""
        check_replace(self.state.project, replace=replace, how="tick 'Replace the trained model' and press "
                      "Train again", resume_how="press 'Resume from disk'")

    def apply(self, settings: TrainSettings) -> Config:
        """Validate ``settings`` and save them to config.yaml.

        Parameters
        ----------
        settings : TrainSettings
            What the panel's controls hold.

        Returns
        -------
        Config
            The saved settings.
        """
        t = settings
        config = load_config(self.state.project)
        dims = dataset_for(config).spatial_dims
        ok, message = patch_rule(t.patch, t.size, dims)
        if not ok:
            # a patch of the right length raises PatchSizeError, whose fix names the nearest valid sizes
            check_patch_size(parse_patch(t.patch), size=t.size) if len(parse_patch(t.patch)) == dims else None
            raise ValueError(message)
        update = dict(epochs=int(t.epochs) if t.budget == "epochs" else None,
                      minutes=float(t.minutes) if t.budget == "minutes" else None,
                      batch_size=int(t.batch_size), steps_per_epoch=int(t.steps_per_epoch), folds=int(t.folds),
                      patience=int(t.patience) if t.patience else None, augment=bool(t.augment), lr=float(t.lr),
                      init=t.init,
                      # a rate typed here is meant for this run, fine-tuning included (as CLI --lr);
                      # the one notebook 04 saved keeps its own scope
                      lr_for_fine_tuning=config.train.lr_for_fine_tuning or float(t.lr) != config.train.lr)
        # the model settings the panel has no control for (dims) are kept as they are
        model = {"size": t.size, "patch": parse_patch(t.patch), "scale": float(t.scale)}
        config = update_config(config, {"model": model, "train": update})
        config.save(self.state.project)
        self.state.config = config
        return config

    def train(self, *, callbacks=(), resume: bool = False) -> TrainResult:
        """Train (or ``resume``) with the saved settings; a project that carries a denoiser (``nbseg train
        --denoise``) trains on its denoised copies of the images, as the command does."""
        config = self.state.config or load_config(self.state.project)
        data = training_data(config, self.state.project)
        self.state.result = fit(config, self.state.project, callbacks=callbacks, resume=resume,
                                dataset=dataset_for(config.model_copy(update={"data": data})))
        calibrate_project(self.state.project, data)  # instances: the seeded watershed's threshold
        self.state.history = self.saved_history()
        return self.state.result


class TrainPanel(PanelBase):
    title = "05 Train"
    State, Service = TrainState, TrainService

    def build(self) -> None:
        d = TrainSettings()
        self.size = control(w.ToggleButtons, "model_size", "Model size", options=["S", "M", "L"], value=d.size)
        self.patch = control(w.Text, "patch", "Patch size", value=d.patch, continuous_update=True)
        self.rule = w.HTML("")
        self.plan = w.HTML("")
        self.start = StartFrom()  # scratch, a bundled model or another project/package: the core loads it
        self.budget = control(w.ToggleButtons, "minutes", "Train for", options=["epochs", "minutes"], value=d.budget)
        self.epochs = control(w.BoundedIntText, "epoch", "Epochs", min=1, max=100000, value=d.epochs)
        self.minutes = control(w.BoundedFloatText, "minutes", "Minutes", min=0.1, max=100000, value=d.minutes)
        self.batch = control(w.BoundedIntText, "batch_size", "Batch size", min=1, max=1024, value=d.batch_size)
        self.steps = control(w.BoundedIntText, "steps_per_epoch", "Steps per epoch", min=1, max=100000,
                             value=d.steps_per_epoch)
        self.folds = control(w.BoundedIntText, "folds", "Folds", min=1, max=10, value=d.folds)
        self.patience = control(w.BoundedIntText, "early_stopping", "Patience (0 = off)", min=0, max=1000,
                                value=d.patience)
        self.augment = control(w.Checkbox, "augmentation", "Augment", value=d.augment, indent=False)
        self.lr = control(w.FloatText, "lr", "Learning rate", value=d.lr)
        self.scale = control(w.BoundedFloatText, "working_scale", "Working scale", min=0.05, max=1.0, step=0.05,
                             value=d.scale)
        self.train_button = self.primary("Train", "train", lambda: self._train(resume=False), icon="play",
                                         action="Training")
        self.resume_button = self.secondary("Resume from disk", "resume", lambda: self._train(resume=True),
                                            icon="repeat", action="Resuming training")
        self.replace = control(w.Checkbox, "replace_model", "Replace the trained model", value=False, indent=False)
        self.bars = w.HTML("")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.log = w.HTML("")
        self.dims = None
        for ctl in (self.patch, self.size):
            ctl.observe(lambda _c: self._check_patch(), names="value")
        self.budget.observe(lambda _c: self._show_budget(), names="value")
        self.assemble("Training", self.plan, self.start.box, self.size, self.patch, self.rule, self.budget,
                      self.epochs, self.minutes, self.batch,
                      self.steps, self.folds, self.patience, self.augment, self.lr, self.scale,
                      self.replace, w.HBox([self.train_button, self.resume_button]), FEEDBACK, self.log, self.bars,
                      self.plot,
                      intro="Training runs in this notebook's kernel. The kernel's stop button (■) ends it cleanly "
                            "and keeps the best model; 'Resume from disk' continues later, even after a restart.")
        self._show_budget()  # the budget's observer keeps it right when opening the project changes it

    def _open(self) -> None:
        config = self.service.open()
        self.dims = dataset_for(config).spatial_dims
        t = config.train
        self.size.value = config.model.size
        plan = self.service.plan()  # the plan `nbseg train` prints, from the same data and settings
        self.plan.value = plan_html(plan, self.state.fingerprint)
        self.patch.value = ",".join(map(str, plan.patch))
        self.budget.value = "minutes" if t.minutes else "epochs"
        self.epochs.value = t.epochs or 50
        self.minutes.value = t.minutes or 10
        self.batch.value, self.steps.value, self.folds.value = plan.batch_size, plan.steps_per_epoch, t.folds
        self.patience.value, self.augment.value, self.lr.value = t.patience or 0, t.augment, t.lr
        self.scale.value = (plan.scale or [1.0])[-1]
        self.start.show(t.init)
        if self.state.history:
            self.plot.value = plots.history_png(self.state.history)
        self._show_replace()
        self._check_patch()
        self.status.set(f"Project {self.state.project}: {self.dims}D data. Set the options and press Train.", "info")

    def _show_budget(self) -> None:
        epochs = self.budget.value == "epochs"
        self.epochs.layout.display = "" if epochs else "none"
        self.minutes.layout.display = "none" if epochs else ""

    def _show_replace(self) -> None:
        """The tick is shown (and unticked) while the project holds a trained model: each replacement is asked for."""
        self.replace.value = False
        self.replace.layout.display = "" if self.service.has_model() else "none"

    def _check_patch(self) -> bool:
        ok, message = patch_rule(self.patch.value, self.size.value, self.dims)
        color = "#1b5e20" if ok else "#c62828"
        self.rule.value = f"<div style='color:{color};max-width:760px;font-size:90%'>{message}</div>"
        self.train_button.disabled = not ok
        return ok

    def settings(self) -> TrainSettings:
        """What the controls hold now."""
        return TrainSettings(size=self.size.value, patch=self.patch.value, budget=self.budget.value,
                             epochs=self.epochs.value, minutes=self.minutes.value, batch_size=self.batch.value,
                             steps_per_epoch=self.steps.value, folds=self.folds.value,
                             patience=self.patience.value, augment=self.augment.value, lr=self.lr.value,
                             scale=self.scale.value, init=self.start.value)

    def _train(self, resume: bool) -> None:
        if not resume:  # before the settings are saved: a refused run changes nothing
            self.service.check_replace(self.replace.value)
        config = self.service.apply(self.settings())
        if self.state.plan is None or (self.state.plan.init or {}).get("source") != config.train.init:
            self.plan.value = plan_html(self.service.plan(), self.state.fingerprint)  # the init sets the network
        self.callback = WidgetBarsCallback(self.bars, self.plot, self.log)
        result = self.service.train(callbacks=[self.callback], resume=resume)
        if self.state.history:
            self.plot.value = plots.history_png(self.state.history)
        self._show_replace()
        best = ", ".join(f"{d:.3f}" for d in result.best_dice)
        if result.interrupted:
            self.status.set(f"Stopped. The best model so far is kept (validation Dice {best}); press 'Resume from "
                            "disk' to continue.", "warn")
        else:  # a model that learnt nothing is a failure with what to do, never green
            verdict = training_verdict(result.best_dice)
            self.status.set(f"Trained {len(result.model_paths)} model(s). {verdict.text}" +
                            (" Next: notebook 06_predict." if verdict.ok else ""), "ok" if verdict.ok else "warn")
        self._check_patch()


def plan_html(plan, fingerprint) -> str:
    """The training plan and the data notes it came from, as the panel shows them."""
    lines = "".join(f"<li>{html.escape(line.strip())}</li>" for line in plan.lines()[1:])
    notes = "".join(f"<li><i>{html.escape(n)}</i></li>" for n in (fingerprint.notes if fingerprint else []))
    return (f"<div style='max-width:760px'><b>{html.escape(plan.lines()[0])}</b>"
            f"<ul style='margin:2px 0'>{lines}{notes}</ul></div>")
