"""Notebook 07's guided bioimage.io export form, driven headless (``.value`` and ``.click()``): the
fields are prefilled from the project and explained on hover, the button writes a package that
bioimageio.core's test passed, and the rdf/README carry the form's fields. Runs on ipywidgets 7.7 and 8."""
from __future__ import annotations

import zipfile

import pytest
import yaml

ipw = pytest.importorskip("ipywidgets")

from nbseg.config import Config, DataConfig  # noqa: E402
from nbseg.predict.bioimageio_docs import author_dicts, citation_entry  # noqa: E402
from nbseg.model.bioimageio_load import BioimageioError  # noqa: E402
from nbseg.ui import compat  # noqa: E402
from nbseg.ui.common import walk  # noqa: E402

import model_projects  # noqa: E402  (tests/model_projects.py)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
FIELDS = ("name", "description", "authors", "license", "cite_text", "cite_link", "tags", "training_data", "output",
          "overwrite", "export_button")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_data):
    """A one-fold 2D project on real DSB2018 images whose plan records a pixel size of 0.5 µm."""
    root = model_projects.make_project(tmp_path_factory.mktemp("form") / "nuclei_dsb", dims=2, patch=[64, 64],
                                       plan={"spacing": [0.5, 0.5]})
    Config(data=DataConfig(images=shared_data / "dsb2018" / "images", masks=shared_data / "dsb2018" / "masks")).save(root)
    return root


def read_zip(path):
    with zipfile.ZipFile(path) as archive:
        return yaml.safe_load(archive.read("rdf.yaml")), archive.read("README.md").decode()


# ---------------------------------------------------------------- core helpers (no bioimageio needed)

def test_authors_and_citations_are_parsed():
    assert author_dicts("Ada Lovelace; University of London; @ada-l") == [
        {"name": "Ada Lovelace", "affiliation": "University of London", "github_user": "ada-l"}]
    assert author_dicts(["Ada Lovelace", {"name": "Alan Turing", "affiliation": ""}]) == [
        {"name": "Ada Lovelace"}, {"name": "Alan Turing"}]
    with pytest.raises(BioimageioError, match="authors is missing"):
        author_dicts(["  ", "; Some Lab"])
    with pytest.raises(BioimageioError, match="not a GitHub user name"):
        author_dicts("Ada; Lab; ada lovelace")
    assert citation_entry("Doe 2024.", "https://doi.org/10.1038/x1") == {"text": "Doe 2024.", "doi": "10.1038/x1"}
    assert citation_entry("Doe 2024.", "https://example.org/p") == {"text": "Doe 2024.", "url": "https://example.org/p"}
    with pytest.raises(ValueError, match="neither a DOI"):
        citation_entry("Doe 2024.", "see the paper")


# ---------------------------------------------------------------- the form

def test_form_is_prefilled_and_every_field_explained(project):
    from nbseg.ui.bioimageio_form import BioimageioForm

    form = BioimageioForm(project)
    assert form.error is None, form.errors.message.value
    assert form.name.value == "nuclei_dsb" and "segmentation" in form.description.value
    assert "nbseg" in form.tags.value and form.license.value == "CC-BY-4.0"
    assert "images from `images` with masks from `masks`" in form.training_data.value
    assert "0.5 x 0.5 µm" in form.training_data.value and "0.5 x 0.5 µm" in form.project_facts.value
    assert form.output.value.endswith("nuclei_dsb.bioimageio.zip")
    assert form.buttons == [] and form.export_button.button_style == "primary"  # never pressed by autorun
    for key in FIELDS:
        assert len(compat.get_tooltip(getattr(form, key))) > 40, key
    assert "bioimage.io" in compat.get_tooltip(form.authors) and "SPDX" in compat.get_tooltip(form.license)


def test_form_refuses_an_empty_required_field(project, tmp_path):
    from nbseg.ui.bioimageio_form import BioimageioForm

    form = BioimageioForm(project)
    form.output.value = str(tmp_path / "m.zip")
    form.authors.value = "  \n"
    form.export_button.click()
    message = form.errors.message.value
    assert form.error is not None and "Authors" in message and "credits them" in message
    assert "#c62828" in message  # the red box
    assert not (tmp_path / "m.zip").exists()
    form.authors.value, form.name.value = "Ada Lovelace", ""
    form.export_button.click()
    assert "Model name" in form.errors.message.value and "title people see" in form.errors.message.value


@pytest.mark.slow
def test_form_exports_a_tested_package_with_its_fields(project, tmp_path):
    pytest.importorskip("bioimageio.core", reason="needs bioimageio.core (pip install 'nbseg[bioimageio]')")
    from nbseg.ui.bioimageio_form import BioimageioForm

    form = BioimageioForm(project)
    out = tmp_path / "nuclei.zip"
    form.output.value = str(out)
    form.name.value = "DSB nuclei (fluorescence)"
    # 'bioimageiobot' is a GitHub user bioimageio.spec knows, so no network is needed to accept it
    form.authors.value = "Ada Lovelace; University of London; bioimageiobot\nAlan Turing"
    form.license.value = "MIT"
    form.cite_text.value, form.cite_link.value = "Caicedo et al. Nucleus segmentation. Nat Methods 2019.", \
        "https://doi.org/10.1038/s41592-019-0612-7"
    form.tags.value = "nuclei, fluorescence, dsb2018"
    form.training_data.value = "DSB2018 stage 1 training images (fluorescence nuclei)."
    form.export_button.click()
    assert form.error is None, form.errors.message.value
    assert out.exists() and str(out) in form.written.value
    rdf, readme = read_zip(out)
    assert rdf["name"] == "DSB nuclei (fluorescence)" and rdf["license"] == "MIT"
    assert rdf["authors"] == [{"name": "Ada Lovelace", "affiliation": "University of London",
                               "github_user": "bioimageiobot"}, {"name": "Alan Turing"}]
    assert rdf["cite"][0] == {"text": "Caicedo et al. Nucleus segmentation. Nat Methods 2019.",
                              "doi": "10.1038/s41592-019-0612-7"}
    assert "U-Net" in rdf["cite"][1]["text"] and rdf["tags"] == ["nuclei", "fluorescence", "dsb2018"]
    assert rdf["config"]["nbseg"]["training_data"] == "DSB2018 stage 1 training images (fluorescence nuclei)."
    assert "## Training data\n\nDSB2018 stage 1" in readme and "doi:10.1038/s41592-019-0612-7" in readme
    space = [a for a in rdf["inputs"][0]["axes"] if a["type"] == "space"]
    assert [(a["scale"], a["unit"]) for a in space] == [(0.5, "micrometer")] * 2
    # an existing package is kept unless 'overwrite' is ticked
    before = out.stat().st_mtime_ns
    form.export_button.click()
    assert "Overwrite an existing package" in form.errors.message.value and out.stat().st_mtime_ns == before
    form.overwrite.value = True
    form.export_button.click()
    assert form.error is None, form.errors.message.value
    assert out.stat().st_mtime_ns != before


def test_notebook_06_panel_holds_the_form(project):
    """ExportPanel shows the form in a closed section even before predictions exist (its own error
    says to run 05 first); the form's button is not among the buttons autorun presses."""
    from nbseg.ui import ExportPanel

    panel = ExportPanel(project)
    assert "06_predict" in panel.errors.message.value
    assert panel.bioimageio.error is None and panel.bioimageio.name.value == "nuclei_dsb"
    assert panel.bioimageio.section in list(walk(panel.widget))
    assert panel.bioimageio.export_button not in panel.buttons
