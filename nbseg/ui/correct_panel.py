"""Correct and retrain: the model (or the classic workflow) proposes a segmentation of the most useful image; the
user accepts it, leaves the image out or corrects it on the overlay, and retrains in minutes, round after round.

Edits come from the mouse through ipyevents (a click for objects, a drag for the brush, corners and a double
click for polygons) or, where mouse events are unavailable, from a typed line (``delete 40,52``). The work is
:class:`~nbseg.ui.correct_service.CorrectService`'s; this module holds the widgets."""
from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as w

from ..choices import SUGGEST_DEFAULT
from ..labels.classic import ClassicSettings
from .common import FEEDBACK, PanelBase, control, note, table_html
from .correct_service import CLASSIC, TOOLS, CorrectService, CorrectState, quick_retrain_minutes, round_status
from .progress import WidgetBarsCallback
from .teaching import quick_mode
from .viewers import Viewer2D

CLICK_TOOLS, TWO_POINT_TOOLS = ("delete", "class"), ("merge", "split")
BRUSH_TOOLS = ("paint", "erase", "add", "unlabelled")


class CorrectPanel(PanelBase):
    """The correction loop's panel (notebook 02_correct)."""

    title = "02 Correct"
    State, Service = CorrectState, CorrectService

    def build(self) -> None:
        self.pool = control(w.Text, "correct_pool", "Images to correct", placeholder="folder of images")
        self.source = control(w.Combobox, "correct_source", "Proposals from", options=["nuclei", CLASSIC],
                              placeholder="nuclei, classic, or a project / package path", ensure_option=False)
        self.by = control(w.ToggleButtons, "correct_by", "Next image",
                          options=[("most uncertain", "uncertain"), ("models disagree", "disagree"),
                                   ("representative", "representative"), ("diverse", "diverse"),
                                   ("crowded", "crowded"), ("dense", "dense")],
                          value=SUGGEST_DEFAULT)
        self._classic_controls()
        self.rank_button = self.primary("Rank images", "correct_rank", self._rank, icon="sort-amount-desc")
        self.save_button = self.primary("Save & next", "correct_save", self._save, icon="save")
        self.retrain_button = self.primary("Retrain", "correct_retrain", self._retrain, icon="refresh")
        self.leave_button = self.secondary("Leave out", "correct_leave", self._leave_out, icon="ban")
        self.undo_button = self.secondary("Undo", "correct_undo", lambda: self._history("undo"), icon="undo")
        self.redo_button = self.secondary("Redo", "correct_undo", lambda: self._history("redo"), icon="repeat")
        self.tool = control(w.ToggleButtons, "correct_tool", "Tool", options=list(TOOLS), value="delete")
        self.radius = control(w.IntSlider, "brush_radius", "Brush radius", min=1, max=40, value=4)
        self.value = control(w.IntText, "correct_value", "Class / object", value=0)
        self.whole = control(w.Checkbox, "correct_whole", "Whole object (3D)", value=True, indent=False)
        self.typed = control(w.Text, "correct_typed", "Typed edit", placeholder="delete 40,52 | paint 10,10; 10,30 r=4")
        self.apply_button = self.secondary("Apply typed edit", "correct_typed", self._typed, icon="keyboard-o")
        self.minutes = control(w.BoundedFloatText, "correct_minutes", "Retrain minutes", min=0.05, max=240,
                               value=quick_retrain_minutes() if quick_mode() else 2.0)
        self.viewer = Viewer2D()
        self.info, self.rounds, self.log = w.HTML(""), w.HTML(""), w.HTML("")
        self.bars, self.plot = w.HTML(""), w.Image(format="png", layout=w.Layout(max_width="640px"))
        self._events()
        self.source.observe(lambda _c: self._show_classic(), names="value")
        tools = w.VBox([self.tool, w.HBox([self.radius, self.value]), self.whole,
                        w.HBox([self.undo_button, self.redo_button, self.leave_button]),
                        w.HBox([self.typed, self.apply_button])])
        self.assemble("Correct and retrain", self.pool, self.source, self.by, self.classic_box, self.rank_button,
                      self.info, tools, self.viewer.widget, self.save_button, self.minutes, self.retrain_button,
                      FEEDBACK, self.log, self.bars, self.plot, self.rounds,
                      intro="The model proposes a segmentation of the next image to correct. Accept it (Save & "
                            "next), fix it first with the tools, or leave the image out; every decision is saved in "
                            "the project at once. Retrain fine-tunes on what you saved, and the next round begins.")

    def _classic_controls(self) -> None:
        self.sigma = control(w.FloatSlider, "classic_sigma", "Smoothing", min=0, max=8, step=0.5, value=1.0,
                             continuous_update=False)
        self.method = control(w.Dropdown, "classic_threshold", "Threshold", options=["otsu", "li", "triangle", "value"])
        self.level = control(w.FloatText, "classic_threshold", "Threshold value", value=0.0)
        self.dark = control(w.Checkbox, "classic_dark", "Objects darker than background", value=False, indent=False)
        self.split = control(w.Checkbox, "classic_watershed", "Split touching objects", value=True, indent=False)
        self.min_distance = control(w.IntSlider, "classic_watershed", "Seed distance", min=1, max=50, value=5,
                                    continuous_update=False)
        self.min_size = control(w.IntText, "classic_min_size", "Smallest object", value=10)
        self.classic_box = w.VBox([note("Classic workflow (live preview on the shown image)"), self.sigma, self.method,
                                   self.level, self.dark, self.split, self.min_distance, self.min_size])
        for ctl in (self.sigma, self.method, self.level, self.dark, self.split, self.min_distance, self.min_size):
            ctl.observe(lambda _c: self.run("Preview", self._preview_classic), names="value")

    def _events(self) -> None:
        self.stroke, self.corners, self.events = [], [], None
        try:
            from ipyevents import Event

            self.events = Event(source=self.viewer.image_widget, prevent_default_action=True,
                                watched_events=["click", "dblclick", "mousedown", "mousemove", "mouseup"])
            self.events.on_dom_event(lambda event: self.run("Edit", self.handle, event))
        except Exception:  # noqa: BLE001 - the typed edits still work
            self.events = None

    # ------------------------------------------------------------------ opening and showing

    def _open(self) -> None:
        self.service.open()
        s = self.state
        self.pool.value, self.source.value = s.pool, s.source
        self.source.options = list(dict.fromkeys(["nuclei", CLASSIC, s.source]))
        self._show_classic()
        self._show_rounds()
        self.status.set(f"Project {s.project}: round {s.round}. Give the images and press 'Rank images'.", "info")

    def _show_classic(self) -> None:
        self.classic_box.layout.display = "" if self.source.value == CLASSIC else "none"

    def _show(self) -> None:
        s = self.state
        if s.editor is None:
            self.info.value = "<b>Every ranked image is decided.</b> Press 'Retrain', or 'Rank images' again."
            self.viewer.set_data(None)
            return
        labels = s.editor.labels
        unlabelled = labels == s.editor.unlabelled
        shown = labels * ~unlabelled
        self.viewer.set_data(s.image, shown, unlabelled=unlabelled if unlabelled.any() else None,
                             title=html.escape(s.path.name), classes=s.classes, **s.scale)
        done = sum(s.editor.counts.values())
        self.info.value = (f"<b>{html.escape(s.path.name)}</b>, proposed by {html.escape(_short(s.proposed_by))}; "
                           f"{int(labels.max())} objects, {done} edit(s) so far.")
        self.whole.layout.display = "" if labels.ndim == 3 else "none"

    def _show_rounds(self) -> None:
        table = self.service.round_table()
        if not table.empty:
            table["model"] = table["model"].map(_short)
        self.rounds.value = "" if table.empty else "<b>Rounds</b>" + table_html(table, index=False)

    # ------------------------------------------------------------------ actions

    def _sync(self) -> None:
        s = self.state
        s.pool, s.source, s.by = self.pool.value, self.source.value.strip(), self.by.value

    def _rank(self) -> None:
        self._sync()
        table = self.service.rank()
        self.service.show_next()
        self._show()
        self.status.set(f"Ranked {len(table)} image(s) not yet decided; the first is shown.", "ok")

    def _save(self) -> None:
        decision = self.service.decide("accepted")
        self.service.show_next()
        self._show()
        self.status.set(f"Saved {decision.name} ({decision.decision}) in {self.service.layout.corrections}.", "ok")

    def _leave_out(self) -> None:
        decision = self.service.decide("left out")
        self.service.show_next()
        self._show()
        self.status.set(f"Left out {decision.name}.", "ok")

    def _retrain(self, wait: bool = False) -> None:
        self._sync()
        callback = WidgetBarsCallback(self.bars, self.plot, self.log)

        def work():
            row = self.run("Retrain", self.service.retrain, self.minutes.value, callbacks=[callback])
            if row is not None:  # the new round's model proposes from now on
                self.source.options = list(dict.fromkeys([*self.source.options, self.state.source]))
                self.source.value = self.state.source
                self.run("Rank images", self._rank)
                self._show_rounds()
                self.status.set(*round_status(row))

        # in the background, so the notebook stays usable; tests and the autorun wait for it
        self.worker = threading.Thread(target=work, daemon=True)
        self.worker.start()
        if wait or self._waits():
            self.worker.join()

    def _waits(self) -> bool:
        from .teaching import autorun

        return autorun()

    def _history(self, which: str) -> None:
        if self.state.editor is None:
            raise ValueError("No image is open: press 'Rank images' first.")
        getattr(self.state.editor, which)()
        self._show()

    def _typed(self) -> None:
        self.service.command(self.typed.value, radius=self.radius.value, z=self._z(), whole=self.whole.value)
        self.typed.value = ""
        self._show()

    def _preview_classic(self) -> None:
        self.state.classic = ClassicSettings(
            sigma=self.sigma.value, threshold=self.level.value if self.method.value == "value" else self.method.value,
            dark_objects=self.dark.value, watershed=self.split.value, min_distance=self.min_distance.value,
            min_size=max(0, self.min_size.value))
        if self.state.path is not None and self.source.value == CLASSIC:
            self.state.source = CLASSIC
            self.service.propose(self.state.path)
            self._show()

    # ------------------------------------------------------------------ the mouse

    def _z(self):
        return self.viewer.z.value if self.viewer.is3d else None

    def handle(self, event: dict) -> None:
        """One DOM event from ipyevents (``type``, ``dataX``/``dataY`` in the shown picture's pixels)."""
        kind, tool = event.get("type"), self.tool.value
        point = self.viewer.pixel_at(event["dataX"], event["dataY"]) if "dataX" in event else None
        if kind == "dblclick" and tool == "polygon" and len(self.corners) >= 3:
            self._apply(tool, self.corners)
            self.corners = []
        elif point is None:
            return
        elif tool in BRUSH_TOOLS:
            self._brush(kind, point, event.get("buttons", 1))
        elif kind == "click" and tool in CLICK_TOOLS:
            self._apply(tool, [point])
        elif kind == "click":  # two-point tools and polygon corners collect clicks
            self.corners.append(point)
            if tool in TWO_POINT_TOOLS and len(self.corners) == 2:
                self._apply(tool, self.corners)
                self.corners = []

    def _brush(self, kind: str, point, buttons: int) -> None:
        if kind == "mousedown":
            self.stroke = [point]
        elif kind == "mousemove" and self.stroke and buttons:
            self.stroke.append(point)
        elif kind == "mouseup" and self.stroke:
            self._apply(self.tool.value, self.stroke + [point])
            self.stroke = []

    def _apply(self, tool: str, points) -> None:
        # class: the number to give; paint: an id to paint with, 0 = extend the object under the first point
        value = self.value.value if tool == "class" or (tool == "paint" and self.value.value > 0) else None
        self.service.edit(tool, points, radius=self.radius.value, value=value, z=self._z(), whole=self.whole.value)
        self._show()


def _short(source: str) -> str:
    """A model as the panel names it: a round's or project's folder name, a bundled model's name."""
    return Path(source).name if ("/" in source or "\\" in source) else source


__all__ = ["CorrectPanel"]
