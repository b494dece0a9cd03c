"""01_data: create/open a project folder, choose images and masks (or a bundled sample), axes and
channels; check the data, show whether it is 2D or 3D, preview it with its labels, save config.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import numpy as np

from . import overlay as ov
from ..config import Config, DataConfig, ModelConfig
from ..data import SAMPLES, load_dataset, sample
from ..colab import in_colab
from ..io.images import image_files, read_image
from ..config import IGNORE
from ..project import ProjectLayout
from .teaching import apply_quick, quick_mode
from .common import FEEDBACK, PanelBase, control, note
from .viewers import Viewer2D, VolumeView


# ------------------------------------------------------------------ state


@dataclass
class DataState:
    project: Path
    sample: str = ""  # "" = own data
    images: str = ""
    masks: str = ""
    seg2: str = ""
    excluding: str = ""
    unlabelled: str = ""  # the masks' "not labelled" value; "" = every pixel is labelled
    axes: str = ""
    channels: str = ""
    dims: str = "auto"
    labels: str = "auto"
    val_fraction: float = 0.2
    config: Config | None = None
    dataset: object = None
    files: list = field(default_factory=list)  # the images, when there are no masks yet
    summary: dict = field(default_factory=dict)


# ------------------------------------------------------------------ service (no widgets)


class DataService:
    def __init__(self, state: DataState):
        self.state = state

    def open_project(self) -> bool:
        """Fill the state from ``project/config.yaml`` when it exists; True if it did."""
        path = ProjectLayout(self.state.project).config
        if not path.exists():
            return False
        cfg = Config.load(self.state.project)
        d, s = cfg.data, self.state
        s.config = cfg
        s.images, s.masks = str(d.images), str(d.masks or "")
        s.seg2, s.excluding = str(d.seg2 or ""), str(d.excluding_masks or "")
        s.unlabelled = "" if d.unlabelled is None else str(d.unlabelled)
        s.axes, s.channels = d.axes or "", ",".join(str(c) for c in d.channels or [])
        s.dims, s.labels, s.val_fraction = str(d.dims or "auto"), d.labels, d.val_fraction
        s.sample = next((n for n in SAMPLES if str(sample(n)["images"]) == s.images), "")
        return True

    def use_sample(self, name: str) -> None:
        if not name:
            self.state.sample = ""
            return
        folders = sample(name)
        s = self.state
        s.sample, s.images, s.masks, s.seg2, s.excluding, s.axes, s.channels, s.unlabelled = (
            name, str(folders["images"]), str(folders["masks"]), "", "", "", "", "")
        s.dims = "auto"

    def data_config(self) -> DataConfig:
        s = self.state
        if not s.images.strip():
            raise ValueError("No image folder given: type the folder of raw images, or pick a bundled sample.")
        channels = [int(c) for c in s.channels.replace(" ", "").split(",") if c] if s.channels.strip() else None
        opt = lambda text: Path(text.strip()).expanduser() if text.strip() else None  # noqa: E731
        value = s.unlabelled.strip()
        if value and not value.isdigit():
            raise ValueError(f"'Not labelled value' is {value!r}: give the whole number your masks hold where nobody "
                             "labelled (e.g. 255 or 65535), or leave it empty when every pixel is labelled.")
        return DataConfig(images=opt(s.images), masks=opt(s.masks), seg2=opt(s.seg2), excluding_masks=opt(s.excluding),
                          unlabelled=int(value) if value else None, axes=s.axes.strip() or None, channels=channels,
                          dims=None if s.dims == "auto" else int(s.dims), labels=s.labels,
                          val_fraction=s.val_fraction)

    def load(self) -> dict:
        """Read and check every pair; record 2D/3D, shapes and label kind; save config.yaml. Without masks,
        read the images only: the masks are made in the correction notebook."""
        s = self.state
        data = self.data_config()
        if data.masks is None:
            return self._load_images(data)
        dataset = load_dataset(data)
        first = dataset.samples[0]
        self._save(data, dataset.spatial_dims)
        s.dataset, s.files = dataset, []
        s.summary = {"images": len(dataset.samples), "dims": dataset.spatial_dims, "shape": list(first.image.shape[1:]),
                     "channels": dataset.in_channels, "kind": dataset.kind, "classes": dataset.n_classes,
                     "notes": list(dataset.notes)}
        return s.summary

    def _load_images(self, data) -> dict:
        s = self.state
        s.files = image_files(data.images)
        images = [read_image(p, axes=data.axes, channels=data.channels, dims=data.dims, lazy=True) for p in s.files]
        dims = {image.spatial_dims for image in images}
        if len(dims) > 1:
            raise ValueError(f"The folder {data.images} mixes 2D images and 3D stacks; keep one kind per project.")
        self._save(data, dims.pop())
        s.dataset = None
        s.summary = {"images": len(images), "dims": images[0].spatial_dims, "shape": list(images[0].spatial_shape),
                     "channels": images[0].data.shape[0], "kind": None, "classes": None,
                     "notes": ["no masks yet: make them in notebook 02_correct (the model or a classic workflow "
                               "proposes, you correct)"]}
        return s.summary

    def _save(self, data, dims: int) -> None:
        """config.yaml with ``data``; model and training settings kept from an earlier one where they fit."""
        s, old = self.state, self.state.config
        if old is not None:
            fits = old.model.patch is None or len(old.model.patch) == dims
            model = old.model if fits else ModelConfig(size=old.model.size)  # 2D <-> 3D: the old patch can't fit
            base = Config(data=data, model=model.model_copy(), train=old.train.model_copy())
        else:
            base = Config(data=data)
        s.config = apply_quick(base, dims) if quick_mode() else base
        Path(s.project).mkdir(parents=True, exist_ok=True)
        s.config.save(s.project)

    def keep_on_drive(self) -> Path:
        """Move the project to Google Drive (Colab only) and open it there; returns its new folder."""
        from ..colab import keep_on_drive

        self.state.project = keep_on_drive(self.state.project)
        self.open_project()  # a project kept there earlier brings its settings
        return self.state.project

    def preview(self, index: int = 0):
        """``(image, labels, excluded, unlabelled, name)`` of sample ``index``: labels as read (the "not labelled"
        value set to 0), excluded and unlabelled pixels as bool arrays (None where there are none)."""
        from ..data.pairs import find_pairs
        from ..data.targets import split_unlabelled
        from ..io.images import read_mask

        ds = self.state.dataset
        if ds is None and self.state.files:  # images without masks yet
            path = self.state.files[int(np.clip(index, 0, len(self.state.files) - 1))]
            d = self.state.config.data
            return read_image(path, axes=d.axes, channels=d.channels, dims=d.dims).data, None, None, None, path.stem
        if ds is None:
            raise ValueError("Nothing loaded yet: press 'Check data & save project' first.")
        smp = ds.samples[int(np.clip(index, 0, len(ds.samples) - 1))]
        data = self.state.config.data
        labels = unlabelled = None
        if data.masks is not None:
            pairs = {p.name: p for p in find_pairs(data.images, data.masks)}
            labels, unlabelled = split_unlabelled(read_mask(pairs[smp.name].mask, dims=ds.spatial_dims),
                                                  data.unlabelled)
        excluded = (smp.target == IGNORE) & (True if unlabelled is None else ~unlabelled)
        return smp.image, labels, (excluded if excluded.any() else None), unlabelled, smp.name

    def z_scale(self, index: int = 0) -> float:
        """Z spacing over X spacing of sample ``index`` (1 when its pixel sizes are unknown)."""
        ds = self.state.dataset
        return ov.z_scale_of(ds.samples[int(np.clip(index, 0, len(ds.samples) - 1))].pixel_sizes) if ds else 1.0

    def annotations(self, index: int = 0) -> dict:
        """The viewer's ``pixel_size`` (µm per XY pixel, None unless the file gives µm) and ``classes``
        (names of labels 1, 2, ... for multi-class masks, else None) for sample ``index``."""
        ds = self.state.dataset
        if not ds:
            return {"pixel_size": None, "classes": None}
        smp = ds.samples[int(np.clip(index, 0, len(ds.samples) - 1))]
        sizes = tuple(smp.pixel_sizes or ())
        size = sizes[-1] if smp.unit == "µm" and sizes and sizes[-1] else None
        classes = [f"class {k}" for k in range(1, ds.n_classes)] if ds.kind == "multiclass" else None
        return {"pixel_size": size, "classes": classes}


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

    # view -> state
    def _sync(self) -> None:
        s = self.state
        s.images, s.masks, s.seg2, s.excluding = (self.images.value, self.masks.value, self.seg2.value,
                                                  self.excluding.value)
        s.axes, s.channels, s.dims, s.labels = self.axes.value, self.channels.value, self.dims.value, self.labels.value
        s.unlabelled = self.unlabelled.value
        s.val_fraction = self.val_fraction.value

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
            f"<code>{self.state.project / 'config.yaml'}</code>.<ul>{notes}</ul></div>")
        self.dims.value = str(info["dims"]) if self.dims.value == "auto" else self.dims.value
        with self.index.hold_trait_notifications():
            self.index.max = info["images"] - 1
        self._show_preview()
        self.preview_box.layout.display = ""
        after = "02_correct to make the masks" if info["kind"] is None else "03_label_qc or 04_lr_finder"
        self.status.set(f"Checked {info['images']} image(s): {kind}. Next: notebook {after}.", "ok")

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
