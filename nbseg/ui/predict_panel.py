"""06_predict: choose the models (one fold or the ensemble), TTA and tile size; predict new images;
show probability and uncertainty maps; rank the images by uncertainty."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import numpy as np

from ..config import Config
from ..data.split import read_split
from ..io.images import files_by_stem, image_files, read_image, read_mask, with_pixel_sizes
from ..project import ProjectLayout
from .teaching import QUICK_PREDICT_IMAGES, QUICK_TTA, quick_mode
from . import annotate, plots
from .common import FEEDBACK, PanelBase, control, table_html, warning_html
from .session import load_config
from .viewers import Viewer2D


@dataclass
class PredictState:
    project: Path
    config: Config | None = None
    models: list = field(default_factory=list)  # chosen model files
    available: list = field(default_factory=list)
    tta: str = "flips"
    tile: str = ""
    inputs: str = ""
    which: str = "folder"  # "test": the project's test images (held back, never trained on); "folder": ``inputs``
    test_files: list = field(default_factory=list)
    table: object = None  # pandas DataFrame, most uncertain first


class PredictService:
    def __init__(self, state: PredictState):
        self.state = state
        self._info = (None, None)  # (the models, what they say)

    @property
    def output(self) -> Path:
        return ProjectLayout(self.state.project).predictions

    def open(self) -> None:
        s = self.state
        s.config = load_config(s.project)
        try:
            s.available = ProjectLayout(s.project).model_files()
        except FileNotFoundError:
            from .session import MissingStep

            raise MissingStep("No trained model yet: run notebook 05_train first and press 'Train'.") from None
        s.models = list(s.available)
        s.inputs = s.inputs or str(s.config.data.images)
        # honest scores by default: the test images held back in 01_data, when there are some
        images = files_by_stem(s.config.data.images) if Path(s.config.data.images).is_dir() else {}
        s.test_files = [images[n] for n in read_split(s.project).get("test", ()) if n in images]
        s.which = "test" if s.test_files else "folder"
        table = self.output / "uncertainty.csv"
        if table.exists():
            import pandas as pd

            s.table = pd.read_csv(table)

    def input_files(self) -> list[Path]:
        s = self.state
        files = s.test_files if s.which == "test" else image_files(Path(s.inputs.strip()).expanduser())
        return files[:QUICK_PREDICT_IMAGES] if quick_mode() else files

    def seen_note(self, *, scoring: bool = False) -> str | None:
        """The warning when the chosen models trained on, or validated with, images to be predicted (after
        predicting: the predicted ones); None when all are test or new images."""
        from ..io.images import file_stem
        from ..predict.ensemble import load_ensemble
        from ..predict.seen import inflated_note, roles_of, seen_images

        s = self.state
        if scoring and s.table is not None and "role" in s.table:
            return inflated_note(dict(zip(s.table["image"], s.table["role"])), scoring=True)
        if not s.models:
            return None
        seen = seen_images(load_ensemble([Path(m) for m in s.models]))
        return inflated_note(roles_of([file_stem(p) for p in self.input_files()], seen), scoring=False)

    def parse_tile(self):
        text = self.state.tile.strip()
        if not text:
            return None
        from .train_panel import parse_patch

        return parse_patch(text)

    def predict(self, progress=None, report=None):
        """Predict the chosen images (denoised first, as ``nbseg predict`` does, when the project carries the
        denoiser it was trained with: ``report`` gets the line that says so)."""
        from ..denoise.segment import denoised_inputs
        from ..predict.files import predict_files
        from ..predict.options import PredictOptions

        s = self.state
        if not s.models:
            raise ValueError("No model chosen: pick at least one model (all of them form an ensemble).")
        options = PredictOptions(tta=s.tta, tile=self.parse_tile(), pixel_sizes=self.project_pixel_sizes())
        inputs, options = denoised_inputs(s.project, self.input_files(), self.output, options, overwrite=True,
                                          progress=progress, report=report)
        s.table = predict_files([Path(m) for m in s.models], inputs, self.output, options, overwrite=True,
                                progress=progress)
        return s.table

    def project_pixel_sizes(self) -> tuple | None:
        """The pixel sizes notebook 01 gave the project's images (files that did not say), for its own images
        only: another folder's files say their own."""
        s = self.state
        sizes = s.config.data.pixel_sizes if s.config is not None else None
        if not sizes:
            return None
        folder = Path(s.inputs.strip()).expanduser().resolve()
        own = s.which == "test" or folder == Path(s.config.data.images).resolve()
        return tuple(sizes) if own else None

    def maps(self, stem: str):
        """``(image, probability, uncertainty, ground truth or None, scale)`` of one predicted image: the input
        as an :class:`~nbseg.io.images.Image`, the maps ``([Z,] Y, X)`` in 0..1, and the viewer's ``pixel_size``
        and ``z_scale`` (:func:`~nbseg.ui.annotate.result_scale` of the probability file's pixel sizes)."""
        from ..predict.outputs import read_probability, result_paths

        paths = result_paths(self.output, stem, instances=False)
        prob, sizes, unit = read_probability(paths["prob"], return_pixel_sizes=True)
        unc = read_probability(paths["uncertainty"])
        row = self.state.table.set_index("image").loc[stem]
        d = self.state.config.data
        image = with_pixel_sizes(read_image(row["input"], axes=d.axes, channels=d.channels, dims=prob.ndim),
                                 d.pixel_sizes)  # the project's, where it gives them
        gt = None
        if d.masks is not None:
            masks = files_by_stem(d.masks)
            if stem in masks:
                gt = read_mask(masks[stem], dims=prob.ndim)
        return image, prob, unc, gt, annotate.result_scale(sizes, image, unit)

    def view(self, stem: str) -> dict:
        """What the viewer shows of one predicted image, as :meth:`Viewer2D.set_data`'s keywords: the image,
        the mask at 0.5 (a multi-class model's classes, with their names), the probability and uncertainty
        maps, and the scale (µm per XY pixel where the files say, Z over X)."""
        from ..predict.outputs import result_paths

        image, prob, unc, _gt, scale = self.maps(stem)
        info = self.models_info()
        if info.kind == "multiclass":  # its probability file holds every class, background first
            labels = read_mask(result_paths(self.output, stem, instances=False)["mask"], dims=prob.ndim)
            name, classes = "probability (any class)", list(info.class_names[1:])  # 1 - background
        else:
            labels, name, classes = (prob > 0.5).astype(np.uint8), "probability", None
        return {"image": image.data, "labels": labels, "classes": classes, **scale,
                "maps": [(name, prob, "viridis"), ("uncertainty", unc, "magma")]}

    def models_info(self):
        """What the chosen models say about themselves (kind, class names), read once per choice."""
        from ..predict.ensemble import ensemble_info, load_ensemble

        key = tuple(self.state.models or self.state.available)
        if self._info[0] != key:
            self._info = (key, ensemble_info(load_ensemble([Path(m) for m in key])))
        return self._info[1]


