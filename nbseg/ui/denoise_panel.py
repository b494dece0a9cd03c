"""00_denoise (optional): the noisy images (a folder, or a bundled sample with noise added to practise on),
training a Noise2Void denoiser (N2V2) for a few minutes with the live loss plot, denoising the images into a
folder that 01_data can take as its images, and the noisy and denoised image side by side with their
difference. Widgets only: :mod:`.denoise_service` trains, denoises and reads."""
from __future__ import annotations

import html

import ipywidgets as w

from ..data import SAMPLES
from .common import FEEDBACK, PanelBase, control
from .compare import CompareView
from .denoise_service import DenoiseService, DenoiseState, default_minutes
from . import plots
from .progress import WidgetBarsCallback

SCORE = "val PSNR vs noisy"  # the denoiser's validation score (nbseg.denoise.train.DenoiseRun.score_name)


class DenoisePanel(PanelBase):
    """The 00_denoise panel.

    Parameters
    ----------
    denoiser : str or Path
        The denoiser's own folder (its settings, model and history).
    output : str or Path, optional
        The folder for the denoised images.
    sample_name : str, optional
        A bundled sample to practise on (noise is added) when neither the denoiser nor ``project`` names images.
    project : str or Path, optional
        A segmentation project whose images to offer when the denoiser has none yet.
    """

    title = "00 Denoise"
    State, Service = DenoiseState, DenoiseService

    def __init__(self, denoiser, *, output=None, sample_name: str | None = None, project=None):
        self._output, self._sample_name, self._project = output, sample_name, project
        super().__init__(denoiser)

    def build(self) -> None:
        s = self.state
        s.minutes, s.output, s.sample = default_minutes(), str(self._output or ""), self._sample_name or ""
        opened = self.service.open(self._project)  # the controls start from what the folders hold
        self.sample = control(w.Dropdown, "sample", "Practise on",
                              options=[("— my own noisy images —", "")]
                              + [(f"{k} with low-light noise added", k) for k in SAMPLES], value=s.sample)
        self.images = control(w.Text, "denoise_images", "Noisy images", value=s.images,
                              placeholder="folder of noisy images (2D or 3D)")
        self.minutes = control(w.BoundedFloatText, "minutes", "Minutes", min=0.01, max=100000, value=s.minutes)
        self.replace = control(w.Checkbox, "denoise_replace", "Replace the trained denoiser", value=False,
                               indent=False)
        self.train_button = self.primary("Train denoiser", "denoise_train", self._train, icon="play",
                                         action="Training the denoiser")
        self.bars, self.log = w.HTML(""), w.HTML("")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.output = control(w.Text, "denoise_output", "Denoised images into", value=s.output,
                              placeholder="folder for the denoised NAME.ome.tif")
        self.denoise_button = self.primary("Denoise images", "denoise_run", self._denoise, icon="magic",
                                           action="Denoising")
        self.summary = w.HTML("")
        self.which = control(w.Dropdown, "denoise_which", "Image", options=[])
        self.view = CompareView()
        self.compare_box = w.VBox([self.which, self.view.widget], layout=w.Layout(display="none"))
        self.sample.observe(lambda _c: self._show_source(), names="value")
        self.which.observe(lambda _c: self._listing or self.run("Compare", self._compare), names="value")
        self._listing = False  # while the image list is refilled: one comparison afterwards, not one per change
        self.assemble("Denoising (optional)", self.sample, self.images, self.minutes, self.replace,
                      self.train_button, FEEDBACK, self.log, self.bars, self.plot, self.output,
                      self.denoise_button, self.summary, self.compare_box,
                      intro="Noise2Void learns to denoise from your noisy images alone; no clean images are "
                            "needed. Training runs in this kernel; its stop button (■) ends it and keeps the best "
                            "denoiser so far.")
        self._show_source()
        self._show_replace()
        if s.history:
            self.plot.value = plots.history_png(s.history, SCORE)
        if opened:
            self.status.set(f"Opened the denoiser in {s.project}: 'Denoise images' uses it." if self.service.has_model()
                            else f"Opened the denoiser's settings in {s.project}.", "ok")

    def _show_source(self) -> None:
        self.images.layout.display = "none" if self.sample.value else ""

    def _show_replace(self) -> None:
        """Shown (and unticked) while the folder holds a trained denoiser: each replacement is asked for."""
        self.replace.value = False
        self.replace.layout.display = "" if self.service.has_model() else "none"

    def _sync(self) -> None:
        s = self.state
        s.sample, s.images, s.minutes, s.output = (self.sample.value, self.images.value, self.minutes.value,
                                                   self.output.value)

    def _train(self) -> None:
        self._sync()
        self.service.check_replace(self.replace.value)  # before anything is written
        self.callback = WidgetBarsCallback(self.bars, self.plot, self.log, score_name=SCORE)
        result = self.service.train(callbacks=[self.callback])
        self._show_replace()
        epochs = len(result.history)
        if result.stopped == "interrupted":
            self.status.set("Stopped. The best denoiser so far is kept; press 'Denoise images' to use it.", "warn")
        else:
            self.status.set(f"Trained the denoiser ({epochs} epoch(s); best {SCORE} {result.best_dice:.1f} dB). "
                            "Next: press 'Denoise images'.", "ok")

    def _denoise(self) -> None:
        self._sync()
        written = self.service.denoise(progress=lambda done, total, name: self.status.set(
            f"Denoising {done}/{total}: {name}", "busy"))
        folder = html.escape(str(self.state.output))
        self.summary.value = (f"<div style='max-width:760px'><b>{len(written)} denoised image(s)</b> written to "
                              f"<code>{folder}</code> (NAME.ome.tif, float32, in the images' own "
                              "intensities). To segment them, give this folder as <b>Images</b> in "
                              "01_data.</div>")
        self._listing = True
        try:
            self.which.options = [(path.name, i) for i, path in enumerate(written)]
            self.which.value = 0
        finally:
            self._listing = False
        self._compare()
        self.compare_box.layout.display = ""
        self.status.set(f"Denoised {len(written)} image(s). Compare them below; next: notebook 01_data with "
                        f"{self.state.output} as its images.", "ok")

    def _compare(self) -> None:
        if self.which.value is None:
            return
        pair = self.service.pair(self.which.value)
        self.view.set_data(pair["noisy"], pair["denoised"], title=pair["name"], pixel_size=pair["pixel_size"])


__all__ = ["DenoisePanel"]
