"""Training: the loss falls on real crops (2D and 3D), runs repeat, folds give k models. Killed runs resume:
tests/test_resume.py (the resumed run equals the uninterrupted one, so restored weights are checked)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from nbseg.train.callbacks import Callback
from nbseg.model.history import read_history
from nbseg.config import Config
from nbseg.data import load_dataset, sample
from nbseg.train.lr_finder import MAX_PROPOSED_LR, lr_sweep, propose_lr, suggest_lr
from nbseg.data.sampler import PatchSampler
from nbseg.project import ProjectLayout
from nbseg.model.unet import UNet, load_model_file
from nbseg.train.trainer import fit

QUICK = {2: dict(patch=[64, 64]), 3: dict(patch=[16, 48, 48], dims=3)}  # 3: the 3D network itself


def crops(tmp_path, dims: int):
    """A few real crops of the bundled samples (DSB2018 nuclei in 2D, BBBC050 embryo nuclei in 3D)."""
    src = sample("nuclei2d" if dims == 2 else "nuclei3d")
    out = tmp_path / f"crops{dims}d"
    for kind in ("images", "masks"):
        (out / kind).mkdir(parents=True)
        for path in sorted(src[kind].glob("*.tif"))[: 6 if dims == 2 else 2]:
            array = tifffile.imread(path)
            array = array[:128, :128] if dims == 2 else array[8:40, 10:106, 10:106]
            tifffile.imwrite(out / kind / path.name, array, metadata={"axes": "YX" if dims == 2 else "ZYX"})
    return out


def quick_config(root, dims: int, **train) -> Config:
    settings = dict(epochs=4, steps_per_epoch=6, batch_size=4, seed=0, precision="fp32", lr=3e-3)
    settings.update(train)
    return Config(data={"images": root / "images", "masks": root / "masks", "val_fraction": 0.3},
                  model={"size": "S", **QUICK[dims]}, train=settings)


@pytest.mark.slow  # training runs
@pytest.mark.parametrize("dims", [2, 3])
def test_loss_falls_on_real_crops(tmp_path, dims):
    # 16 steps; the 3D network on batches of 2 (its loss falls by about a quarter, as the 2D one's)
    shorter = dict(steps_per_epoch=4, batch_size=4 if dims == 2 else 2)
    result = fit(quick_config(crops(tmp_path, dims), dims, **shorter), tmp_path / "project")
    history = result.histories[0]
    assert history[-1]["train_loss"] < 0.85 * history[0]["train_loss"], history
    model, meta = load_model_file(result.model_paths[0])
    assert model.spec["spatial_dims"] == dims and meta["kind"] == "instances" and meta["n_classes"] == 3


@pytest.mark.slow  # two training runs
def test_same_seed_repeats_on_cpu(tmp_path):
    root = crops(tmp_path, 2)
    cfg = quick_config(root, 2, epochs=2, steps_per_epoch=3)
    a = fit(cfg, tmp_path / "a").histories[0]
    b = fit(cfg, tmp_path / "b").histories[0]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]


@pytest.mark.slow  # three folds trained
def test_k_folds_give_k_models_with_disjoint_validation(tmp_path):
    root = crops(tmp_path, 2)
    result = fit(quick_config(root, 2, epochs=1, steps_per_epoch=2, folds=3), tmp_path / "p")
    assert len(result.model_paths) == 3 and all(p.exists() for p in result.model_paths)
    import json

    folds = json.loads((tmp_path / "p" / "split.json").read_text())["folds"]
    vals = [set(f["val"]) for f in folds]
    assert set.union(*vals) == {p.stem for p in (root / "images").glob("*.tif")}
    assert sum(len(v) for v in vals) == len(set.union(*vals))


def test_keyboard_interrupt_keeps_best_model(tmp_path):
    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, event):
            if event.epoch == 1:
                raise KeyboardInterrupt  # what the notebook's stop button raises

    result = fit(quick_config(crops(tmp_path, 2), 2, epochs=10, steps_per_epoch=2), tmp_path / "p",
                 callbacks=[StopAfterFirstEpoch()])
    assert result.interrupted and result.model_paths[0].exists()
    assert len(read_history(tmp_path / "p" / "history" / "fold0.csv")) == 2


def test_time_budget_stops_training(tmp_path):
    result = fit(quick_config(crops(tmp_path, 2), 2, epochs=None, minutes=0.05, steps_per_epoch=50), tmp_path / "p")
    assert result.stopped == ["time budget"]  # how soon it stops is measured in bench/, not asserted here


@pytest.mark.slow  # an LR sweep
def test_lr_sweep_suggests_inside_and_restores_weights():
    torch.manual_seed(0)
    dataset = load_dataset(Config(data=sample("nuclei2d")).data)
    model = UNet(2, 1, 3, "S")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sampler = PatchSampler(dataset.samples[:6], (64, 64), seed=0)
    result = lr_sweep(model, lambda: sampler.batch(2), start_lr=1e-5, end_lr=10, num_steps=20)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert "exceeded" in result.stop_reason or len(result.lrs) == 20
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed"


def test_suggestion_is_at_steepest_descent():
    lrs = np.geomspace(1e-5, 1, 50)
    losses = 1 / (1 + np.exp((np.log10(lrs) + 3) * 3)) + 0.1  # steepest fall at 1e-3
    losses[-5:] = [1, 2, 3, 4, 5]
    assert 5e-4 < suggest_lr(lrs, losses) < 2e-3


def test_propose_lr_caps_overshooting_suggestions():
    assert propose_lr(3e-3) == (3e-3, "")
    lr, why = propose_lr(0.5)
    assert lr == MAX_PROPOSED_LR and "above" in why
    assert propose_lr(float("nan"))[1]


@pytest.mark.slow  # LR sweeps
def test_lr_finder_runs_fits_training_step_and_honours_augment(monkeypatch):
    """The sweep trains with fit()'s own step: augmentation only when train.augment is on."""
    import nbseg.train.step as step_module
    from nbseg.train.lr_finder import find_lr

    calls = {"steps": 0, "augment": 0}
    real_call, real_augment = step_module.TrainStep.__call__, step_module.augment_batch

    def counted_call(self, x, y):
        calls["steps"] += 1
        return real_call(self, x, y)

    def counted_augment(*args, **kwargs):
        calls["augment"] += 1
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(step_module.TrainStep, "__call__", counted_call)
    monkeypatch.setattr(step_module, "augment_batch", counted_augment)
    for augment in (False, True):
        calls.update(steps=0, augment=0)
        config = Config(data=sample("nuclei2d"), model={"patch": [64, 64]},
                        train={"batch_size": 2, "augment": augment})
        result = find_lr(config, num_steps=5)
        assert calls["steps"] == len(result.lrs) == 5
        assert calls["augment"] == (5 if augment else 0), f"augment={augment}"


