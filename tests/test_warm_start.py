"""A 3D network warm-started from a 2D network over the slices (nbseg.train.warm_start): planned on a CPU
under a time budget, the 2D phase in its own folder with the same split, the 3D phase inflated from it."""
from __future__ import annotations

import pytest

from nbseg.config import Config
from nbseg.data import load_dataset
from nbseg.model.unet import load_model_file
from nbseg.project import ProjectLayout
from nbseg.model.history import read_history
from nbseg.train.plan import plan_training
from nbseg.train.trainer import fit

from test_train import crops, quick_config  # noqa: E402  (tests/test_train.py)


def _config(root, **train):
    return quick_config(root, 3, **{"epochs": None, "minutes": 0.3, "steps_per_epoch": 3, **train})


def test_planned_on_a_cpu_with_a_time_budget_and_one_fold(tmp_path):
    root = crops(tmp_path, 3)
    dataset = load_dataset(_config(root).data)
    plan, _ = plan_training(_config(root), dataset, device="cpu")
    assert plan.warm_start == 0.15 and "warm-started from 2D" in plan.lines()[0]
    assert "inflated to 3D" in plan.reasons["warm_start"]
    assert plan_training(_config(root), dataset, device="cuda")[0].warm_start == 0.15  # a GPU too (BBBC050)
    off = plan_training(_config(root, warm_start=False), dataset, device="cpu")[0]
    assert off.warm_start is None and "warm_start" not in off.reasons
    folds = plan_training(_config(root, folds=2, warm_start=True), dataset, device="cpu")[0]
    assert folds.warm_start is None and "k-fold" in folds.reasons["warm_start"]
    epochs = plan_training(_config(root, minutes=None, epochs=2), dataset, device="cpu")[0]
    assert epochs.warm_start is None


@pytest.mark.slow  # two training phases
def test_2d_phase_then_the_3d_network_from_it(tmp_path):
    root = crops(tmp_path, 3)
    # 0.1 minutes: each phase at least one step and its validation, which is all this checks
    config, project = _config(root, device="cpu", minutes=0.1), tmp_path / "project"
    result = fit(config, project)
    layout = ProjectLayout(project)
    flat, flat_meta = load_model_file(ProjectLayout(layout.warm_start).model(0))
    deep, meta = load_model_file(result.model_paths[0])
    assert flat.slices and flat_meta["plan"]["patch"] == [1, 48, 48]
    assert deep.spec["spatial_dims"] == 3 and not deep.slices and meta["plan"]["init"]
    # the 3D phase goes on at a tenth of the 2D phase's lr, and says so (not "as set", nor a transfer's third)
    assert meta["plan"]["lr"] == pytest.approx(flat_meta["plan"]["lr"] / 10)
    assert "a tenth of the 2D phase's" in meta["plan"]["reasons"]["lr"]
    # the same split: the 3D network validates on what the 2D one never trained on
    assert (layout.warm_start / "split.json").read_text() == layout.split.read_text()
    assert Config.load(layout.config).train.init is None, "config.yaml keeps the person's settings"
    assert read_history(layout.history_file(0)), "the 3D phase's epochs"
    # stopped and resumed: the 3D phase continues from its checkpoint, the 2D phase is not run again
    before = ProjectLayout(layout.warm_start).model(0).stat().st_mtime_ns
    again = fit(config, project, resume=True)
    assert ProjectLayout(layout.warm_start).model(0).stat().st_mtime_ns == before
    assert again.model_paths == result.model_paths


@pytest.mark.slow  # a training run through the CLI
def test_cli_turns_it_off(tmp_path, capsys):
    from nbseg.cli.main import main

    root = crops(tmp_path, 3)
    args = ["train", "--images", str(root / "images"), "--masks", str(root / "masks"), "--project",
            str(tmp_path / "p"), "--model-dims", "3", "--patch", "16,48,48", "--minutes", "0.1", "--device", "cpu",
            "--no-warm-start"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "plan: 3D network," in out and "warm" not in out
    assert not ProjectLayout(tmp_path / "p").warm_start.exists()
