"""The learning-rate finder sweeps what fit() trains: the train.init weights, the class weights and the
class-balanced patches of a multi-class set (one set-up, nbseg.train.setup.set_up_training, for both)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

import nbseg.data.sampler as sampler_module
import nbseg.train.step as step_module
from nbseg.config import Config
from nbseg.model.unet import UNet, save_model_file
from nbseg.train.init_sources import FIRST_CONV
from nbseg.train.lr_finder import find_lr


@pytest.fixture()
def multiclass(tmp_path):
    """Four 96 x 96 images whose masks have a large class 1 and a rare class 2."""
    rng = np.random.default_rng(0)
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for i in range(4):
        mask = np.zeros((96, 96), np.uint8)
        mask[10:60, 10:60] = 1
        mask[70:76, 70:76] = 2
        image = (rng.random((96, 96)) * 60 + mask * 60).astype(np.uint8)
        tifffile.imwrite(tmp_path / "images" / f"im{i}.tif", image)
        tifffile.imwrite(tmp_path / "masks" / f"im{i}.tif", mask)
    return tmp_path


@pytest.fixture()
def source(tmp_path):
    """A 3-class 2D network saved as a model file: what train.init names."""
    torch.manual_seed(7)
    model = UNet(2, 1, 3, "S")
    meta = {"kind": "multiclass", "n_classes": 3, "in_channels": 1, "spatial_dims": 2, "patch": [64, 64],
            "percentiles": [1.0, 99.8]}
    return save_model_file(tmp_path / "source.pt", model, meta=meta), model.state_dict()[FIRST_CONV].clone()


def _spied(monkeypatch):
    """What the sweep's steps train with: the first step's class weights and first-layer weights, and the
    classes the sampler centres patches on."""
    seen = {}
    real_call, real_batch = step_module.TrainStep.__call__, sampler_module.PatchSampler.batch

    def call(self, x, y):
        if "weights" not in seen:  # before the first update
            seen["class_weights"] = self.class_weights
            seen["weights"] = self.model.state_dict()[FIRST_CONV].detach().cpu().clone()
        return real_call(self, x, y)

    def batch(self, n):
        seen["groups"] = list(self.groups)
        return real_batch(self, n)

    monkeypatch.setattr(step_module.TrainStep, "__call__", call)
    monkeypatch.setattr(sampler_module.PatchSampler, "batch", batch)
    return seen


def _config(data, **train):
    return Config(data={"images": data / "images", "masks": data / "masks", "labels": "multiclass"},
                  model={"size": "S", "patch": [64, 64]},
                  train={"batch_size": 2, "precision": "fp32", "device": "cpu", **train})


def test_lr_finder_sweeps_with_class_weights_and_balanced_patches(multiclass, monkeypatch):
    seen = _spied(monkeypatch)
    find_lr(_config(multiclass), num_steps=3)
    assert seen["class_weights"] is not None and seen["class_weights"][2] > seen["class_weights"][1]
    assert seen["groups"] == [1, 2]  # patches centred on each class alike


def test_lr_finder_starts_from_the_init_weights(multiclass, source, monkeypatch):
    path, first_conv = source
    seen = _spied(monkeypatch)
    find_lr(_config(multiclass, init=str(path)), num_steps=3)
    torch.testing.assert_close(seen["weights"], first_conv)
    seen.clear()
    find_lr(_config(multiclass), num_steps=3)  # from scratch: other weights
    assert not torch.allclose(seen["weights"], first_conv)


def test_each_plan_rule_gives_its_value_and_reason_in_order(multiclass):
    """make_plan lists each rule's reason beside the value it chose, in one order (the classes' after the
    learning rate, as `nbseg train` has always printed them)."""
    from nbseg.data import load_dataset
    from nbseg.data.fingerprint import fingerprint
    from nbseg.train.min_size import plan_min_size
    from nbseg.train.plan import make_plan

    config = _config(multiclass)
    config.train.batch_size, config.model.patch = None, None
    data = fingerprint(load_dataset(config.data), seed=0)
    plan = make_plan(config, data, device="cpu")
    assert list(plan.reasons) == ["patch", "batch", "lr", "classes", "epoch"], plan.reasons
    assert plan.reasons["batch"].startswith(f"{plan.batch_size}: ")
    assert plan.reasons["epoch"].startswith(f"{plan.steps_per_epoch} steps")
    assert plan.class_weights is not None and "class 2 covers" in plan.reasons["classes"]
    assert plan_min_size(data) == (None, None)  # classes are not objects: no bound, nothing to say


def test_the_warm_start_is_an_explicit_list_of_phases(tmp_path):
    """fit runs the phases warm_start_phases lists: a 2D phase in its own folder, then the 3D network from it
    at a tenth of the lr; a resumed run whose 3D phase has begun goes on with that phase alone."""
    from nbseg.project import ProjectLayout
    from nbseg.train.plan import Plan
    from nbseg.train.warm_start import LR_FACTOR, warm_start_phases

    config = Config(data={"images": str(tmp_path)}, model={"size": "S", "patch": [16, 48, 48]},
                    train={"minutes": 2.0})
    plan = Plan(data_dims=3, model_dims=3, patch=[16, 48, 48], batch_size=2, steps_per_epoch=4, size="S",
                pool_z=True, lr=1e-3, warm_start=1.0)
    project, layout = tmp_path / "p", ProjectLayout(tmp_path / "p")
    first, second = warm_start_phases(config, project, plan)
    assert (first.name, first.project, first.config.model.dims, first.config.model.patch) == \
        ("2D", layout.warm_start, 2, [1, 48, 48])
    assert (first.config.train.minutes, first.config.train.warm_start) == (1.0, False)
    assert (second.name, second.project, second.config.train.init) == ("3D", project, str(layout.warm_start))
    assert second.adjust_plan(plan).lr == pytest.approx(plan.lr * LR_FACTOR)
    layout.checkpoint(0).parent.mkdir(parents=True)
    layout.checkpoint(0).write_bytes(b"")
    layout.warm_start.mkdir()
    assert [p.name for p in warm_start_phases(config, project, plan, resume=True)] == ["3D"]
    assert [p.name for p in warm_start_phases(config, project, plan, resume=False)] == ["2D", "3D"]
