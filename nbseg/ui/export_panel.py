"""06_threshold_export: a threshold slider and Otsu with a live overlay preview, a threshold sweep
against ground truth when there is some, instances, a metrics table, and the export of OME-TIFF
results and the TorchScript model."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import numpy as np

from ..config import Config
from ..io.images import files_by_stem, read_image, read_mask
from ..predict.outputs import result_paths
from ..predict.post import DEFAULT_MIN_SIZE
from ..project import ProjectLayout
from . import plots
from .bioimageio_form import BioimageioForm
from .common import FEEDBACK, PanelBase, control, note, table_html
from .session import load_config
from .viewers import Viewer2D

PROB_SUFFIX = result_paths("", "_", instances=False)["prob"].name[1:]  # the names predict writes: ".prob.ome.tif"


@dataclass
class ExportState:
    project: Path
    config: Config | None = None
    stems: list = field(default_factory=list)
    threshold: float = 0.5
    sweep: object = None
    instances: dict = field(default_factory=dict)
    evaluation: object = None
    exported: list = field(default_factory=list)
    objects: dict = field(default_factory=dict)  # stem -> table of its objects (predict.objects.object_table)


class ExportService:
    def __init__(self, state: ExportState):
        self.state = state
        self._cache: dict = {}

    @property
    def predictions(self) -> Path:
        return ProjectLayout(self.state.project).predictions

    @property
    def export_dir(self) -> Path:
        return ProjectLayout(self.state.project).export

    def open(self) -> list[str]:
        s = self.state
        s.config = load_config(s.project)
        found = sorted(p.name[: -len(PROB_SUFFIX)] for p in self.predictions.glob(f"*{PROB_SUFFIX}")) \
            if self.predictions.is_dir() else []
        if not found:
            from .session import MissingStep

            raise MissingStep(f"No probability maps in {self.predictions}: run notebook 05_predict first and "
                              "press 'Predict'.")
        s.stems = found
        return found

    def planned_min_size(self) -> int:
        """The smallest object the training plan keeps (``plan.json``; nbseg.train.min_size), else the default."""
        plan = ProjectLayout(self.state.project).plan
        found = json.loads(plan.read_text()).get("min_size") if plan.is_file() else None
        return int(found) if found is not None else DEFAULT_MIN_SIZE

    def load(self, stem: str):
        """``(image, probability 0..1, ground truth or None)``, cached."""
        if stem not in self._cache:
            prob, self._cache[("sizes", stem)] = read_mask(self.predictions / f"{stem}{PROB_SUFFIX}",
                                                           return_pixel_sizes=True)
            prob = prob.astype(np.float32) / 255
            d = self.state.config.data
            images = files_by_stem(d.images)
            image = read_image(images[stem], axes=d.axes, channels=d.channels, dims=prob.ndim).data \
                if stem in images else None
            self._cache[("image", stem)] = image  # None: no input image, so no mean intensities
            image = prob[None] if image is None else image
            gt = None
            if d.masks is not None:
                masks = files_by_stem(d.masks)
                gt = read_mask(masks[stem], dims=prob.ndim) if stem in masks else None
            self._cache[stem] = (image, prob, gt)
        return self._cache[stem]

    def interior(self, stem: str):
        """Interior probability 0..1 of a project trained on instances, or None (then objects are
        connected components of the mask; with it a seeded watershed splits touching objects)."""
        key = ("interior", stem)
        if key not in self._cache:
            path = result_paths(self.predictions, stem, instances=True, interior=True)["interior"]
            self._cache[key] = read_mask(path).astype(np.float32) / 255 if path.exists() else None
        return self._cache[key]

    def splits_touching_objects(self) -> bool:
        return bool(self.state.stems) and all(self.interior(s) is not None for s in self.state.stems)

    def has_ground_truth(self) -> bool:
        return any(self.load(s)[2] is not None for s in self.state.stems)

    def otsu(self, stem: str) -> float:
        from ..predict.post import find_threshold

        return float(find_threshold(self.load(stem)[1], method="otsu"))

    def sweep(self):
        from ..predict.post import threshold_sweep

        probs = {s: self.load(s)[1] for s in self.state.stems if self.load(s)[2] is not None}
        if not probs:
            raise ValueError("No ground truth for the predicted images: the sweep needs masks with the same names "
                             "(set them in 01_data).")
        gts = {s: self.load(s)[2] for s in probs}
        self.state.sweep = threshold_sweep(probs, gts)
        return self.state.sweep

    def make_instances(self, threshold: float, min_size: int = 10) -> dict:
        from ..predict.post import instances

        if not self.state.stems:  # else the next step would ask for this very button to be pressed first
            raise ValueError("No predictions are open: run notebook 05_predict, then open this panel again.")
        self.state.threshold = float(threshold)
        self.state.objects = {}
        self.state.instances = {s: instances(self.load(s)[1], interior=self.interior(s), threshold=float(threshold),
                                             min_size=min_size) for s in self.state.stems}
        return self.state.instances

    def object_tables(self) -> dict:
        """``{stem: DataFrame}``: each image's objects measured by the core (centroid, size in pixels
        and µm, bounding box, mean intensity), as Export writes them to ``<stem>.objects.csv``."""
        from ..predict.objects import object_table

        if not self.state.instances:
            raise ValueError("No objects yet: press 'Instances & metrics' first.")
        self.state.objects = {s: object_table(labels, self._input_image(s), self._cache.get(("sizes", s)))
                              for s, labels in self.state.instances.items()}
        return self.state.objects

    def _input_image(self, stem: str):
        self.load(stem)
        return self._cache[("image", stem)]

    def metrics(self):
        from ..metrics.evaluation import evaluate

        if not self.state.instances:
            raise ValueError("No objects yet: press 'Instances & metrics' first.")
        gts = {s: self.load(s)[2] for s in self.state.stems if self.load(s)[2] is not None}
        if not gts:
            self.state.evaluation = None
            return None
        kind = "instances" if max(len(np.unique(g)) for g in gts.values()) > 2 else "binary"
        preds = {s: self.state.instances[s] for s in gts}
        self.state.evaluation = evaluate(preds, gts, kind=kind)
        self.state.evaluation.to_csv(self.export_dir / "metrics.csv")
        return self.state.evaluation

    def export(self, *, torchscript: bool = True) -> list[Path]:
        from ..predict.export import export_torchscript

        if not self.state.stems:
            raise ValueError("Nothing to export: no predictions are open. Run notebook 05_predict, then open this "
                             "panel again.")
        if not self.state.instances:
            self.make_instances(self.state.threshold)
        from ..predict.outputs import export_objects

        sizes = {s: self._cache.get(("sizes", s)) for s in self.state.stems}
        written = export_objects(self.export_dir, self.state.instances, pixel_sizes=sizes,
                                 threshold=self.state.threshold,
                                 images={s: self._input_image(s) for s in self.state.instances})
        if torchscript:
            written.append(export_torchscript(self.state.project, self.export_dir / "model.torchscript.pt",
                                              overwrite=True))
        self.state.exported = written
        return written


class ExportPanel(PanelBase):
    title = "06 Threshold & export"
    State, Service = ExportState, ExportService

    def build(self) -> None:
        self.pick = control(w.Dropdown, "probability_map", "Image", options=[])
        self.threshold = control(w.FloatSlider, "threshold", "Threshold", min=0.01, max=0.99, step=0.01, value=0.5,
                                 continuous_update=False)
        self.otsu_button = self.secondary("Use Otsu", "otsu", self._otsu, icon="magic", action="Otsu threshold")
        self.otsu_text = w.HTML("")
        self.viewer = Viewer2D()
        self.sweep_button = self.primary("Sweep thresholds", "sweep", self._sweep, icon="line-chart",
                                         action="Threshold sweep")
        self.sweep_plot = w.Image(format="png", layout=w.Layout(max_width="620px"))
        self.use_best = self.secondary("Use best threshold", "sweep", self._use_best)
        self.min_size = control(w.BoundedIntText, "instances", "Min object size", min=0, max=10 ** 6,
                                value=DEFAULT_MIN_SIZE)
        self.instances_button = self.primary("Instances & metrics", "instances", self._instances, icon="th")
        self.metrics = w.HTML("")
        self.objects_table = w.HTML("")
        self.sizes_plot = w.Image(format="png", layout=w.Layout(max_width="620px", display="none"))
        self.objects_note = w.HTML("")
        self.torchscript = control(w.Checkbox, "export_model", "TorchScript model too", value=True, indent=False)
        self.export_button = self.primary("Export", "export", self._export, icon="download")
        self.exported = w.HTML("")
        self.bioimageio = BioimageioForm(self.state.project)  # the guided bioimage.io export, in its own section
        self.pick.observe(lambda _c: self.run("Preview", self._preview), names="value")
        self.pick.observe(lambda _c: self.run("Objects", self._objects_of_pick), names="value")
        self.threshold.observe(lambda _c: self.run("Preview", self._preview), names="value")
        self.sweep_box = w.VBox([note("IoU against the ground truth for thresholds 0.05 ... 0.95."),
                                 self.sweep_button, self.sweep_plot, self.use_best])
        self.assemble("Threshold, objects and export", self.pick, w.HBox([self.threshold, self.otsu_button]),
                      self.otsu_text, self.viewer.widget, self.sweep_box, self.objects_note, self.min_size,
                      self.instances_button, self.metrics, self.objects_table, self.sizes_plot, self.torchscript,
                      self.export_button, FEEDBACK, self.exported, self.bioimageio.section,
                      intro="Move the threshold: the overlay shows the mask it gives (left) next to the "
                            "probability map.")
        self.threshold.layout.width = "460px"
        self.use_best.layout.display = "none"

    def _open(self) -> None:
        stems = self.service.open()
        self.pick.options = stems
        self.pick.value = stems[0]
        self.min_size.value = self.service.planned_min_size()  # what `nbseg predict --instances` keeps too
        has_gt = self.service.has_ground_truth()
        self.sweep_box.layout.display = "" if has_gt else "none"
        self.sweep_button.layout.display = "" if has_gt else "none"
        self.status.set(f"{len(stems)} predicted image(s)" + (", with ground truth." if has_gt else
                                                               "; no ground truth, so no sweep or scores."), "info")
        self.objects_note.value = "<div style='color:#555;font-size:90%'>" + (
            "Objects: a watershed seeded from the predicted interiors splits touching objects (the project was "
            "trained on instances)." if self.service.splits_touching_objects() else
            "Objects: connected parts of the mask (touching objects stay one; train on instance labels to split them).") \
            + "</div>"

    def _preview(self) -> None:
        if not self.pick.value:
            return
        image, prob, gt = self.service.load(self.pick.value)
        mask = (prob > self.threshold.value).astype(np.uint8)
        maps = [("probability", prob, "viridis")]
        if gt is not None:
            maps.append(("ground truth", (gt > 0).astype(np.float32), "gray"))
        self.viewer.set_data(image, mask, maps=maps, title=f"{html.escape(self.pick.value)}: mask at "
                             f"{self.threshold.value:.2f} | probability" + (" | ground truth" if gt is not None else ""))

    def _otsu(self) -> None:
        value = self.service.otsu(self.pick.value)
        self.threshold.value = round(value, 2)
        self.otsu_text.value = f"Otsu's threshold for {html.escape(self.pick.value)}: <b>{value:.3f}</b>"

    def _sweep(self) -> None:
        sweep = self.service.sweep()
        iou = sweep.iou
        best = float(sweep.best["overall"])
        self.sweep_plot.value = plots.curve_png(list(iou.index), {"IoU (all images)": list(iou["overall"])},
                                                xlabel="threshold", ylabel="IoU", mark=best,
                                                title=f"Best overall: {best:.2f} (IoU {sweep.best_iou['overall']:.3f})")
        self.use_best.description = f"Use best threshold {best:.2f}"
        self.use_best.layout.display = ""
        self.status.set(f"Sweep: the best threshold over all images is {best:.2f}.", "ok")

    def _use_best(self) -> None:
        self.threshold.value = round(float(self.state.sweep.best["overall"]), 2)

    def _instances(self) -> None:
        found = self.service.make_instances(self.threshold.value, self.min_size.value)
        evaluation = self.service.metrics()
        counts = ", ".join(f"{k}: {int(v.max(initial=0))}" for k, v in found.items())
        if evaluation is None:
            self.metrics.value = f"Objects per image — {html.escape(counts)}. No ground truth: no scores."
        else:
            table = evaluation.table
            cols = [c for c in ("image", "dice", "iou", "f1@0.5", "map", "n_pred", "n_gt") if c in table.columns]
            self.metrics.value = ("<b>Metrics</b> (Dice/IoU: pixel overlap; F1 at IoU 0.5: matched objects)"
                                  + table_html(table[cols], index=False)
                                  + f"<pre>{html.escape(evaluation.report())}</pre>")
        self._show_objects(self.service.object_tables())
        self.status.set(f"Objects at threshold {self.threshold.value:.2f}: {counts}.", "ok")

    def _objects_of_pick(self) -> None:
        if self.state.objects:  # made by the last 'Instances & metrics'
            self._show_objects(self.state.objects)

    def _show_objects(self, tables: dict) -> None:
        """The first rows of the picked image's objects and a histogram of all objects' sizes."""
        import pandas as pd

        stem = self.pick.value if self.pick.value in tables else next(iter(tables))
        table = tables[stem]
        self.objects_table.value = (f"<b>Objects of {html.escape(stem)}</b> (first {min(len(table), 10)} of "
                                    f"{len(table)}; Export writes every image's as <code>NAME.objects.csv</code>)"
                                    + table_html(table.head(10), index=False))
        png = plots.object_sizes_png(pd.concat(list(tables.values()), ignore_index=True))
        if png:
            self.sizes_plot.value = png
        self.sizes_plot.layout.display = "" if png else "none"

    def _export(self) -> None:
        written = self.service.export(torchscript=self.torchscript.value)
        self._show_objects(self.state.objects or self.service.object_tables())
        self.exported.value = ("Written:<ul>" + "".join(f"<li><code>{html.escape(str(p))}</code></li>"
                                                        for p in written[-4:]) + f"</ul>({len(written)} files)")
        self.status.set(f"Exported {len(written)} file(s) to {self.service.export_dir}.", "ok")
