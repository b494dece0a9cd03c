"""07_threshold_export: a threshold slider and Otsu with a live overlay preview, a threshold sweep
against ground truth when there is some, instances, a metrics table, and the export of OME-TIFF
results and the TorchScript model (the work: :mod:`nbseg.ui.export_service`)."""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ..config import DEFAULT_MIN_SIZE
from . import plots
from .bioimageio_form import BioimageioForm
from .common import FEEDBACK, PanelBase, control, note, table_html, warning_html
from .export_service import ExportService, ExportState
from .viewers import Viewer2D


class ExportPanel(PanelBase):
    title = "07 Threshold & export"
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
        self.sweep_box = w.VBox([note("IoU against the ground truth for thresholds 0.05 ... 0.95, on the validation "
                                      "images (never the test images: a threshold chosen on them would flatter "
                                      "their scores)."),
                                 self.sweep_button, self.sweep_plot, self.use_best])
        self.scored = w.HTML("")  # which images the metrics score, and the warning when the models have seen them
        self.assemble("Threshold, objects and export", self.scored, self.pick, w.HBox([self.threshold, self.otsu_button]),
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
        self.pick.value = self.state.scored[0]  # a test or new image when there is one
        self._show_scored()
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
            + (" <i>Min object size</i> starts at the training plan's bound in the first image's pixels; left as it is,"
               " each image keeps the bound in its own pixels.</div>")

    def _show_scored(self) -> None:
        """Say which images the metrics score; warn when the models trained on or validated with them."""
        s, left_out = self.state, self.service.left_out()
        kinds = sorted({s.roles[n] for n in s.scored})
        line = (f"Scores use {len(s.scored)} of the {len(s.stems)} predicted image(s): "
                + " and ".join({"test": "test images (held back in 01_data)", "new": "new images (not in the "
                                "project's training data)", "train": "images the models trained on",
                                "val": "validation images"}[k] for k in kinds) + ".")
        if left_out:
            line += (f" Left out: {len(left_out)} image(s) the models trained on or validated with "
                     f"({', '.join(left_out[:4])}{', ...' if len(left_out) > 4 else ''}).")
        self.scored.value = (f"<div style='max-width:760px'>{html.escape(line)}</div>"
                             + warning_html(self.service.scores_note()))

    def _preview(self) -> None:
        if not self.pick.value:
            return
        image, prob, gt = self.service.load(self.pick.value)
        names = self.service.class_names()  # multi-class: the mask shows each pixel's most probable class
        mask = (self.service.class_map(self.pick.value, self.threshold.value) if names else
                (prob > self.threshold.value).astype(np.uint8))
        maps = [("probability (any class)" if names else "probability", prob, "viridis")]
        if gt is not None:
            maps.append(("ground truth", (gt > 0).astype(np.float32), "gray"))
        self.viewer.set_data(image, mask, maps=maps, **self.service.scale(self.pick.value),
                             classes=names[1:] if names else None,
                             title=f"{html.escape(self.pick.value)}: {'classes' if names else 'mask'} at "
                             f"{self.threshold.value:.2f} | probability"
                             + (" | ground truth" if gt is not None else ""))

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
        if self.state.swept_on == "validation":
            self.status.set(f"Sweep on the validation images (each predicted by the model that did not train on it, "
                            f"or, where each image gave a band to validation, on those bands; never the test images): "
                            f"the best threshold is {best:.2f}.", "ok")
        else:  # no folds to choose on: chosen on the scored images themselves
            self.status.set(f"Sweep on the scored images themselves (the project has no trained folds): the best "
                            f"threshold is {best:.2f}, and scores at it are a little optimistic.", "warn")

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
            wanted = ("dice", "iou", "f1@0.5", "map", "n_pred", "n_gt")  # and a multi-class project's per class
            cols = ["image"] + [c for c in table.columns if c.split(" class ")[0] in wanted]
            self.metrics.value = ("<b>Metrics</b> (Dice/IoU: pixel overlap; F1 at IoU 0.5: matched objects)"
                                  + warning_html(self.service.scores_note())
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
        written = self.service.export(threshold=self.threshold.value, min_size=self.min_size.value,
                                      torchscript=self.torchscript.value)
        self._show_objects(self.state.objects or self.service.object_tables())
        self.exported.value = ("Written:<ul>" + "".join(f"<li><code>{html.escape(str(p))}</code></li>"
                                                        for p in written[-4:]) + f"</ul>({len(written)} files)")
        self.status.set(f"Exported {len(written)} file(s) to {self.service.export_dir}.", "ok")
