"""03_label_qc: the QC table and a paged overlay browser sorted by QC flags; ground truth from several
experts (STAPLE / majority vote, per-expert scores); Seg1/Seg2 merge inside a drawn merging mask;
drawn excluding masks (polygons clicked on the image or typed: nbseg.ui.draw)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import numpy as np

from . import overlay as ov
from ..config import Config
from ..io.images import files_by_stem, read_image, read_mask, with_pixel_sizes
from ..project import ProjectLayout
from .annotate import view_scale
from .common import FEEDBACK, PanelBase, control, note, table_html
from .compat import set_titles
from .session import load_config
from .draw import DrawTab

PER_PAGE = 6
SORTS = {"most flags first": None, "name": "name"}


@dataclass
class QCState:
    project: Path
    config: Config | None = None
    report: object = None
    order: list = field(default_factory=list)
    page: int = 0
    experts: str = ""
    method: str = "majority"
    scores: object = None
    polygons: list = field(default_factory=list)  # dicts: name, kind, vertices, z
    saved: dict = field(default_factory=dict)


class QCService:
    def __init__(self, state: QCState):
        self.state = state
        self._last_read = (None, None, None)  # (key, (image, mask), the Image read): the Draw tab redraws per click

    def open(self) -> Config:
        self.state.config = load_config(self.state.project)
        return self.state.config

    def names(self) -> list[str]:
        return list(files_by_stem(self.state.config.data.images))

    def run_qc(self):
        from ..labels.qc import qc_dataset

        d = self.state.config.data
        report = qc_dataset(d.images, d.masks, n_classes=d.n_classes, dims=d.dims, unlabelled=d.unlabelled)
        report.to_csv(ProjectLayout(self.state.project).labels / "qc.csv")
        self.state.report = report
        self.sort(None)
        return report

    def sort(self, by: str | None) -> list[str]:
        table = self.state.report.table
        if by == "name":
            order = sorted(table.index)
        elif by in table.columns:
            order = list(table.sort_values([by, "n_flags"], ascending=False, kind="stable").index)
        else:
            order = list(table.sort_values("n_flags", ascending=False, kind="stable").index)
        self.state.order, self.state.page = order, 0
        return order

    def pages(self) -> int:
        return max(1, -(-len(self.state.order) // PER_PAGE))

    def page_names(self, page: int) -> list[str]:
        return self.state.order[page * PER_PAGE:(page + 1) * PER_PAGE]

    def _paths(self, name: str):
        d = self.state.config.data
        images = files_by_stem(d.images)
        masks = files_by_stem(d.masks) if d.masks else {}
        return images.get(name), masks.get(name)

    def image_and_mask(self, name: str):
        """The image and its mask, read again only when a file (or how to read it) changed."""
        d = self.state.config.data
        image_path, mask_path = self._paths(name)
        key = (d.axes, tuple(d.channels or ()), d.dims,
               *((str(p), p.stat().st_mtime_ns) for p in (image_path, mask_path) if p is not None))
        if self._last_read[0] != key:
            image = read_image(image_path, axes=d.axes, channels=d.channels, dims=d.dims)
            mask = read_mask(mask_path, dims=image.data.ndim - 1) if mask_path else None
            self._last_read = (key, (image.data, mask), image)
        return self._last_read[1]

    def pixel_sizes(self, name: str):
        """The image's ``([Z,] Y, X)`` pixel sizes (None where the file has none)."""
        self.image_and_mask(name)
        return self._last_read[2].pixel_sizes

    def scale(self, name: str) -> dict:
        """The viewer's ``pixel_size`` (µm per XY pixel; None unless the file or the project's
        ``data.pixel_sizes`` give µm) and ``z_scale`` of image ``name``."""
        self.image_and_mask(name)
        image = with_pixel_sizes(self._last_read[2], self.state.config.data.pixel_sizes)
        return view_scale(image.pixel_sizes, image.unit)

    def thumbnail(self, name: str) -> np.ndarray:
        from ..data.targets import split_unlabelled

        image, mask = self.image_and_mask(name)
        z = image.shape[1] // 2 if image.ndim == 4 else None
        labels, unlabelled = split_unlabelled(mask, self.state.config.data.unlabelled)
        return ov.overlay(ov.plane(image, z), None if labels is None else ov.plane(labels, z),
                          unlabelled=None if unlabelled is None else ov.plane(unlabelled, z))

    def combine_experts(self, folders: str, method: str):
        from ..labels.expert_folders import ground_truth_folders

        dirs = [Path(p.strip()).expanduser() for p in folders.replace("\n", ";").split(";") if p.strip()]
        if len(dirs) < 2:
            raise ValueError("Give two or more expert folders, separated by ';' (one folder of masks per expert).")
        out = ProjectLayout(self.state.project).labels / f"ground_truth_{method}"
        scores = ground_truth_folders(dirs, out, method=method, labels="binary", dims=self.state.config.data.dims)
        self.state.scores = scores
        cfg = load_config(self.state.project)
        cfg.data.masks = out
        cfg.save(self.state.project)
        self.state.config = cfg
        return scores

    def expert_summary(self):
        """Per expert, mean sensitivity / specificity / Dice against the combined mask (None before combining)."""
        from ..labels.expert_folders import summarise_experts

        return None if self.state.scores is None else summarise_experts(self.state.scores)

    def add_polygon(self, name: str, vertices_text: str, kind: str, z: int | None = None) -> dict:
        vertices = ov.parse_vertices(vertices_text)
        if kind == "merging" and self.state.config.data.seg2 is None:
            raise ValueError("A merging mask says where Seg2 replaces Seg1, but no Seg2 folder is set: give one "
                             "in 01_data first.")
        entry = {"name": name, "kind": kind, "vertices": vertices, "z": z}
        self.state.polygons.append(entry)
        return entry

    def drawn(self, name: str, shape, kind: str | None = None, *, pending=None, z=None) -> np.ndarray | None:
        """The region drawn on image ``name`` (``shape`` = its spatial shape), with the ``pending``
        polygon (corners, on slice ``z`` in 3D) not added yet; None where nothing is drawn."""
        from ..labels.curation import polygons_to_mask

        mine = [p for p in self.state.polygons if p["name"] == name and (kind is None or p["kind"] == kind)]
        if pending:
            mine = mine + [{"vertices": pending, "z": z}]
        if not mine:
            return None
        slices = [p["z"] for p in mine] if len(shape) == 3 else None
        return polygons_to_mask([p["vertices"] for p in mine], shape, z=slices, clip=True) > 0

    def save_drawn(self) -> dict:
        """Write excluding/merging masks for every image with polygons; enter the folders in config.yaml."""
        if not self.state.polygons:
            self.state.saved = {}
            return {}
        from ..labels.curation import write_region_masks

        labels_dir = ProjectLayout(self.state.project).labels
        cfg = load_config(self.state.project)
        saved = {}
        for kind, key in (("excluding", "excluding_masks"), ("merging", "merging_masks")):
            names = sorted({p["name"] for p in self.state.polygons if p["kind"] == kind})
            if not names:
                continue
            folder = labels_dir / kind
            regions = {n: self.drawn(n, self.image_and_mask(n)[0].shape[1:], kind) for n in names}
            write_region_masks(folder, regions, pixel_sizes={n: self.pixel_sizes(n) for n in names})
            setattr(cfg.data, key, folder)
            saved[kind] = names
        cfg.save(self.state.project)
        self.state.config, self.state.saved = cfg, saved
        return saved


