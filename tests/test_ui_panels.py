"""Layer 1: the panels driven headless (``.value`` and ``.click()``) through a full quick-mode run on
the bundled sample, asserting on their state and on the files they write. Runs on ipywidgets 7.7
(``make test-widgets7``) and 8.

Each test starts from a copy of the project stage it needs (configured, trained, predicted), built once
by a module fixture, and changes only its copy: any one test runs alone, and in any order
(``pytest $(pytest --co -q tests/test_ui_panels.py | grep :: | tac)`` runs them in reverse)."""
from __future__ import annotations

import html
import json
import os
import shutil

import numpy as np
import pytest

ipw = pytest.importorskip("ipywidgets")

from nbseg.config import Config  # noqa: E402
from nbseg.ui import compat  # noqa: E402
from nbseg.ui.common import walk  # noqa: E402

INPUTS = (ipw.Text, ipw.Dropdown, ipw.ToggleButtons, ipw.IntSlider, ipw.FloatSlider, ipw.Checkbox,
          ipw.BoundedIntText, ipw.BoundedFloatText, ipw.FloatText, ipw.IntText, ipw.Button, ipw.Textarea,
          ipw.SelectMultiple, ipw.RadioButtons)


@pytest.fixture(scope="module", autouse=True)
def quick_env():
    old = {k: os.environ.get(k) for k in ("NBSEG_QUICK", "NBSEG_AUTORUN", "MPLBACKEND")}
    os.environ.update(NBSEG_QUICK="1", NBSEG_AUTORUN="0", MPLBACKEND="Agg")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def copy_of(stage, tmp_path):
    """A test's own copy of a stage's project folder (the stage stays as its fixture left it)."""
    return shutil.copytree(stage, tmp_path / stage.name)


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    """The sample project as notebook 01 saves it (quick mode): config.yaml, no model yet."""
    from nbseg.ui import DataPanel

    root = tmp_path_factory.mktemp("configured") / "nuclei2d"
    panel = DataPanel(root, sample_name="nuclei2d")
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    return root


@pytest.fixture(scope="module")
def trained(configured, tmp_path_factory):
    """``(project, panel)``: a copy of ``configured`` trained by notebook 05 (2 epochs of 4 steps)."""
    from nbseg.ui import TrainPanel

    root = copy_of(configured, tmp_path_factory.mktemp("trained"))
    panel = TrainPanel(root)
    panel.budget.value = "epochs"  # quick mode trains for minutes; a few epochs keep these tests short
    panel.epochs.value = 2
    panel.steps.value = 4
    panel.train_button.click()
    assert panel.error is None, panel.errors.message.value
    return root, panel


@pytest.fixture(scope="module")
def predicted(trained, tmp_path_factory):
    """``(project, panel)``: a copy of ``trained`` whose images notebook 06 predicted (no TTA)."""
    from nbseg.ui import PredictPanel

    root = copy_of(trained[0], tmp_path_factory.mktemp("predicted"))
    panel = PredictPanel(root)
    assert panel.error is None, panel.errors.message.value
    assert panel.models.value and panel.tta.value == "flips"  # the default, before the quick setting
    panel.tta.value = "none"
    panel.predict_button.click()
    assert panel.error is None, panel.errors.message.value
    return root, panel


def assert_tooltips(panel):
    missing = [f"{type(c).__name__}({getattr(c, 'description', '')!r})" for c in walk(panel.widget)
               if isinstance(c, INPUTS) and not compat.get_tooltip(c)]
    assert missing == [], f"controls without a tooltip: {missing}"


def assert_primary_order(panel, names):
    assert [b.description for b in panel.buttons] == names
    assert all(b.button_style == "primary" for b in panel.buttons)


# ---------------------------------------------------------------- 01 data

def test_01_data_sample_preview_and_config(tmp_path):
    from nbseg.ui import DataPanel

    project = tmp_path / "nuclei2d"
    panel = DataPanel(project, sample_name="nuclei2d")
    assert_tooltips(panel)
    assert_primary_order(panel, ["Check data & save project"])
    assert panel.images.value.endswith("nuclei2d/images")
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    assert panel.state.summary["dims"] == 2 and panel.state.summary["images"] == 24
    assert "2D images" in panel.summary.value and panel.dims.value == "2"
    assert panel.viewer.image_widget.value[:4] == b"\x89PNG"
    panel.index.value = 3
    assert panel.viewer.title.value.count("dsb_03")
    cfg = Config.load(project)
    assert cfg.model.size == "S" and cfg.train.minutes == 2.0 and cfg.train.epochs is None  # quick mode
    again = DataPanel(project)  # a fresh kernel finds the project on disk
    assert again.sample.value == "nuclei2d" and "config.yaml found" in again.status.text


def test_01_data_error_is_explained_not_raised(tmp_path):
    from nbseg.ui import DataPanel

    panel = DataPanel(tmp_path / "bad")
    panel.images.value = str(tmp_path / "no_such_folder")
    panel.masks.value = str(tmp_path / "no_masks")
    panel.check.click()
    assert panel.error is not None
    assert "does not exist" in panel.errors.message.value and "Fix:" in panel.errors.message.value
    assert "Traceback" not in panel.errors.message.value
    assert panel.errors.details.selected_index is None
    assert "Traceback" in (tmp_path / "bad" / "logs" / "ui.log").read_text()
    with pytest.raises(Exception, match="does not exist"):
        panel.press_all(strict=True)


