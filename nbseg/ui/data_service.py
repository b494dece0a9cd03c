"""Notebook 01's work without widgets: the data's folders and reading settings (state), and reading, checking
and saving them (service). The panel (:mod:`.data_panel`) holds the widgets."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import IGNORE, Config, DataConfig, ModelConfig
from ..data import SAMPLES, load_dataset, sample
from ..data.split import hold_back_test
from ..io.images import image_files, read_image, with_pixel_sizes
from ..project import ProjectLayout
from .annotate import view_scale
from .teaching import apply_quick, quick_mode


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
    # the test set (nbseg.data.split.hold_back_test): a seeded share (a new project holds back a fifth; 0.2 of
    # fewer than 3 images rounds to none) ...
    test_fraction: float = 0.2
    test_names: str = ""  # ... or these names, comma-separated
    test: list = field(default_factory=list)  # the test images chosen, as split.json records them
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
        s.test_fraction, s.test_names = d.test_fraction, ", ".join(d.test_images or [])
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
        test = [n.strip() for n in s.test_names.split(",") if n.strip()]
        if test:  # names typed: they are the test set, and the share is not drawn
            s.test_fraction = 0.0
        return DataConfig(images=opt(s.images), masks=opt(s.masks), seg2=opt(s.seg2), excluding_masks=opt(s.excluding),
                          unlabelled=int(value) if value else None, axes=s.axes.strip() or None, channels=channels,
                          dims=None if s.dims == "auto" else int(s.dims), labels=s.labels,
                          val_fraction=s.val_fraction, test_fraction=s.test_fraction, test_images=test or None)

    def load(self) -> dict:
        """Read and check every pair; record 2D/3D, shapes and label kind; save config.yaml. Without masks,
        read the images only: the masks are made in the correction notebook."""
        s = self.state
        data = self.data_config()
        if data.masks is None:
            return self._load_images(data)
        dataset = load_dataset(data)
        first = dataset.samples[0]
        seed = s.config.train.seed if s.config is not None else 0
        s.test = hold_back_test(s.project, dataset.names, data, seed=seed)  # checked before config.yaml is saved
        self._save(data, dataset.spatial_dims)
        s.dataset, s.files = dataset, []
        s.summary = {"images": len(dataset.samples), "dims": dataset.spatial_dims, "shape": list(first.image.shape[1:]),
                     "channels": dataset.in_channels, "kind": dataset.kind, "classes": dataset.n_classes,
                     "notes": list(dataset.notes), "test": list(s.test)}
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
        first, note = images[0], "no masks yet: make them in notebook 02_correct (a model proposes, you correct)"
        if data.test_fraction or data.test_images:  # test images need masks to be scored: drawn once there are some
            note += "; the test set is drawn when the masks exist (press Check again then)"
        s.test = []
        s.summary = {"images": len(images), "dims": first.spatial_dims, "shape": list(first.spatial_shape),
                     "channels": first.data.shape[0], "kind": None, "classes": None, "notes": [note], "test": []}
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
        return view_scale(*self._sizes(index))["z_scale"]

    def annotations(self, index: int = 0) -> dict:
        """The viewer's ``pixel_size`` (µm per XY pixel, None unless the file gives µm) and ``classes``
        (names of labels 1, 2, ... for multi-class masks, else None) for sample ``index``."""
        ds = self.state.dataset
        classes = [f"class {k}" for k in range(1, ds.n_classes)] if ds and ds.kind == "multiclass" else None
        return {"pixel_size": view_scale(*self._sizes(index))["pixel_size"], "classes": classes}

    def _sizes(self, index: int):
        """``(pixel sizes, unit)`` of sample ``index``, or of image ``index`` when there are no masks yet."""
        ds, files = self.state.dataset, self.state.files
        if ds:
            smp = ds.samples[int(np.clip(index, 0, len(ds.samples) - 1))]
            return smp.pixel_sizes, smp.unit
        if files:
            d = self.state.config.data
            image = with_pixel_sizes(read_image(files[int(np.clip(index, 0, len(files) - 1))], axes=d.axes,
                                                channels=d.channels, dims=d.dims, lazy=True), d.pixel_sizes)
            return image.pixel_sizes, image.unit
        return None, None


__all__ = ["DataService", "DataState"]
