"""The correction notebook's panel, headless: rank with the bundled model, edit with mouse events (as ipyevents
sends them) and typed edits, save and leave out, retrain, reopen in a fresh kernel, and the classic workflow's
live preview. Runs on ipywidgets 7.7 and 8."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("ipywidgets")

from conftest import nuclei_pool  # noqa: E402
from nbseg.labels.corrections import read_decisions, read_rounds  # noqa: E402
from nbseg.ui.correct_service import round_status  # noqa: E402


pytestmark = pytest.mark.usefixtures("panel_env")


@pytest.fixture
def pool(tmp_path):
    return nuclei_pool(tmp_path / "pool", 3)


def click(panel, y, x, kind="click", buttons=0):
    f = panel.viewer._factor
    panel.handle({"type": kind, "dataX": x * f + f // 2, "dataY": y * f + f // 2, "buttons": buttons})


def centre_of(labels, value):
    ys, xs = np.nonzero(labels == value)
    order = np.argsort((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return int(ys[order[0]]), int(xs[order[0]])


def test_rank_edit_save_leave_out_and_reopen(pool, tmp_path, one_thread):
    from nbseg.ui import CorrectPanel

    project = tmp_path / "project"
    panel = CorrectPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert [b.description for b in panel.buttons] == ["Rank images", "Save & next", "Retrain"]
    panel.pool.value, panel.source.value = str(pool), "nuclei"
    panel.rank_button.click()
    assert panel.error is None, panel.errors.message.value
    state = panel.state
    first, labels = state.path, state.editor.labels
    n = int(labels.max())
    assert n > 3 and panel.viewer.rgb is not None
    # delete an object by a click on it, then undo and redo
    target = int(np.bincount(labels.ravel())[1:].argmax()) + 1
    panel.tool.value = "delete"
    click(panel, *centre_of(labels, target))
    assert panel.error is None, panel.errors.message.value
    assert not (state.editor.labels == target).any()
    panel.undo_button.click()
    assert (state.editor.labels == target).any()
    panel.redo_button.click()
    assert not (state.editor.labels == target).any()
    # a brush stroke adds an object where there was background
    background = np.argwhere(state.editor.labels == 0)[0]
    panel.tool.value, panel.radius.value = "add", 2
    click(panel, *background, kind="mousedown", buttons=1)
    click(panel, background[0], min(background[1] + 3, 127), kind="mousemove", buttons=1)
    click(panel, background[0], min(background[1] + 3, 127), kind="mouseup")
    assert state.editor.labels[tuple(background)] > 0 and state.editor.counts["added"] == 1
    # a typed edit: mark a corner not labelled
    panel.typed.value = "unlabelled 0,0; 0,20; 20,20; 20,0 r=0"
    panel.apply_button.click()
    assert panel.error is None, panel.errors.message.value
    assert (state.editor.labels[2:18, 2:18] == state.editor.unlabelled).all()
    panel.save_button.click()
    assert panel.error is None, panel.errors.message.value
    second = state.path
    assert second != first
    decision = read_decisions(project)[first.stem]
    assert decision.decision == "corrected" and decision.edits == {"deleted": 1, "added": 1, "unlabelled": 1}
    saved = tifffile.imread(decision.mask)
    assert (saved == 65535).any() and not (saved == target).any()
    panel.leave_button.click()
    assert read_decisions(project)[second.stem].decision == "left out"
    third = state.path
    # a fresh kernel: the decided images are not proposed again
    again = CorrectPanel(project)
    again.pool.value = str(pool)
    again.rank_button.click()
    assert again.error is None, again.errors.message.value
    assert again.state.path == third and len(again.state.ranking) == 1


@pytest.mark.slow  # trains
def test_retrain_makes_a_round_that_proposes_next(pool, tmp_path, one_thread):
    from nbseg.ui import CorrectPanel

    project = tmp_path / "project"
    panel = CorrectPanel(project)
    panel.pool.value, panel.source.value = str(pool), "nuclei"
    panel.rank_button.click()
    before = list(panel.state.ranking["name"])
    panel.save_button.click()  # accepted as proposed
    panel.save_button.click()
    panel.minutes.value = 0.05  # the least: a round's mechanics, not what it learns
    panel._retrain(wait=True)
    assert panel.error is None, panel.errors.message.value
    rounds = read_rounds(project)
    assert len(rounds) == 1 and rounds[0]["images"] == 2 and 0 <= rounds[0]["val_dice"] <= 1
    assert panel.state.source.endswith("round1") and panel.source.value == panel.state.source
    assert sorted(panel.state.ranking["name"]) == sorted(n for n in before if n not in read_decisions(project))
    assert "Rounds" in panel.rounds.value and panel.plot.value
    assert panel.status.text == round_status(rounds[0])[0]


def test_a_poor_round_is_a_warning_never_green():
    from nbseg.metrics.verdict import POOR_DICE

    text, kind = round_status({"round": 2, "images": 3, "val_dice": POOR_DICE / 10})
    assert kind == "warn" and "Training failed" in text and "Round 2: trained on 3 image(s)" in text
    text, kind = round_status({"round": 2, "images": 3, "val_dice": 0.9})
    assert kind == "ok" and "0.900" in text


@pytest.mark.slow  # trains
def test_retraining_never_trains_on_the_test_images(pool, tmp_path, one_thread):
    """The project's test images (notebook 01) are among the earlier masks the training set links, but a
    correction round holds them back as the project's training does."""
    from nbseg.config import Config
    from nbseg.data import sample
    from nbseg.data.split import read_split
    from nbseg.model.unet import load_model_file
    from nbseg.ui import CorrectPanel

    src, earlier = sample("nuclei2d"), tmp_path / "earlier"
    names = [p.name for p in sorted(src["images"].glob("*.tif"))[3:6]]
    for kind in ("images", "masks"):
        (earlier / kind).mkdir(parents=True)
        for name in names:
            tifffile.imwrite(earlier / kind / name, tifffile.imread(src[kind] / name)[:128, :128])
    project, test = tmp_path / "project", names[0].removesuffix(".tif")
    project.mkdir()
    Config(data={"images": earlier / "images", "masks": earlier / "masks", "test_fraction": 0.2}).save(project)
    (project / "split.json").write_text(f'{{"test": ["{test}"]}}')
    panel = CorrectPanel(project)
    panel.pool.value, panel.source.value = str(pool), "nuclei"
    panel.rank_button.click()
    panel.save_button.click()
    panel.minutes.value = 0.05
    panel._retrain(wait=True)
    assert panel.error is None, panel.errors.message.value
    round1 = project / "rounds" / "round1"
    split = read_split(round1)
    assert split["test"] == [test] and all(test not in f["train"] + f["val"] for f in split["folds"])
    assert load_model_file(round1 / "models" / "fold0.pt")[1]["images"]["test"] == [test]
    row = read_rounds(project)[0]  # the training set links it, but the round counts what it learnt from
    assert (row["images"], row["test_images"]) == (3, 1)
    assert "trained on 3 image(s) (1 test image(s) kept out)" in round_status(row)[0]
    # ... and scored on it, as nbseg predict and evaluate would: the round table's test columns
    from nbseg.metrics.evaluation import evaluate_folders

    assert sorted(p.name for p in (round1 / "predictions").glob("*.labels.ome.tif")) == [f"{test}.labels.ome.tif"]
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / names[0]).symlink_to(earlier / "masks" / names[0])
    expected = evaluate_folders(round1 / "predictions", tmp_path / "truth").summary
    assert (row["test_f1"], row["test_dice"]) == (round(expected["f1@0.5"], 4), round(expected["dice"], 4))
    assert 0 < row["test_dice"] <= 1 and "test_f1" in panel.rounds.value
    assert f"On the test images: F1@0.5 {row['test_f1']:.3f}, Dice {row['test_dice']:.3f}." in round_status(row)[0]