def test_01_test_set_is_held_back_and_saved(tmp_path):
    """Notebook 01 holds back a seeded fifth as the test set by default, says which, and saves it in split.json;
    0 holds back none (and says so); names instead of a share hold back those."""
    from nbseg.data.split import read_split
    from nbseg.ui import DataPanel

    project = tmp_path / "nuclei2d"
    panel = DataPanel(project, sample_name="nuclei2d")
    assert panel.test_fraction.value == 0.2
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    test = read_split(project)["test"]
    assert len(test) == 5 and panel.state.test == test and Config.load(project).data.test_fraction == 0.2
    assert "Test set: 5 image(s)</b> held back" in panel.summary.value and test[0] in panel.summary.value
    panel.test_fraction.value = 0.0
    panel.check.click()
    assert read_split(project)["test"] == [] and "No test set" in panel.summary.value
    panel.test_fraction.value = 0.2
    panel.test_names.value = "dsb_07_4829177d, dsb_03_2227fd9b"  # names win over the share
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    assert read_split(project)["test"] == ["dsb_03_2227fd9b", "dsb_07_4829177d"] and panel.test_fraction.value == 0
    again = DataPanel(project)  # a fresh kernel shows what was saved
    assert (again.test_fraction.value, again.test_names.value) == (0.0, "dsb_07_4829177d, dsb_03_2227fd9b")
    panel.test_names.value = "dsb_99"
    panel.check.click()
    assert panel.error is not None and "dsb_99, not among the 24 images" in panel.errors.message.value


# ---------------------------------------------------------------- 03 LR finder

@pytest.mark.slow  # an LR sweep
def test_04_lr_finder_sweep_and_accept(configured, tmp_path):
    from nbseg.ui import LRPanel

    project = copy_of(configured, tmp_path)
    panel = LRPanel(project)
    assert panel.error is None
    assert_tooltips(panel)
    assert_primary_order(panel, ["Run LR sweep", "Use suggested rate"])
    panel.steps.value = 12
    panel.run_button.click()
    assert panel.error is None, panel.errors.message.value
    assert panel.plot.value[:4] == b"\x89PNG" and "Suggested learning rate" in panel.result_text.value
    assert (project / "lr_finder.json").exists()
    assert panel.progress.value == len(panel.state.result.lrs)
    panel.lr.value = 2e-3
    panel.accept_button.click()
    assert Config.load(project).train.lr == pytest.approx(2e-3)


# ---------------------------------------------------------------- 04 train

def test_04_patch_rule_is_checked_live(configured, tmp_path):
    from nbseg.ui import TrainPanel

    project = copy_of(configured, tmp_path)
    panel = TrainPanel(project)
    assert panel.error is None
    assert_tooltips(panel)
    assert_primary_order(panel, ["Train"])
    assert panel.replace.layout.display == "none", "no trained model: nothing to replace"
    panel.patch.value = "60,60"
    assert panel.train_button.disabled and "Nearest valid sizes" in panel.rule.value
    panel.patch.value = "16,64,64"
    assert panel.train_button.disabled and "2D" in panel.rule.value
    panel.size.value = "L"
    panel.patch.value = "64,64"
    assert not panel.train_button.disabled and "divisible by 16" in panel.rule.value


def test_04_shows_the_plan_nbseg_train_prints(configured, tmp_path):
    """Notebook 05 and `nbseg train` show one plan: the same object from the same data and settings."""
    from nbseg.data import load_dataset
    from nbseg.train.plan import plan_training
    from nbseg.train.trainer import training_dataset
    from nbseg.ui import TrainPanel

    project = copy_of(configured, tmp_path)
    panel = TrainPanel(project)
    assert panel.error is None, panel.errors.message.value
    config = Config.load(project)
    dataset = training_dataset(config, project, load_dataset(config.data))  # as nbseg train: no test image
    assert len(dataset.test) == 5 and not set(dataset.test) & set(dataset.names)
    plan, _ = plan_training(config, dataset)
    assert panel.state.plan == plan
    assert plan.lines()[0] in panel.plan.value and panel.patch.value == ",".join(map(str, plan.patch))


@pytest.mark.slow  # training
def test_05_train_plot_files_and_resume(trained, tmp_path):
    from nbseg.ui import TrainPanel

    project, panel = trained
    assert (project / "models" / "fold0.pt").exists() and (project / "history" / "fold0.csv").exists()
    assert panel.callback.plots_drawn == 2 and panel.plot.value[:4] == b"\x89PNG"
    assert "<progress" in panel.bars.value and "val Dice" in panel.bars.value
    assert "Trained 1 model" in panel.status.text
    assert Config.load(project).train.epochs == 2
    panel = TrainPanel(copy_of(project, tmp_path))  # a fresh kernel on a copy: the stage stays as it was
    panel.epochs.value = 3
    panel.resume_button.click()  # continues from the checkpoint: one more epoch
    assert panel.error is None, panel.errors.message.value
    assert [h["epoch"] for h in panel.state.history] == [0, 1, 2]
    assert "Resumed from the checkpoint on disk at epoch 3." in panel.log.value


@pytest.mark.slow  # training
def test_05_train_asks_before_replacing_the_trained_model(trained, tmp_path):
    from nbseg.ui import TrainPanel

    project = copy_of(trained[0], tmp_path)
    files = [project / "models" / "fold0.pt", project / "config.yaml", project / "history" / "fold0.csv"]
    before = [f.stat().st_mtime_ns for f in files]
    panel = TrainPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.replace.layout.display == "" and not panel.replace.value
    panel.epochs.value, panel.steps.value = 1, 2
    panel.train_button.click()
    message = html.unescape(panel.errors.message.value)
    assert panel.error is not None and "holds a trained model already" in message
    assert "tick 'Replace the trained model'" in message and "press 'Resume from disk'" in message
    assert [f.stat().st_mtime_ns for f in files] == before, "refused before the settings are saved"
    panel.replace.value = True
    panel.train_button.click()
    assert panel.error is None, panel.errors.message.value
    assert [h["epoch"] for h in panel.state.history] == [0], "started over"
    assert all(f.stat().st_mtime_ns != t for f, t in zip(files, before))
    assert not panel.replace.value, "the next replacement is asked for again"


