"""Drawing polygons by clicking on a viewer's image: each click adds a corner (in image pixels) to
the corner list, a double click on the last corner closes the polygon. The corner list is the same
text a user can type ("y,x; y,x; ..."), so typing and clicking mix freely. Clicks come through
ipyevents; without it (or where its widget cannot load) the corners are typed."""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w

from . import overlay as ov
from .common import control, note, primary_button, secondary_button
from .viewers import Viewer2D


class PolygonDrawer:
    """Turns clicks on ``viewer``'s image into corners written to ``corners`` (a Text/Textarea).

    Parameters
    ----------
    viewer : Viewer2D
        Shows the image being drawn on; its :meth:`Viewer2D.pixel_at` maps clicks to pixels.
    corners : ipywidgets.Textarea
        The corner list ``"y,x; y,x; ..."``.
    on_close : callable()
        Called on a double click: the panel adds the polygon.
    """

    def __init__(self, viewer: Viewer2D, corners: w.Textarea, on_close: Callable[[], None]):
        self.viewer, self.corners, self.on_close = viewer, corners, on_close
        self.events, self.reason = None, ""
        try:
            from ipyevents import Event

            self.events = Event(source=viewer.image_widget, watched_events=["click", "dblclick"],
                                prevent_default_action=True)
            self.events.on_dom_event(self.handle)
        except Exception as err:  # noqa: BLE001 - typed corners still work
            self.reason = f"{type(err).__name__}: {err}"

    @property
    def clickable(self) -> bool:
        return self.events is not None

    def handle(self, event: dict) -> None:
        """One DOM event from ipyevents: ``type`` and ``dataX``/``dataY`` in the picture's pixels."""
        if event.get("type") == "dblclick":
            self.on_close()
            return
        if event.get("type") != "click" or "dataX" not in event:
            return
        point = self.viewer.pixel_at(event["dataX"], event["dataY"])
        if point is None:
            return
        self.add_corner(*point)

    def add_corner(self, y: int, x: int) -> None:
        parts = [p.strip() for p in self.corners.value.split(";") if p.strip()]
        if parts and parts[-1].replace(" ", "") == f"{y},{x}":  # the second click of a double click
            return
        self.corners.value = "; ".join(parts + [f"{y},{x}"])

    def undo(self) -> None:
        parts = [p for p in self.corners.value.split(";") if p.strip()]
        self.corners.value = "; ".join(p.strip() for p in parts[:-1])


class DrawTab:
    """The 'Draw masks' tab of 03_label_qc: excluding masks (the loss ignores them) and merging masks
    (Seg2 replaces Seg1 inside them), drawn per image (and per slice in 3D). ``panel`` runs the
    actions (errors shown, never raised); ``service`` is the panel's QCService."""

    def __init__(self, panel, service):
        self.panel, self.service = panel, service
        self.image = control(w.Dropdown, "roi", "Image", options=[])
        self.z = control(w.IntSlider, "z", "Z slice", min=0, max=0, continuous_update=False)
        self.kind = control(w.ToggleButtons, "excluding_mask", "Mask kind",
                            options=[("excluding", "excluding"), ("merging (Seg2 wins)", "merging")])
        self.corners = control(w.Textarea, "roi", "Corners (y,x)", placeholder="10,10; 10,60; 50,60; 50,10",
                               layout=w.Layout(width="560px", height="60px"))
        self.add_button = secondary_button("Add polygon", "roi", icon="plus")
        self.undo_button = secondary_button("Undo corner", "roi", icon="undo")
        self.save_button = primary_button("Save drawn masks", "excluding_mask", icon="save")
        self.view = Viewer2D()
        self.view.z.layout.display = "none"  # the tab's own slider picks the slice
        self.drawn_list = w.HTML("")
        self.drawer = PolygonDrawer(self.view, self.corners, lambda: panel.run("Add polygon", self.add))
        panel.on(self.add_button, "Add polygon", self.add)
        panel.on(self.undo_button, "Undo corner", self.drawer.undo)
        panel.on(self.save_button, "Save drawn masks", self.save)
        for ctl in (self.image, self.z, self.corners):
            ctl.observe(lambda _c: panel.run("Show image", self.show), names="value")
        how = ("Click the corners of a region on the image, double-click the last one to close it (or press "
               "'Add polygon'); corners can also be typed as y,x pixel pairs." if self.drawer.clickable else
               "Type a polygon's corners as y,x pixel pairs (ipyevents is not installed, so clicks are not read).")
        self.widget = w.VBox([
            note(how + " Excluding: the loss ignores the region. Merging: Seg2 replaces Seg1 inside it (needs Seg2 "
                       "in 01). In 3D a polygon belongs to the slice shown."),
            self.image, self.z, self.kind, self.corners,
            w.HBox([self.add_button, self.undo_button, self.save_button]), self.drawn_list, self.view.widget])

    def open(self, names) -> None:
        self.image.options = names
        if names:
            self.image.value = names[0]

    def show(self) -> None:
        name = self.image.value
        if not name:
            return
        image, mask = self.service.image_and_mask(name)
        is3d = image.ndim == 4
        if is3d and self.z.max != image.shape[1] - 1:  # a new stack: start in its middle
            with self.z.hold_trait_notifications():
                self.z.max = image.shape[1] - 1
                self.z.value = image.shape[1] // 2
        self.z.layout.display = "" if is3d else "none"
        drawn = self.service.drawn(name, image.shape[1:], pending=self.pending(), z=self.z.value if is3d else None)
        self.view.set_data(image, mask, excluded=drawn, title=f"{html.escape(name)}: drawn regions hatched red",
                           **self.service.scale(name))
        if is3d:
            self.view.z.value = self.z.value
            self.view.z.layout.display = "none"  # one slice slider: the tab's

    def pending(self):
        """The corners typed or clicked so far, when they make a polygon (else None)."""
        try:
            return ov.parse_vertices(self.corners.value)
        except ValueError:
            return None

    def add(self) -> None:
        z = self.z.value if self.z.layout.display != "none" else None
        self.service.add_polygon(self.image.value, self.corners.value, self.kind.value, z)
        self.corners.value = ""
        self.drawn_list.value = "<br>".join(
            f"{p['kind']} polygon on {html.escape(p['name'])}" + (f" (z={p['z']})" if p["z"] is not None else "")
            + f": {len(p['vertices'])} corners" for p in self.service.state.polygons)
        self.show()

    def save(self) -> None:
        saved = self.service.save_drawn()
        if not saved:
            self.panel.status.set("No polygons drawn: nothing to save. (Masks are optional.)", "info")
            return
        parts = [f"{kind} masks for {len(names)} image(s)" for kind, names in saved.items()]
        self.panel.status.set("Saved " + " and ".join(parts) + " in labels/ and entered them in config.yaml.", "ok")
