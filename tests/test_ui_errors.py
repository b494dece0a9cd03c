"""Each panel's user-facing errors, driven as a user would (set ``.value``, ``.click()`` the button): the
panel shows a red message with the fix (the traceback only in the collapsed details), and writes nothing
in the project but its error log."""
from __future__ import annotations

import pytest

ipw = pytest.importorskip("ipywidgets")

from nbseg.config import Config  # noqa: E402
from nbseg.data import sample  # noqa: E402
from nbseg.project import UI_LOG  # noqa: E402

from model_projects import make_project  # noqa: E402
from test_ui_panels import quick_env  # noqa: E402,F401  (quick mode, no autorun, Agg: autouse for this module)


@pytest.fixture
def project(tmp_path):
    """A project after 01_data (the bundled 2D sample) with one model, as 04 leaves it; no predictions."""
    src = sample("nuclei2d")
    root = tmp_path / "project"
    Config(data={"images": src["images"], "masks": src["masks"]}, model={"size": "S", "patch": [32, 32]}).save(root)
    return make_project(root, kind="binary")


def files(root) -> dict:
    """Every file under ``root`` but the error log, with its size and modification time."""
    return {p.relative_to(root): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and p.relative_to(root) != UI_LOG}


def _data_panel_without_images(panel):
    panel.images.value = ""
    return panel.check


def _train_panel_bad_patch(panel):
    panel.patch.value = "64,sixty-four"
    panel.replace.value = True  # the project holds a model: the question of replacing it is another test's
    assert panel.train_button.disabled  # the live rule check disables Train; a click still must not crash
    return panel.train_button


def _predict_panel_no_model(panel):
    panel.models.value = ()
    return panel.predict_button


def _predict_panel_bad_tile(panel):
    panel.tile.value = "32,x"
    return panel.predict_button


def _predict_panel_missing_folder(panel):
    panel.inputs.value = "no_such_folder_of_images"
    return panel.predict_button


def _lr_panel_negative_rate(panel):
    panel.lr.value = -3e-3  # a sign slip
    return panel.accept_button


def _qc_panel_one_expert(panel):
    panel.experts.value = str(sample("nuclei2d")["masks"])
    return panel.experts_button


CASES = [
    ("DataPanel", _data_panel_without_images, "No image folder given"),
    ("LabelQCPanel", _qc_panel_one_expert, "Give two or more expert folders"),
    ("LRPanel", _lr_panel_negative_rate, "give a positive learning rate"),
    ("TrainPanel", _train_panel_bad_patch, "sixty-four"),
    ("PredictPanel", _predict_panel_no_model, "No model chosen"),
    ("PredictPanel", _predict_panel_bad_tile, "32,x"),
    ("PredictPanel", _predict_panel_missing_folder, "no_such_folder_of_images"),
    ("ExportPanel", lambda panel: panel.export_button, "Nothing to export"),
    ("ExportPanel", lambda panel: panel.instances_button, "No predictions are open"),
]


@pytest.mark.parametrize("name, act, expected", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_panel_error_is_a_red_message_and_writes_nothing(project, name, act, expected):
    import nbseg.ui as ui

    before = files(project)
    panel = getattr(ui, name)(project)
    button = act(panel)
    button.click()
    assert panel.error is not None, f"{name}: no error shown for {expected!r}"
    message = panel.errors.message.value
    assert expected in message and "Fix:" in message and "#c62828" in message, message
    assert "Traceback" not in message and panel.errors.widget.layout.display == ""
    assert panel.errors.details.selected_index is None  # the traceback stays folded away
    assert "failed" in panel.status.text
    assert not button.disabled or name == "TrainPanel"  # the button works again after the error
    assert files(project) == before, f"{name} wrote in the project on an error"
    assert (project / UI_LOG).is_file()  # ... but for the log a bug report needs