@pytest.mark.slow  # training
def test_04_stop_button_keeps_best_model(configured, tmp_path, monkeypatch):
    from nbseg.ui import TrainPanel
    from nbseg.ui.progress import WidgetBarsCallback

    original = WidgetBarsCallback.on_batch_end

    def interrupt(self, e):
        original(self, e)
        if e.epoch == 1 and e.step == 1:
            raise KeyboardInterrupt  # what the kernel's stop button does

    monkeypatch.setattr(WidgetBarsCallback, "on_batch_end", interrupt)
    project = copy_of(configured, tmp_path)  # no model yet: the one kept is this run's
    panel = TrainPanel(project)
    panel.budget.value = "epochs"
    panel.epochs.value = 3
    panel.steps.value = 3
    panel.train_button.click()
    assert panel.error is None
    assert panel.state.result.interrupted and "best model so far is kept" in panel.status.text
    assert (project / "models" / "fold0.pt").exists()


def test_live_bars_leave_no_half_epoch_behind():
    """A run the time budget stops mid-epoch: the steps' bar of that epoch goes, the epochs' bar and table stay."""
    import ipywidgets as w

    from nbseg.train.callbacks import BatchEnd, EpochEnd, TrainBegin, TrainEnd
    from nbseg.ui.progress import WidgetBarsCallback

    bars = w.HTML()
    callback = WidgetBarsCallback(bars, w.Image(format="png"))
    callback.on_train_begin(TrainBegin(fold=0, folds=1, n_train=3, n_val=1, patch=[32, 32], device="cpu",
                                       precision="fp32", max_epochs=10**9, minutes=0.1))
    for epoch, steps in ((0, 4), (1, 2)):
        for step in range(steps):
            callback.on_batch_end(BatchEnd(fold=0, epoch=epoch, step=step, steps_per_epoch=4, loss=0.5, lr=1e-3))
        if epoch == 0:
            callback.on_epoch_end(EpochEnd(fold=0, epoch=0, train_loss=0.5, val_loss=0.4, val_dice=0.8, best_dice=0.8,
                                           is_best=True, lr=1e-3, seconds=1.0,
                                           history=[{"fold": 0, "epoch": 0, "train_loss": 0.5, "val_loss": 0.4,
                                                     "val_dice": 0.8}]))
    assert bars.value.count("<progress") == 2 and "2/4" in bars.value  # the second epoch, half way
    callback.on_train_end(TrainEnd(fold=0, best_dice=0.8, best_epoch=0, model_path="m.pt", stopped="time budget"))
    assert bars.value.count("<progress") == 1 and "2/4" not in bars.value
    assert "0.8000 *" in bars.value  # the epoch table stays


# ---------------------------------------------------------------- viewers

def test_viewer_3d_orthogonal_and_volume_fallback(monkeypatch):
    from nbseg.ui.viewers import Viewer2D, VolumeView

    image = np.random.default_rng(0).random((1, 12, 20, 24)).astype(np.float32)
    labels = (image[0] > 0.7).astype(int)
    viewer = Viewer2D(image, labels, z_scale=2)
    assert viewer.z.max == 11 and viewer.z.layout.display == ""
    flat = viewer.rgb.shape
    viewer.ortho.value = True
    assert viewer.rgb.shape[0] > flat[0]  # XZ/YZ added under the XY plane
    viewer.z.value = 0
    assert viewer.image_widget.value[:4] == b"\x89PNG"
    monkeypatch.setenv("NBSEG_NO_IPYVOLUME", "1")
    fallback = VolumeView(image[0], labels)
    assert fallback.mode == "slices" and fallback.fallback.ortho.value
    monkeypatch.delenv("NBSEG_NO_IPYVOLUME")
    pytest.importorskip("ipyvolume")
    view = VolumeView(image[0])
    assert view.mode == "ipyvolume", view.reason


# ---------------------------------------------------------------- 02 label QC

