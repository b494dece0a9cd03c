"""OME-Zarr in and out: pixel sizes and axes survive a round trip through ome-zarr-py and nbseg."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image

from nbseg.io.images import ImageReadError, files_by_stem, image_files, read_image
from nbseg.io.zarr import write_ome_zarr
from nbseg.predict.files import predict_files

from model_projects import make_project


def _write_with_ome_zarr(path, data, axes, scale, fmt):
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    write_image(data, group, axes=axes, fmt=fmt, scale_factors=(2,), scale=scale,
                axes_units={a: "micrometer" for a in scale})
    return path


@pytest.mark.parametrize("fmt", [FormatV04(), FormatV05()], ids=["ngff0.4", "ngff0.5"])
def test_reads_ome_zarr_written_by_ome_zarr_py(tmp_path, fmt):
    data = np.random.default_rng(0).integers(0, 1000, (2, 5, 64, 48), dtype=np.uint16)
    path = _write_with_ome_zarr(tmp_path / "stack.ome.zarr", data, "czyx", {"z": 2.0, "y": 0.25, "x": 0.5}, fmt)
    image = read_image(path, lazy=True)
    assert image.axes == "CZYX" and image.pixel_sizes == (2.0, 0.25, 0.5) and image.unit == "µm"
    assert hasattr(image.data, "compute"), "lazy read of Zarr should stay a dask array"
    np.testing.assert_array_equal(np.asarray(image.data), data)
    assert isinstance(read_image(path).data, np.ndarray)


def test_nanometre_units_become_micrometres(tmp_path):
    group = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="w")
    write_image(np.zeros((64, 64), np.uint8), group, axes="yx", scale_factors=(), scale={"y": 40.0, "x": 40.0},
                axes_units={"y": "nanometer", "x": "nanometer"})
    assert read_image(tmp_path / "a.ome.zarr").pixel_sizes == pytest.approx((0.04, 0.04))


def test_nbseg_output_read_by_ome_zarr_reader(tmp_path):
    labels = np.zeros((4, 160, 144), np.uint16)
    labels[1:3, 20:90, 30:100] = 7
    path = write_ome_zarr(tmp_path / "x.labels.ome.zarr", labels, axes="ZYX", pixel_sizes=(1.5, 0.2, 0.3),
                          labels=True)
    node = list(Reader(parse_url(str(path)))())[0]
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == pytest.approx([1.5, 0.2, 0.3])
    assert len(node.data) == 2, "a pyramid: 160 x 144 halves once before going below 64"
    np.testing.assert_array_equal(np.asarray(node.data[0]), labels)
    assert set(np.unique(np.asarray(node.data[1]))) == {0, 7}, "labels are subsampled, never blended"
    back = read_image(path)
    assert back.pixel_sizes == pytest.approx((1.5, 0.2, 0.3)) and back.axes == "CZYX"


def test_write_refuses_existing_unless_overwrite(tmp_path):
    path = write_ome_zarr(tmp_path / "a.ome.zarr", np.ones((64, 64), np.uint8), axes="YX")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_ome_zarr(path, np.zeros((64, 64), np.uint8), axes="YX")
    write_ome_zarr(path, np.zeros((64, 64), np.uint8), axes="YX", overwrite=True)
    assert read_image(path).data.max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["a.ome.zarr"], "no temporary folder left behind"


def test_zarr_folder_is_one_image(tmp_path):
    folder = tmp_path / "images"
    write_ome_zarr(folder / "a.ome.zarr", np.ones((64, 64), np.uint8), axes="YX")
    write_ome_zarr(folder / "b.ome.zarr", np.ones((64, 64), np.uint8), axes="YX")
    assert list(files_by_stem(folder)) == ["a", "b"]
    assert image_files(folder / "a.ome.zarr") == [folder / "a.ome.zarr"]


def test_zarr_without_ome_metadata_asks_for_axes(tmp_path):
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), shape=(6, 64, 64), dtype="uint8", chunks=(6, 32, 32))[:] = 3
    with pytest.raises(ImageReadError, match=r"without OME-NGFF metadata.*assume 'ZYX'.*--axes ZYX"):
        read_image(path)
    image = read_image(path, axes="ZYX")
    assert image.axes == "CZYX" and image.pixel_sizes == (None, None, None)


def test_predict_zarr_input_writes_zarr_with_its_pixel_sizes(tmp_path):
    project = make_project(tmp_path / "project", dims=2)
    data = np.random.default_rng(1).normal(100, 20, (1, 96, 80)).astype(np.float32)
    _write_with_ome_zarr(tmp_path / "in" / "cells.ome.zarr", data, "cyx", {"y": 0.3, "x": 0.4}, FormatV05())
    table = predict_files(project, tmp_path / "in", tmp_path / "out", tta="none", instances=True)
    assert list(table["image"]) == ["cells"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".ome.zarr"))
    assert names == [f"cells.{k}.ome.zarr" for k in ("labels", "mask", "prob", "uncertainty")]
    prob = read_image(tmp_path / "out" / "cells.prob.ome.zarr")
    assert prob.pixel_sizes == pytest.approx((0.3, 0.4)) and prob.data.dtype == np.float32
    assert 0 <= prob.data.min() and prob.data.max() <= 1
    mask = read_image(tmp_path / "out" / "cells.mask.ome.zarr").data[0]
    np.testing.assert_array_equal(mask > 0, np.rint(prob.data[0] * 255) > 127.5)


def test_format_zarr_for_tiff_input(tmp_path):
    from nbseg.io.images import write_ome_tiff

    project = make_project(tmp_path / "project", dims=2)
    write_ome_tiff(tmp_path / "in" / "a.tif", np.random.default_rng(2).random((64, 64), np.float32), axes="YX",
                   pixel_sizes=(0.5, 0.5))
    predict_files(project, tmp_path / "in", tmp_path / "tiff", tta="none")
    assert (tmp_path / "tiff" / "a.prob.ome.tif").exists(), "TIFF stays the default for TIFF input"
    predict_files(project, tmp_path / "in", tmp_path / "zarr", tta="none", format="zarr")
    assert read_image(tmp_path / "zarr" / "a.mask.ome.zarr").pixel_sizes == (0.5, 0.5)
    with pytest.raises(ValueError, match="format"):
        predict_files(project, tmp_path / "in", tmp_path / "x", format="n5")