class PredictPanel(PanelBase):
    title = "06 Predict"
    State, Service = PredictState, PredictService

    def build(self) -> None:
        self.models = control(w.SelectMultiple, "folds", "Models", options=[], rows=3)
        self.tta = control(w.ToggleButtons, "tta", "TTA", options=[("none", "none"), ("flips", "flips"),
                                                                    ("all (8-16x)", "all")], value="flips")
        self.tile = control(w.Text, "tile", "Tile size", placeholder="auto (the training patch)")
        self.which = control(w.ToggleButtons, "predict_which", "Images", options=[("a folder", "folder")])
        self.inputs = control(w.Text, "inference", "Images to predict", placeholder="folder of images")
        self.seen = w.HTML("")  # the warning when the images were trained on: scores of them are inflated
        self.predict_button = self.primary("Predict", "predict", self._predict, icon="magic", action="Prediction")
        self.progress = w.IntProgress(min=0, max=1, description="images", layout=w.Layout(width="560px"))
        self.ranking = w.HTML("")
        self.ranking_plot = w.Image(format="png", layout=w.Layout(max_width="620px"))
        self.pick = control(w.Dropdown, "uncertainty", "Show image", options=[])
        self.viewer = Viewer2D()
        self.pick.observe(lambda _c: self.run("Show maps", self._show), names="value")
        self.which.observe(lambda _c: self.run("Images", self._on_which), names="value")
        self.assemble("Prediction", self.models, self.tta, self.tile, self.which, self.inputs, self.seen,
                      self.predict_button, self.progress, FEEDBACK, self.ranking, self.ranking_plot, self.pick, self.viewer.widget,
                      intro="Pick one model or several (an ensemble averages them). Left to right below: the image "
                            "with the model's mask at 0.5, the probability map (yellow = likely), the uncertainty "
                            "map (bright = models/TTA disagree).")

    def _open(self) -> None:
        self.service.open()
        s = self.state
        self.models.options = [(Path(p).name, str(p)) for p in s.available]
        self.models.value = tuple(str(p) for p in s.models)
        self.inputs.value = s.inputs
        n_test, which = len(s.test_files), s.which  # new options select their first, which the observer saves
        self.which.options = [(f"test images ({n_test}, never trained on)", "test"), ("a folder", "folder")] \
            if n_test else [("a folder (no test images held back in 01_data)", "folder")]
        self.which.value = s.which = which
        self.inputs.layout.display = "none" if which == "test" else ""
        if quick_mode():
            from ..predict.ensemble import ensemble_info, load_ensemble

            self.tta.value = QUICK_TTA[ensemble_info(load_ensemble(s.available[:1])).spatial_dims]
        n = len(self.service.input_files())
        what = "the test images, held back in 01_data" if s.which == "test" else "the folder below"
        self.status.set(f"{len(s.available)} model(s) found; {n} image(s) to predict: {what}"
                        + (" (quick mode: the first few)." if quick_mode() else "."), "info")
        self.seen.value = warning_html(self.service.seen_note())
        if s.table is not None:
            self._show_table()

    def _on_which(self) -> None:
        self.state.which, self.state.inputs = self.which.value, self.inputs.value
        self.inputs.layout.display = "none" if self.which.value == "test" else ""
        self.seen.value = warning_html(self.service.seen_note())

    def _predict(self) -> None:
        s = self.state
        s.models, s.tta, s.tile, s.inputs = list(self.models.value), self.tta.value, self.tile.value, self.inputs.value
        s.which = self.which.value
        files = self.service.input_files()
        self.progress.max, self.progress.value = len(files), 0

        def tick(done, total, name):
            self.progress.value = done
            self.progress.description = f"{done}/{total}"

        from ..predict.files import NOT_READ

        said = []
        self.service.predict(progress=tick, report=said.append)
        self._show_table()
        failed = s.table[s.table["status"] == NOT_READ] if "status" in s.table else s.table.iloc[:0]
        done = " ".join(said[:1] + [f"Predicted {len(s.table) - len(failed)} image(s) into {self.service.output}."])
        seen = self.service.seen_note(scoring=True)
        self.seen.value = warning_html(seen)
        if len(failed):  # the others were predicted; these files need the user
            self.status.set(f"{done} Not predicted: {' '.join(failed['error'])}", "warn")
        else:
            self.status.set(f"{done} Next: 07_threshold_export." + (" Their scores there are inflated (see the "
                                                                    "warning)." if seen else ""),
                            "warn" if seen else "ok")

    def _show_table(self) -> None:
        from ..predict.files import NOT_READ

        table = self.state.table
        if "status" in table:
            table = table[table["status"] != NOT_READ]
        cols = [c for c in ("image", "uncertainty", "foreground_fraction", "threshold") if c in table.columns]
        self.ranking.value = ("<b>Images ranked by uncertainty</b> (most uncertain first: check these first)"
                              + table_html(table[cols], index=False))
        self.ranking_plot.value = plots.bars_png(list(table["image"]), list(table["uncertainty"]),
                                                 ylabel="uncertainty", title="Uncertainty per image")
        self.pick.options = list(table["image"])
        if self.pick.options:
            self.pick.value = self.pick.options[0]
            self._show()

    def _show(self) -> None:
        stem = self.pick.value
        if not stem:
            return
        self.viewer.set_data(**self.service.view(stem),
                             title=f"{html.escape(stem)}: image + mask | probability | uncertainty")