def test_03_label_qc_browser_experts_and_drawing(configured, tmp_path):
    import tifffile

    from nbseg.data import sample
    from nbseg.ui import LabelQCPanel

    project = copy_of(configured, tmp_path)
    panel = LabelQCPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert_tooltips(panel)
    assert_primary_order(panel, ["Run QC", "Combine experts", "Save drawn masks"])
    assert panel.experts_button.layout.display == "none"  # no expert folders given
    panel.qc_button.click()
    assert panel.error is None, panel.errors.message.value
    assert (project / "labels" / "qc.csv").exists() and len(panel.grid.children) == 6
    assert panel.page.max == 3
    panel.page.value = 2
    assert len(panel.grid.children) == 6
    panel.sort.value = "name"
    assert panel.state.order == sorted(panel.state.order)
    # drawing an excluding polygon, typed as vertices
    panel.vertices.value = "0,0; 0,40; 40,40; 40,0"
    panel.add_button.click()
    assert panel.error is None and len(panel.state.polygons) == 1
    assert panel.vertices.value == ""  # added: the corner list is ready for the next polygon
    panel.vertices.value = "0,0; 0,40; 40,40"
    panel.kind.value = "merging"
    panel.add_button.click()  # no Seg2 in this project: explained, not raised
    assert panel.error is not None and "Seg2" in panel.errors.message.value
    # drawing by clicks (what ipyevents sends: click positions in the shown picture's pixels)
    drawer, view = panel.draw.drawer, panel.draw.view
    assert drawer.clickable, drawer.reason
    f = view._factor
    assert panel.vertices.value == "0,0; 0,40; 40,40"  # a polygon not added keeps its corners
    panel.vertices.value = ""
    panel.kind.value = "excluding"
    panel.draw_image.value = panel.draw_image.options[1]
    for y, x in [(5, 5), (5, 30), (30, 30), (30, 5)]:
        drawer.handle({"type": "click", "dataX": x * f + f / 2, "dataY": y * f + f / 2})
    assert panel.vertices.value == "5,5; 5,30; 30,30; 30,5"
    assert panel.draw.view.excluded is not None and panel.draw.view.excluded[20, 20]  # shown before closing
    drawer.handle({"type": "click", "dataX": 5 * f + 1, "dataY": 30 * f + 1})  # a double click's 2nd click
    drawer.handle({"type": "click", "dataX": 10 ** 6, "dataY": 10})  # outside the image: ignored
    drawer.handle({"type": "dblclick"})
    assert panel.error is None, panel.errors.message.value
    assert len(panel.state.polygons) == 2 and panel.vertices.value == ""
    assert panel.state.polygons[1]["vertices"] == [(5, 5), (5, 30), (30, 30), (30, 5)]
    shown = panel.service.image_and_mask(panel.draw_image.value)
    drawer.handle({"type": "click", "dataX": 1, "dataY": 1})
    assert panel.service.image_and_mask(panel.draw_image.value) is shown  # a click does not read the files again
    panel.draw.undo_button.click()
    assert panel.vertices.value == ""
    panel.save_button.click()
    assert panel.error is None, panel.errors.message.value
    first = panel.state.polygons[0]["name"]
    saved = project / "labels" / "excluding" / f"{first}.ome.tif"
    assert saved.exists() and tifffile.imread(saved)[10, 10] == 1 and tifffile.imread(saved)[100, 100] == 0
    assert Config.load(project).data.excluding_masks == project / "labels" / "excluding"
    # ground truth from three "experts" (copies of a few masks, one shifted), in a separate project
    other = tmp_path / "experts_project"
    other.mkdir()
    cfg = Config.load(project)
    masks = sorted(sample("nuclei2d")["masks"].iterdir())[:2]
    images = tmp_path / "images"
    images.mkdir()
    for m in masks:
        (images / m.name).write_bytes((sample("nuclei2d")["images"] / m.name).read_bytes())
    cfg.data.images, cfg.data.masks, cfg.data.excluding_masks = images, None, None
    cfg.save(other)
    folders = []
    for k in range(3):
        folder = tmp_path / f"expert{k}"
        folder.mkdir()
        for m in masks:
            mask = (tifffile.imread(m) > 0).astype(np.uint8)
            tifffile.imwrite(folder / m.name, np.roll(mask, k, 0))
        folders.append(str(folder))
    experts = LabelQCPanel(other)
    experts.experts.value = "; ".join(folders)
    assert experts.experts_button.layout.display == ""
    experts.method.value = "majority"
    experts.experts_button.click()
    assert experts.error is None, experts.errors.message.value
    assert "expert0" in experts.scores.value and "sensitivity" in experts.scores.value
    assert Config.load(other).data.masks == other / "labels" / "ground_truth_majority"
    # a mask written again on disk is read again
    name = experts.service.names()[0]
    assert experts.service.image_and_mask(name)[1].any()
    written = next((other / "labels" / "ground_truth_majority").glob(name + ".*"))
    tifffile.imwrite(written, np.zeros_like(tifffile.imread(written)))
    os.utime(written, ns=(written.stat().st_atime_ns, written.stat().st_mtime_ns + 10 ** 9))
    assert not experts.service.image_and_mask(name)[1].any()


# ---------------------------------------------------------------- 05 predict, 06 threshold & export

@pytest.mark.slow  # training, then prediction
def test_06_predict_maps_and_ranking(predicted):
    project, panel = predicted
    assert_tooltips(panel)
    assert_primary_order(panel, ["Predict"])
    table = panel.state.table
    assert len(table) == 4 and list(table["uncertainty"]) == sorted(table["uncertainty"], reverse=True)
    # notebook 01 held back a test set: 06 predicts those images, never trained on, and has no warning
    assert panel.which.value == "test" and set(table["role"]) == {"test"} and panel.seen.value == ""
    assert (project / "predictions" / "uncertainty.csv").exists()
    assert panel.pick.options[0] == table["image"][0]
    assert panel.viewer.rgb.shape[1] > 3 * 256  # image | probability | uncertainty side by side


@pytest.mark.slow  # a trained project
def test_05_invalid_tile_is_explained(trained, tmp_path):
    from nbseg.ui import PredictPanel

    panel = PredictPanel(copy_of(trained[0], tmp_path))
    panel.tile.value = "60,60"
    panel.predict_button.click()
    assert panel.error is not None and "Nearest valid tile" in panel.errors.message.value