@pytest.mark.slow  # a training run through the CLI
def test_cli_prints_the_plan_and_saves_fingerprint(tmp_path, capsys):
    """`nbseg train` prints the plan before training; the project keeps the fingerprint and the plan."""
    import json

    from nbseg.cli.main import main

    root = crops(tmp_path, 3)
    project = tmp_path / "p"
    assert main(["train", "--images", str(root / "images"), "--masks", str(root / "masks"), "--project",
                 str(project), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
                 "--pixel-size", "2.18,1,1"]) == 0
    out = capsys.readouterr().out
    plan_line = next(line for line in out.splitlines() if line.startswith("plan:"))
    assert "2D network over each slice" in plan_line and "on a CPU" in out
    assert out.index("plan:") < out.index("epoch   1") and "best validation Dice" in out
    assert "each of the 2 images holds back a central band (20% of its longest axis)" in out  # 1 is test
    saved = json.loads((project / "plan.json").read_text())
    assert saved["slices"] and saved["patch"][0] == 1
    fp = json.loads((project / "fingerprint.json").read_text())
    assert fp["spatial_dims"] == 3 and fp["pixel_sizes"][0] == pytest.approx(2.18)
    assert fp["object_size"]["count"] >= 1 and f"min_size: {saved['min_size']} voxels" in out


