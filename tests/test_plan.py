"""Data fingerprint and the training plan: every choice follows the data and the device, with a reason,
and what the user set wins."""
from __future__ import annotations

import numpy as np
import pytest

from nbseg.config import Config, DataConfig
from nbseg.data.dataset import Dataset, Sample
from nbseg.data.fingerprint import Fingerprint, fingerprint
from nbseg.train.plan import make_plan


def blobs(shape, *, radius, spacing=None, classes=1, seed=0):
    """Label image of balls of ``radius`` pixels (per axis: ``radius / spacing`` along Z)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    scale = np.ones(len(shape)) if spacing is None else np.asarray(spacing) / spacing[-1]
    target = np.zeros(shape, np.int64)
    for k in range(6):
        centre = [rng.uniform(radius, n - radius) if n > 2 * radius else n / 2 for n in shape]
        dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, scale)))
        target[dist < radius] = 1 + k % classes
    return target


def dataset(shapes, *, radius=6, spacing=None, classes=1, kind="binary", unit="µm"):
    samples = []
    for i, shape in enumerate(shapes):
        target = blobs(shape, radius=radius, spacing=spacing, classes=classes, seed=i)
        image = (target > 0).astype(np.float32)[None] + 0.1
        samples.append(Sample(f"im{i}", image, target, tuple(spacing) if spacing else (None,) * len(shape),
                              unit if spacing else None))
    n_classes = classes + 1 if kind == "multiclass" else 2
    return Dataset(samples, kind, n_classes, 1, len(shapes[0]))


def config(data_dims, **model):
    return Config(data=DataConfig(images="x", dims=data_dims), model=model)


def test_fingerprint_2d_objects_and_missing_pixel_sizes(tmp_path):
    fp = fingerprint(dataset([(96, 96), (64, 80)], radius=5))
    assert fp.spatial_dims == 2 and fp.n_images == 2 and fp.n_voxels == 96 * 96 + 64 * 80
    assert fp.pixel_sizes == [None, None] and any("--pixel-size" in n for n in fp.notes)
    extent = fp.objects["foreground"]["extent"]["p50"]
    assert 8 <= extent[0] <= 22 and sum(fp.class_fractions) == pytest.approx(1.0)
    assert fp.intensity["foreground"]["mean"] > fp.intensity["background"]["mean"]
    assert Fingerprint.load(fp.save(tmp_path / "fingerprint.json")) == fp


def test_fingerprint_multiclass_counts_each_class():
    fp = fingerprint(dataset([(96, 96)], classes=3, kind="multiclass"))
    assert set(fp.objects) == {"class 1", "class 2", "class 3"} and len(fp.class_fractions) == 4


def test_min_size_from_the_smallest_labelled_objects():
    """Instance and binary labels plan the smallest object prediction keeps; multi-class labels do not."""
    objects = dataset([(96, 96)] * 2, radius=5, kind="instances")
    fp = fingerprint(objects)
    area = fp.object_size["p1"]
    assert fp.object_size["count"] == 12 and 60 <= area <= 90  # balls of radius 5: about 78 px
    plan = make_plan(config(2), fp, device="cpu")
    # 12 objects: the 1st percentile is the smallest object itself, so half of it is kept as the bound
    assert plan.min_size == int(area) // 2 and "half the smallest of the 12" in plan.reasons["min_size"]
    many = Fingerprint(**{**fp.__dict__, "object_size": {**fp.object_size, "count": 150}})
    plan_many = make_plan(config(2), many, device="cpu")
    assert plan_many.min_size == int(area) and "99 % of the 150" in plan_many.reasons["min_size"]
    binary = make_plan(config(2), fingerprint(dataset([(96, 96)] * 2, radius=5)), device="cpu")
    assert binary.min_size == plan.min_size  # the same objects given as a binary mask
    specks = dataset([(96, 96)] * 2, radius=1, kind="instances")  # labelled objects of a few pixels
    small = make_plan(config(2), fingerprint(specks), device="cpu")
    assert small.min_size == 10 and "only specks under 10" in small.reasons["min_size"]
    multiclass = fingerprint(dataset([(96, 96)], classes=3, kind="multiclass"))
    assert multiclass.object_size is None and make_plan(config(2), multiclass, device="cpu").min_size is None
    old = Fingerprint(**{**fp.__dict__, "object_size": None})  # saved before sizes were measured
    assert make_plan(config(2), old, device="cpu").min_size is None


def test_plan_2d_keeps_the_measured_defaults():
    plan = make_plan(config(2), fingerprint(dataset([(256, 256)] * 2)), device="cpu")
    assert (plan.model_dims, plan.patch, plan.batch_size) == (2, [128, 128], 8)
    assert set(plan.reasons) >= {"patch", "batch", "lr"}


def test_plan_large_objects_get_a_wider_patch_and_a_smaller_batch():
    plan = make_plan(config(2), fingerprint(dataset([(512, 512)], radius=50)), device="cpu")
    assert plan.patch == [256, 256] and plan.batch_size == 2 and "90 %" in plan.reasons["patch"]


def test_plan_class_balanced_sets_keep_the_batch_that_shows_every_class():
    data = dataset([(512, 512)] * 2, radius=60, classes=3, kind="multiclass")
    plan = make_plan(config(2, scale=1.0), fingerprint(data), device="cpu")  # full resolution: objects 120 px wide
    assert (plan.patch, plan.batch_size) == ([128, 128], 8) and plan.class_weights
    assert "class-balanced" in plan.reasons["patch"]
    off = make_plan(Config(data=DataConfig(images="x", dims=2), model={"scale": 1.0}, train={"balance_classes": False}),
                    fingerprint(data), device="cpu")
    assert (off.patch, off.batch_size, off.class_weights) == ([256, 256], 2, None)


def test_plan_anisotropic_stack_is_segmented_slice_by_slice():
    fp = fingerprint(dataset([(40, 96, 96)], spacing=(4.0, 1.0, 1.0), radius=8))
    assert fp.anisotropy == pytest.approx(4.0)
    plan = make_plan(config(3), fp, device="cpu")
    assert plan.slices and plan.patch[0] == 1 and "4.0x XY" in plan.reasons["network"]


def test_plan_thin_stack_and_cpu_rules_and_the_override():
    thin = fingerprint(dataset([(10, 64, 64)], spacing=(1.0, 1.0, 1.0)))
    assert make_plan(config(3), thin, device="cpu").slices
    iso = fingerprint(dataset([(48, 96, 96)], spacing=(1.0, 1.0, 1.0), radius=8))
    assert "CPU" in make_plan(config(3), iso, device="cpu").reasons["network"]
    forced = make_plan(config(3, dims=3), iso, device="cpu")
    assert not forced.slices and forced.model_dims == 3 and forced.pool_z and forced.patch == [32, 96, 96]
    assert "as set" in forced.reasons["network"]


def test_plan_anisotropic_3d_model_does_not_pool_z():
    fp = fingerprint(dataset([(40, 96, 96)], spacing=(2.2, 1.0, 1.0), radius=8))
    plan = make_plan(config(3, dims=3), fp, device="cpu")
    assert not plan.pool_z and plan.patch[0] == round(32 / 2.2) and "not pooled" in plan.reasons["pool_z"]


def test_what_the_user_sets_wins():
    fp = fingerprint(dataset([(256, 256)]))
    plan = make_plan(Config(data=DataConfig(images="x"), model={"patch": [64, 64]}, train={"batch_size": 3}), fp)
    assert (plan.patch, plan.batch_size) == ([64, 64], 3)
    assert "as set" in plan.reasons["patch"] and "as set" in plan.reasons["batch"]