@pytest.mark.slow  # training, then prediction
def test_06_threshold_sweep_instances_export(predicted, tmp_path):
    from nbseg.ui import ExportPanel

    project = copy_of(predicted[0], tmp_path)
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert_tooltips(panel)
    assert_primary_order(panel, ["Sweep thresholds", "Instances & metrics", "Export"])
    planned = json.loads((project / "plan.json").read_text())["min_size"]  # as `nbseg predict` keeps
    assert planned >= 10 and panel.min_size.value == planned
    before = panel.viewer.rgb.copy()
    panel.threshold.value = 0.9
    assert not np.array_equal(before, panel.viewer.rgb)  # live preview follows the slider
    panel.otsu_button.click()
    assert panel.error is None and "Otsu" in panel.otsu_text.value
    panel.sweep_button.click()
    assert panel.error is None, panel.errors.message.value
    assert panel.sweep_plot.value[:4] == b"\x89PNG" and panel.use_best.layout.display == ""
    panel.use_best.click()
    assert panel.threshold.value == pytest.approx(round(float(panel.state.sweep.best["overall"]), 2))
    if Config.load(project).data.labels in ("auto", "instances"):  # the sample's masks are instance labels
        assert panel.service.splits_touching_objects() and "watershed" in panel.objects_note.value
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    assert "Dice" in panel.metrics.value and (project / "export" / "metrics.csv").exists()
    panel.export_button.click()
    assert panel.error is None, panel.errors.message.value
    stem = panel.state.stems[0]
    assert (project / "export" / f"{stem}.mask.ome.tif").exists()
    assert (project / "export" / f"{stem}.labels.ome.tif").exists()
    import torch

    scripted = torch.jit.load(str(project / "export" / "model.torchscript.pt"))
    assert scripted(torch.rand(1, 1, 64, 64)).shape[-2:] == (64, 64)


def test_06_without_predictions_says_which_notebook(tmp_path):
    from nbseg.ui import ExportPanel, PredictPanel

    panel = ExportPanel(tmp_path / "empty")
    assert panel.error is not None and "01_data" in panel.errors.message.value
    panel = PredictPanel(tmp_path / "empty")
    assert "01_data" in panel.errors.message.value


# ---------------------------------------------------------------- one core path for what the panels do

def _ome_pixel_sizes(path):
    """(Z, Y, X) physical sizes as tifffile's own OME parser reads them (not nbseg's reader)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    return tuple(pixels.get(f"PhysicalSize{a}") for a in "ZYX")


def test_06_export_keeps_pixel_sizes(tmp_path):
    """Notebook 07 writes its masks and labels through the core writer predict uses: pixel sizes stay."""
    import tifffile  # noqa: F401
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.config import DataConfig
    from nbseg.io.images import write_ome_tiff
    from nbseg.predict.files import predict_files
    from nbseg.ui.export_panel import ExportService, ExportState

    project = make_project(tmp_path / "p", dims=3, kind="instances", patch=[8, 32, 32])
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    write_ome_tiff(images / "cells.ome.tif", rng.normal(100, 20, (8, 40, 40)).astype(np.float32), axes="ZYX",
                   pixel_sizes=(2.0, 0.25, 0.25))
    Config(data=DataConfig(images=images)).save(project)
    predict_files(project, images, project / "predictions", tta="none", instances=True)
    service = ExportService(ExportState(project))
    service.open()
    service.make_instances(0.5)
    written = service.export(torchscript=False)
    assert {p.name for p in written} == {"cells.mask.ome.tif", "cells.labels.ome.tif", "cells.objects.csv"}
    for path in (p for p in written if p.name.endswith(".ome.tif")):
        assert _ome_pixel_sizes(path) == (2.0, 0.25, 0.25), path.name


def test_06_export_makes_the_objects_the_panel_shows(tmp_path):
    """Export without 'Instances & metrics' uses the panel's threshold and min size; the planned min size
    is counted in each map's own pixels, as `nbseg predict --instances` counts it."""
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.config import DataConfig
    from nbseg.io.images import read_mask, write_ome_tiff
    from nbseg.predict.files import predict_files
    from nbseg.ui import ExportPanel

    # trained at 0.25 µm: an image of 0.5 µm pixels holds a 100-px training object in 25 of its pixels; the plan
    # as the models hold it, which both nbseg predict and the panel read
    project = make_project(tmp_path / "p", dims=2, kind="binary", patch=[32, 32],
                           plan={"min_size": 100, "scale": [1.0, 1.0], "spacing": [0.25, 0.25]})
    images = tmp_path / "images"
    image = np.full((48, 48), 10.0, np.float32)
    image[8:20, 8:20] = image[30:33, 30:33] = 200.0  # a 144-px object and a 9-px one
    write_ome_tiff(images / "cells.ome.tif", image, axes="YX", pixel_sizes=(0.5, 0.5))
    Config(data=DataConfig(images=images)).save(project)
    predict_files(project, images, project / "predictions", tta="none")
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.min_size.value == 25
    panel.threshold.value = 0.3
    panel.min_size.value = 10 ** 5  # larger than the image: no object may be written
    panel.torchscript.value = False
    panel.export_button.click()
    assert panel.error is None, panel.errors.message.value
    assert (panel.state.threshold, panel.state.min_size) == (0.3, 10 ** 5)
    assert read_mask(project / "export" / "cells.labels.ome.tif").max() == 0
    panel.min_size.value = 0
    panel.export_button.click()  # a changed field makes the objects again
    assert read_mask(project / "export" / "cells.labels.ome.tif").max() >= 1