@pytest.mark.slow  # four short training runs
def test_cli_replaces_a_trained_model_only_with_overwrite(tmp_path, capsys):
    """`nbseg train` into a project that holds a trained model is refused (nothing written); --resume continues
    its run and --overwrite starts over."""
    from nbseg.cli.main import main

    root, project = crops(tmp_path, 2), tmp_path / "p"
    args = ["train", "--images", str(root / "images"), "--masks", str(root / "masks"), "--project", str(project),
            "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "64,64", "--precision", "fp32"]
    assert main(args + ["--epochs", "1"]) == 0
    model = ProjectLayout(project).model(0)
    before = {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(args + ["--epochs", "1", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a trained model already (models/fold0.pt)" in err and "pass --overwrite" in err, err
    assert "use --resume" in err
    assert {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()} == before, "a refusal writes nothing"
    assert main(args + ["--epochs", "2", "--resume"]) == 0  # an unfinished run continues without --overwrite
    assert "resuming at epoch 2" in capsys.readouterr().out
    assert main(args + ["--epochs", "1", "--overwrite"]) == 0
    assert len(read_history(ProjectLayout(project).history_file(0))) == 1, "started over"
    assert model.stat().st_mtime_ns != before[model]


def test_single_image_is_split_across_its_longest_axis():
    from nbseg.data.split import region_axis

    assert region_axis((51, 120, 122), (2.18, 1.0, 1.0)) == 2  # the embryo stack: X, not the last slices
    assert region_axis((165, 768, 1024)) == 2 and region_axis((300, 200)) == 0
    assert region_axis((60, 100, 100), (5.0, 1.0, 1.0)) == 0  # 300 µm deep beats 100 µm wide


def test_overfitting_warning_needs_rising_validation_and_falling_training_loss():
    from nbseg.train.callbacks import overfitting_warning

    rows = lambda vals, trains: [{"epoch": i, "val_loss": v, "train_loss": t, "val_dice": 1 - v}  # noqa: E731
                                 for i, (v, t) in enumerate(zip(vals, trains))]
    warning = overfitting_warning(rows([0.5, 0.4, 0.45, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2]), 1)
    assert "over-fit" in warning and "epoch 2" in warning
    assert overfitting_warning(rows([0.5, 0.4, 0.45, 0.44, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2]), 1) == ""  # one dip
    assert overfitting_warning(rows([0.5, 0.4, 0.45, 0.5, 0.6], [0.2, 0.3, 0.4, 0.5, 0.6]), 1) == ""  # both rise
    rising = rows([0.5, 0.4, 0.45, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2])
    assert overfitting_warning(rising, 1, said_for=1) == ""  # said once while epoch 2 stays the best
    assert "epoch 3" in overfitting_warning(rising, 2, said_for=1)


def test_the_kept_model_is_the_best_by_the_smoothed_dice():
    from nbseg.train.fold import smoothed_dice

    assert smoothed_dice([0.05, 0.24, 0.85]) == pytest.approx(0.5 * (0.5 * 0.05 + 0.5 * 0.24) + 0.5 * 0.85)
    lucky = [0.05, 0.24, 0.85, 0.75, 0.74, 0.80, 0.78, 0.81, 0.82]  # one lucky early epoch
    scores = [smoothed_dice(lucky[:k + 1]) for k in range(len(lucky))]
    assert int(np.argmax(scores)) > 2


def test_train_begin_says_pieces_when_one_image_is_cut():
    from nbseg.train.callbacks import TrainBegin

    begin = dict(fold=0, folds=1, patch=[1, 256, 256], device="cpu", precision="fp32", max_epochs=10, minutes=5)
    assert TrainBegin(n_train=12, n_val=3, n_images=15, **begin).parts() == "12 training / 3 validation images"
    one = TrainBegin(n_train=2, n_val=1, n_images=1, **begin)  # a single stack: a held-back band and the rest
    assert one.parts("and") == "2 training and 1 validation pieces of 1 image"
