"""Partial labels: a mask value that means "not labelled" (data.unlabelled, --unlabelled). Such pixels count in
neither the loss, the validation Dice, the fingerprint nor patch sampling, and bad settings are refused."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from nbseg.config import IGNORE, Config
from nbseg.data import load_dataset, sample
from nbseg.data.dataset import DataError
from nbseg.data.fingerprint import fingerprint
from nbseg.data.sampler import PatchSampler
from nbseg.data.targets import LabelError, to_target
from nbseg.io.images import ImageReadError
from nbseg.model.unet import UNet
from nbseg.train.step import TrainStep

V = 65535  # "not labelled" in the instance masks below


def nuclei_crops(tmp_path, n=3, side=128):
    """Real crops of the bundled DSB2018 nuclei, as (image, instance mask) pairs."""
    src = sample("nuclei2d")
    return [(tifffile.imread(p)[:side, :side], tifffile.imread(src["masks"] / p.name)[:side, :side].astype(np.uint16))
            for p in sorted(src["images"].glob("*.tif"))[:n]]


def write_pairs(root, pairs, axes="YX"):
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(pairs):
        tifffile.imwrite(root / "images" / f"im{i}.tif", image, metadata={"axes": axes})
        tifffile.imwrite(root / "masks" / f"im{i}.tif", mask, metadata={"axes": axes})
    return root


def hide_every_second(mask, value=V):
    """Every second object and a 2-pixel ring around it marked not labelled (the issue's DSB2018 protocol)."""
    from scipy import ndimage

    hidden = np.isin(mask, np.unique(mask[mask > 0])[::2])
    ring = ndimage.binary_dilation(hidden, iterations=2)
    return np.where(ring, value, mask).astype(mask.dtype), ring


def train_weights(target, image, steps=4, seed=0):
    """A small U-Net after a few real training steps on one (image, target) pair, every step the same batch."""
    torch.manual_seed(seed)
    model = UNet(2, 1, 3, "S")
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", precision="fp32",
                     layout=torch.contiguous_format, augment=False, generator=None)
    x = np.ascontiguousarray(image[None, None, :64, :64].astype(np.float32) / 255)
    y = np.ascontiguousarray(target[None, :64, :64])
    for _ in range(steps):
        step(x, y)
    return torch.cat([p.detach().ravel() for p in model.parameters()])


def test_loss_learns_nothing_from_unlabelled_pixels(tmp_path, one_thread):
    (image, mask), = nuclei_crops(tmp_path, n=1)
    _, unlabelled = hide_every_second(mask)
    wrong = np.where(unlabelled, (mask + 7) * (mask == 0), mask)  # objects where there are none, and vice versa
    ignored = train_weights(to_target(mask, "instances", n_classes=3, unlabelled=unlabelled), image)
    with_wrong = train_weights(to_target(wrong, "instances", n_classes=3, unlabelled=unlabelled), image)
    trusted = train_weights(to_target(wrong, "instances", n_classes=3), image)
    assert torch.allclose(ignored, with_wrong, atol=1e-6), "labels under unlabelled pixels changed what was learned"
    assert not torch.allclose(ignored, trusted, atol=1e-4), "the wrong labels, when trusted, must change the model"


def test_boundaries_are_not_drawn_against_unlabelled_pixels():
    mask = np.zeros((12, 12), np.uint16)
    mask[2:10, 2:6] = 1
    unlabelled = np.zeros(mask.shape, bool)
    unlabelled[:, 6:] = True  # the object's right edge borders pixels nobody labelled
    target = to_target(mask, "instances", n_classes=3, unlabelled=unlabelled)
    assert (target[3:9, 5] == 1).all(), "an edge towards unlabelled pixels is interior"
    assert (target[3:9, 2] == 2).all() and (target[2, 3:6] == 2).all(), "edges towards background stay boundary"
    assert (target[unlabelled] == IGNORE).all()


