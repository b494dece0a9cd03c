"""fastprogress bars drawn into an ipywidgets.HTML instead of IPython display handles, so they
update inside a panel (JupyterLab, Colab) and headless (nbclient, tests) alike; and the training
callback that feeds them and the live loss/Dice plot."""
from __future__ import annotations

import html

import ipywidgets as w
from fastprogress.fastprogress import NBMasterBar, NBProgressBar, html_progress_bar

from ..train.callbacks import Callback
from . import plots

try:  # fastprogress >= 1.1 builds HTML with fastcore's FT; older versions with strings
    from fastcore.xml import to_xml as _to_xml
except ImportError:  # pragma: no cover
    _to_xml = str

try:
    from fastprogress.fastprogress import html_styles as _STYLES
except ImportError:  # pragma: no cover
    _STYLES = ""


def _html(obj) -> str:
    if isinstance(obj, str):
        return obj
    if hasattr(obj, "_repr_html_"):
        return obj._repr_html_()
    if hasattr(obj, "data"):
        return obj.data
    return _to_xml(obj)


class _Handle:
    """Stands in for the display handle fastprogress updates."""

    def __init__(self, target: w.HTML):
        self.target = target

    def update(self, obj) -> None:
        self.target.value = str(_STYLES) + _html(obj)


class WidgetMasterBar(NBMasterBar):
    """fastprogress's master bar, rendered into ``target`` (an ipywidgets.HTML)."""

    def __init__(self, gen, target: w.HTML, total=None, **kwargs):
        super().__init__(gen, total=total, **kwargs)
        self.target = target

    def on_iter_begin(self):
        self.out = _Handle(self.target)
        self.out.update(html_progress_bar(0, self.main_bar.total, ""))
        self.main_bar._parent_show = self.show

    def on_iter_end(self):
        self.show()


def widget_bars(total_epochs: int, target: w.HTML):
    """A master bar over epochs drawn into ``target``; call ``.progress(range(steps))`` for the steps."""
    return WidgetMasterBar(range(total_epochs), target)


def _best(score_name: str) -> str:
    return "validation Dice" if score_name == "val Dice" else score_name


class WidgetBarsCallback(Callback):
    """Training events -> fastprogress master bar (epochs) and child bar (steps), the epoch table, and the
    live train/val loss and Dice plot. ``score_name``: what the run's validation score is when it is not the
    Dice (a denoiser's "val PSNR vs noisy"); the epoch events name it too, but the table's head comes first."""

    def __init__(self, bars: w.HTML, plot: w.Image, log: w.HTML | None = None, *, score_name: str = "val Dice"):
        self.bars_widget, self.plot, self.log, self.score_name = bars, plot, log, score_name
        self.master = self.child = None
        self.history: list = []
        self.plots_drawn = 0

    def on_train_begin(self, e) -> None:
        total = e.max_epochs if e.max_epochs < 10**6 else None
        self.master = WidgetMasterBar(range(total or 1), self.bars_widget, total=total or 1)
        self.master.update(0)
        if 0 < e.start_epoch < (total or 1):
            self.master.update(e.start_epoch)
        self.master.write(["fold", "epoch", "train loss", "val loss", self.score_name, "lr", "time"], table=True)
        self.steps_total = None
        if self.log is not None:
            budget = f"{e.minutes:g} min" if e.minutes else f"{e.max_epochs} epochs"
            self.log.value = (f"Fold {e.fold + 1}/{e.folds}: {e.parts('and')}, "
                              f"patch {e.patch}, {budget}, on {e.device} ({e.precision}).")
            if e.start_epoch:  # a resumed run: say where it picked up (the table starts there too)
                self.log.value += f" Resumed from the checkpoint on disk at epoch {e.start_epoch + 1}."

    def on_batch_end(self, e) -> None:
        if self.child is None or self.steps_total != e.steps_per_epoch or e.step == 0:
            self.steps_total = e.steps_per_epoch
            self.child = NBProgressBar(range(e.steps_per_epoch), parent=self.master)
            self.child.update(0)
        self.child.comment = f"loss {e.loss:.3f}"
        self.child.update(e.step + 1)

    def on_epoch_end(self, e) -> None:
        self.history = [h for h in self.history if h.get("fold") != e.fold] + list(e.history)
        self.master.write([str(e.fold + 1), str(e.epoch + 1), f"{e.train_loss:.4f}", f"{e.val_loss:.4f}",
                           f"{e.val_dice:.4f}" + (" *" if e.is_best else ""), f"{e.lr:.1e}", f"{e.seconds:.0f}s"],
                          table=True)
        if self.master.main_bar.total and e.epoch + 1 <= self.master.main_bar.total:
            self.master.update(e.epoch + 1)
        self.plot.value = plots.history_png(self.history, e.score_name)
        self.plots_drawn += 1
        if e.warning and self.log is not None:
            self.log.value += f"<br><span style='color:#e65100'>Epoch {e.epoch + 1}: {html.escape(e.warning)}</span>"

    def on_train_end(self, e) -> None:
        if self.master is not None:  # an epoch the time budget (or the stop button) cut short leaves no half bar
            self.master.inner_dict.pop("pb2", None)
            self.master.show()
        self.child = None
        if self.log is not None:
            self.log.value += (f"<br>Fold {e.fold + 1} stopped ({e.stopped}); best {_best(e.score_name)} "
                               f"{e.best_dice:.3f} at epoch {e.best_epoch + 1}; model: {e.model_path}")