class LabelQCPanel(PanelBase):
    title = "03 Label QC"
    State, Service = QCState, QCService

    def build(self) -> None:
        # QC and browser
        self.qc_button = self.primary("Run QC", "qc_flags", self._qc, icon="search", action="Label QC")
        self.sort = control(w.Dropdown, "qc_flags", "Sort by", options=list(SORTS))
        self.page = control(w.IntSlider, "page", "Page", min=0, max=0, continuous_update=False)
        self.grid = w.GridBox([], layout=w.Layout(grid_template_columns="repeat(3, 250px)", grid_gap="6px"))
        self.table = w.HTML("")
        # experts
        self.experts = control(w.Textarea, "staple", "Expert folders", placeholder="folder1; folder2; folder3",
                               layout=w.Layout(width="560px", height="60px"))
        self.method = control(w.ToggleButtons, "majority", "Combine by", value="majority",
                              options=[("majority vote", "majority"), ("STAPLE", "staple")])
        self.experts_button = self.primary("Combine experts", "staple", self._experts, icon="users")
        self.scores = w.HTML("")
        self.draw = DrawTab(self, self.service)
        # the drawing controls, by the names tests and users reach them
        self.vertices, self.kind, self.add_button = self.draw.corners, self.draw.kind, self.draw.add_button
        self.save_button, self.draw_image = self.draw.save_button, self.draw.image
        self.buttons.append(self.save_button)  # the Draw tab wires it

        self.sort.observe(lambda _c: self.run("Sort", self._sort), names="value")
        self.page.observe(lambda _c: self.run("Page", self._show_page), names="value")
        self.experts.observe(lambda _c: self._show_experts(), names="value")

        browser = w.VBox([note("Each mask drawn over its image; doubtful ones first. Pixels marked 'not labelled' "
                               "are tinted blue-grey, excluded ones hatched red."), w.HBox([self.sort, self.page]),
                          self.grid, self.table])
        experts = w.VBox([note("Several experts' masks of the same images: one folder per expert, masks named "
                               "like the images. The combined masks become the training masks."),
                          self.experts, self.method, self.experts_button, self.scores])
        self.tabs = w.Tab(children=[browser, experts, self.draw.widget])
        set_titles(self.tabs, ["QC browser", "Experts", "Draw masks"])
        self.assemble("Label quality", self.qc_button, FEEDBACK, self.tabs)
        self.sort.layout.width = self.page.layout.width = "360px"
        self._show_experts()  # opening the project leaves the expert folders as they are

    def _open(self) -> None:
        self.service.open()
        names = self.service.names()
        self.draw.open(names)
        self.status.set(f"Project {self.state.project}: {len(names)} image(s). Press 'Run QC'.", "info")

    def _show_experts(self) -> None:
        self.experts_button.layout.display = "" if self.experts.value.strip() else "none"

    def _qc(self) -> None:
        report = self.service.run_qc()
        flags = [c for c in report.summary.index if report.summary.loc[c, "count"]]
        self.sort.options = list(SORTS) + flags
        self.sort.value = "most flags first"
        self._sort()
        rows = report.table
        wanted = ["n_flags", "reasons", "shape", "labelled_fraction", "n_objects", "foreground_fraction",
                  "smallest_object", "median_object_size", "n_border"]
        if self.state.config.data.unlabelled is None:  # every pixel labelled: the column says nothing
            wanted.remove("labelled_fraction")
        shown = rows.loc[self.state.order, [c for c in wanted if c in rows.columns]]
        self.table.value = "<b>QC table</b> (also in labels/qc.csv)" + table_html(shown, max_height="260px")
        self.status.set(f"QC: {len(report.flagged)} of {len(rows)} image(s) flagged. Results in labels/qc.csv.", "ok")

    def _sort(self) -> None:
        if self.state.report is None:
            return
        self.service.sort(SORTS.get(self.sort.value, self.sort.value))
        with self.page.hold_trait_notifications():
            self.page.max = self.service.pages() - 1
            self.page.value = 0
        self._show_page()

    def _show_page(self) -> None:
        table = self.state.report.table
        cells = []
        for name in self.service.page_names(self.page.value):
            rgb = ov.upscale(self.service.thumbnail(name), 240)
            flags = int(table.loc[name, "n_flags"])
            why = html.escape(str(table.loc[name, "reasons"]))[:160] if "reasons" in table.columns else ""
            color = "#c62828" if flags else "#1b5e20"
            cells.append(w.VBox([w.Image(value=ov.png_bytes(rgb), format="png", layout=w.Layout(width="240px")),
                                 w.HTML(f"<div style='font-size:80%;width:240px'><b>{html.escape(name)}</b> "
                                        f"<span style='color:{color}'>{flags} flag(s)</span><br>{why}</div>")]))
        self.grid.children = cells

    def _experts(self) -> None:
        self.service.combine_experts(self.experts.value, self.method.value)
        summary = self.service.expert_summary()
        worst = summary.index[summary["lowest_dice"]]
        self.scores.value = ("<b>Each expert against the combined mask</b> (mean over images; sensitivity: share "
                             "of the combined mask the expert marked, specificity: share of its background the "
                             "expert left empty; per image in labels/…/expert_scores.csv)"
                             + table_html(summary.drop(columns="lowest_dice")))
        least = f" {html.escape(str(worst[0]))} agrees least with the others (lowest Dice)." if len(worst) else ""
        self.status.set("Ground truth written to labels/ and set as the training masks." + least, "ok")