def test_06_planned_min_size_is_each_images_own(tmp_path):
    """Left at the planned value, 'Min object size' keeps the plan's bound in each image's own pixels (as
    `nbseg predict --instances` does), though the field shows the first image's; an edited value is pixels."""
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.config import DataConfig
    from nbseg.io.images import write_ome_tiff
    from nbseg.project import ProjectLayout
    from nbseg.ui import ExportPanel

    # the plan as the models hold it (nbseg predict reads it there too)
    project = make_project(tmp_path / "p", dims=2, kind="binary", patch=[32, 32],
                           plan={"min_size": 100, "scale": [1.0, 1.0], "spacing": [0.25, 0.25]})
    images, predictions = tmp_path / "images", ProjectLayout(project).predictions
    for stem, size in (("a_coarse", 0.5), ("b_fine", 0.25)):  # bound 100 px at 0.25 µm: 25 px and 100 px
        prob = np.zeros((48, 48), np.uint8)
        prob[4:16, 4:16] = prob[30:38, 30:38] = 230  # objects of 144 and 64 pixels
        write_ome_tiff(predictions / f"{stem}.prob.ome.tif", prob, axes="YX", pixel_sizes=(size, size))
        write_ome_tiff(images / f"{stem}.ome.tif", prob.astype(np.float32), axes="YX", pixel_sizes=(size, size))
    Config(data=DataConfig(images=images)).save(project)
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.min_size.value == 25
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    found = {stem: int(labels.max()) for stem, labels in panel.state.instances.items()}
    assert found == {"a_coarse": 2, "b_fine": 1}  # the 64-px object is under b_fine's 100
    panel.min_size.value = 20
    panel.instances_button.click()
    assert {stem: int(labels.max()) for stem, labels in panel.state.instances.items()} == {"a_coarse": 2, "b_fine": 2}


# ---------------------------------------------------------------- scale bars, colour bars and legends

def _calibrated_project(root, dims, *, sizes, write=None, class_names=None, project_sizes=None, masks=None):
    """An untrained model project whose one image has the given pixel sizes (None: none; ``write(path, image)``
    writes it otherwise), and ``project_sizes`` as its data.pixel_sizes, predicted by notebook 06's panel;
    returns the panel."""
    import tifffile
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.config import DataConfig
    from nbseg.io.images import write_ome_tiff
    from nbseg.ui import PredictPanel

    kind = "multiclass" if class_names else "binary"
    project = make_project(root / "p", dims=dims, kind=kind, class_names=class_names,
                           patch=[8, 32, 32] if dims == 3 else [32, 32])
    images = root / "images"
    image = np.random.default_rng(0).normal(100, 20, (8, 64, 64)[-dims:]).astype(np.float32)
    if write is not None:
        images.mkdir()
        write(images / "cells.tif", image)
    elif sizes is None:
        images.mkdir()
        tifffile.imwrite(images / "cells.tif", image)
    else:
        write_ome_tiff(images / "cells.ome.tif", image, axes="ZYX"[-dims:], pixel_sizes=sizes)
    Config(data=DataConfig(images=images, pixel_sizes=project_sizes, masks=masks)).save(project)
    panel = PredictPanel(project)
    panel.tta.value = "none"
    panel.predict_button.click()
    assert panel.error is None, panel.errors.message.value
    return panel


@pytest.mark.parametrize("dims, sizes, bar", [(2, (0.5, 0.5), "5 µm"), (3, (2.0, 0.25, 0.25), "2 µm")],
                         ids=["2d", "3d"])
def test_06_07_views_carry_a_scale_bar_of_the_images_micrometres(tmp_path, dims, sizes, bar):
    """64 pixels of 0.5 µm are 32 µm wide: a 5 µm bar (1, 2 or 5 times a power of ten, at most a fifth); of
    0.25 µm, 16 µm: 2 µm. In 3D the bar is on the XY slice, in XY pixels, with orthogonal views or without."""
    from conftest import assert_scale_bar

    from nbseg.ui import ExportPanel

    predict = _calibrated_project(tmp_path, dims, sizes=sizes)
    export = ExportPanel(predict.state.project)
    assert export.error is None, export.errors.message.value
    for viewer in (predict.viewer, export.viewer):
        assert_scale_bar(viewer, sizes[-1], bar)
        assert [name for name, _m, _c in viewer.maps][0] == "probability"  # its colour bar is drawn below
        if dims == 3:
            assert viewer.z_scale == pytest.approx(8.0)  # Z spacing over X: orthogonal views keep proportions
            viewer.ortho.value = True
            assert_scale_bar(viewer, sizes[-1], bar)
    assert [name for name, _m, _c in predict.viewer.maps] == ["probability", "uncertainty"]


def test_06_07_views_take_the_projects_pixel_sizes_over_the_files(tmp_path):
    """data.pixel_sizes corrects files that say wrongly: 64 pixels of 0.5 µm (a 5 µm bar), not of the file's
    0.3 µm (19.2 µm wide: a 2 µm bar)."""
    from conftest import assert_scale_bar

    from nbseg.ui import ExportPanel

    from nbseg.predict.outputs import read_probability

    predict = _calibrated_project(tmp_path, 2, sizes=(0.3, 0.3), project_sizes=[0.5, 0.5])
    export = ExportPanel(predict.state.project)
    assert export.error is None, export.errors.message.value
    for viewer in (predict.viewer, export.viewer):
        assert_scale_bar(viewer, 0.5, "5 µm")
    # notebook 06 predicts the project's own images with its sizes: the result files say 0.5 µm too
    _prob, sizes, unit = read_probability(tmp_path / "p" / "predictions" / "cells.prob.ome.tif",
                                          return_pixel_sizes=True)
    assert sizes == pytest.approx((0.5, 0.5)) and unit == "µm"


def _fiji_relative(path, image):
    import tifffile

    tifffile.imwrite(path, image, imagej=True, resolution=(1, 1),
                     metadata={"spacing": 2.0, "unit": "pixel", "axes": "ZYX"})


