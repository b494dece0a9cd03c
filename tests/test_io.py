"""Reading microscopy files into C[Z]YX with pixel sizes, and writing OME-TIFF."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.data import sample
from nbseg.io.images import file_stem, image_files, read_image, read_mask, write_ome_tiff


def test_grey_2d_tiff_becomes_cyx(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    image = read_image(tmp_path / "a.tif")
    assert image.axes == "CYX" and image.data.shape == (1, 3, 4) and image.spatial_dims == 2


def test_rgb_png_becomes_three_channels(tmp_path):
    import imageio.v3 as iio

    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgb)
    image = read_image(tmp_path / "a.png")
    assert image.axes == "CYX" and image.data.shape == (3, 10, 12)
    np.testing.assert_array_equal(image.data[1], rgb[..., 1])
    assert read_image(tmp_path / "a.png", channels=[2]).data.shape == (1, 10, 12)


@pytest.mark.parametrize("axes, shape, expected", [
    ("ZYX", (5, 8, 9), (1, 5, 8, 9)),
    ("CYX", (2, 8, 9), (2, 8, 9)),
    ("ZCYX", (5, 2, 8, 9), (2, 5, 8, 9)),
    ("YXC", (8, 9, 3), (3, 8, 9)),
    ("TZYX", (1, 5, 8, 9), (1, 5, 8, 9)),
])
def test_axes_override(tmp_path, axes, shape, expected):
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", data)
    image = read_image(tmp_path / "a.tif", axes=axes)
    assert image.data.shape == expected
    # the same pixel, found through both layouts
    index = {a: 0 if a == "T" else 1 for a in axes}
    source = data[tuple(index[a] for a in axes)]
    target = image.data[tuple(index.get(a, 0) for a in image.axes)]
    assert source == target


def test_wrong_axes_length_says_what_to_give(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((5, 8, 9), np.uint8))
    with pytest.raises(ValueError, match=r"Axes 'YX' name 2 dimensions but .* has 3"):
        read_image(tmp_path / "a.tif", axes="YX")


def test_ome_tiff_round_trip_keeps_axes_and_pixel_sizes(tmp_path):
    volume = np.random.default_rng(1).integers(0, 1000, (4, 16, 20), dtype=np.uint16)
    path = write_ome_tiff(tmp_path / "v.ome.tif", volume, axes="ZYX", pixel_sizes=(2.0, 0.5, 0.25))
    image = read_image(path)
    assert image.axes == "CZYX" and image.pixel_sizes == (2.0, 0.5, 0.25) and image.unit == "µm"
    np.testing.assert_array_equal(image.data[0], volume)
    assert file_stem(path) == "v"
    # relative sizes (Fiji's relative(x=y=1)) go out as OME's "pixel" unit and come back relative, not as µm
    again = read_image(write_ome_tiff(tmp_path / "r.ome.tif", volume, axes="ZYX", pixel_sizes=(2.18, 1, 1),
                                      unit="relative"))
    assert again.pixel_sizes == pytest.approx((2.18, 1.0, 1.0)) and again.unit == "relative"


def test_write_refuses_to_overwrite(tmp_path):
    write_ome_tiff(tmp_path / "v.ome.tif", np.zeros((4, 4), np.uint8), axes="YX")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_ome_tiff(tmp_path / "v.ome.tif", np.zeros((4, 4), np.uint8), axes="YX")


def test_imagej_stack_is_3d_and_lazy_read_matches(tmp_path):
    path = sample("nuclei3d")["images"] / "8_cell_stage.tif"
    image = read_image(path)
    lazy = read_image(path, lazy=True)
    assert image.axes == "CZYX" and image.data.shape == (1, 51, 120, 122)
    np.testing.assert_array_equal(np.asarray(lazy.data), image.data)


def test_uncompressed_tiff_is_memory_mapped(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", np.ones((3, 64, 64), np.uint16), metadata={"axes": "ZYX"})
    image = read_image(tmp_path / "big.tif", lazy=True)
    assert isinstance(image.data.base, np.memmap) or isinstance(image.data, np.memmap)


def test_memory_mapped_tiff_is_read_only(tmp_path):
    """Never modify inputs: the map is opened read-only, so a step that writes into the array in place
    (normalising, clipping) raises instead of changing the user's file. (A truncated file is refused
    before it is mapped, so that check cannot tell a read-write map from a read-only one; this can.)"""
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.arange(3 * 64 * 64, dtype=np.uint16).reshape(3, 64, 64), metadata={"axes": "ZYX"})
    before = path.read_bytes()
    image = read_image(path, lazy=True)
    assert not image.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        image.data[0, 0, :2, :2] = 0
    del image  # a read-write map would flush its pages to the file here
    assert path.read_bytes() == before


def test_integral_float_mask_is_accepted(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.array([[0.0, 1.0], [2.0, 0.0]], np.float32))
    assert read_mask(tmp_path / "m.tif").tolist() == [[0, 1], [2, 0]]


def test_image_files_ignores_other_files_and_sorts(tmp_path):
    for name in ("b.tif", "a.ome.tiff", "c.png", "notes.txt", ".hidden.tif"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.ome.tiff", "b.tif", "c.png"]


def test_real_dsb_image_and_mask(shared_data):
    name = sorted((shared_data / "dsb2018" / "images").glob("*.tif"))[0].name
    image = read_image(shared_data / "dsb2018" / "images" / name)
    mask = read_mask(shared_data / "dsb2018" / "masks" / name)
    assert image.spatial_shape == mask.shape and mask.max() > 1


@pytest.mark.parametrize("kwargs, expected, unit", [
    # Fiji's calibration: µm with a Z spacing
    (dict(imagej=True, resolution=(1 / 0.2, 1 / 0.2), metadata={"axes": "ZYX", "spacing": 1.5, "unit": "micron"}),
     (1.5, 0.2, 0.2), "µm"),
    # nanometres become micrometres
    (dict(imagej=True, resolution=(1 / 5, 1 / 5), metadata={"axes": "ZYX", "spacing": 10, "unit": "nm"}),
     (0.01, 0.005, 0.005), "µm"),
    # Fiji's relative(x=y=1): only the ratio is known (BBBC050's embryos: Z 2.18x XY)
    (dict(imagej=True, resolution=(1, 1), metadata={"axes": "ZYX", "spacing": 2.18, "unit": "relative(x=y=1)"}),
     (2.18, 1.0, 1.0), "relative"),
    # OME with units
    (dict(ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 40, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 40,
                              "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.1, "PhysicalSizeZUnit": "µm"}),
     (0.1, 0.04, 0.04), "µm"),
    # a scanner's 200 pixels per inch is no pixel size
    (dict(resolution=(200, 200), resolutionunit="INCH"), (None, None, None), None),
])
def test_pixel_sizes_from_calibration(tmp_path, kwargs, expected, unit):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint16), **kwargs)
    image = read_image(path, dims=3)
    assert image.pixel_sizes == pytest.approx(expected) if expected[0] else image.pixel_sizes == expected
    assert image.unit == unit


def test_bundled_3d_sample_keeps_its_z_spacing():
    image = read_image(sample("nuclei3d")["images"] / "8_cell_stage.tif")
    assert image.pixel_sizes == pytest.approx((2.18, 1.0, 1.0)) and image.unit == "relative"