def test_classic_workflow_previews_live(pool, tmp_path):
    from nbseg.ui import CorrectPanel

    panel = CorrectPanel(tmp_path / "project")
    panel.pool.value, panel.source.value = str(pool), "classic"
    assert panel.classic_box.layout.display == ""
    panel.rank_button.click()
    assert panel.error is None, panel.errors.message.value
    assert panel.state.proposed_by == "classic workflow"
    coarse = int(panel.state.editor.labels.max())
    panel.min_size.value = 400  # only large objects stay
    assert panel.error is None, panel.errors.message.value
    assert int(panel.state.editor.labels.max()) < coarse


@pytest.mark.slow  # trains
def test_images_without_masks_then_two_rounds_keep_every_mask(pool, tmp_path, one_thread):
    """01 takes images without masks; each retraining makes the project's masks the training set, and the
    second round still trains on the first round's images."""
    from nbseg.config import Config
    from nbseg.ui import CorrectPanel, DataPanel

    project = tmp_path / "project"
    data = DataPanel(project)
    data.images.value = str(pool)
    data.check.click()
    assert data.error is None, data.errors.message.value
    assert "no masks yet" in data.summary.value and "02_correct" in data.status.text
    panel = CorrectPanel(project)
    assert panel.pool.value == str(pool)
    panel.source.value = "nuclei"
    panel.rank_button.click()
    panel.save_button.click()
    panel.minutes.value = 0.05
    panel._retrain(wait=True)
    assert panel.error is None, panel.errors.message.value
    masks = Config.load(project).data.masks
    assert len(list(masks.iterdir())) == 1
    panel.save_button.click()
    panel._retrain(wait=True)
    assert panel.error is None, panel.errors.message.value
    assert len(list(Config.load(project).data.masks.iterdir())) == 2
    assert [r["images"] for r in read_rounds(project)] == [1, 2]


