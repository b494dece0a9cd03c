"""The viewers' scale bar in µm, colour bars of probability and uncertainty maps, and class legend
(nbseg.ui.annotate), drawn into the shown picture."""
from __future__ import annotations

import numpy as np
import pytest

from nbseg.ui import annotate
from nbseg.ui import overlay as ov


def _white_run(row) -> int:
    """Length of the longest run of pure white pixels in an RGB row."""
    white = (row == 255).all(axis=-1).astype(int)
    best = run = 0
    for v in white:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize("pixel, width, expected", [(0.5, 256, 20.0), (0.1, 100, 2.0), (0.325, 1024, 50.0),
                                                    (2.0, 64, 20.0), (0.01, 300, 0.5)])
def test_scale_bar_length_is_a_round_number_about_a_fifth_of_the_width(pixel, width, expected):
    length = annotate.nice_length(pixel, width)
    assert length == pytest.approx(expected)
    assert length / pixel <= annotate.BAR_SHARE * width + 1e-9


def test_scale_bar_is_as_long_as_its_label_says():
    picture = np.zeros((200, 256, 3), np.uint8)
    out = annotate.add_scale_bar(picture, 0.5)  # 20 µm at 0.5 µm per pixel: 40 pixels
    runs = [_white_run(row) for row in out]
    assert max(runs) == 40
    bar_rows = [y for y, r in enumerate(runs) if r == 40]
    assert min(bar_rows) > 150  # at the bottom
    assert (out[:min(bar_rows) - 1] == 255).all(axis=-1).any()  # the label above it
    assert np.array_equal(picture, np.zeros_like(picture))  # the input is left alone
    with pytest.raises(ValueError, match="pixel size"):
        annotate.add_scale_bar(picture, 0)


def test_scale_bar_stays_inside_the_image_region():
    picture = np.zeros((120, 300, 3), np.uint8)
    out = annotate.add_scale_bar(picture, 1.0, region=(100, 100))
    assert (out[100:] == 0).all() and (out[:, 100:] == 0).all()  # maps beside and below untouched
    assert max(_white_run(row) for row in out[:100, :100]) == 20  # 20 µm at 1 µm per pixel


def test_colour_bar_runs_from_low_to_high_colour_with_its_title():
    bar = annotate.colour_bar("probability", "viridis", 200)
    assert bar.shape[1] == 200 and bar.dtype == np.uint8
    low, high = ov.colormap(np.array([0.0]), "viridis")[0], ov.colormap(np.array([1.0]), "viridis")[0]
    row = bar[annotate.TEXT_HEIGHT + 5]
    assert np.abs(row[2].astype(int) - low).max() <= 3 and np.abs(row[197].astype(int) - high).max() <= 3
    assert (bar[:annotate.TEXT_HEIGHT] == 255).all(axis=-1).sum() > 20  # the title is written
    magma = annotate.colour_bar("uncertainty", "magma", 200)
    assert not np.array_equal(magma[annotate.TEXT_HEIGHT + 5], row)


def test_legend_shows_each_class_colour():
    names = ["cell", "nucleus", "background debris"]
    out = annotate.legend(names, 400)
    for k in range(len(names)):
        assert (out == ov.LABEL_COLORS[k]).all(axis=-1).sum() >= 25, names[k]
    assert not (out == ov.LABEL_COLORS[len(names)]).all(axis=-1).any()
    narrow = annotate.legend(names, 80)
    assert narrow.shape[0] > out.shape[0]  # wraps to more rows


def test_viewer_draws_scale_bar_colour_bars_and_legend():
    ipywidgets = pytest.importorskip("ipywidgets")
    assert ipywidgets
    from nbseg.ui.viewers import Viewer2D

    image = np.random.default_rng(0).random((1, 64, 64)).astype(np.float32) * 0.2
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 10:30], labels[40:60, 40:60] = 1, 2
    prob = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    plain = Viewer2D(image, labels)
    scaled = Viewer2D(image, labels, pixel_size=0.5)
    assert plain.rgb.shape == scaled.rgb.shape and not np.array_equal(plain.rgb, scaled.rgb)
    factor = plain._factor  # noqa: SLF001 - the display's enlargement sets the bar's length on screen
    assert max(_white_run(r) for r in scaled.rgb) == round(annotate.nice_length(0.5 / factor, 64 * factor)
                                                          / (0.5 / factor))
    mapped = Viewer2D(image, labels, maps=[("probability", prob, "viridis"), ("uncertainty", prob, "magma")])
    assert mapped.rgb.shape[0] > plain.rgb.shape[0]  # two colour bars below
    legend = Viewer2D(image, labels, classes=["cell", "nucleus"])
    below = legend.rgb[plain.rgb.shape[0]:]
    assert (below == ov.LABEL_COLORS[0]).all(axis=-1).any() and (below == ov.LABEL_COLORS[1]).all(axis=-1).any()
    assert legend.pixel_at(20 * factor, 20 * factor) == (20, 20)  # clicks still map to image pixels
