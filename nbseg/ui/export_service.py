"""Notebook 07's work without widgets: open the project's probability maps, Otsu, the threshold sweep,
instances and their tables, metrics, and the export of OME-TIFF results and the TorchScript model.
:class:`~nbseg.ui.export_panel.ExportPanel` is its face."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.images import files_by_stem, read_image, read_mask, with_pixel_sizes
from ..predict.outputs import predicted_names, read_probability, result_paths
from ..config import DEFAULT_MIN_SIZE, Config
from ..project import ProjectLayout
from .annotate import result_scale
from .session import load_config


@dataclass
class ExportState:
    project: Path
    config: Config | None = None
    stems: list = field(default_factory=list)
    threshold: float = 0.5
    min_size: int | None = None  # as given for ``instances``; the planned value means each image's own bound
    sweep: object = None
    instances: dict = field(default_factory=dict)
    evaluation: object = None
    exported: list = field(default_factory=list)
    objects: dict = field(default_factory=dict)  # stem -> table of its objects (predict.objects.object_table)
    roles: dict = field(default_factory=dict)  # stem -> train, val, test or new (nbseg.predict.seen)
    scored: list = field(default_factory=list)  # the stems the metrics score: the test and new ones, if any
    swept_on: str = ""  # "validation": the sweep's images; "scored": the scored images themselves


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
        found = predicted_names(self.predictions)
        if not found:
            from .session import MissingStep

            raise MissingStep(f"No probability maps in {self.predictions}: run notebook 06_predict first and "
                              "press 'Predict'.")
        s.stems = found
        s.roles = self._roles(found)
        unseen = [n for n in found if s.roles[n] in ("test", "new")]
        s.scored = unseen or list(found)  # honest scores by default; all, with a warning, when none is unseen
        return found

    def _roles(self, stems) -> dict:
        from ..predict.files import prediction_roles

        return prediction_roles(stems, self.predictions, self.state.project)

    def scores_note(self) -> str | None:
        """The warning when the scored images were trained on or validated with (their scores are inflated)."""
        from ..predict.seen import inflated_note

        return inflated_note({n: self.state.roles.get(n, "new") for n in self.state.scored})

    def left_out(self) -> list[str]:
        """The predicted images the metrics leave out: those the models have seen, when others are unseen."""
        return [n for n in self.state.stems if n not in self.state.scored]

    def planned_min_size(self, stem: str | None = None) -> int:
        """Pixels an object of image ``stem`` (default: the first open one) needs to be kept.

        The training plan's bound (:mod:`nbseg.train.min_size`) as the project's models hold it, counted in
        this image's pixels by the function ``nbseg predict --instances`` uses; the default without models.
        """
        from ..predict.options import PredictOptions

        info = self._models_info()
        stem = stem or (self.state.stems[0] if self.state.stems else None)
        sizes = unit = None
        if stem and info is not None and info.min_size is not None:
            self.load(stem)  # reads the map's pixel sizes and their unit
            sizes, unit = self._cache[("sizes", stem)], self._cache[("unit", stem)]
        known = bool(sizes) and all(v is not None for v in sizes)
        if info is None:
            return DEFAULT_MIN_SIZE
        return PredictOptions().min_size_for(info, sizes if known else None, unit if known else None)

    def _models_info(self):
        """What the project's models say about themselves (their plan included), read as predict reads it;
        None when the project holds no model (probability maps made elsewhere)."""
        from ..predict.ensemble import ensemble_info, load_ensemble

        if "models" not in self._cache:
            try:
                files = ProjectLayout(self.state.project).model_files()
            except FileNotFoundError:
                files = None
            self._cache["models"] = ensemble_info(load_ensemble(files)) if files else None
        return self._cache["models"]

    def load(self, stem: str):
        """``(image, probability 0..1, ground truth or None)``, cached."""
        if stem not in self._cache:
            path = result_paths(self.predictions, stem, instances=False, format=self._format(stem))["prob"]
            prob, self._cache[("sizes", stem)], self._cache[("unit", stem)] = read_probability(
                path, return_pixel_sizes=True)
            d = self.state.config.data
            images = files_by_stem(d.images)
            read = with_pixel_sizes(read_image(images[stem], axes=d.axes, channels=d.channels, dims=prob.ndim),
                                    d.pixel_sizes) if stem in images else None  # the project's sizes, if it gives them
            self._cache[("scale", stem)] = result_scale(self._cache[("sizes", stem)], read, self._cache[("unit", stem)])
            image = None if read is None else read.data
            self._cache[("image", stem)] = image  # None: no input image, so no mean intensities
            image = prob[None] if image is None else image
            gt = None
            if d.masks is not None:
                masks = files_by_stem(d.masks)
                gt = read_mask(masks[stem], dims=prob.ndim) if stem in masks else None
            self._cache[stem] = (image, prob, gt)
        return self._cache[stem]

    def scale(self, stem: str) -> dict:
        """The viewer's ``pixel_size`` (µm per XY pixel, None where the files do not say) and ``z_scale`` of
        ``stem`` (:func:`~nbseg.ui.annotate.result_scale` of its probability map and input image)."""
        self.load(stem)
        return self._cache[("scale", stem)]

    def interior(self, stem: str):
        """Interior probability 0..1 of a project trained on instances, or None (then objects are
        connected components of the mask; with it a seeded watershed splits touching objects)."""
        key = ("interior", stem)
        if key not in self._cache:
            path = result_paths(self.predictions, stem, instances=True, interior=True,
                                format=self._format(stem))["interior"]
            self._cache[key] = read_probability(path) if path.exists() else None
        return self._cache[key]

    def _format(self, stem: str) -> str:
        """The format predict wrote ``stem``'s results in."""
        zarr = result_paths(self.predictions, stem, instances=False, format="zarr")["prob"]
        return "zarr" if zarr.exists() else "tiff"

    def class_names(self) -> list | None:
        """A multi-class project's class names, background first; None for a foreground/background one."""
        info = self._models_info()
        return list(info.class_names) if info is not None and info.kind == "multiclass" else None

    def pixel_classes(self, stem: str):
        """A multi-class project's most probable object class of each pixel of ``stem`` (1 .. C-1), cached."""
        from ..predict.outputs import read_classes

        key = ("classes", stem)
        if key not in self._cache:
            self._cache[key] = read_classes(result_paths(self.predictions, stem, instances=False,
                                                         format=self._format(stem))["prob"])
        return self._cache[key]

    def class_map(self, stem: str, threshold: float | None = None):
        """A multi-class project's classes of ``stem``: of the pixels whose probability of any class is over
        ``threshold``, or (None) of the objects 'Instances & metrics' made; 0 elsewhere."""
        kept = self.load(stem)[1] > threshold if threshold is not None else self.state.instances[stem] > 0
        return np.where(kept, self.pixel_classes(stem), 0).astype(np.uint8)

    def splits_touching_objects(self) -> bool:
        return bool(self.state.stems) and all(self.interior(s) is not None for s in self.state.stems)

    def has_ground_truth(self) -> bool:
        return any(self.load(s)[2] is not None for s in self.state.stems)

    def otsu(self, stem: str) -> float:
        from ..predict.post import find_threshold

        return float(find_threshold(self.load(stem)[1], method="otsu"))

    def sweep(self):
        """IoU per threshold, chosen on the validation images (each predicted by the model that did not train on
        it), never on the test images; on the scored images themselves only when the project has no folds."""
        from ..predict.post import threshold_sweep

        found = self._validation_maps()
        self.state.swept_on = "validation" if found else "scored"
        if found is None:
            probs = {s: self.load(s)[1] for s in self.state.scored if self.load(s)[2] is not None}
            found = probs, {s: self.load(s)[2] for s in probs}
        if not found[0]:
            raise ValueError("No ground truth for the predicted images: the sweep needs masks with the same names "
                             "(set them in 01_data).")
        self.state.sweep = threshold_sweep(*found)
        return self.state.sweep

    def _validation_maps(self):
        from ..predict.files import RECORD_FILE
        from ..predict.out_of_fold import validation_maps

        record = self.predictions / RECORD_FILE  # the TTA the predictions used
        tta = json.loads(record.read_text())["settings"].get("tta", "flips") if record.exists() else "flips"
        return validation_maps(self.state.project, self.state.config.data.masks, tta=tta)

    def make_instances(self, threshold: float, min_size: int | None = None) -> dict:
        """Objects of every open image at ``threshold``, without those under ``min_size`` pixels.

        None, or the planned bound as the first image counts it (what the panel shows), keeps the plan's
        bound in each image's own pixels, as ``nbseg predict --instances`` does; any other number is pixels
        in every image.
        """
        from ..predict.post import DEFAULT_SEED_THRESHOLD, instances

        if not self.state.stems:  # else the next step would ask for this very button to be pressed first
            raise ValueError("No predictions are open: run notebook 06_predict, then open this panel again.")
        planned = self.planned_min_size()
        min_size = planned if min_size is None else int(min_size)
        per_image = {s: self.planned_min_size(s) if min_size == planned else min_size for s in self.state.stems}
        self.state.threshold, self.state.min_size = float(threshold), min_size
        self.state.objects = {}
        info = self._models_info()  # the seed threshold chosen for the models, as nbseg predict --instances uses
        seeds = info.seed_threshold if info is not None else DEFAULT_SEED_THRESHOLD
        self.state.instances = {s: instances(self.load(s)[1], interior=self.interior(s), threshold=float(threshold),
                                             min_size=per_image[s], seed_threshold=seeds) for s in self.state.stems}
        return self.state.instances

    def object_tables(self) -> dict:
        """``{stem: DataFrame}``: each image's objects measured by the core (centroid, size in pixels
        and µm, bounding box, mean intensity), as Export writes them to ``<stem>.objects.csv``."""
        from ..predict.objects import object_table

        if not self.state.instances:
            raise ValueError("No objects yet: press 'Instances & metrics' first.")
        self.state.objects = {s: object_table(labels, self._input_image(s), self._cache.get(("sizes", s)),
                                              self._cache.get(("unit", s)))
                              for s, labels in self.state.instances.items()}
        return self.state.objects

    def _input_image(self, stem: str):
        self.load(stem)
        return self._cache[("image", stem)]

    def metrics(self):
        from ..metrics.evaluation import evaluate

        if not self.state.instances:
            raise ValueError("No objects yet: press 'Instances & metrics' first.")
        gts = {s: self.load(s)[2] for s in self.state.scored if self.load(s)[2] is not None}
        if not gts:
            self.state.evaluation = None
            return None
        names = self.class_names()
        if names:  # each class's Dice and IoU, on the classes of the objects kept
            preds = {s: self.class_map(s) for s in gts}
            self.state.evaluation = evaluate(preds, gts, kind="multiclass", n_classes=len(names))
        else:
            kind = "instances" if max(len(np.unique(g)) for g in gts.values()) > 2 else "binary"
            preds = {s: self.state.instances[s] for s in gts}
            self.state.evaluation = evaluate(preds, gts, kind=kind)
        self.state.evaluation.to_csv(self.export_dir / "metrics.csv")
        return self.state.evaluation

    def export(self, *, threshold: float | None = None, min_size: int | None = None,
               torchscript: bool = True) -> list[Path]:
        """Write each image's mask, objects and table (and the TorchScript model) to the export folder.

        The objects are those of ``threshold`` and ``min_size`` (None: the last ones made, else 0.5
        and :meth:`planned_min_size`), made again when they differ from the last ones made.
        """
        from ..predict.export import export_torchscript

        if not self.state.stems:
            raise ValueError("Nothing to export: no predictions are open. Run notebook 06_predict, then open this "
                             "panel again.")
        st = self.state
        wanted = (st.threshold if threshold is None else float(threshold),
                  st.min_size if min_size is None else int(min_size))
        if not st.instances or wanted != (st.threshold, st.min_size):  # what the user sees in the panel is written
            self.make_instances(*wanted)
        from ..predict.outputs import export_objects

        sizes = {s: self._cache.get(("sizes", s)) for s in self.state.stems}
        units = {s: self._cache.get(("unit", s)) for s in self.state.stems}
        classes = {s: self.pixel_classes(s) for s in self.state.stems} if self.class_names() else None
        written = export_objects(self.export_dir, self.state.instances, pixel_sizes=sizes, units=units, classes=classes,
                                 threshold=self.state.threshold,
                                 images={s: self._input_image(s) for s in self.state.instances})
        if torchscript:
            written.append(export_torchscript(self.state.project, self.export_dir / "model.torchscript.pt",
                                              overwrite=True))
        self.state.exported = written
        return written


__all__ = ["ExportService", "ExportState"]
