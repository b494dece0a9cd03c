"""Core helpers of the panels (nbseg.overlay, nbseg.project) and the UI glue (compat, glossary, errors)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbseg.ui import overlay as ov
from nbseg.ui import teaching as nbp


def test_overlay_colours_labels_and_keeps_background():
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    labels = np.zeros((8, 8), int)
    labels[2:5, 2:5] = 1
    rgb = ov.overlay(image, labels, alpha=0.5)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    grey = ov.gray_rgb(image)
    assert np.array_equal(rgb[7, 7], grey[7, 7])  # background untouched
    assert not np.array_equal(rgb[3, 3], grey[3, 3])  # object tinted
    excluded = np.zeros((8, 8), bool)
    excluded[6:, :] = True
    assert (ov.overlay(image, excluded=excluded)[6:, :, 0] >= grey[6:, :, 0]).all()


def test_overlay_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="differs"):
        ov.overlay(np.zeros((4, 4)), np.zeros((5, 5), int))


def test_colormap_and_png():
    rgb = ov.colormap(np.array([[0.0, 0.5, 1.0]]), "viridis")
    assert tuple(rgb[0, 0]) == (68, 1, 84) and tuple(rgb[0, 2]) == (253, 231, 37)
    data = ov.png_bytes(ov.upscale(rgb, 16))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown"):
        ov.colormap(rgb[..., 0], "jet")


def test_orthogonal_planes_and_plane():
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    planes = ov.orthogonal(vol, 1, 2, 3)
    assert planes["yx"].shape == (5, 6) and planes["zx"].shape == (4, 6) and planes["zy"].shape == (4, 5)
    assert planes["zx"][1, 3] == vol[1, 2, 3] == planes["zy"][1, 2]
    assert ov.plane(vol[None], 2).shape == (5, 6)
    assert ov.stretch_z(planes["zx"], 2.2).shape == (8, 6)
    assert ov.z_scale_of((2.0, 0.5, 0.5)) == 4.0
    assert ov.z_scale_of((None, 0.5, 0.5)) == ov.z_scale_of((0.5, 0.5)) == ov.z_scale_of(None) == 1.0


def test_typed_vertices_fill_a_polygon():
    from nbseg.labels.curation import polygons_to_mask  # what the Draw tab fills typed corners with

    vertices = ov.parse_vertices("1,1; 1,8\n8,8; (8,1)")
    assert vertices == [(1, 1), (1, 8), (8, 8), (8, 1)]
    mask = polygons_to_mask([vertices], (10, 10)) > 0
    assert mask[4, 4] and not mask[0, 0] and not mask[9, 9]
    with pytest.raises(ValueError, match="at least 3"):
        ov.parse_vertices("1,1; 2,2")
    with pytest.raises(ValueError, match="not a number"):
        ov.parse_vertices("1,a; 2,2; 3,3")


def test_quick_mode_and_sample(monkeypatch, tmp_path):
    monkeypatch.delenv("NBSEG_QUICK", raising=False)
    monkeypatch.delenv("NBSEG_AUTORUN", raising=False)
    assert not nbp.quick_mode() and not nbp.autorun()
    monkeypatch.setenv("NBSEG_QUICK", "1")
    assert nbp.quick_mode() and nbp.autorun()
    monkeypatch.setenv("NBSEG_AUTORUN", "0")
    assert not nbp.autorun()
    monkeypatch.setenv("NBSEG_SAMPLE", "nuclei3d")
    assert nbp.default_sample() == "nuclei3d"
    monkeypatch.setenv("NBSEG_PROJECT", str(tmp_path / "p"))
    assert nbp.default_project() == tmp_path / "p"


def test_apply_quick_trains_the_plan_for_a_time_budget():
    from nbseg.config import Config, DataConfig

    given = Config(data=DataConfig(images=Path("x")), model={"patch": [16, 48, 48]}, train={"epochs": 3,
                                                                                            "batch_size": 1})
    for dims in (2, 3):
        cfg = nbp.apply_quick(given, dims)
        assert cfg.train.minutes == nbp.QUICK_MINUTES and cfg.train.epochs is None
        # the plan picks the network, patch, batch and epoch length (a slice model for the 3D sample on a CPU)
        assert cfg.model.patch is None and cfg.train.batch_size is None and cfg.train.steps_per_epoch is None
        assert cfg.model.size == "S"
    assert given.train.epochs == 3  # a copy: the config given is left alone


def test_quick_retraining_takes_a_tenth_of_the_budget(monkeypatch):
    """02_correct's retraining in quick mode: 0.2 of the 2 minutes, and shorter with NBSEG_QUICK_MINUTES."""
    from nbseg.ui.correct_service import quick_retrain_minutes

    monkeypatch.delenv("NBSEG_QUICK_MINUTES", raising=False)
    assert quick_retrain_minutes() == pytest.approx(0.2)
    monkeypatch.setenv("NBSEG_QUICK_MINUTES", "0.5")
    assert quick_retrain_minutes() == pytest.approx(0.05)


def test_needs_step_names_the_notebook(tmp_path):
    assert "01_data" in nbp.needs_step(tmp_path, "config")
    (tmp_path / "config.yaml").write_text("data: {}\n")
    assert nbp.needs_step(tmp_path, "config") == ""


# ---------------------------------------------------------------- UI glue

def test_compat_tooltip_and_titles():
    ipw = pytest.importorskip("ipywidgets")
    from nbseg.ui import compat

    for widget in (ipw.Text(description="a"), ipw.Button(description="b"), ipw.Checkbox(), ipw.IntSlider()):
        compat.set_tooltip(widget, "help")
        assert compat.get_tooltip(widget) == "help"
    tab = ipw.Tab(children=[ipw.HTML(), ipw.HTML()])
    compat.set_titles(tab, ["one", "two"])
    assert compat.get_titles(tab) == ["one", "two"]
    acc = ipw.Accordion(children=[ipw.HTML()])
    compat.collapse(acc)
    assert acc.selected_index is None


def test_glossary_doc_matches_code():
    from nbseg.ui.glossary import TERMS, glossary_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"
    assert doc.read_text(encoding="utf-8") == glossary_markdown(), \
        "docs/glossary.md is out of date: run `python -m nbseg.ui.glossary`"
    for needed in ("STAPLE", "Otsu", "TTA", "Patch size", "Excluding mask", "Merging mask", "Dice", "IoU",
                   "Learning rate", "Epoch", "Batch size", "Uncertainty", "Probability map", "Overfitting",
                   "Noise2Void", "N2V2", "Blind spot", "CARE", "PSNR", "SSIM"):
        assert any(needed.lower() in t.name.lower() for t in TERMS.values()), needed


def test_error_box_shows_message_and_fix_and_logs(tmp_path):
    pytest.importorskip("ipywidgets")
    from nbseg.ui.common import ErrorBox

    box = ErrorBox()
    try:
        raise FileNotFoundError("Folder /nope does not exist.")
    except FileNotFoundError as err:
        box.show(err, project=tmp_path, action="Check data")
    assert "Folder /nope does not exist." in box.message.value and "Fix:" in box.message.value
    assert "Traceback" not in box.message.value and "Traceback" in box.trace.value
    assert box.details.selected_index is None  # collapsed
    assert "Traceback" in (tmp_path / "logs" / "ui.log").read_text()