@pytest.mark.parametrize("dims, write", [(2, None), (3, _fiji_relative)], ids=["unknown-2d", "relative-3d"])
def test_06_07_views_without_micrometres_have_no_scale_bar(tmp_path, dims, write):
    """No pixel sizes, or Fiji's relative(x=y=1) ones (which the prediction files keep as relative): no bar,
    no error; relative Z spacing still keeps the orthogonal views' proportions."""
    from nbseg.ui import ExportPanel

    from nbseg.io.images import read_image

    predict = _calibrated_project(tmp_path, dims, sizes=None, write=write)
    export = ExportPanel(predict.state.project)
    assert export.error is None, export.errors.message.value
    export.threshold.value = 0.3
    for viewer in (predict.viewer, export.viewer):
        assert viewer.rgb is not None and viewer.pixel_size is None
        assert viewer.z_scale == (2.0 if write else 1.0)
    if write:
        export.export_button.click()
        assert export.error is None, export.errors.message.value
        labels = read_image(tmp_path / "p" / "export" / "cells.labels.ome.tif")
        assert labels.unit == "relative" and labels.pixel_sizes == pytest.approx((2.0, 1.0, 1.0))


def test_06_multiclass_view_shows_the_classes_with_a_legend(tmp_path):
    from nbseg.io.images import read_mask
    from nbseg.ui import annotate
    from nbseg.ui import overlay as ov

    names = ["background", "nucleus", "cytoplasm"]
    panel = _calibrated_project(tmp_path, 2, sizes=(0.5, 0.5), class_names=names)
    viewer = panel.viewer
    mask = read_mask(panel.service.output / "cells.mask.ome.tif")
    assert viewer.classes == names[1:] and np.array_equal(viewer.labels, mask)  # the classes, not a threshold
    (name, prob, _cmap), _uncertainty = viewer.maps
    assert name == "probability (any class)" and 0 <= prob.min() and prob.max() <= 1
    legend = viewer.rgb[-annotate.legend(names[1:], viewer.rgb.shape[1]).shape[0]:]  # the last strip
    for k in range(2):
        assert (legend == ov.LABEL_COLORS[k]).all(axis=-1).sum() >= 25, names[k + 1]


def test_07_multiclass_thresholds_any_class_and_exports_the_classes(tmp_path):
    """A multi-class map's threshold is on the probability of any class (1 - background), the mask shows
    each kept pixel's most probable class, the metrics are per class and Export writes the class numbers."""
    import tifffile

    from nbseg.io.images import read_mask
    from nbseg.predict.outputs import read_classes
    from nbseg.ui import ExportPanel

    names = ["background", "nucleus", "cytoplasm"]
    gt = np.zeros((64, 64), np.uint8)
    gt[8:24, 8:24], gt[30:50, 30:50] = 1, 2
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "masks" / "cells.tif", gt)
    predict = _calibrated_project(tmp_path, 2, sizes=(0.5, 0.5), class_names=names, masks=tmp_path / "masks")
    panel = ExportPanel(predict.state.project)
    assert panel.error is None, panel.errors.message.value
    prob_file = predict.service.output / "cells.prob.ome.tif"
    any_class = panel.service.load("cells")[1]
    classes = read_classes(prob_file)
    assert set(np.unique(classes)) <= {1, 2} and 0 <= any_class.min() and any_class.max() <= 1
    threshold = round(float(np.median(any_class)), 2)
    panel.threshold.value = threshold
    expected = np.where(any_class > threshold, classes, 0)
    assert panel.viewer.classes == names[1:] and np.array_equal(panel.viewer.labels, expected)
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    assert "dice class 1" in panel.metrics.value and "dice class 2" in panel.metrics.value
    panel.export_button.click()
    assert panel.error is None, panel.errors.message.value
    written = read_mask(predict.state.project / "export" / "cells.mask.ome.tif", dims=2)
    objects = panel.state.instances["cells"] > 0
    assert np.array_equal(written, np.where(objects, classes, 0)) and objects.any()


def test_01_images_without_masks_show_the_scale_bar(tmp_path):
    from conftest import assert_scale_bar, nuclei_pool

    from nbseg.ui import DataPanel

    panel = DataPanel(tmp_path / "project")
    panel.images.value = str(nuclei_pool(tmp_path / "pool", 1, micrometres=0.5))
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    assert_scale_bar(panel.viewer, 0.5, "10 µm")  # 128 pixels of 0.5 µm: 64 µm wide


def test_03_drawing_view_uses_the_projects_pixel_sizes(configured, tmp_path):
    """The sample's files give no pixel sizes; the project's data.pixel_sizes do (256 x 0.2 µm: a 10 µm bar)."""
    from conftest import assert_scale_bar

    from nbseg.ui import LabelQCPanel

    project = copy_of(configured, tmp_path)
    panel = LabelQCPanel(project)
    assert panel.error is None and panel.draw.view.pixel_size is None
    config = Config.load(project)
    config.data.pixel_sizes = [0.2, 0.2]
    config.save(project)
    panel = LabelQCPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert_scale_bar(panel.draw.view, 0.2, "10 µm")