def test_unlabelled_slices_of_a_stack(tmp_path):
    src = sample("nuclei3d")
    path = sorted(src["images"].glob("*.tif"))[0]
    image, mask = tifffile.imread(path), tifffile.imread(src["masks"] / path.name).astype(np.uint16)
    partial = np.full_like(mask, V)
    partial[::10] = mask[::10]  # every 10th slice labelled, the rest not
    root = write_pairs(tmp_path / "data", [(image, partial)], axes="ZYX")
    data = load_dataset(Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": V,
                                     "labels": "instances"}).data)
    target = data.samples[0].target
    labelled_slices = [z for z in range(target.shape[0]) if (target[z] != IGNORE).any()]
    assert labelled_slices == list(range(0, mask.shape[0], 10))
    assert (target[::10] > 0).sum() == (mask[::10] > 0).sum()
    sampler = PatchSampler(data.samples, (8, 32, 32), foreground_fraction=0.0, seed=1)
    for _ in range(20):
        _, y = sampler.batch(4)
        assert ((y != IGNORE).reshape(4, -1).any(axis=1)).all(), "a patch with no labelled pixel was drawn"


def test_sampler_never_draws_a_patch_without_labels():
    target = np.full((200, 200), IGNORE, np.int64)
    target[180:190, 10:20] = 0
    target[185, 15] = 1
    samples = [type("S", (), {"image": np.zeros((1, 200, 200), np.float32), "target": target})()]
    sampler = PatchSampler(samples, (32, 32), foreground_fraction=0.0, seed=0)
    for _ in range(50):
        _, y = sampler.batch(2)
        assert ((y != IGNORE).reshape(2, -1).any(axis=1)).all()


def test_fingerprint_ignores_unlabelled_pixels(tmp_path):
    from scipy import ndimage

    hidden = [(image, hide_every_second(mask)[0]) for image, mask in nuclei_crops(tmp_path)]
    root = write_pairs(tmp_path / "partial", hidden)
    data = load_dataset(Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": V}).data)
    measured = fingerprint(data)
    # by hand, over labelled pixels only: class shares, and the sizes of the objects left labelled
    counts, sizes = np.zeros(3), []
    for s, (_, mask) in zip(data.samples, hidden):
        counts += np.bincount(s.target[s.target != IGNORE], minlength=3)[:3]
        pieces, _ = ndimage.label((mask > 0) & (mask != V))
        sizes += np.bincount(pieces.ravel())[1:].tolist()
    assert counts.sum() < sum(s.target.size for s in data.samples)
    assert np.allclose(measured.class_fractions, counts / counts.sum(), atol=1e-5)
    assert measured.object_size["count"] == len(sizes)
    assert measured.object_size["p50"] == pytest.approx(np.percentile(sizes, 50))
    assert sum(int((s.target == IGNORE).sum()) for s in data.samples) == sum(int((m == V).sum()) for _, m in hidden)


def test_no_labelled_pixel_is_refused_naming_the_file(tmp_path):
    pairs = nuclei_crops(tmp_path, n=2)
    pairs[1] = (pairs[1][0], np.full_like(pairs[1][1], V))
    root = write_pairs(tmp_path / "data", pairs)
    with pytest.raises(DataError, match=r"im1\.tif has no labelled pixel"):
        load_dataset(Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": V}).data)


def test_value_that_is_a_class_is_refused(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 20:40], mask[:, 40:] = 1, 2
    mask[::8] = 3  # stripes: several regions per value, a class set
    root = write_pairs(tmp_path / "data", [(image, mask)])
    with pytest.raises(LabelError, match="'not labelled' value 2 is also class 2"):
        load_dataset(Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": 2,
                                  "labels": "multiclass", "n_classes": 4}).data)
    with pytest.raises(ValueError, match="0 is background"):
        Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": 0})


def test_value_for_float_masks_is_refused(tmp_path):
    (image, mask), = nuclei_crops(tmp_path, n=1)
    root = write_pairs(tmp_path / "data", [(image, hide_every_second(mask, 255)[0].astype(np.float32))])
    with pytest.raises(ImageReadError, match=r"im0\.tif is a float image"):
        load_dataset(Config(data={"images": root / "images", "masks": root / "masks", "unlabelled": 255}).data)


def test_cli_refuses_before_writing_anything(tmp_path):
    pairs = nuclei_crops(tmp_path, n=2)
    pairs[0] = (pairs[0][0], np.full_like(pairs[0][1], V))
    root = write_pairs(tmp_path / "data", pairs)
    project = tmp_path / "project"
    out = subprocess.run([sys.executable, "-m", "nbseg", "train", "--images", str(root / "images"), "--masks",
                          str(root / "masks"), "--project", str(project), "--unlabelled", str(V), "--minutes", "0.1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "im0.tif has no labelled pixel" in out.stderr + out.stdout
    assert not project.exists() or not any(project.iterdir()), "a refused run left files behind"
