"""Notebook 07's guided bioimage.io export: a form whose fields (name, description, authors, license,
citation, tags, training data) explain on hover what they mean and why the model zoo asks for them,
prefilled from the project, and one button that calls
:func:`nbseg.predict.bioimageio_export.export_bioimageio`. The form computes and writes nothing itself."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w

from .common import FEEDBACK, PanelBase, control, note, primary_button
from .compat import collapse, set_titles
from .glossary import tip

# SPDX identifiers common for models (bioimage.io accepts any SPDX license; these cover most uses)
LICENSES = ["CC-BY-4.0", "MIT", "BSD-3-Clause", "Apache-2.0", "CC0-1.0", "CC-BY-SA-4.0", "BSD-2-Clause",
            "GPL-3.0-only"]
REQUIRED = ("name", "description", "authors", "license")


class MissingField(ValueError):
    """A required field of the form is empty."""


@dataclass
class BioimageioState:
    project: Path
    defaults: dict = field(default_factory=dict)
    written: Path | None = None


class BioimageioService:
    def __init__(self, state: BioimageioState):
        self.state = state

    def open(self) -> dict:
        from ..predict.bioimageio_docs import export_defaults

        self.state.defaults = export_defaults(self.state.project)
        return self.state.defaults

    def export(self, output, *, cite_text: str = "", cite_link: str = "", **fields) -> Path:
        """:func:`export_bioimageio` of the project with the form's ``fields``; a citation given in the form
        comes first, before the U-Net paper(s) of the defaults."""
        from ..predict.bioimageio_docs import citation_entry
        from ..predict.bioimageio_export import export_bioimageio

        cite = list(self.state.defaults.get("cite") or [])
        if cite_text.strip() or cite_link.strip():
            cite.insert(0, citation_entry(cite_text, cite_link))
        self.state.written = export_bioimageio(self.state.project, output, cite=cite or None, **fields)
        return self.state.written


class BioimageioForm(PanelBase):
    """The bioimage.io section of notebook 07 (shown inside :class:`~nbseg.ui.export_panel.ExportPanel`;
    its button is not among the panel's autorun buttons: the authors must be a person's)."""

    title = "bioimage.io model package"
    State, Service = BioimageioState, BioimageioService

    def build(self) -> None:
        def text():
            return {"layout": w.Layout(width="560px", height="60px")}

        self.name = control(w.Text, "bioimageio_name", "Model name *")
        self.description = control(w.Textarea, "bioimageio_description", "Description *", **text())
        self.authors = control(w.Textarea, "bioimageio_authors", "Authors *", placeholder="Ada Lovelace; University "
                               "of London; ada-lovelace   (one author per line)", **text())
        self.license = control(w.Dropdown, "bioimageio_license", "License *", options=LICENSES, value=LICENSES[0])
        self.cite_text = control(w.Textarea, "bioimageio_cite_text", "Citation", placeholder="Doe et al. Nuclei in "
                                 "3D. Nat Methods 2024.", **text())
        self.cite_link = control(w.Text, "bioimageio_cite_link", "Citation DOI / URL", placeholder="10.1038/...")
        self.tags = control(w.Text, "bioimageio_tags", "Tags")
        self.training_data = control(w.Textarea, "bioimageio_training_data", "Training data", **text())
        self.output = control(w.Text, "bioimageio_output", "Package file")
        self.overwrite = control(w.Checkbox, "bioimageio_overwrite", "Overwrite an existing package", value=False,
                                 indent=False)
        self.export_button = primary_button("Export bioimage.io package", "bioimageio_export", icon="cube")
        self.on(self.export_button, "bioimage.io export", self._export)  # not in self.buttons: no autorun
        self.project_facts = w.HTML("")
        self.written = w.HTML("")
        self.assemble(self.title, self.project_facts, self.name, self.description, self.authors, self.license,
                      self.cite_text, self.cite_link, self.tags, self.training_data, self.output, self.overwrite,
                      self.export_button, FEEDBACK, self.written,
                      intro="A package that deepImageJ, ilastik, napari and bioimage.io open. Fields marked * are "
                            "required; hover over a field to see what it means. The package is kept only if "
                            "bioimage.io's own test passes on it.")
        self.section = w.Accordion(children=[self.widget])  # what notebook 07 shows: closed until opened
        set_titles(self.section, ["Share the model on bioimage.io (guided export)"])
        collapse(self.section)

    def _open(self) -> None:
        d = self.service.open()
        self.name.value, self.description.value = d["name"], d["description"]
        self.tags.value = ", ".join(d["tags"])
        self.training_data.value = d["training_data"]
        self.output.value = str(d["output"])
        facts = [f"classes: {', '.join(d['class_names'])}",
                 "pixel size: " + (" x ".join(f"{s:g}" for s in d["pixel_sizes"]) + " µm" if d["pixel_sizes"]
                                   else "not recorded in the training files")]
        dice = [r["val_dice"] for r in d["figures"] if r.get("val_dice") is not None]
        if dice:
            facts.append("validation Dice per fold: " + ", ".join(f"{v:.3f}" for v in dice) + " (in the README)")
        self.project_facts.value = note("From the project — " + html.escape("; ".join(facts)) + ".").value
        self.status.set("Fill in the authors (and check the rest), then press 'Export bioimage.io package'.", "info")

    def values(self) -> dict:
        """The form's fields as :meth:`BioimageioService.export` takes them; raises :class:`MissingField`
        naming the first empty required field and what it means."""
        missing = [key for key in REQUIRED if not str(getattr(self, key).value or "").strip()]
        if missing:
            raise MissingField(f"'{getattr(self, missing[0]).description.rstrip(' *')}' is empty. "
                               f"{tip('bioimageio_' + missing[0])}")
        authors = [line for line in self.authors.value.splitlines() if line.strip()]
        return {"authors": authors, "name": self.name.value.strip(), "description": self.description.value.strip(),
                "license": self.license.value, "tags": self.tags.value, "cite_text": self.cite_text.value,
                "cite_link": self.cite_link.value, "training_data": self.training_data.value,
                "overwrite": self.overwrite.value}

    def _export(self) -> None:
        self.written.value = ""
        try:
            path = self.service.export(self.output.value.strip() or None, **self.values())
        except FileExistsError as err:
            raise FileExistsError(f"{self.output.value} exists already: tick '{self.overwrite.description}' to "
                                  "replace it, or give another package file name.") from err
        self.written.value = f"Written: <code>{html.escape(str(path))}</code>"
        self.status.set(f"bioimage.io package written and tested: {path}.", "ok")
