"""Notebook 00_denoise's panel driven headless (``.value`` and ``.click()``): a denoiser trained for a
second on small synthetic noisy images with the live loss plot, the images denoised by the core, and the
noisy and denoised image compared with one slider and their difference. Runs on ipywidgets 7.7
(``make test-widgets7``) and 8."""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

ipw = pytest.importorskip("ipywidgets")

from nbseg.io import read_image  # noqa: E402
from nbseg.ui import compat  # noqa: E402
from nbseg.ui.common import walk  # noqa: E402

MINUTES = 0.01  # under a second of training: one epoch, enough for the mechanics


@pytest.fixture(autouse=True)
def quick_env(monkeypatch, one_thread):
    for name, value in (("NBSEG_QUICK", "1"), ("NBSEG_AUTORUN", "0"), ("MPLBACKEND", "Agg")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NBSEG_QUICK_MINUTES", raising=False)


def noisy_images(folder: Path, shape, sizes, n: int = 2) -> Path:
    """``n`` blobs-on-background images of ``shape`` with Poisson noise, as OME-TIFF with pixel sizes (µm)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    grid = np.indices(shape)
    for i in range(n):
        centre = [s // 2 + i for s in shape]
        clean = 5 + 40 * (sum((g - c) ** 2 for g, c in zip(grid, centre)) < (shape[-1] // 4) ** 2)
        axes = "YX" if len(shape) == 2 else "ZYX"
        tifffile.imwrite(folder / f"img{i}.ome.tif", rng.poisson(clean).astype(np.uint16), metadata={
            "axes": axes, **{f"PhysicalSize{a}": v for a, v in zip(axes, sizes)}})
    return folder


def panel_for(tmp_path, images=None, **kwargs):
    from nbseg.ui import DenoisePanel

    panel = DenoisePanel(tmp_path / "dn", output=tmp_path / "denoised", **kwargs)
    assert panel.error is None, panel.errors.message.value
    if images is not None:
        panel.sample.value = ""
        panel.images.value = str(images)
    panel.minutes.value = MINUTES
    return panel


def press(button, panel):
    button.click()
    assert panel.error is None, panel.errors.message.value


@pytest.mark.slow  # a training run
def test_00_trains_with_the_live_plot_denoises_and_compares(tmp_path):
    from nbseg.denoise import denoise_image, load_denoiser

    images = noisy_images(tmp_path / "noisy", (64, 72), (0.5, 0.5))
    panel = panel_for(tmp_path, images)
    assert [b.description for b in panel.buttons] == ["Train denoiser", "Denoise images"]
    assert all(b.button_style == "primary" for b in panel.buttons)
    missing = [type(c).__name__ for c in walk(panel.widget) if isinstance(c, (ipw.Text, ipw.Dropdown, ipw.Button,
               ipw.BoundedFloatText, ipw.Checkbox, ipw.IntSlider)) and not compat.get_tooltip(c)]
    assert missing == []
    assert panel.images.layout.display == "" and panel.replace.layout.display == "none"

    press(panel.train_button, panel)
    assert (tmp_path / "dn" / "models" / "fold0.pt").exists()
    assert panel.callback.plots_drawn >= 1 and panel.plot.value[:4] == b"\x89PNG"
    assert "<progress" in panel.bars.value and "val PSNR vs noisy" in panel.bars.value  # the denoiser's score
    assert "Trained the denoiser" in panel.status.text and panel.replace.layout.display == ""
    assert panel.compare_box.layout.display == "none"  # nothing to compare yet

    press(panel.denoise_button, panel)
    written = sorted((tmp_path / "denoised").glob("*.tif"))
    assert [p.name for p in written] == ["img0.ome.tif", "img1.ome.tif"]  # masks named img0.tif pair with them
    from nbseg.denoise.segment import made_by

    assert made_by(tmp_path / "denoised", tmp_path / "dn"), "a project trained on them carries this denoiser"
    assert "01_data" in panel.summary.value and panel.compare_box.layout.display == ""
    # the files are the core's denoising of each image, as nbseg denoise predict writes it
    noisy = read_image(images / "img1.ome.tif")
    expected = denoise_image(load_denoiser(tmp_path / "dn"), noisy, device="cpu")
    assert np.allclose(read_image(written[1]).data, expected, atol=1e-4)

    view = panel.view
    assert view.z.layout.display == "none" and view.channel.layout.display == "none"  # 2D, one channel
    panel.which.value = 1  # the second image: both sides change together
    assert view.title.value == "<b>img1</b>"
    assert np.array_equal(view.planes["noisy"], noisy.data[0].astype(np.float32))
    assert np.allclose(view.planes["denoised"], expected[0], atol=1e-4)
    assert np.allclose(view.planes["difference"], expected[0] - noisy.data[0], atol=1e-3)
    assert view.pixel_size == 0.5 and view.picture.value[:4] == b"\x89PNG"


@pytest.mark.slow  # a training run
def test_00_stacks_share_one_z_slider(tmp_path):
    images = noisy_images(tmp_path / "noisy", (8, 40, 48), (2.0, 0.5, 0.5), n=1)
    panel = panel_for(tmp_path, images)
    press(panel.train_button, panel)
    press(panel.denoise_button, panel)
    view = panel.view
    noisy = read_image(images / "img0.ome.tif").data
    denoised = read_image(tmp_path / "denoised" / "img0.ome.tif").data
    assert noisy.shape == denoised.shape == (1, 8, 40, 48)
    assert view.z.layout.display == "" and view.z.max == 7
    before = view.picture.value
    view.z.value = 2  # one slider: the noisy, denoised and difference planes all move to slice 2
    assert np.array_equal(view.planes["noisy"], noisy[0, 2].astype(np.float32))
    assert np.array_equal(view.planes["denoised"], denoised[0, 2])
    assert np.array_equal(view.planes["difference"], denoised[0, 2] - noisy[0, 2].astype(np.float32))
    assert view.picture.value != before


@pytest.mark.slow  # a training run on the bundled sample
def test_00_practises_on_the_sample_and_asks_before_replacing(tmp_path):
    from nbseg.data import sample
    from nbseg.ui.denoise_service import practice_folder

    panel = panel_for(tmp_path, sample_name="nuclei2d")
    assert panel.sample.value == "nuclei2d" and panel.images.layout.display == "none"
    press(panel.train_button, panel)
    practice = sorted(practice_folder(tmp_path / "dn", "nuclei2d").iterdir())
    originals = sorted(sample("nuclei2d")["images"].iterdir())
    assert len(practice) == len(originals) == 24
    clean, noisy = read_image(originals[0]).data[0].astype(np.float32), read_image(practice[0]).data[0]
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    assert 0.02 < np.std(noisy - clean) < 0.3  # the low-light noise is there
    press(panel.denoise_button, panel)
    assert len(list((tmp_path / "denoised").glob("*.tif"))) == 4  # quick mode denoises the first few

    model = tmp_path / "dn" / "models" / "fold0.pt"
    before = model.stat().st_mtime_ns
    panel.train_button.click()  # a trained denoiser is replaced only when asked
    message = html.unescape(panel.errors.message.value)
    assert panel.error is not None and "tick 'Replace the trained denoiser'" in message
    assert model.stat().st_mtime_ns == before
    reopened = panel_for(tmp_path)  # a fresh kernel: the saved denoiser, its images and its plot
    assert reopened.sample.value == "" and reopened.images.value == str(practice_folder(tmp_path / "dn", "nuclei2d"))
    assert reopened.plot.value[:4] == b"\x89PNG" and "Denoise images' uses it" in reopened.status.text


def test_00_says_what_is_missing(tmp_path):
    panel = panel_for(tmp_path, images="")
    panel.denoise_button.click()
    assert "press 'Train denoiser' first" in html.unescape(panel.errors.message.value)
    panel.train_button.click()
    assert "No noisy images given" in html.unescape(panel.errors.message.value)
    panel.images.value = str(tmp_path / "nowhere")
    panel.train_button.click()
    assert "does not exist" in html.unescape(panel.errors.message.value)
    assert not (tmp_path / "denoised").exists()


def test_compare_view_draws_one_scale_and_the_difference():
    from nbseg.ui.compare import CompareView

    rng = np.random.default_rng(0)
    noisy = rng.normal(10, 3, (1, 30, 40)).astype(np.float32)
    denoised = np.full_like(noisy, 10.0)
    view = CompareView()
    assert view.picture.layout.display == "none"  # nothing shown before a pair
    view.set_data(noisy, denoised, title="a")
    assert set(view.planes) == {"noisy", "denoised", "difference"}
    assert np.allclose(view.planes["difference"], 10.0 - noisy[0])
    width = view.rgb.shape[1]
    plain = view.rgb.copy()
    view.set_data(noisy, denoised, pixel_size=0.2)  # scale bars drawn into the pictures
    assert view.rgb.shape == plain.shape and not np.array_equal(view.rgb, plain) and width > 3 * 40
    with pytest.raises(ValueError, match="its own denoised copy"):
        view.set_data(noisy, denoised[:, :20])


def test_the_training_plot_shows_another_task_s_score_on_its_own_scale():
    """Segmentation's Dice on 0..1; a denoiser's PSNR in dB on its own range, named as the run names it."""
    from nbseg.ui.plots import history_figure

    rows = [{"fold": 0, "epoch": e, "train_loss": 0.1, "val_loss": 0.1, "val_dice": v} for e, v in enumerate((14, 17))]
    psnr = history_figure(rows, "val PSNR vs noisy").axes[1]
    assert psnr.get_title() == "val PSNR vs noisy (higher is better)"
    low, high = psnr.get_ylim()
    assert low < 14 and high > 17
    dice = history_figure([dict(r, val_dice=0.5) for r in rows]).axes[1]
    assert dice.get_ylim() == (0, 1) and dice.get_title() == "Validation Dice (higher is better)"


def test_the_panel_computes_and_writes_nothing_itself():
    """Training, denoising, reading and the practice copy are the service's (and the core's)."""
    source = (Path(__file__).resolve().parents[1] / "nbseg" / "ui" / "denoise_panel.py").read_text(encoding="utf-8")
    for word in ("write", "mkdir", "tifffile", "read_image", "denoise_files", "train_denoiser", "numpy"):
        assert word not in source, word
    assert not re.search(r"(?<![.\w])open\(", source)  # the service's open() is fine, the built-in is not
