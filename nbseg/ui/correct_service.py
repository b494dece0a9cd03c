"""The correction notebook's work, without widgets: rank the images, propose a segmentation, keep the user's
edits and decisions in the project, retrain from the current model and rank again.

Every step is a core call (``nbseg.predict.suggest``, ``nbseg.labels.edit``, ``nbseg.labels.corrections``,
``nbseg.train.fit``); this module holds the loop's state between them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..choices import SUGGEST_DEFAULT
from ..config import Config
from ..data.split import read_split
from ..io.images import file_stem, files_by_stem, image_files, read_image, with_pixel_sizes
from ..labels import corrections
from ..labels.classic import ClassicSettings, classic_segment
from ..labels.edit import LabelEditor
from ..model.bundled import bundled_model_file
from ..project import ProjectLayout, write_json
from .annotate import view_scale
from .teaching import quick_minutes, quick_mode

CLASSIC = "classic"  # proposals from the classic workflow instead of a model
UNLABELLED = 65535  # the "not labelled" value of corrected masks when the project names none (uint16 masks)
QUICK_POOL = 4  # quick mode: images ranked
# quick mode: each retraining takes a tenth of quick mode's training budget (0.2 of its 2 minutes), so
# NBSEG_QUICK_MINUTES shortens both in the tests of the notebooks' mechanics
QUICK_RETRAIN_SHARE = 0.1
# the edit tools: clicks for objects, a drag (brush stroke) or corners (polygon) for regions
TOOLS = ("delete", "paint", "erase", "add", "polygon", "merge", "split", "class", "unlabelled")
POINTS_NEEDED = {"delete": 1, "paint": 1, "erase": 1, "add": 1, "polygon": 3, "merge": 2, "split": 2, "class": 1,
                 "unlabelled": 1}


@dataclass
class CorrectState:
    project: Path
    config: Config | None = None
    pool: str = ""  # folder of the images to correct
    source: str = ""  # what proposes: a bundled model's name, a project, a package, or "classic"
    classic: ClassicSettings = field(default_factory=ClassicSettings)
    by: str = SUGGEST_DEFAULT
    ranking: object = None  # DataFrame from suggest_images, most useful first
    path: Path | None = None  # the image shown
    image: np.ndarray | None = None  # (C, [Z,] Y, X)
    editor: LabelEditor | None = None
    scale: dict = field(default_factory=dict)  # the viewer's pixel_size and z_scale of the image shown
    classes: list | None = None  # names of labels 1, 2, ... when the proposals are a multi-class model's
    proposed_by: str = ""
    round: int = 0


def quick_retrain_minutes() -> float:
    """Each retraining's budget in quick mode, in minutes: :data:`QUICK_RETRAIN_SHARE` of
    :func:`~nbseg.ui.teaching.quick_minutes`."""
    return quick_minutes() * QUICK_RETRAIN_SHARE


class CorrectService:
    def __init__(self, state: CorrectState):
        self.state = state

    @property
    def layout(self) -> ProjectLayout:
        return ProjectLayout(self.state.project)

    @property
    def unlabelled(self) -> int:
        config = self.state.config
        return config.data.unlabelled if config is not None and config.data.unlabelled is not None else UNLABELLED

    def open(self) -> None:
        """Read what the project holds: settings (if any), the last round's model, the round number."""
        s, layout = self.state, self.layout
        s.config = Config.load(s.project) if layout.config.exists() else None
        loop = json.loads(layout.correction_loop.read_text()) if layout.correction_loop.exists() else {}
        s.pool = s.pool or loop.get("pool") or (str(s.config.data.images) if s.config else "")
        rounds = corrections.read_rounds(s.project)
        s.round = len(rounds)
        if not s.source:
            s.source = rounds[-1]["model"] if rounds else self._first_source()

    def _first_source(self) -> str:
        """The bundled nuclei model for 2D images (it is a 2D model), else the classic workflow."""
        files = image_files(Path(self.state.pool).expanduser()) if self.state.pool.strip() else []
        two_d = not files or read_image(files[0], lazy=True).spatial_dims == 2
        return "nuclei" if two_d and bundled_model_file("nuclei") else CLASSIC

    def pool_files(self) -> list[Path]:
        if not self.state.pool.strip():
            raise ValueError("No images to correct: type the folder of your images (Images to correct).")
        files = image_files(Path(self.state.pool.strip()).expanduser())
        return files[:QUICK_POOL] if quick_mode() else files

    def rank(self, progress=None):
        """Rank the undecided images of the pool, most useful first (file order for the classic workflow)."""
        import pandas as pd

        from ..predict.suggest import suggest_images

        s = self.state
        done = corrections.read_decisions(s.project)
        files = [p for p in self.pool_files() if file_stem(p) not in done]
        write_json(self.layout.correction_loop, {"pool": s.pool.strip(), "source": s.source})
        if s.source == CLASSIC:
            s.ranking = pd.DataFrame({"rank": range(1, len(files) + 1), "image": [str(p) for p in files],
                                      "name": [file_stem(p) for p in files], "score": np.nan})
        else:
            s.ranking = suggest_images(s.source, files, by=s.by, tta="none" if quick_mode() else "flips",
                                       progress=progress)
        return s.ranking

    def show_next(self) -> Path | None:
        """Open the best-ranked image not decided on yet, with its proposal; None when all are decided."""
        if self.state.ranking is None:
            raise ValueError("Nothing ranked yet: press 'Rank images' first.")
        path = corrections.next_image(list(self.state.ranking["image"]), self.state.project)
        if path is None:
            self.state.path, self.state.editor = None, None
            return None
        self.propose(Path(path))
        return self.state.path

    def propose(self, path: Path) -> np.ndarray:
        """Segment ``path`` with the source (or the classic workflow) and open the result for editing."""
        from ..predict.suggest import propose_labels

        s = self.state
        image = with_pixel_sizes(read_image(path), s.config.data.pixel_sizes if s.config else None)
        s.classes = None
        if s.source == CLASSIC:
            labels, s.proposed_by = classic_segment(image.data, s.classic, channel_axis=0), "classic workflow"
        else:
            labels, prediction = propose_labels(s.source, path, tta="none")
            s.proposed_by = s.source
            if prediction.kind == "multiclass":  # the labels are classes: the viewer names them
                s.classes = list(prediction.class_names[1:])
        s.path, s.image, s.scale = Path(path), image.data, view_scale(image.pixel_sizes, image.unit)
        s.editor = LabelEditor(np.asarray(labels, np.int32), unlabelled=self.unlabelled)
        return s.editor.labels

    def edit(self, tool: str, points, *, radius: float = 3, value: int | None = None, z: int | None = None,
             whole: bool = True):
        """Apply one edit to the open labels; returns the core's :class:`~nbseg.labels.edit.Change`.

        Parameters
        ----------
        tool : one of :data:`TOOLS`
        points : list of (y, x)
            The click (delete, class), the two objects or the cut line's ends (merge, split), the stroke
            (paint, erase, add, unlabelled) or the corners (polygon; unlabelled with 3 or more and no radius).
        radius : float
            Of the brush, in pixels.
        value : int, optional
            The class (class tool) or the object id to paint (default: the object under the first point).
        z : int, optional
            The slice of a stack; ``whole`` edits a 3D object on every slice, not only on ``z``.
        """
        editor = self.state.editor
        if editor is None:
            raise ValueError("No image is open: press 'Rank images' first.")
        if tool not in TOOLS:
            raise ValueError(f"tool {tool!r} is not one of {', '.join(TOOLS)}.")
        points = [tuple(int(round(v)) for v in p) for p in points]
        if len(points) < POINTS_NEEDED[tool]:
            raise ValueError(f"'{tool}' needs {POINTS_NEEDED[tool]} point(s) (y,x); {len(points)} given.")
        z = z if editor.labels.ndim == 3 else None
        if tool in ("delete", "merge", "split", "class"):
            args = {"delete": (points[0],), "merge": points[:2], "split": points[:2],
                    "class": (points[0], value)}[tool]
            method = {"class": editor.set_class}.get(tool) or getattr(editor, tool)
            return method(*args, z=z, whole=whole)
        if tool == "erase":
            return editor.erase(points, radius, z=z)
        if tool == "polygon":
            return editor.add_polygon(points, z=z)
        if tool == "unlabelled":
            region = {"polygon": points} if len(points) >= 3 and radius <= 0 else {"stroke": points, "radius": radius}
            return editor.mark_unlabelled(z=z, **region)
        target = value if value is not None else editor.object_at(points[0], z=z)
        if tool == "add" or target in (0, editor.unlabelled):
            return editor.add_stroke(points, radius, z=z)
        return editor.paint(points, radius, target, z=z)

    def command(self, text: str, *, radius: float = 3, z: int | None = None, whole: bool = True):
        """A typed edit, where mouse events are unavailable: ``TOOL y,x; y,x ... [r=R] [v=V]``, e.g.
        ``delete 40,52``, ``paint 10,10; 10,30 r=4``, ``split 5,20; 40,20``, ``class 12,30 v=2``."""
        from .overlay import parse_vertices

        words = text.strip().split(None, 1)
        if not words:
            raise ValueError("Type an edit such as 'delete 40,52' or 'paint 10,10; 10,30 r=4'.")
        tool, rest = words[0].lower(), words[1] if len(words) > 1 else ""
        options = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        coords = " ".join(part for part in rest.split() if "=" not in part)
        try:
            radius, value = float(options.get("r", radius)), (int(options["v"]) if "v" in options else None)
        except ValueError:
            raise ValueError(f"r= and v= take numbers, e.g. r=4 v=2; given {options}.") from None
        return self.edit(tool, parse_vertices(coords, minimum=0), radius=radius, value=value, z=z,
                         whole=whole)

    def decide(self, decision: str) -> corrections.Decision:
        """Save the shown image's decision ("accepted", "corrected" or "left out") and its labels now."""
        s = self.state
        if s.path is None or s.editor is None:
            raise ValueError("No image is open: press 'Rank images' (or all ranked images are decided).")
        edits = {k: v for k, v in s.editor.counts.items() if v}
        if decision == "accepted" and edits:
            decision = "corrected"  # what is saved holds the edits: say so in the record
        labels = None if decision == "left out" else s.editor.labels
        return corrections.record_decision(s.project, s.path, decision, labels, model=s.proposed_by, edits=edits,
                                           round_number=s.round)

    def retrain(self, minutes: float, *, callbacks=()) -> dict:
        """Fine-tune from the current source on every accepted and corrected image; the new model proposes next.

        Returns the round's row of the table (also in ``corrections/rounds.jsonl``).
        """
        from ..predict.seeds import calibrate_project
        from ..train.trainer import fit

        s = self.state
        config = s.config
        found = corrections.training_set(s.project, *(self._earlier_masks(config)))
        decisions = corrections.read_decisions(s.project)
        marked = any(d.edits.get("unlabelled") for d in decisions.values())
        data = {"images": found["images"], "masks": found["masks"],
                "unlabelled": self.unlabelled if marked else None}
        train = {"minutes": float(minutes), "init": None if s.source == CLASSIC else s.source}
        if config is not None:
            data = {**config.data.model_dump(exclude={"images", "masks", "unlabelled", "test_fraction"}), **data}
        # the project's test images (notebook 01) are in the training set's folders, but never trained on
        test = sorted(set(read_split(s.project).get("test", ())) & set(files_by_stem(found["masks"])))
        data["test_images"] = test or None
        target = self.layout.round_project(s.round + 1)
        round_config = Config(data=data, train=train)
        result = fit(round_config, target.root, callbacks=callbacks)
        calibrate_project(target.root, round_config.data)  # instances: the seeded watershed's threshold
        self._use_as_masks(found)
        s.round += 1
        s.source = str(target.root)
        edits = sum(sum(d.edits.values()) for d in decisions.values() if d.round == s.round - 1)
        # the test images sit in the same folders but were kept out: the row counts what the round learnt from
        return corrections.record_round(s.project, s.round, model=s.source, images=found["count"] - len(test),
                                        test_images=len(test), edits=edits,
                                        val_dice=round(float(max(result.best_dice)), 4),
                                        **self._test_scores(target, found, test))

    def _test_scores(self, target: ProjectLayout, found: dict, test: list) -> dict:
        """The round's model on the project's test images (never trained on): ``test_f1`` (objects, F1@0.5)
        and ``test_dice``; its predictions go to the round's ``predictions/``. Nothing without test images."""
        from ..predict.test_scores import score_images

        if not test:
            return {}
        images = files_by_stem(found["images"])
        summary = score_images(target.root, [images[n] for n in test], found["masks"], target.predictions)
        return {f"test_{key.removesuffix('@0.5')}": round(float(summary[key]), 4)
                for key in ("f1@0.5", "dice") if key in summary}

    def _use_as_masks(self, found: dict) -> None:
        """The project's images and masks become the training set, so label QC and training use them."""
        s = self.state
        base = s.config or Config(data={"images": found["images"]})
        data = base.data.model_copy(update={"images": found["images"], "masks": found["masks"]})
        s.config = base.model_copy(update={"data": data})
        s.config.save(s.project)

    def _earlier_masks(self, config):
        """The project's images and masks: the user's own before the loop, the last training set after it
        (read before it is written anew, so earlier masks stay in)."""
        if config is None or config.data.masks is None:
            return ()
        return config.data.images, config.data.masks

    def round_table(self):
        import pandas as pd
        return pd.DataFrame(corrections.read_rounds(self.state.project))


def round_status(row: dict) -> tuple[str, str]:
    """The status line after a retraining round (``corrections.record_round``'s row) and its kind: a round
    whose validation Dice is poor is a warning that says what to do, never green."""
    from ..metrics.verdict import training_verdict

    verdict = training_verdict([row["val_dice"]])
    kept = f" ({row['test_images']} test image(s) kept out)" if row.get("test_images") else ""
    scores = ", ".join(f"{name} {row[key]:.3f}" for key, name in (("test_f1", "F1@0.5"), ("test_dice", "Dice"))
                       if key in row)
    tested = f" On the test images: {scores}." if scores else ""
    return (f"Round {row['round']}: trained on {row['images']} image(s){kept}; the new model proposes next. "
            f"{verdict.text}{tested}", "ok" if verdict.ok else "warn")


__all__ = ["CLASSIC", "CorrectService", "CorrectState", "quick_retrain_minutes", "round_status"]