@pytest.mark.slow  # an LR sweep
def test_cli_and_notebook_04_propose_the_same_rate(tmp_path, monkeypatch, capsys):
    """The cap on an overshooting suggestion lives in the core: `nbseg lr-find` and 04 propose one rate and
    say the same of the rate fine-tuning will use; 04's saved rate leaves fine-tuning's own rule unless ticked."""
    import re

    import nbseg.train.lr_finder as finder
    from nbseg.cli.main import main
    from nbseg.data import load_dataset, sample
    from nbseg.train.plan import plan_training
    from nbseg.ui import LRPanel

    monkeypatch.setattr(finder, "suggest_lr", lambda lrs, smoothed: 0.5)  # a short sweep that overshoots
    src = sample("nuclei2d")
    project = tmp_path / "p"
    Config(data=src, train={"init": "nuclei"}).save(project)  # fine-tuning the bundled model
    assert main(["lr-find", "--images", str(src["images"]), "--masks", str(src["masks"]), "--project", str(project),
                 "--steps", "6", "--patch", "64,64", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    printed = float(re.search(r"proposed learning rate: (\S+)", out).group(1))
    said = re.search(r"^with it, (.*?); to use", out, flags=re.M).group(1)
    assert "fine-tunes from nuclei (train.init), at 1.00e-03, its own rule" in said
    panel = LRPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.lr.value == pytest.approx(printed) == pytest.approx(finder.MAX_PROPOSED_LR)
    assert not panel.fine_tune.value and said in panel.use_text.value  # one sentence, one rule
    panel.accept_button.click()
    assert panel.error is None, panel.errors.message.value
    assert "at 1.00e-03, its own rule" in panel.status.text

    def planned_lr():
        config = Config.load(project)
        return config.train.lr, plan_training(config, load_dataset(config.data))[0]

    saved, plan = planned_lr()  # the saved rate is for training from scratch: fine-tuning keeps its rule
    assert saved == pytest.approx(finder.MAX_PROPOSED_LR)
    assert plan.lr == pytest.approx(1e-3) and "is for training from scratch" in plan.reasons["lr"]
    panel.fine_tune.value = True  # asked for: fine-tuning at the saved rate
    assert "set for fine-tuning too" in panel.use_text.value
    panel.accept_button.click()
    saved, plan = planned_lr()
    assert plan.lr == pytest.approx(saved) == pytest.approx(finder.MAX_PROPOSED_LR)
    assert LRPanel(project).fine_tune.value, "a fresh kernel shows the saved choice"


def _held_back_project(tmp_path):
    """A project whose model trained on ``a``, validated with ``b`` and never saw the test image ``t`` (its
    split.json says so, as for models trained before model files named their images); images and masks of all."""
    import tifffile
    from model_projects import make_project  # tests/model_projects.py

    from nbseg.config import DataConfig

    project = make_project(tmp_path / "p")
    rng = np.random.default_rng(0)
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for name in ("a", "b", "t"):
        tifffile.imwrite(tmp_path / "images" / f"{name}.tif", (rng.random((32, 40)) * 255).astype(np.uint8))
        mask = np.zeros((32, 40), np.uint16)
        mask[4:14, 6:16] = 1
        tifffile.imwrite(tmp_path / "masks" / f"{name}.tif", mask)
    Config(data=DataConfig(images=tmp_path / "images", masks=tmp_path / "masks")).save(project)
    (project / "split.json").write_text(json.dumps({"names": ["a", "b"], "seed": 0, "val_fraction": 0.2,
                                                    "folds": [{"train": ["a"], "val": ["b"]}], "test": ["t"]}))
    return project


def test_06_predicts_the_test_images_by_default_and_warns_for_others(tmp_path):
    from nbseg.ui import PredictPanel

    project = _held_back_project(tmp_path)
    panel = PredictPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert_tooltips(panel)
    assert panel.which.value == "test" and [p.name for p in panel.service.input_files()] == ["t.tif"]
    assert panel.seen.value == "" and "the test images" in panel.status.text
    panel.which.value = "folder"  # the project's own images: the models trained on a, validated with b
    assert "Warning" in panel.seen.value and "trained on (a)" in panel.seen.value and "validation (b)" in panel.seen.value
    panel.which.value = "test"
    assert panel.seen.value == ""
    panel.tta.value = "none"
    panel.predict_button.click()
    assert panel.error is None, panel.errors.message.value
    assert list(panel.state.table["image"]) == ["t"] and list(panel.state.table["role"]) == ["test"]
    assert panel.seen.value == "" and "inflated" not in panel.status.text
    panel.which.value = "folder"
    panel.predict_button.click()
    assert panel.error is None, panel.errors.message.value
    assert dict(zip(panel.state.table["image"], panel.state.table["role"])) == {"a": "train", "b": "val", "t": "test"}
    assert "scores are inflated" in panel.seen.value and "inflated" in panel.status.text


def test_07_scores_the_test_images_and_warns_for_trained_ones(tmp_path):
    """07 scores the unseen images of what 06 predicted, chooses the threshold on the validation images (never
    the test ones), and warns when only images the models have seen are there to score."""
    from nbseg.predict.files import predict_files
    from nbseg.ui import ExportPanel

    project = _held_back_project(tmp_path)
    predict_files(project, tmp_path / "images", project / "predictions", tta="none")  # a, b and t
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.state.scored == ["t"] and panel.pick.value == "t"
    assert "Warning" not in panel.scored.value and "Left out: 2 image(s)" in panel.scored.value
    panel.sweep_button.click()
    assert panel.error is None, panel.errors.message.value
    assert panel.state.swept_on == "validation" and list(panel.state.sweep.iou.columns) == ["b", "overall"]
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    assert list(panel.state.evaluation.table["image"]) == ["t"] and "Warning" not in panel.metrics.value

    seen = tmp_path / "seen"  # only the images the models trained on or validated with
    seen.mkdir()
    for name in ("a", "b"):
        (seen / f"{name}.tif").write_bytes((tmp_path / "images" / f"{name}.tif").read_bytes())
    predict_files(project, seen, project / "predictions", tta="none", overwrite=True)
    for path in (project / "predictions").glob("t.*"):
        path.unlink()
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.state.scored == ["a", "b"] and "Warning" in panel.scored.value
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    assert "scores are inflated" in panel.metrics.value and "trained on (a)" in panel.metrics.value
