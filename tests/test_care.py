"""CARE (nbseg.denoise.care): supervised restoration from noisy/clean pairs, on segmentation's loop as N2V2 is;
pairs matched by name, targets in the noisy image's scale, the method kept in the project."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from nbseg.data import Sample
from nbseg.denoise.care import PairSampler, masked_l1
from nbseg.denoise.noise import low_light


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def blobs(rng, shape=(64, 64), n: int = 6) -> np.ndarray:
    """A clean image in [0, 1]: ``n`` round, smooth-edged blobs (nuclei-like) on a dark background."""
    seeds = np.zeros(shape, bool)
    seeds[tuple(rng.integers(6, s - 6, n) for s in shape)] = True
    image = ndimage.gaussian_filter(ndimage.binary_dilation(seeds, iterations=5).astype(np.float32), 1.5)
    return (image - image.min()) / (image.max() - image.min())


def make_pairs(root, n: int = 4, *, scale: float = 1.0, shape=(64, 64)):
    """``n`` clean images (``root/clean``) and their low-light noisy copies (``root/noisy``, times ``scale``)."""
    rng = np.random.default_rng(0)
    for kind in ("noisy", "clean"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        clean = blobs(rng, shape)
        tifffile.imwrite(root / "clean" / f"c{i}.tif", scale * clean)
        tifffile.imwrite(root / "noisy" / f"c{i}.tif", scale * low_light(clean, rng=i))
    return root / "noisy", root / "clean"


def care_config(noisy, clean, **train):
    from nbseg.denoise import denoise_config

    return denoise_config(noisy, data={"masks": clean}, model={"patch": [32, 32]},
                          train={"epochs": 10, "steps_per_epoch": 10, "seed": 0, "device": "cpu", "batch_size": 4,
                                 **train})


# ---------------------------------------------------------------- pieces


def test_the_loss_is_the_mean_absolute_error_inside_the_image():
    clean = torch.rand(2, 1, 16, 16)
    inside = torch.ones(2, 1, 16, 16)
    inside[..., 12:] = 0  # padding
    y = torch.cat([clean, inside], 1)
    output = clean + 0.3 * (1 - inside)  # wrong on the padding only
    assert float(masked_l1(output, y)) == 0.0
    output = clean - 0.2 * inside
    assert float(masked_l1(output, y)) == pytest.approx(0.2)


def test_the_sampler_cuts_noisy_and_clean_at_the_same_place():
    rng = np.random.default_rng(0)
    noisy, clean = rng.random((2, 1, 40, 50)).astype(np.float32)
    sample = Sample("a", np.concatenate([noisy, clean]), np.broadcast_to(np.int8(0), (40, 50)))
    x, y = PairSampler([sample], (48, 48), np.random.default_rng(1)).batch(3)
    assert x.shape == (3, 1, 48, 48) and y.shape == (3, 2, 48, 48)
    inside = y[:, 1] > 0
    assert not inside[:, 40:].all() and inside.any()  # 40 rows in a 48-row patch: the rest is padding
    for xi, yi in zip(x[:, 0], y[:, 0]):  # each noisy patch sits at the place of its clean patch
        rows, cols = np.nonzero(yi)
        r, c = rows.min(), cols.min()
        where = np.argwhere(clean == yi[r, c])[0]
        assert xi[r, c] == noisy[tuple(where)]


# ---------------------------------------------------------------- loading pairs


def test_targets_go_by_the_noisy_image_scale(tmp_path):
    """A pair whose clean image is 100x the noisy one's scale: the target keeps that ratio after normalising
    (each by its own percentiles it would not), so the output lands in the input's intensity scale."""
    from nbseg.config import Config
    from nbseg.denoise import load_noisy

    (tmp_path / "n").mkdir(), (tmp_path / "c").mkdir()
    rng = np.random.default_rng(0)
    noisy = rng.random((32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "n" / "a.tif", noisy)
    tifffile.imwrite(tmp_path / "c" / "a.tif", 100 * noisy)
    dataset = load_noisy(Config.model_validate({"data": {"images": tmp_path / "n", "masks": tmp_path / "c"}}).data)
    assert dataset.kind == "care" and dataset.in_channels == 1 == dataset.n_classes
    (sample,) = dataset.samples
    low, high = np.percentile(noisy, (1, 99.8))
    assert sample.image.shape == (2, 32, 32)
    np.testing.assert_allclose(sample.image[0], (noisy - low) / (high - low), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sample.image[1], (100 * noisy - low) / (high - low), rtol=1e-4, atol=1e-3)


def test_unmatched_targets_are_refused_naming_both_sides(tmp_path, capsys):
    from nbseg.cli.main import main

    noisy, clean = make_pairs(tmp_path, 3)
    (clean / "c2.tif").rename(clean / "other.tif")
    code = main(["denoise", "train", "--images", str(noisy), "--targets", str(clean), "--project",
                 str(tmp_path / "dn"), "--epochs", "1"])
    said = capsys.readouterr().err
    assert code == 2
    assert "images without a clean target" in said and "c2.tif" in said
    assert "clean targets without an image" in said and "other.tif" in said
    assert "same name as its image" in said
    assert not (tmp_path / "dn" / "models").exists()


def test_a_target_of_another_shape_is_refused(tmp_path):
    from nbseg.data.dataset import DataError
    from nbseg.denoise import train_denoiser

    noisy, clean = make_pairs(tmp_path, 2)
    tifffile.imwrite(clean / "c1.tif", np.zeros((60, 64), np.float32))
    with pytest.raises(DataError, match=r"c1.tif has shape \(1, 60, 64\).*\(1, 64, 64\).*Crop or register"):
        train_denoiser(care_config(noisy, clean), tmp_path / "dn")


# ---------------------------------------------------------------- training


@pytest.mark.slow  # 100 steps of training: about 8 s on one thread
def test_care_restores_synthetic_pairs(tmp_path):
    """Four 64x64 pairs of blobs with the issue's low-light noise: 100 steps (about 6 s) of CARE lift PSNR by
    more than 5 dB (about 11 measured) over the noisy images, and the project says it is CARE."""
    from nbseg.denoise import denoise_files, load_denoiser, train_denoiser
    from nbseg.metrics.restoration import evaluate_restoration

    noisy, clean = make_pairs(tmp_path, 4)
    result = train_denoiser(care_config(noisy, clean), tmp_path / "dn")
    assert result.stopped == "epochs"
    model, meta = load_denoiser(tmp_path / "dn")
    assert meta["method"] == "care" and "val_psnr" in meta and model.top_skip and model.spec.get("pool", "max") != "maxblur"
    denoise_files(tmp_path / "dn", [noisy], tmp_path / "out")
    before = evaluate_restoration(noisy, clean).summary
    after = evaluate_restoration(tmp_path / "out", clean).summary
    assert after["psnr"] > before["psnr"] + 5, (before, after)


def test_care_output_is_in_the_input_intensity_scale(tmp_path):
    """Pairs stored at 1000x scale (as 16-bit counts would be): the restored image is too, close to the clean."""
    from nbseg.denoise import denoise_files, train_denoiser
    from nbseg.io import read_image

    noisy, clean = make_pairs(tmp_path, 3, scale=1000.0)
    train_denoiser(care_config(noisy, clean, epochs=6), tmp_path / "dn")
    (written,) = denoise_files(tmp_path / "dn", [noisy / "c0.tif"], tmp_path / "out")
    restored, truth = read_image(written).data[0], tifffile.imread(clean / "c0.tif")
    assert np.abs(restored - truth).mean() < 0.5 * np.abs(tifffile.imread(noisy / "c0.tif") - truth).mean()
    assert 500 < restored.max() < 1500


def test_cli_trains_care_in_3d_and_resume_keeps_the_method(tmp_path, capsys):
    from nbseg.cli.main import main
    from nbseg.denoise import load_denoiser

    rng = np.random.default_rng(0)
    for kind in ("noisy", "clean"):
        (tmp_path / kind).mkdir()
    clean = blobs(rng, (16, 32, 32), n=3)
    tifffile.imwrite(tmp_path / "clean" / "s.tif", clean, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "noisy" / "s.tif", low_light(clean, rng=0), metadata={"axes": "ZYX"})
    project = tmp_path / "dn"
    args = ["denoise", "train", "--images", str(tmp_path / "noisy"), "--targets", str(tmp_path / "clean"),
            "--project", str(project), "--model-dims", "3", "--steps-per-epoch", "2", "--batch-size", "1",
            "--patch", "16,16,16", "--device", "cpu"]
    assert main(args + ["--epochs", "1"]) == 0
    said = capsys.readouterr().out
    assert "CARE" in said and "val PSNR" in said and "vs noisy" not in said
    model, meta = load_denoiser(project)
    assert meta["method"] == "care" and meta["plan"]["model_dims"] == 3 and model.spec["spatial_dims"] == 3
    # the project remembers its targets: a resume without them continues CARE
    assert main(["denoise", "train", "--project", str(project), "--epochs", "2", "--resume"]) == 0
    assert "resuming at epoch 2" in capsys.readouterr().out
    assert load_denoiser(project)[1]["method"] == "care"
    assert main(["denoise", "predict", str(project), str(tmp_path / "noisy"), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "s.denoised.ome.tif").exists()


def test_resuming_with_the_other_method_is_refused(tmp_path):
    from nbseg.data.dataset import DataError
    from nbseg.denoise import denoise_config, train_denoiser

    noisy, clean = make_pairs(tmp_path, 2, shape=(32, 32))
    train_denoiser(care_config(noisy, clean, epochs=1, steps_per_epoch=1), tmp_path / "dn")
    n2v2 = denoise_config(noisy, train={"epochs": 2, "steps_per_epoch": 1, "device": "cpu", "batch_size": 2},
                          model={"patch": [32, 32]})
    with pytest.raises(DataError, match="holds a CARE denoiser.*no clean targets.*new --project"):
        train_denoiser(n2v2, tmp_path / "dn", resume=True)
