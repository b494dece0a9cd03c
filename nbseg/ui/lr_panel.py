"""04_lr_finder: run the learning-rate sweep, plot loss vs learning rate with the suggestion marked,
and accept the suggestion into config.yaml. The rate is for training from scratch; fine-tuning keeps its
own rule unless 'Use this rate for fine-tuning too' is ticked (:func:`nbseg.train.init.fine_tune_lr`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w

from ..config import Config, TrainConfig
from ..train.lr_finder import LRFinderResult, find_lr, rate_in_use
from ..project import ProjectLayout
from .teaching import QUICK_LR_STEPS, quick_mode
from . import plots
from .common import PanelBase, control
from .session import dataset_for, load_config, training_dataset_for


@dataclass
class LRState:
    project: Path
    config: Config | None = None
    result: LRFinderResult | None = None
    num_steps: int = 100
    accepted: float | None = None


class LRService:
    def __init__(self, state: LRState):
        self.state = state

    def open(self) -> None:
        s = self.state
        s.config = load_config(s.project)
        saved = ProjectLayout(s.project).lr_finder
        if saved.exists():
            s.result = LRFinderResult.load(saved)

    def sweep(self, progress=None) -> LRFinderResult:
        s = self.state
        s.config = load_config(s.project)
        s.result = find_lr(s.config, s.project, num_steps=s.num_steps, progress=progress,
                           dataset=training_dataset_for(s.config, s.project))  # the test images stay unseen
        return s.result

    def accept(self, lr: float | None = None, *, for_fine_tuning: bool = False) -> float:
        """Save ``lr`` (default: the sweep's proposal) as ``train.lr``; ``for_fine_tuning``: fine-tuning uses
        it too instead of its own rule (``train.lr_for_fine_tuning``)."""
        s = self.state
        if lr is None:
            if s.result is None:
                raise ValueError("No sweep yet: press 'Run LR sweep' first.")
            lr = s.result.proposal
        s.config = load_config(s.project)
        s.config.train.lr = float(lr)
        s.config.train.lr_for_fine_tuning = bool(for_fine_tuning)
        s.config.save(s.project)
        s.accepted = float(lr)
        return s.accepted

    def rate_note(self, lr: float, for_fine_tuning: bool) -> str:
        """Which rate training will use if ``lr`` is saved so, and why (`nbseg lr-find` says the same)."""
        train = load_config(self.state.project).train.model_copy(
            update={"lr": float(lr), "lr_for_fine_tuning": bool(for_fine_tuning)})
        return rate_in_use(train, override="tick 'Use this rate for fine-tuning too' before saving")


class LRPanel(PanelBase):
    title = "04 LR finder"
    State, Service = LRState, LRService

    def build(self) -> None:
        self.steps = control(w.BoundedIntText, "lr_finder", "Sweep steps", min=5, max=1000,
                             value=self.state.num_steps)
        self.progress = w.IntProgress(min=0, max=self.state.num_steps, description="sweep",
                                      layout=w.Layout(width="560px"))
        self.run_button = self.primary("Run LR sweep", "lr_finder", self._sweep, icon="line-chart",
                                       action="LR sweep")
        self.accept_button = self.primary("Use suggested rate", "lr_accept", self._accept, icon="check")
        self.lr = control(w.FloatText, "lr", "Learning rate to use", value=3e-3)
        self.fine_tune = control(w.Checkbox, "lr_fine_tune", "Use this rate for fine-tuning too", value=False,
                                 indent=False)
        self.use_text = w.HTML("")
        for ctl in (self.lr, self.fine_tune):
            ctl.observe(lambda _c: self._explain(), names="value")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="640px"))
        self.result_text = w.HTML("")
        self.assemble("Learning-rate finder", self.steps, self.run_button, self.progress, self.plot,
                      self.result_text, self.lr, self.fine_tune, self.use_text, self.accept_button,
                      intro="A short training with a rising learning rate. The loss first falls, then explodes; "
                            "a good rate is where it falls fastest (red line).")

    def _open(self) -> None:
        self.service.open()
        if quick_mode():
            self.steps.value = QUICK_LR_STEPS[dataset_for(self.state.config).spatial_dims]
        t = self.state.config.train
        # ticked only where a rate was saved for fine-tuning already (the default rate means nothing set)
        self.fine_tune.value = bool(t.lr_for_fine_tuning and t.lr != TrainConfig.model_fields["lr"].default)
        self.lr.value = t.lr
        if self.state.result is not None:
            self._show()
        self._explain()
        self.status.set(f"Project {self.state.project}: current learning rate {self.lr.value:.2e}.", "info")

    def _sweep(self) -> None:
        self.state.num_steps = self.steps.value
        self.progress.max, self.progress.value = self.steps.value, 0

        def tick(step, total, lr, loss):
            self.progress.value = step + 1
            self.progress.description = f"lr {lr:.0e}"

        self.service.sweep(progress=tick)
        self._show()

    def _show(self) -> None:
        r = self.state.result
        self.plot.value = plots.lr_png(r)
        proposal, why = r.proposal, r.proposal_note
        self.result_text.value = (f"Suggested learning rate: <b>{r.suggestion:.2e}</b> ({len(r.lrs)} steps; "
                                  f"sweep ended: {r.stop_reason})." + (f"<br><i>Note: {why}.</i>" if why else ""))
        self.lr.value = proposal

    def _explain(self) -> None:
        if self.state.config is not None:
            note = self.service.rate_note(self.lr.value, self.fine_tune.value)
            self.use_text.value = f"<div style='max-width:640px;font-size:90%'>Once saved, {note}.</div>"

    def _accept(self) -> None:
        lr = self.service.accept(self.lr.value, for_fine_tuning=self.fine_tune.value)
        note = self.service.rate_note(lr, self.fine_tune.value)
        self.status.set(f"Learning rate {lr:.2e} saved in config.yaml: {note}. Next: notebook 05_train.", "ok")
