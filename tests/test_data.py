"""Pairing, targets, normalisation, sampling, augmentation and splits — 2D and 3D by the same code."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from nbseg.config import Config
from nbseg.data import load_dataset, sample
from nbseg.data.augment import augment_batch
from nbseg.data.normalize import percentile_normalize
from nbseg.data.pairs import find_pairs
from nbseg.data.sampler import PatchSampler, crop
from nbseg.data.split import load_or_make_split, make_folds
from nbseg.data.targets import IGNORE, LabelError, detect_label_kind, instances_to_three_class, to_target
from nbseg.data.dataset import Sample


def test_pairs_match_by_stem_across_suffixes(tmp_path):
    for folder, name in (("im", "a.tif"), ("im", "b.ome.tif"), ("m", "a.png"), ("m", "b.tif")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(b"x")
    pairs = find_pairs(tmp_path / "im", tmp_path / "m")
    assert [(p.name, p.image.name, p.mask.name) for p in pairs] == [("a", "a.tif", "a.png"), ("b", "b.ome.tif", "b.tif")]


def test_touching_instances_are_separated_by_boundary():
    labels = np.zeros((10, 12), np.int32)
    labels[2:8, 1:6] = 1
    labels[2:8, 6:11] = 2  # touches object 1
    target = instances_to_three_class(labels)
    assert set(np.unique(target)) == {0, 1, 2}
    assert (target[2:8, 5] == 2).all() and (target[2:8, 6] == 2).all()  # the contact line is boundary
    interior = target == 1
    from skimage.measure import label

    assert label(interior).max() == 2  # interiors come apart


def test_label_kind_detection():
    assert detect_label_kind([np.array([0, 255])]) == "binary"
    objects = np.zeros((20, 20), int)
    for k, (r, c) in enumerate([(2, 2), (2, 12), (12, 2), (12, 12)]):
        objects[r:r + 5, c:c + 5] = k + 1
    assert detect_label_kind([objects]) == "instances"
    stripes = np.zeros((20, 20), int)  # three classes, each in several separate regions
    stripes[:, 2::6], stripes[:, 3::6], stripes[:, 4::6] = 1, 2, 3
    stripes[::5] = 0
    assert detect_label_kind([stripes]) == "multiclass"
    unclear = np.zeros((20, 20), int)
    unclear[2:6, 2:6], unclear[10:14, 10:14] = 1, 2  # two values, one region each: classes or objects?
    with pytest.raises(LabelError, match="--labels multiclass"):
        detect_label_kind([unclear])
    assert detect_label_kind([np.array([0, 1, 2])], n_classes=3) == "multiclass"
    assert to_target(np.array([0, 7]), "binary", n_classes=2).tolist() == [0, 1]


def test_percentile_normalisation_maps_percentiles_to_0_1():
    image = np.random.default_rng(0).normal(100, 10, (1, 64, 64))
    out = percentile_normalize(image, percentiles=(1, 99))
    low, high = np.percentile(out, (1, 99))
    assert abs(low) < 1e-3 and abs(high - 1) < 1e-3 and out.dtype == np.float32


def test_sampler_oversamples_foreground():
    target = np.zeros((200, 200), np.int64)
    target[90:100, 90:100] = 1  # 0.25 % foreground
    s = Sample("a", np.zeros((1, 200, 200), np.float32), target)
    _, y = PatchSampler([s], (32, 32), foreground_fraction=0.8, seed=0).batch(200)
    has_fg = (y > 0).any(axis=(1, 2)).mean()
    assert has_fg > 0.7
    _, y = PatchSampler([s], (32, 32), foreground_fraction=0.0, seed=0).batch(200)
    assert (y > 0).any(axis=(1, 2)).mean() < 0.3


def test_crop_pads_outside_with_fill():
    a = np.arange(16).reshape(4, 4)
    out = crop(a, (-1, 2), (3, 3), fill=-1)
    assert out.tolist() == [[-1, -1, -1], [2, 3, -1], [6, 7, -1]]


@pytest.mark.parametrize("shape", [(32, 32), (8, 32, 32)])
def test_augmentation_moves_labels_with_image(shape):
    """Use the label itself as the image: after augmentation (no intensity change) they must still agree."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 3, (6,) + tuple(s // 8 for s in shape))
    for axis in range(1, blocks.ndim):
        blocks = blocks.repeat(8, axis=axis)  # piecewise-constant labels, like real objects
    y = torch.from_numpy(blocks).long()
    x = y[:, None].float()
    gen = torch.Generator().manual_seed(1)
    xa, ya = augment_batch(x, y, generator=gen, warp_probability=1.0, intensity=False)
    agree = (xa[:, 0].round().long() == ya).float().mean()
    assert agree > 0.9 and xa.shape == x.shape and ya.shape == y.shape
    # an augmentation that did nothing would agree too: every patch must have moved (warps on all of them)
    assert all(not torch.equal(ya[i], y[i]) for i in range(len(y)))
    # and the intensity changes must change the values, not only where they are
    xi, _ = augment_batch(x, y, generator=gen, warp_probability=0.0, intensity=True)
    assert all(not torch.allclose(xi[i].flatten().sort().values, x[i].flatten().sort().values, atol=1e-3)
               for i in range(len(x)))


