"""Viewers: a 2D viewer with label overlay, z-slider and orthogonal views for 3D, and a 3D volume
view with ipyvolume that falls back to orthogonal slices when ipyvolume is missing or fails."""
from __future__ import annotations

import os

import ipywidgets as w
import numpy as np

from . import annotate
from . import overlay as ov
from .common import control


class Viewer2D:
    """Shows a ``(C, [Z,] Y, X)`` image with optional labels, an excluded region, and maps beside it.

    Parameters
    ----------
    image : array, optional
    labels : ([Z,] Y, X) int array, optional
    excluded : ([Z,] Y, X) bool array, optional
    unlabelled : ([Z,] Y, X) bool array, optional
        Pixels nobody labelled (the masks' "not labelled" value), tinted apart from labels and excluded pixels.
    maps : list of (title, ([Z,] Y, X) float array in 0..1, colour map name), optional
        Shown to the right of the image, e.g. probability and uncertainty, each with a colour bar below.
    pixel_size : float, optional
        µm per XY pixel: a scale bar is drawn on the image. None (unknown, or only relative sizes): none.
    classes : sequence of str, optional
        Names of labels 1, 2, ...: a legend of their colours is drawn below (class labels, not objects).
    z_scale : float
        Z spacing over XY spacing, to stretch orthogonal views of anisotropic stacks (:meth:`set_data`
        changes it when given one; see :func:`nbseg.ui.annotate.view_scale`).
    """

    def __init__(self, image=None, labels=None, *, excluded=None, unlabelled=None, maps=(), z_scale: float = 1.0,
                 title: str = "", pixel_size: float | None = None, classes=None):
        self.z = control(w.IntSlider, "z", "Z slice", min=0, max=0, continuous_update=False)
        self.alpha = control(w.FloatSlider, "alpha", "Label opacity", min=0, max=1, step=0.05, value=0.4,
                             continuous_update=False)
        self.ortho = control(w.Checkbox, "dims", "Orthogonal views (3D)", value=False, indent=False)
        self.title = w.HTML("")
        self.image_widget = w.Image(format="png", layout=w.Layout(max_width="900px"))
        for ctl in (self.z, self.alpha, self.ortho):
            ctl.observe(lambda _c: self.render(), names="value")
        self.widget = w.VBox([self.title, w.HBox([self.z, self.ortho]), self.alpha, self.image_widget])
        self.z.layout.width = "360px"
        self.alpha.layout.width = "360px"
        self.ortho.layout.width = "220px"
        self.z_scale = z_scale
        self.rgb = None
        self.set_data(image, labels, excluded=excluded, unlabelled=unlabelled, maps=maps, title=title,
                      pixel_size=pixel_size, classes=classes)

    @property
    def is3d(self) -> bool:
        return self.image is not None and self.image.ndim == 4

    def set_data(self, image, labels=None, *, excluded=None, unlabelled=None, maps=(), title: str = "",
                 pixel_size: float | None = None, classes=None, z_scale: float | None = None) -> None:
        self.pixel_size, self.classes = pixel_size, (list(classes) if classes else None)
        self.z_scale = self.z_scale if z_scale is None else z_scale
        self.image = None if image is None else np.asarray(image)
        if self.image is not None and self.image.ndim == 2:
            self.image = self.image[None]
        self.labels, self.excluded, self.unlabelled, self.maps = labels, excluded, unlabelled, list(maps)
        self.title.value = f"<b>{title}</b>" if title else ""
        if self.is3d:
            depth = self.image.shape[1]
            with self.z.hold_trait_notifications():
                self.z.max = depth - 1
                self.z.value = min(self.z.value, depth - 1) if self.z.value else depth // 2
        self.z.layout.display = "" if self.is3d else "none"
        self.ortho.layout.display = "" if self.is3d else "none"
        self.alpha.layout.display = "" if labels is not None else "none"
        self.render()

    def _composite(self, image2d, labels2d, excluded2d, unlabelled2d, maps2d) -> np.ndarray:
        parts = [ov.overlay(image2d, labels2d, alpha=self.alpha.value, excluded=excluded2d, unlabelled=unlabelled2d)]
        for _name, values, cmap in maps2d:
            parts.append(ov.colormap(values, cmap))
        return ov.side_by_side(*parts) if len(parts) > 1 else parts[0]

    def _base(self, z):
        """The shown plane as grey RGB, kept while the image and slice stay: an edit redraws only the labels."""
        if getattr(self, "_base_of", None) is not self.image or self._base_z != z:  # the array kept, not its id
            plane = ov.plane(self.image, z)
            self._base_rgb = plane if plane.ndim == 3 else ov.gray_rgb(plane)
            self._base_of, self._base_z = self.image, z
        return self._base_rgb

    def render(self) -> None:
        if self.image is None:
            self.rgb = None
            return
        z = self.z.value if self.is3d else None
        pick = lambda a: None if a is None else ov.plane(a, z)  # noqa: E731
        planes = [(self._base(z), pick(self.labels), pick(self.excluded), pick(self.unlabelled),
                   [(n, pick(m), c) for n, m, c in self.maps])]
        if self.is3d and self.ortho.value:
            cy, cx = self.image.shape[2] // 2, self.image.shape[3] // 2
            for key in ("zx", "zy"):
                cut = lambda a: None if a is None else ov.stretch_z(ov.orthogonal(np.asarray(a), z, cy, cx)[key],  # noqa: E731
                                                                    self.z_scale)
                planes.append((cut(self.image[0]), cut(self.labels), cut(self.excluded), cut(self.unlabelled),
                               [(n, cut(m), c) for n, m, c in self.maps]))
        rgbs = [self._composite(*p) for p in planes]
        self._xy_shape = planes[0][0].shape[:2]  # the XY plane (grey RGB) is the top-left part of what is shown
        rgb = rgbs[0]
        if len(rgbs) > 1:  # XY on top, XZ and YZ below
            rgb = _stack(rgb, ov.side_by_side(rgbs[1], np.transpose(rgbs[2], (1, 0, 2))))
        self.rgb = self._annotate(ov.upscale(rgb, 320), rgb.shape[0])
        value, picture_format = ov.picture_bytes(self.rgb)
        self.image_widget.format, self.image_widget.value = picture_format, value
        self.image_widget.layout.width = f"{min(900, self.rgb.shape[1])}px"

    def _annotate(self, shown, unscaled_height: int) -> np.ndarray:
        """The scale bar on the XY image, then colour bars and the legend below (the XY image stays top-left,
        so :meth:`pixel_at` is unchanged)."""
        self._factor = shown.shape[0] // unscaled_height
        if self.pixel_size:
            region = tuple(n * self._factor for n in self._xy_shape)
            shown = annotate.add_scale_bar(shown, self.pixel_size / self._factor, region=region)
        width = self._xy_shape[1] * self._factor
        strips = [annotate.colour_bar(name, cmap, width) for name, _m, cmap in self.maps]
        if self.classes and self.labels is not None:
            strips.append(annotate.legend(self.classes, shown.shape[1]))
        return annotate.below(shown, *strips) if strips else shown

    def pixel_at(self, shown_x: float, shown_y: float) -> tuple[int, int] | None:
        """``(y, x)`` in image pixels of a point of the shown picture (its own pixels), or None
        when the point is outside the image's XY plane (on a map or an orthogonal view)."""
        if self.rgb is None:
            return None
        y, x = int(shown_y // self._factor), int(shown_x // self._factor)
        height, width = self._xy_shape
        return (y, x) if 0 <= y < height and 0 <= x < width else None


def _stack(top, bottom, gap=4, fill=40):
    width = max(top.shape[1], bottom.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=fill)  # noqa: E731
    return np.concatenate([pad(top), np.full((gap, width, 3), fill, np.uint8), pad(bottom)], axis=0)


class VolumeView:
    """3D rendering of a ``(Z, Y, X)`` volume with ipyvolume; orthogonal slices if that is not possible.

    ``NBSEG_NO_IPYVOLUME=1`` forces the fallback. ``mode`` tells which one is shown.
    """

    def __init__(self, volume, labels=None, *, z_scale: float = 1.0):
        volume = np.asarray(volume, np.float32)
        if volume.ndim == 4:
            volume = volume[0]
        self.mode, self.reason = "ipyvolume", ""
        try:
            if os.environ.get("NBSEG_NO_IPYVOLUME", "") not in ("", "0"):
                raise ImportError("ipyvolume switched off by NBSEG_NO_IPYVOLUME")
            self.widget = self._ipyvolume(volume, labels, z_scale)
        except Exception as err:  # noqa: BLE001 - any failure degrades to slices
            self.mode, self.reason = "slices", f"{type(err).__name__}: {err}"
            image = volume[None]
            self.fallback = Viewer2D(image, labels, z_scale=z_scale, title="Orthogonal slices (3D view unavailable)")
            self.fallback.ortho.value = True
            self.widget = w.VBox([w.HTML(f"<i>3D rendering not available ({self.reason}); showing XY, XZ and YZ "
                                         "slices instead.</i>"), self.fallback.widget])

    @staticmethod
    def _ipyvolume(volume, labels, z_scale):
        import ipyvolume as ipv

        import warnings

        scaled = ov.to_uint8(volume).astype(np.float32) / 255.0
        depth, height, width = volume.shape
        extent = [[0, width], [0, height], [0, depth * z_scale]]  # x, y, z in X pixels: true proportions
        fig = ipv.figure(width=420, height=420)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # ipyvolume's gradient of flat regions
            ipv.volshow(scaled, level=[0.25, 0.55, 0.85], opacity=[0.02, 0.08, 0.2], controls=False, extent=extent)
        side = max(width, height, depth * z_scale)  # one cube around it, so Z is not stretched to fit
        ipv.xlim(0, side)
        ipv.ylim(0, side)
        ipv.zlim(0, side)
        ipv.style.box_off()
        return fig
