"""The objects of a label image: their table (scikit-image regionprops, sizes in pixels and µm) and
their outlines as Fiji ROIs (roifile), written by `nbseg predict --instances [--rois]` and notebook 07."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

roifile = pytest.importorskip("roifile")

from nbseg.cli.main import main  # noqa: E402
from nbseg.data import sample  # noqa: E402
from nbseg.predict.objects import object_rois, object_table, write_object_table, write_rois  # noqa: E402

from model_projects import make_project  # noqa: E402  (tests/model_projects.py)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def labels_2d() -> np.ndarray:
    """Objects with hand-counted sizes: a 3x4 box, a single pixel, a ring (a hole) and one in two pieces."""
    labels = np.zeros((20, 24), np.uint16)
    labels[2:5, 3:7] = 1  # 12 px, centroid (3, 4.5)
    labels[8, 10] = 4  # 1 px, centroid (8, 10): label numbers need not be consecutive
    labels[10:15, 14:19] = 5
    labels[12, 16] = 0  # 24 px: a 5x5 square with a hole in the middle
    labels[16:18, 1:3] = 7
    labels[16:18, 6:8] = 7  # 8 px in two 2x2 pieces
    return labels


# ---------------------------------------------------------------- the objects' table


def test_object_table_hand_checked_2d():
    labels = labels_2d()
    image = labels.astype(np.float32) * 10 + 1  # each object has one intensity: 11, 41, 51, 71
    table = object_table(labels, image, pixel_sizes=(0.5, 0.25))
    assert list(table["label"]) == [1, 4, 5, 7]
    assert list(table["area_px"]) == [12, 1, 24, 8]
    # a pixel is 0.5 x 0.25 = 0.125 µm²
    np.testing.assert_allclose(table["area_um2"], [1.5, 0.125, 3.0, 1.0])
    np.testing.assert_allclose(table["centroid_y_px"], [3, 8, 12, 16.5])
    np.testing.assert_allclose(table["centroid_x_px"], [4.5, 10, 16, 4.0])
    np.testing.assert_allclose(table["centroid_y_um"], [1.5, 4.0, 6.0, 8.25])
    np.testing.assert_allclose(table["centroid_x_um"], [1.125, 2.5, 4.0, 1.0])
    assert list(table["bbox_min_y"]) == [2, 8, 10, 16] and list(table["bbox_max_y"]) == [5, 9, 15, 18]
    assert list(table["bbox_min_x"]) == [3, 10, 14, 1] and list(table["bbox_max_x"]) == [7, 11, 19, 8]
    np.testing.assert_allclose(table["mean_intensity"], [11, 41, 51, 71])
    # the same numbers as regionprops itself
    from skimage.measure import regionprops

    for row, region in zip(table.itertuples(), regionprops(labels, intensity_image=image)):
        assert row.area_px == region.area and row.mean_intensity == pytest.approx(region.intensity_mean)
        assert (row.centroid_y_px, row.centroid_x_px) == pytest.approx(region.centroid)
        assert (row.bbox_min_y, row.bbox_min_x, row.bbox_max_y, row.bbox_max_x) == region.bbox


def test_object_table_3d_volumes_and_channels():
    labels = np.zeros((4, 6, 8), np.int32)
    labels[1:3, 1:4, 2:6] = 2  # 2 x 3 x 4 = 24 voxels
    image = np.stack([np.full(labels.shape, 3.0), np.where(labels > 0, 5.0, 0.0)])  # (C, Z, Y, X)
    table = object_table(labels, image, pixel_sizes=(2.0, 0.5, 0.5))
    assert "area_px" not in table and list(table["volume_px"]) == [24]
    assert table["volume_um3"][0] == pytest.approx(24 * 2.0 * 0.5 * 0.5)  # 12 µm³
    assert (table["centroid_z_px"][0], table["centroid_z_um"][0]) == pytest.approx((1.5, 3.0))
    assert list(table.filter(like="bbox").iloc[0]) == [1, 1, 2, 3, 4, 6]
    assert (table["mean_intensity_c0"][0], table["mean_intensity_c1"][0]) == (3.0, 5.0)


@pytest.mark.parametrize("pixel_sizes,unit", [(None, "µm"), ((None, 0.5), "µm"), ((0.5, 0.5), "relative"),
                                              ((0.5, 0.5), None)])
def test_object_table_without_known_pixel_sizes_has_nan_physical_columns(pixel_sizes, unit):
    table = object_table(labels_2d(), pixel_sizes=pixel_sizes, unit=unit)
    assert table["area_um2"].isna().all() and table["centroid_x_um"].isna().all()
    assert list(table["area_px"]) == [12, 1, 24, 8] and "mean_intensity" not in table


def test_object_table_of_no_objects_and_a_wrong_image(tmp_path):
    empty = object_table(np.zeros((8, 8), np.uint8), np.zeros((8, 8)), (1.0, 1.0))
    assert len(empty) == 0 and {"label", "area_px", "area_um2", "bbox_max_x", "mean_intensity"} <= set(empty)
    path = write_object_table(tmp_path / "a.objects.csv", labels_2d(), pixel_sizes=(0.5, 0.25))
    assert list(pd.read_csv(path)["area_um2"]) == [1.5, 0.125, 3.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["a.objects.csv"]  # no temporary file left
    with pytest.raises(ValueError, match=r"image of shape \(9, 9\) does not match labels of shape \(20, 24\)"):
        object_table(labels_2d(), np.zeros((9, 9)))


# ---------------------------------------------------------------- Fiji ROIs


def roi_mask(roi, shape) -> np.ndarray:
    """The pixels whose centres lie inside ``roi`` (ImageJ's rule), outlines combined even-odd."""
    from skimage.draw import polygon2mask

    mask = np.zeros(shape, bool)
    for xy in roi.coordinates(multi=True):
        mask ^= polygon2mask(shape, np.column_stack([xy[:, 1], xy[:, 0]]) - 0.5)  # ImageJ (x, y) -> (row, col)
    return mask


def roi_bbox(roi) -> tuple:
    """``(min_y, min_x, max_y, max_x)`` of the ROI's outline(s)."""
    xy = np.vstack(roi.coordinates(multi=True))
    return xy[:, 1].min(), xy[:, 0].min(), xy[:, 1].max(), xy[:, 0].max()


def test_rois_round_trip_2d(tmp_path):
    labels = labels_2d()
    path = write_rois(labels, tmp_path / "a.rois.zip")
    rois = roifile.roiread(path)
    assert [r.name for r in rois] == ["obj1", "obj4", "obj5", "obj7"]  # one per object, named by its label
    assert [r.position for r in rois] == [0, 0, 0, 0]  # a 2D image has no slice
    assert [r.composite for r in rois] == [False, False, True, True]  # the ring and the two pieces
    for roi, label in zip(rois, [1, 4, 5, 7]):
        ys, xs = np.nonzero(labels == label)
        np.testing.assert_allclose(roi_bbox(roi), (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1), atol=1)
        np.testing.assert_array_equal(roi_mask(roi, labels.shape), labels == label)  # Fiji's mask is the object
    assert [p.name for p in tmp_path.iterdir()] == ["a.rois.zip"]


def test_rois_round_trip_3d_one_per_object_and_slice(tmp_path):
    labels = np.zeros((5, 12, 14), np.uint16)
    labels[1:4, 2:6, 3:8] = 3  # slices 1, 2, 3
    labels[0, 8:11, 9:12] = 12  # slice 0 only
    labels[2, 8:10, 1:3] = 12  # and slice 2
    rois = roifile.roiread(write_rois(labels, tmp_path / "s.rois.zip"))
    pairs = [(label, z) for label in (3, 12) for z in range(5) if (labels[z] == label).any()]
    assert len(rois) == len(pairs) == 5
    assert [r.name for r in rois] == ["obj03-z2", "obj03-z3", "obj03-z4", "obj12-z1", "obj12-z3"]
    for roi, (label, z) in zip(rois, pairs):
        assert roi.position == z + 1  # ImageJ counts slices from 1
        plane = labels[z] == label
        ys, xs = np.nonzero(plane)
        np.testing.assert_allclose(roi_bbox(roi), (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1), atol=1)
        np.testing.assert_array_equal(roi_mask(roi, plane.shape), plane)


def test_no_objects_give_an_empty_roi_set(tmp_path):
    assert object_rois(np.zeros((6, 6), np.uint8)) == []
    path = write_rois(np.zeros((6, 6), np.uint8), tmp_path / "none.rois.zip")
    import zipfile

    assert zipfile.ZipFile(path).namelist() == []


# ---------------------------------------------------------------- nbseg predict --instances --rois


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One bundled 2D sample image predicted with an instances project, tables and ROIs asked for."""
    root = tmp_path_factory.mktemp("objects")
    project = make_project(root / "project", kind="instances")
    images = root / "images"
    images.mkdir()
    shutil.copy(sorted(Path(sample("nuclei2d")["images"]).iterdir())[0], images / "nuclei.tif")
    args = ["predict", str(project), str(images), "--output", str(root / "out"), "--tta", "none", "--tile",
            "256,256", "--threshold", "otsu", "--instances", "--rois"]
    assert main(args) == 0
    return root, args


def test_cli_writes_one_row_and_one_roi_per_object(sample_run):
    root, _ = sample_run
    out = root / "out"
    labels = tifffile.imread(out / "nuclei.labels.ome.tif")
    ids = [int(i) for i in np.unique(labels) if i]
    assert len(ids) >= 2  # the untrained project still makes several objects here
    table = pd.read_csv(out / "nuclei.objects.csv")
    assert list(table["label"]) == ids
    assert list(table["area_px"]) == [int((labels == i).sum()) for i in ids]
    image = tifffile.imread(root / "images" / "nuclei.tif").astype(float)
    assert table["mean_intensity"].tolist() == pytest.approx([image[labels == i].mean() for i in ids])
    assert table["area_um2"].isna().all()  # the sample says no pixel size
    rois = roifile.roiread(out / "nuclei.rois.zip")
    rois = rois if isinstance(rois, list) else [rois]
    assert [r.name for r in rois] == [f"obj{i:0{len(str(max(ids)))}d}" for i in ids]
    for roi, i in zip(rois, ids):
        np.testing.assert_array_equal(roi_mask(roi, labels.shape), labels == i)


def test_cli_skips_finished_images_and_redoes_missing_tables(sample_run, capsys):
    root, args = sample_run
    out = root / "out"
    capsys.readouterr()
    assert main(args) == 0
    assert "Predicted 0 image(s), 1 done earlier" in capsys.readouterr().out
    (out / "nuclei.rois.zip").unlink()  # as if stopped before the ROIs were written
    assert main(args) == 0
    assert "Predicted 1 image(s), 0 done earlier" in capsys.readouterr().out
    assert (out / "nuclei.rois.zip").exists()
    assert not list(out.glob(".*.tmp"))


def test_predict_files_3d_rois_per_object_and_slice(tmp_path):
    from nbseg.io.images import write_ome_tiff
    from nbseg.predict.files import predict_files

    project = make_project(tmp_path / "p", dims=3, kind="instances", patch=[8, 32, 32])
    rng = np.random.default_rng(0)
    write_ome_tiff(tmp_path / "images" / "stack.ome.tif", rng.normal(100, 20, (8, 32, 32)).astype(np.float32),
                   axes="ZYX", pixel_sizes=(2.0, 0.25, 0.25))
    out = tmp_path / "out"
    predict_files(project, tmp_path / "images", out, tta="none", threshold="otsu", instances=True, rois=True,
                  min_size=1)
    labels = tifffile.imread(out / "stack.labels.ome.tif")
    pairs = [(i, z) for i in np.unique(labels) if i for z in range(labels.shape[0]) if (labels[z] == i).any()]
    rois = roifile.roiread(out / "stack.rois.zip")
    rois = rois if isinstance(rois, list) else [rois]
    assert len(pairs) >= 2 and [(r.name, r.position) for r in rois] == [
        (f"obj{i:0{len(str(labels.max()))}d}-z{z + 1}", z + 1) for i, z in pairs]
    table = pd.read_csv(out / "stack.objects.csv")
    assert len(table) == len(np.unique(labels)) - 1
    assert table["volume_um3"].tolist() == pytest.approx((table["volume_px"] * 2.0 * 0.25 * 0.25).tolist())


def test_rois_without_instances_are_refused_and_nothing_written(tmp_path, capsys):
    project = make_project(tmp_path / "project")
    out = tmp_path / "out"
    code = main(["predict", str(project), str(sample("nuclei2d")["images"]), "--output", str(out), "--rois"])
    err = capsys.readouterr().err
    assert code != 0 and "--rois" in err and "--instances" in err and "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------- notebook 07


def test_06_shows_and_exports_the_objects(tmp_path):
    """Notebook 07 over a probability map made from a sample's true nuclei (as from a perfect model)."""
    pytest.importorskip("ipywidgets")
    from nbseg.config import Config, DataConfig
    from nbseg.io.images import write_ome_tiff
    from nbseg.project import ProjectLayout
    from nbseg.ui import ExportPanel

    src = sample("nuclei2d")
    images, project = tmp_path / "images", tmp_path / "p"
    images.mkdir()
    for stem, path in zip(("cells", "more"), sorted(Path(src["images"]).iterdir())[1:3]):
        shutil.copy(path, images / f"{stem}.tif")
        truth = tifffile.imread(Path(src["masks"]) / path.name)
        write_ome_tiff(ProjectLayout(project).predictions / f"{stem}.prob.ome.tif",
                       np.where(truth > 0, 230, 20).astype(np.uint8), axes="YX", pixel_sizes=(0.5, 0.5))
    Config(data=DataConfig(images=images)).save(project)
    panel = ExportPanel(project)
    assert panel.error is None, panel.errors.message.value
    assert panel.sizes_plot.layout.display == "none"  # nothing to show before objects are made
    panel.instances_button.click()
    assert panel.error is None, panel.errors.message.value
    objects = panel.state.instances["cells"]
    shown = panel.state.objects["cells"]
    assert list(shown["label"]) == [i for i in np.unique(objects) if i] and len(shown) >= 5
    assert shown["area_um2"].tolist() == pytest.approx((shown["area_px"] * 0.25).tolist())
    assert "Objects of cells" in panel.objects_table.value and "area_px" in panel.objects_table.value
    assert panel.sizes_plot.value[:4] == b"\x89PNG" and panel.sizes_plot.layout.display == ""
    panel.pick.value = "more"
    assert panel.error is None and "Objects of more" in panel.objects_table.value
    panel.torchscript.value = False
    panel.export_button.click()
    assert panel.error is None, panel.errors.message.value
    written = pd.read_csv(ProjectLayout(project).export / "cells.objects.csv")
    pd.testing.assert_frame_equal(written, shown.reset_index(drop=True), check_dtype=False)
    image = tifffile.imread(images / "cells.tif").astype(float)
    first = written["label"][0]  # the mean intensity is the input image's, not the probability's
    assert written["mean_intensity"][0] == pytest.approx(image[objects == first].mean())
