"""Result files are named by one function (result_paths), found again by one (predicted_names) and a
probability map is read back by one (read_probability), in both formats predict writes."""
from __future__ import annotations

import numpy as np
import pytest

from nbseg.predict.image import Prediction
from nbseg.predict.outputs import predicted_names, read_probability, result_paths, write_results


@pytest.mark.parametrize("format, shape", [("tiff", (24, 32)), ("zarr", (24, 32)), ("tiff", (3, 24, 32))])
def test_a_written_probability_map_reads_back_in_0_to_1(tmp_path, format, shape):
    fg = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    prediction = Prediction(np.stack([fg, fg / 2]), "binary", ("background", "foreground"),
                            pixel_sizes=(0.5,) * len(shape))
    paths = result_paths(tmp_path, "cell", instances=False, format=format)
    write_results(prediction, paths, threshold=0.5, instances=False)
    prob, sizes, unit = read_probability(paths["prob"], return_pixel_sizes=True)
    assert prob.dtype == np.float32 and prob.shape == fg.shape
    np.testing.assert_allclose(prob, fg, atol=0.5 / 255 + 1e-6)  # TIFF keeps 0-255, Zarr float32
    np.testing.assert_allclose(read_probability(paths["uncertainty"]), fg / 2, atol=0.5 / 255 + 1e-6)
    assert tuple(sizes) == (0.5,) * len(shape) and unit == "µm"
    assert predicted_names(tmp_path) == ["cell"]


@pytest.mark.parametrize("format", ["tiff", "zarr"])
def test_relative_pixel_sizes_stay_relative_in_every_result_file(tmp_path, format):
    """Fiji's relative(x=y=1) calibration (Z spacing 2 in units of the pixel) is no length: the results keep
    the ratios (orthogonal views need them) without claiming µm, and their tables leave µm columns empty."""
    import pandas as pd

    from nbseg.io.images import read_image

    shape = (3, 24, 32)
    fg = np.zeros(shape, np.float32)
    fg[:, 4:12, 4:12] = 1
    prediction = Prediction(np.stack([fg, np.zeros_like(fg)]), "binary", ("background", "foreground"),
                            pixel_sizes=(2.0, 1.0, 1.0))
    paths = result_paths(tmp_path, "cell", instances=True, format=format)
    write_results(prediction, paths, threshold=0.5, instances=True, min_size=0, unit="relative")
    for kind in ("prob", "mask", "labels", "uncertainty"):
        image = read_image(paths[kind])
        assert (tuple(image.pixel_sizes), image.unit) == ((2.0, 1.0, 1.0), "relative"), kind
    table = pd.read_csv(paths["objects"])
    assert len(table) == 1 and table["volume_um3"].isna().all() and table["volume_px"][0] == 3 * 8 * 8


def test_predicted_names_finds_both_formats_and_nothing_else(tmp_path):
    for stem, format in (("b", "zarr"), ("a", "tiff")):
        fg = np.full((8, 8), 0.75, np.float32)
        write_results(Prediction(np.stack([fg, fg]), "binary", ("background", "foreground")),
                      result_paths(tmp_path, stem, instances=False, format=format), threshold=0.5, instances=False)
    (tmp_path / "notes.prob.txt").write_text("not a map")
    assert predicted_names(tmp_path) == ["a", "b"]
    assert predicted_names(tmp_path / "missing") == []
