"""Partial labels in the notebooks, headless: notebook 01 takes the "not labelled" value and shows those pixels
apart, notebook 03 counts labelled pixels and objects per image and tints the unlabelled part."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

pytest.importorskip("ipywidgets")

from nbseg.config import Config  # noqa: E402
from nbseg.data import sample  # noqa: E402
from nbseg.ui.overlay import UNLABELLED_COLOR  # noqa: E402

V = 65535


pytestmark = pytest.mark.usefixtures("panel_env")


@pytest.fixture
def stacks(tmp_path):
    """The bundled 3D nuclei, labelled on every 10th slice only (the rest hold V)."""
    src = sample("nuclei3d")
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for path in sorted(src["images"].glob("*.tif")):
        mask = tifffile.imread(src["masks"] / path.name).astype(np.uint16)
        partial = np.full_like(mask, V)
        partial[::10] = mask[::10]
        tifffile.imwrite(tmp_path / "images" / path.name, tifffile.imread(path), metadata={"axes": "ZYX"})
        tifffile.imwrite(tmp_path / "masks" / path.name, partial, metadata={"axes": "ZYX"})
    return tmp_path


def has_tint(rgb) -> bool:
    """Whether most pixels are pulled towards the blue-grey of unlabelled pixels (the shown slice is unlabelled)."""
    rgb = np.asarray(rgb, np.int32)
    blue, red = UNLABELLED_COLOR[2] - UNLABELLED_COLOR[0], rgb[..., 2] - rgb[..., 0]
    return bool(np.mean(red > 0.4 * blue) > 0.5)


def test_01_takes_the_value_and_shows_unlabelled_pixels(stacks, tmp_path):
    from nbseg.ui import DataPanel

    project = tmp_path / "project"
    panel = DataPanel(project)
    panel.images.value, panel.masks.value = str(stacks / "images"), str(stacks / "masks")
    panel.unlabelled.value = "65535x"
    panel.check.click()
    assert panel.error is not None and "Not labelled value" in panel.errors.message.value
    panel.unlabelled.value = str(V)
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    assert Config.load(project).data.unlabelled == V
    image, labels, excluded, unlabelled, _ = panel.service.preview(0)
    assert excluded is None and unlabelled is not None and labels.max() < V
    assert unlabelled[1].all() and not unlabelled[0].all()
    panel.viewer.z.value = 5  # an unlabelled slice: tinted
    assert has_tint(panel.viewer.rgb)
    assert DataPanel(project).unlabelled.value == str(V)  # a fresh kernel reads it back


def test_02_counts_labelled_pixels_and_tints_the_rest(stacks, tmp_path):
    from nbseg.ui import LabelQCPanel

    project = tmp_path / "project"
    Config(data={"images": stacks / "images", "masks": stacks / "masks", "unlabelled": V}).save(project)
    panel = LabelQCPanel(project)
    panel.qc_button.click()
    assert panel.error is None, panel.errors.message.value
    table = panel.state.report.table
    depth = tifffile.imread(next((stacks / "masks").glob("*.tif"))).shape[0]
    expected = len(range(0, depth, 10)) / depth
    assert np.allclose(table["labelled_fraction"], expected)
    assert (table["n_objects"] > 0).all() and not table["no_labels"].any()
    assert "labelled_fraction" in panel.table.value
    name = panel.state.order[0]
    # the middle slice shown in the browser is unlabelled: tinted, and no label colour from the value V
    assert has_tint(panel.service.thumbnail(name))


def test_qc_flags_a_mask_with_no_labelled_pixel(stacks):
    from nbseg.labels.qc import qc_dataset

    first = next((stacks / "masks").glob("*.tif"))
    tifffile.imwrite(first, np.full_like(tifffile.imread(first), V), metadata={"axes": "ZYX"})
    report = qc_dataset(stacks / "images", stacks / "masks", unlabelled=V)
    assert report.table.loc[first.stem, "no_labels"]
    assert report.table.loc[first.stem, "labelled_fraction"] == 0.0
    os.remove(first)