def test_view_carries_the_images_scale_bar_and_a_multiclass_models_legend(tmp_path):
    """The shown image's µm give a scale bar (128 pixels of 0.5 µm: 10 µm); a multi-class model's proposals
    are its classes, named in a legend under the picture; without pixel sizes, no bar."""
    from conftest import assert_scale_bar
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.ui import CorrectPanel
    from nbseg.ui import annotate
    from nbseg.ui import overlay as ov

    names = ["background", "nucleus", "cytoplasm"]
    model = make_project(tmp_path / "model", kind="multiclass", class_names=names)
    panel = CorrectPanel(tmp_path / "project")
    panel.pool.value, panel.source.value = str(nuclei_pool(tmp_path / "pool", 1, micrometres=0.5)), str(model)
    panel.rank_button.click()
    assert panel.error is None, panel.errors.message.value
    viewer = panel.viewer
    assert_scale_bar(viewer, 0.5, "10 µm")
    assert viewer.classes == names[1:]
    legend = viewer.rgb[-annotate.legend(names[1:], viewer.rgb.shape[1]).shape[0]:]
    for k in range(2):
        assert (legend == ov.LABEL_COLORS[k]).all(axis=-1).sum() >= 25, names[k + 1]
    plain = CorrectPanel(tmp_path / "plain")
    plain.pool.value, plain.source.value = str(nuclei_pool(tmp_path / "uncalibrated", 1)), "classic"
    plain.rank_button.click()
    assert plain.error is None, plain.errors.message.value
    assert plain.viewer.rgb is not None and plain.viewer.pixel_size is None and plain.viewer.classes is None


def test_3d_view_has_the_bar_on_its_slices_in_xy_micrometres(tmp_path):
    """A stack of 2 µm slices of 0.25 µm pixels: a 2 µm bar on the XY slice (64 pixels, 16 µm wide), with
    the orthogonal views shown or not, which are stretched 8 times in Z."""
    from conftest import assert_scale_bar

    from nbseg.io.images import write_ome_tiff
    from nbseg.ui import CorrectPanel

    stack = np.zeros((8, 64, 64), np.float32)
    stack[2:6, 10:30, 10:30] = stack[3:7, 40:56, 36:60] = 100
    stack += np.random.default_rng(0).normal(0, 5, stack.shape).astype(np.float32)
    write_ome_tiff(tmp_path / "pool" / "stack.ome.tif", stack, axes="ZYX", pixel_sizes=(2.0, 0.25, 0.25))
    panel = CorrectPanel(tmp_path / "project")
    panel.pool.value, panel.source.value = str(tmp_path / "pool"), "classic"
    panel.rank_button.click()
    assert panel.error is None, panel.errors.message.value
    viewer = panel.viewer
    assert viewer.is3d and viewer.z_scale == pytest.approx(8.0)
    assert_scale_bar(viewer, 0.25, "2 µm")
    viewer.ortho.value = True
    assert_scale_bar(viewer, 0.25, "2 µm")
