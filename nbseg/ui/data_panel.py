"""01_data: create/open a project folder, choose images and masks (or a bundled sample), axes and
channels; check the data, show whether it is 2D or 3D, preview it with its labels, save config.yaml."""
from __future__ import annotations

import html

import ipywidgets as w

from ..colab import in_colab
from ..data import SAMPLES
from .common import FEEDBACK, PanelBase, control, note
from .data_service import DataService, DataState
from .viewers import Viewer2D, VolumeView


# ------------------------------------------------------------------ view


class DataPanel(PanelBase):
    """The 01_data panel; ``sample_name`` fills in a bundled sample unless the project has a config.yaml."""

    title = "01 Data"
    State, Service = DataState, DataService

    def __init__(self, project, *, sample_name: str | None = None):
        self._sample_name = sample_name
        super().__init__(project)

    def build(self) -> None:
        # opened here, not as an action: the controls start from what the project holds
        opened = self.service.open_project()
        if not opened and self._sample_name:
            self.service.use_sample(self._sample_name)
        self._controls()
        self.check = self.primary("Check data & save project", "save_project", self._check, icon="check",
                                  action="Check data")
        self.summary = w.HTML("")
        # Colab only: its runtime's disk goes with a disconnect, and each notebook there has its own runtime
        self.drive_button = self.secondary("Keep project on Google Drive", "project", self._keep_on_drive,
                                           icon="cloud-upload")
        self.drive_button.layout.display = "" if in_colab() else "none"
        self.index = control(w.IntSlider, "preview_index", "Preview image", min=0, max=0, continuous_update=False)
        self.viewer = Viewer2D()
        self.volume_box = w.VBox([])
        self.preview_box = w.VBox([self.index, self.viewer.widget, self.volume_box], layout=w.Layout(display="none"))
        self.sample.observe(self._on_sample, names="value")
        self.index.observe(lambda _c: self.run("Preview", self._show_preview), names="value")
        self.assemble("Data", self.project, self.drive_button, self.sample,
                      note("Or give your own folders. Masks are matched to images by file name."),
                      self.images, self.masks, self.seg2, self.excluding, self.unlabelled,
                      w.HBox([self.axes]), self.channels, self.dims, self.labels, self.val_fraction,
                      w.HBox([self.test_fraction, self.test_names]),
                      note("Test images are held back from training and from every choice, so that notebooks "
                           "06-07 can score them honestly."),
                      self.check, FEEDBACK, self.summary, self.preview_box)
        if opened:
            self.status.set(f"Opened the project {self.state.project} (config.yaml found).", "ok")

    def _controls(self) -> None:
        """The project, sample, folder and reading controls, filled from the state."""
        s = self.state
        self.project = control(w.Text, "project", "Project folder", value=str(s.project), disabled=True)
        self.sample = control(w.Dropdown, "sample", "Bundled sample",
                              options=[("— my own data —", "")] + [(f"{k}: {v}", k) for k, v in SAMPLES.items()],
                              value=s.sample)
        self.images = control(w.Text, "raw_image", "Images", value=s.images, placeholder="folder of raw images")
        self.masks = control(w.Text, "mask", "Masks (Seg1)", value=s.masks, placeholder="folder of label images")
        self.seg2 = control(w.Text, "seg2", "Seg2 (optional)", value=s.seg2, placeholder="optional")
        self.excluding = control(w.Text, "excluding_mask", "Excluding masks", value=s.excluding,
                                 placeholder="optional: nonzero = ignored by the loss")
        self.unlabelled = control(w.Text, "unlabelled", "Not labelled value", value=s.unlabelled,
                                  placeholder="optional: the mask value meaning 'nobody labelled this', e.g. 255")
        self.axes = control(w.Text, "axes", "Axes", value=s.axes, placeholder="auto, e.g. ZYX or CYX")
        self.channels = control(w.Text, "channels", "Channels", value=s.channels, placeholder="all, e.g. 0 or 0,2")
        self.dims = control(w.ToggleButtons, "dims", "Dimension", options=[("auto", "auto"), ("2D", "2"), ("3D", "3")],
                            value=s.dims)
        self.labels = control(w.Dropdown, "labels_kind", "Labels", options=["auto", "binary", "multiclass", "instances"],
                              value=s.labels)
        self.val_fraction = control(w.BoundedFloatText, "val_fraction", "Validation share", min=0.05, max=0.5,
                                    step=0.05, value=s.val_fraction)
        self.test_fraction = control(w.BoundedFloatText, "test_fraction", "Test share", min=0.0, max=0.5,
                                     step=0.05, value=s.test_fraction)
        self.test_names = control(w.Text, "test_names", "or test images", value=s.test_names,
                                  placeholder="optional: names, e.g. img3, img7")

    # view -> state
    def _sync(self) -> None:
        s = self.state
        s.images, s.masks, s.seg2, s.excluding = (self.images.value, self.masks.value, self.seg2.value,
                                                  self.excluding.value)
        s.axes, s.channels, s.dims, s.labels = self.axes.value, self.channels.value, self.dims.value, self.labels.value
        s.unlabelled = self.unlabelled.value
        s.val_fraction, s.test_fraction, s.test_names = (self.val_fraction.value, self.test_fraction.value,
                                                         self.test_names.value)

    def _on_sample(self, change) -> None:
        self.service.use_sample(change["new"])
        if change["new"]:
            s = self.state
            self.images.value, self.masks.value, self.seg2.value, self.excluding.value = (
                s.images, s.masks, s.seg2, s.excluding)
            self.axes.value = self.channels.value = self.unlabelled.value = ""
            self.dims.value = "auto"

    def _keep_on_drive(self) -> None:
        folder = self.service.keep_on_drive()
        s = self.state
        self.project.value = str(folder)
        self.images.value, self.masks.value, self.seg2.value, self.excluding.value = (
            s.images, s.masks, s.seg2, s.excluding)
        self.status.set(f"The project is now on Google Drive: {folder}. Later notebooks (and a new Colab "
                        "session) open it from there; keep the images on Drive too.", "ok")

    def _check(self) -> None:
        self._sync()
        info = self.service.load()
        kind = "3D stacks" if info["dims"] == 3 else "2D images"
        notes = "".join(f"<li>{n}</li>" for n in info["notes"] if not n.startswith("labels read as"))
        labels = (f"labels read as <b>{info['kind']}</b> ({info['classes']} classes)" if info["kind"] else
                  "<b>no masks yet</b>")
        self.summary.value = (
            f"<div style='max-width:760px'><b>{info['images']} {kind}</b> detected "
            f"(first: {' x '.join(map(str, info['shape']))} pixels, {info['channels']} channel(s)); {labels}. "
            f"Settings saved to "
            f"<code>{self.state.project / 'config.yaml'}</code>.{self._test_line(info['test'])}<ul>{notes}</ul></div>")
        self.dims.value = str(info["dims"]) if self.dims.value == "auto" else self.dims.value
        self.test_fraction.value = self.state.test_fraction  # 0 where test images are named
        with self.index.hold_trait_notifications():
            self.index.max = info["images"] - 1
        self._show_preview()
        self.preview_box.layout.display = ""
        after = "02_correct to make the masks" if info["kind"] is None else "03_label_qc or 04_lr_finder"
        self.status.set(f"Checked {info['images']} image(s): {kind}. Next: notebook {after}.", "ok")

    @staticmethod
    def _test_line(test: list) -> str:
        if not test:
            return (" <b>No test set</b>: every image is trained on or validates, so their scores are inflated; "
                    "set a Test share for honest scores (or score new images in 06).")
        names = html.escape(", ".join(test[:8]) + (f", ... ({len(test) - 8} more)" if len(test) > 8 else ""))
        return (f" <b>Test set: {len(test)} image(s)</b> held back, never trained on (saved in split.json; "
                f"06_predict scores these): {names}.")

    def _show_preview(self) -> None:
        image, labels, excluded, unlabelled, name = self.service.preview(self.index.value)
        z_scale = self.service.z_scale(self.index.value)
        self.viewer.z_scale = z_scale
        self.viewer.set_data(image, labels, excluded=excluded, unlabelled=unlabelled, title=name,
                             **self.service.annotations(self.index.value))
        if image.ndim == 4:
            self.volume = VolumeView(image[0], labels, z_scale=z_scale)
            self.volume_box.children = [w.HTML("<b>3D view</b> (drag to rotate)"), self.volume.widget]
        else:
            self.volume = None
            self.volume_box.children = []