def test_augmentation_keeps_ignore_label():
    y = torch.full((2, 16, 16), IGNORE)
    y[:, 4:12, 4:12] = 1
    _, ya = augment_batch(torch.zeros(2, 1, 16, 16), y, generator=torch.Generator().manual_seed(0))
    assert set(ya.unique().tolist()) <= {IGNORE, 0, 1}


def test_class_balanced_sampling_finds_a_rare_class():
    target = np.zeros((64, 64), np.int64)
    target[:, :40] = 1  # a common class
    target[60:62, 60:62] = 2  # a rare one: 4 pixels of 4096
    s = Sample("a", target[None].astype(np.float32), target)
    plain = PatchSampler([s], (8, 8), foreground_fraction=1.0, seed=0)
    balanced = PatchSampler([s], (8, 8), foreground_fraction=1.0, seed=0, classes=(1, 2))
    rare = [int((balanced.batch(1)[1] == 2).any()) for _ in range(200)]
    assert 0.35 < np.mean(rare) < 0.65  # half the patches hold the rare class
    assert np.mean([int((plain.batch(1)[1] == 2).any()) for _ in range(200)]) < 0.1


def test_split_is_seeded_and_saved(tmp_path):
    names = [f"n{i:02d}" for i in range(15)]
    a = load_or_make_split(tmp_path, names, folds=1, val_fraction=0.2, seed=3)
    assert a == load_or_make_split(tmp_path, names, folds=1, val_fraction=0.2, seed=3)
    # made afresh elsewhere (not read back), in another order: the same seed gives the same split
    assert a == load_or_make_split(tmp_path / "other", names[::-1], folds=1, val_fraction=0.2, seed=3)
    # the seed matters, and the split is shuffled (not the first names in order)
    vals = {tuple(make_folds(names, val_fraction=0.2, seed=s)[0]["val"]) for s in range(8)}
    assert len(vals) >= 4 and vals != {("n00", "n01", "n02")}
    assert [f["val"] for f in make_folds(names, folds=5, seed=1)] != [f["val"] for f in make_folds(names, folds=5, seed=2)]
    assert len(a[0]["val"]) == 3 and not set(a[0]["val"]) & set(a[0]["train"])
    assert make_folds(["one"])[0]["region_split"] == 0.2


def test_few_images_each_hold_back_a_band():
    from nbseg.data.dataset import Dataset
    from nbseg.data.split import held_out_band, split_samples

    few = [f"n{i}" for i in range(8)]
    assert make_folds(few, seed=1) == [{"train": few, "val": few, "region_split": 0.2}]
    assert "region_split" not in make_folds(few + ["x", "y", "z", "w", "v"])[0]  # 13: 3 whole images validate
    assert "region_split" not in make_folds(few, folds=2)[0]  # k folds share out whole images
    assert make_folds(few, val_fraction=0.4)[0].get("region_split") is None  # 3 of 8 whole images
    held, kept = held_out_band((10, 20), (), 0.2)
    assert held == (slice(None), slice(8, 12)) and kept == [(slice(None), slice(0, 8)), (slice(None), slice(12, 20))]
    assert held_out_band((10, 40, 30), (5.0, 1.0, 1.0), 0.5)[0] == (slice(2, 7),)  # 50 µm deep: across Z
    samples = [Sample(n, np.full((1, 10, 20), i, np.float32), np.arange(200).reshape(10, 20)) for i, n in enumerate(few)]
    train, val = split_samples(Dataset(samples, "binary", 2, 1, 2), make_folds(few)[0])
    assert len(train) == 16 and len(val) == 8 and {s.name for s in train} == {s.name for s in val} == set(few)
    for s in few:  # each image: the band validates, the rest trains, nothing in both
        seen = np.concatenate([p.target.ravel() for p in train if p.name == s])
        band = [p.target for p in val if p.name == s][0]
        assert band.shape == (10, 4) and not set(seen) & set(band.ravel()) and seen.size + band.size == 200


def test_bundled_samples_load_in_2d_and_3d():
    for name, dims in (("nuclei2d", 2), ("nuclei3d", 3)):
        dataset = load_dataset(Config(data=sample(name)).data)
        assert dataset.spatial_dims == dims and dataset.kind == "instances" and dataset.in_channels == 1


def test_excluding_mask_sets_ignore(tmp_path):
    for folder in ("images", "masks", "excl"):
        (tmp_path / folder).mkdir()
    image = np.random.default_rng(0).integers(0, 200, (20, 20)).astype(np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 1
    excl = np.zeros((20, 20), np.uint8)
    excl[:, :3] = 1
    tifffile.imwrite(tmp_path / "images" / "a.tif", image)
    tifffile.imwrite(tmp_path / "masks" / "a.tif", mask)
    tifffile.imwrite(tmp_path / "excl" / "a.tif", excl)
    cfg = Config(data={"images": tmp_path / "images", "masks": tmp_path / "masks",
                       "excluding_masks": tmp_path / "excl"}).data
    target = load_dataset(cfg).samples[0].target
    assert (target[:, :3] == IGNORE).all() and (target[5:10, 5:10] == 1).all()
