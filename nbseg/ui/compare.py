"""A before/after viewer: a noisy image and its denoised copy side by side, with one Z slider (and one
channel slider) for both, and their difference (denoised − noisy) beside them, each with a scale bar.
The pictures come from :mod:`.overlay` and :mod:`.annotate`; nothing is computed or written here but
what is shown."""
from __future__ import annotations

import ipywidgets as w
import numpy as np

from ..config import DEFAULT_PERCENTILES
from . import annotate
from . import overlay as ov
from .common import control

DIFFERENCE_PERCENTILE = 99.5  # of |denoised − noisy|: the colour range, so a few outliers do not grey it all out


class CompareView:
    """Shows ``noisy`` | ``denoised`` | ``denoised − noisy`` for one ``(C, [Z,] Y, X)`` image pair.

    The noisy and the denoised plane are drawn on one grey scale (the noisy plane's display percentiles), so
    what looks smoother is smoother; the difference is drawn blue (lowered) - grey (unchanged) - red (raised),
    with a colour bar in the image's own units below it.

    Attributes
    ----------
    z, channel : ipywidgets.IntSlider
        The one slice and channel slider of the three pictures (hidden for 2D images and one channel).
    picture : ipywidgets.Image
    planes : dict
        What is shown now: ``{"noisy", "denoised", "difference"}`` -> (Y, X) float arrays.
    """

    names = ("noisy", "denoised", "difference")

    def __init__(self):
        self.z = control(w.IntSlider, "z", "Z slice", min=0, max=0, continuous_update=False)
        self.channel = control(w.IntSlider, "channels", "Channel", min=0, max=0, continuous_update=False)
        self.title = w.HTML("")
        self.picture = w.Image(format="png", layout=w.Layout(max_width="1000px"))
        for slider in (self.z, self.channel):
            slider.layout.width = "360px"
            slider.observe(lambda _c: self.render(), names="value")
        self.widget = w.VBox([self.title, w.HBox([self.z, self.channel]), self.picture])
        self.noisy = self.denoised = None
        self.pixel_size, self.planes, self.rgb = None, {}, None
        self.set_data(None, None)

    def set_data(self, noisy, denoised, *, title: str = "", pixel_size: float | None = None) -> None:
        """Show a new pair: ``noisy`` and ``denoised`` ``(C, [Z,] Y, X)`` arrays of one shape (or both None).

        Parameters
        ----------
        pixel_size : float, optional
            µm per X pixel, for the scale bars (:func:`nbseg.ui.annotate.view_scale`); None draws none.
        """
        if noisy is not None and np.shape(noisy) != np.shape(denoised):
            raise ValueError(f"the noisy image has shape {np.shape(noisy)} but the denoised one "
                             f"{np.shape(denoised)}: compare an image with its own denoised copy.")
        self.noisy = None if noisy is None else np.asarray(noisy, np.float32)
        self.denoised = None if denoised is None else np.asarray(denoised, np.float32)
        self.pixel_size = pixel_size
        self.title.value = f"<b>{title}</b>" if title else ""
        shape = () if self.noisy is None else self.noisy.shape
        with self.z.hold_trait_notifications(), self.channel.hold_trait_notifications():
            self.z.max = shape[1] - 1 if len(shape) == 4 else 0
            self.z.value = min(self.z.value, self.z.max) if self.z.value else (self.z.max + 1) // 2
            self.channel.max = shape[0] - 1 if shape else 0
            self.channel.value = min(self.channel.value, self.channel.max)
        self.z.layout.display = "" if len(shape) == 4 else "none"
        self.channel.layout.display = "" if shape and shape[0] > 1 else "none"
        self.render()

    def render(self) -> None:
        if self.noisy is None:
            self.planes, self.rgb = {}, None
            self.picture.layout.display = "none"
            return
        z = self.z.value if self.noisy.ndim == 4 else None
        noisy = ov.plane(self.noisy, z, self.channel.value)
        denoised = ov.plane(self.denoised, z, self.channel.value)
        self.planes = {"noisy": noisy, "denoised": denoised, "difference": denoised - noisy}
        low, high = np.percentile(noisy, DEFAULT_PERCENTILES)  # one grey scale for both
        reach = _round(float(np.percentile(np.abs(self.planes["difference"]), DIFFERENCE_PERCENTILE)) or 1.0)
        tiles = [ov.gray_rgb(noisy, low=low, high=high), ov.gray_rgb(denoised, low=low, high=high),
                 ov.colormap(self.planes["difference"], "diverging", vmin=-reach, vmax=reach)]
        self.rgb = ov.side_by_side(*[self._tile(t, n) for t, n in zip(tiles, ("noisy", "denoised",
                                                                              "denoised - noisy"))])
        bar = annotate.colour_bar("denoised - noisy", "diverging", tiles[0].shape[1] * self._factor,
                                  vmin=-reach, vmax=reach)
        # the colour bar under the difference (the third of three tiles, 4-pixel gaps)
        bar = np.pad(bar, ((0, 0), (self.rgb.shape[1] - bar.shape[1], 0), (0, 0)), constant_values=40)
        self.rgb = annotate.below(self.rgb, bar)
        value, picture_format = ov.picture_bytes(self.rgb)
        self.picture.format, self.picture.value = picture_format, value
        self.picture.layout.display = ""
        self.picture.layout.width = f"{min(1000, self.rgb.shape[1])}px"

    def _tile(self, rgb, name: str) -> np.ndarray:
        """One picture enlarged for the screen, its scale bar drawn, its name above it."""
        shown = ov.upscale(rgb, 256)
        self._factor = shown.shape[0] // rgb.shape[0]
        if self.pixel_size:
            shown = annotate.add_scale_bar(shown, self.pixel_size / self._factor)
        return annotate.below(annotate.caption(name, shown.shape[1]), shown)


def _round(value: float) -> float:
    """Two significant digits, for the colour bar's ends."""
    return float(f"{value:.2g}")


__all__ = ["CompareView", "DIFFERENCE_PERCENTILE"]
