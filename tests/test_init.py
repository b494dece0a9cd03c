"""Fine-tuning (train.init, `nbseg train --init`): from a project, a bioimage.io package, a bundled model;
the first validation already scores as the source does; RGB data from a 1-channel source; refusals."""
from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from nbseg.cli.main import main
from nbseg.config import Config
from nbseg.data import load_dataset
from nbseg.model.bundled import MODELS_ENV, bundled_models
from nbseg.model.unet import UNet, load_model_file
from nbseg.project import ProjectLayout
from nbseg.train.init import (InitError, adapt_input_conv, contrast_flipped, inflate_state, invert_input,
                              resolve_init)
from nbseg.train.plan import plan_training
from nbseg.train.trainer import fit

from test_train import crops, quick_config  # noqa: E402  (tests/test_train.py)

SOURCE_EPOCHS = 5
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit: what packages hold


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def data2d(tmp_path_factory):
    """Six real 128x128 crops of the bundled DSB2018 nuclei (instance labels)."""
    return crops(tmp_path_factory.mktemp("init"), 2)


@pytest.fixture(scope="module")
def source(data2d, tmp_path_factory):
    """A small project trained on the crops: the model fine-tuning starts from, and its history."""
    project = tmp_path_factory.mktemp("source") / "source"
    result = fit(quick_config(data2d, 2, epochs=SOURCE_EPOCHS, steps_per_epoch=8), project)
    return project, result.histories[0]


def first_dice(config, project) -> float:
    """The validation Dice after one epoch of one step (at the start of the learning-rate warm-up)."""
    return fit(config, project).histories[0][0]["val_dice"]


def source_dice(history) -> float:
    """The raw validation Dice of the epoch whose model was kept."""
    best = max(range(len(history)), key=lambda i: _smoothed(history[: i + 1]))
    return history[best]["val_dice"]


def _smoothed(rows):
    from nbseg.train.fold import smoothed_dice

    return smoothed_dice([r["val_dice"] for r in rows])


def one_step(root, **train):
    return quick_config(root, 2, epochs=1, steps_per_epoch=1, **train)


@pytest.fixture(scope="module")
def scratch_dice(data2d, tmp_path_factory):
    return first_dice(one_step(data2d), tmp_path_factory.mktemp("scratch") / "p")


@pytest.mark.slow  # fine-tuning from a trained source
def test_fine_tuning_from_a_project_starts_at_its_score(data2d, source, scratch_dice, tmp_path, capsys):
    project, history = source
    config = one_step(data2d, init=str(project))
    plan, _ = plan_training(config, load_dataset(config.data))
    assert plan.init["what"] == "nbseg project, fold 0 of 1" and plan.lines()[1].startswith(f"  init: {project}")
    assert plan.lr == pytest.approx(1e-3) and "fine-tuning, a third" in plan.reasons["lr"]
    dice = first_dice(config, tmp_path / "ft")
    reference = source_dice(history)
    assert reference > scratch_dice + 0.2, (reference, scratch_dice)  # the source learnt something
    assert abs(dice - reference) < 0.05, (dice, reference, scratch_dice)
    with capsys.disabled():  # the numbers, for the record (pytest -s shows them)
        print(f"\nfirst validation Dice: fine-tuned {dice:.3f}, source {reference:.3f}, scratch {scratch_dice:.3f}")
    saved = Config.load(tmp_path / "ft")
    assert saved.train.init == str(project)


@pytest.mark.slow  # fine-tuning from a trained source
def test_lr_given_is_used_as_is(data2d, source):
    config = one_step(data2d, init=str(source[0]), lr=1e-3)
    plan, _ = plan_training(config, load_dataset(config.data))
    assert plan.lr == 1e-3 and "as set" in plan.reasons["lr"]


def test_a_swept_rate_leaves_fine_tuning_its_own_unless_asked(tmp_path):
    """Notebook 04 saves its rate for training from scratch; `nbseg train --init` keeps fine-tuning's rule
    unless the command gives --lr (or 04's tick said so)."""
    from nbseg.cli.main import build_parser
    from nbseg.cli.train import config_from_args
    from nbseg.train.init import fine_tune_lr

    def planned(*options, **saved):
        Config(data={"images": tmp_path / "raw"}, train={"lr": 1e-2, **saved}).save(tmp_path)
        args = build_parser().parse_args(["train", "--project", str(tmp_path), *options])
        return fine_tune_lr(config_from_args(args).train)

    lr, why = planned("--init", "nuclei", lr_for_fine_tuning=False)  # 04's rate, not ticked
    assert lr == pytest.approx(1e-3) and "1.0e-02 is for training from scratch" in why
    assert planned("--init", "nuclei", "--lr", "1e-2", lr_for_fine_tuning=False) == (
        1e-2, "1.0e-02, as set (train.lr; CLI --lr)")
    assert planned("--init", "nuclei", "--lr", "5e-4", lr_for_fine_tuning=False)[0] == 5e-4
    assert planned("--init", "nuclei")[0] == pytest.approx(1e-3), "an earlier command's --lr was for scratch"
    ticked = dict(init="nuclei", lr_for_fine_tuning=True)  # 04's tick, for the project's source
    assert planned(**ticked)[0] == planned("--init", "nuclei", **ticked)[0] == 1e-2
    assert planned("--init", "other.pt", **ticked)[0] == pytest.approx(1e-3), "another source: its own rule"


@pytest.mark.slow  # fine-tuning from a trained source
def test_rgb_data_from_a_one_channel_source(data2d, source, scratch_dice, tmp_path):
    rgb = tmp_path / "rgb"
    shutil.copytree(data2d / "masks", rgb / "masks")
    (rgb / "images").mkdir()
    for path in sorted((data2d / "images").glob("*.tif")):
        gray = tifffile.imread(path).astype(np.float32)
        # brightfield-like colour: three channels of one signal, unequal gains
        image = np.stack([gray, 0.8 * gray, 0.6 * gray], axis=-1).clip(0, 255).astype(np.uint8)
        tifffile.imwrite(rgb / "images" / path.name, image, photometric="rgb", metadata={"axes": "YXS"})
    config = one_step(rgb, init=str(source[0]))
    assert load_dataset(config.data).in_channels == 3
    result = fit(config, tmp_path / "ft")
    model, _ = load_model_file(result.model_paths[0])
    assert model.spec["in_channels"] == 3
    plan = (tmp_path / "ft" / "plan.json").read_text()
    assert "repeated over the 3 channels" in plan
    assert result.histories[0][0]["val_dice"] > scratch_dice + 0.15


def test_adapt_input_conv_keeps_the_activation():
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    x = torch.rand(2, 1, 16, 16)
    three = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    three.weight.data = adapt_input_conv(conv.weight.data, 3)
    torch.testing.assert_close(three(x.repeat(1, 3, 1, 1)), conv(x))
    back = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    back.weight.data = adapt_input_conv(three.weight.data, 1)
    torch.testing.assert_close(back(x), three(x.repeat(1, 3, 1, 1)))
    with pytest.raises(InitError, match="2 channels cannot be adapted to 3"):
        adapt_input_conv(torch.zeros(4, 2, 3, 3), 3)


@pytest.mark.parametrize("norm", ["batch"])  # instance norm: the same but for the padded border's share of the mean
def test_inverted_input_gives_the_source_its_own_contrast(norm):
    torch.manual_seed(0)
    source = UNet(2, 1, 3, "S", norm=norm)
    source.train()
    for _ in range(3):  # running statistics that are not the defaults
        source(torch.rand(4, 1, 64, 64) * 0.5)
    source.eval()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    invert_input(state)
    flipped = UNet(2, 1, 3, "S", norm=norm)
    flipped.load_state_dict(state)
    flipped.eval()
    x = torch.rand(1, 1, 192, 192)
    with torch.no_grad():
        a, b = flipped(x), source(1 - x)
    centre = (slice(None), slice(None), slice(72, 120), slice(72, 120))  # beyond the zero padding's reach
    torch.testing.assert_close(a[centre], b[centre], atol=1e-3, rtol=1e-3)
    assert not torch.allclose(flipped(x)[centre], source(x)[centre], atol=1e-2)


@pytest.mark.parametrize("pool_z", [False, True])
def test_inflated_3d_network_sees_each_slice_as_the_2d_one(pool_z):
    # Exact where Z adds nothing: every slice of a stack without pooled Z, or a stack constant along Z
    torch.manual_seed(0)
    flat = UNet(3, 1, 3, "S", slices=True)
    flat.train()
    for _ in range(3):  # running statistics that are not the defaults
        flat(torch.rand(2, 1, 4, 64, 64))
    deep = UNet(3, 1, 3, "S", pool_z=pool_z)
    deep.load_state_dict(inflate_state(flat.state_dict(), deep.state_dict()))
    flat.eval(), deep.eval()
    x = torch.rand(1, 1, 16, 64, 64)
    if pool_z:
        x = x[:, :, :1].repeat(1, 1, 16, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(deep(x), flat(x), atol=1e-4, rtol=1e-4)
        if not pool_z:  # the inflated network is trainable along Z: kernels of depth 3, zero off the centre
            assert deep.encoders[0][0].weight.shape[2] == 3 and deep.encoders[0][0].weight[:, :, 0].abs().sum() == 0
    with pytest.raises(InitError, match="shape"):
        inflate_state(UNet(2, 1, 3, "M").state_dict(), deep.state_dict())


def test_contrast_flip_is_read_from_the_intensities():
    bright = {"foreground": {"mean": 0.5}, "background": {"mean": 0.05}}
    dark = {"foreground": {"mean": 0.3}, "background": {"mean": 0.8}}
    assert contrast_flipped(bright, dark) and contrast_flipped(dark, bright)
    assert not contrast_flipped(bright, bright) and not contrast_flipped(None, dark)


@pytest.mark.slow  # fine-tuning from a trained source
def test_other_classes_are_refused_naming_both(data2d, source, tmp_path):
    config = Config(data={"images": data2d / "images", "masks": data2d / "masks", "labels": "binary"},
                    model={"size": "S", "patch": [64, 64]}, train={"epochs": 1, "init": str(source[0])})
    with pytest.raises(InitError, match=r"outputs 3 classes \(instances\) but this data has 2 \(binary\)"):
        fit(config, tmp_path / "p")
    assert not (tmp_path / "p").exists()  # refused before anything is written


@pytest.mark.slow  # fine-tuning from a trained source
def test_cli_init_end_to_end_and_resume(data2d, source, tmp_path, capsys):
    args = ["train", "--images", str(data2d / "images"), "--masks", str(data2d / "masks"), "--project",
            str(tmp_path / "ft"), "--patch", "64,64", "--batch-size", "4", "--steps-per-epoch", "1",
            "--val-fraction", "0.3", "--precision", "fp32"]
    assert main(args + ["--init", str(source[0]), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert f"init: {source[0]} (nbseg project, fold 0 of 1)" in out and "lr 1.0e-03" in out
    assert f"note: fine-tuning from {source[0]}" in out
    assert Config.load(tmp_path / "ft").train.init == str(source[0])
    assert main(args + ["--epochs", "2", "--resume"]) == 0  # the saved init; the checkpoint's weights
    out = capsys.readouterr().out
    assert "resuming at epoch 2" in out and "note: fine-tuning from" not in out


@pytest.mark.slow  # fine-tuning from a trained source
def test_bundled_model_lookup(monkeypatch, source, tmp_path, capsys, data2d):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "models"))
    assert bundled_models() == {}
    args = ["train", "--images", str(data2d / "images"), "--masks", str(data2d / "masks"), "--project",
            str(tmp_path / "p"), "--init", "nuclei", "--epochs", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'nuclei' is neither" in err and "Bundled models: none" in err
    folder = tmp_path / "models" / "nuclei"
    folder.mkdir(parents=True)
    shutil.copy(ProjectLayout(source[0]).model(0), folder / "model.pt")  # a real model, made by fit
    (folder / "README.md").write_text("# Nuclei, fluorescence 2D (test)\n\nmore\n")
    assert bundled_models() == {"nuclei": "Nuclei, fluorescence 2D (test)"}
    info = resolve_init("nuclei")
    assert info["what"] == "bundled model" and info["spec"]["in_channels"] == 1
    from nbseg.ui.init_choice import choice_for, init_value, start_options

    options = start_options()
    assert [v for _, v in options] == ["scratch", "nuclei", "other"]
    assert init_value("nuclei") == "nuclei" and init_value("scratch") is None
    assert choice_for(str(source[0]), options) == ("other", str(source[0]))


def test_unknown_source_is_refused(tmp_path):
    with pytest.raises(InitError, match="neither a project folder"):
        resolve_init(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InitError, match="No trained model"):
        resolve_init(tmp_path / "empty")


# ---------------------------------------------------------------- bioimage.io packages (slow: the spec's test)


@pytest.fixture(scope="module")
def package(source):
    pytest.importorskip("bioimageio.core", reason="bioimage.io export needs bioimageio.core")
    from nbseg.predict.bioimageio_export import export_bioimageio

    return export_bioimageio(source[0], authors=["Ada Lovelace"])


@pytest.mark.slow
def test_fine_tuning_from_an_exported_package(data2d, source, package, scratch_dice, tmp_path):
    config = one_step(data2d, init=str(package))
    dice = first_dice(config, tmp_path / "ft")
    assert abs(dice - source_dice(source[1])) < 0.05 and dice > scratch_dice + 0.2
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path / "unzipped")
    info = resolve_init(tmp_path / "unzipped" / "rdf.yaml")
    assert info["weights"] == "state_dict" and info["what"].startswith("bioimage.io package by nbseg")
    # the same package without its state dict: the TorchScript has batch norm folded in, so it is refused
    rdf = yaml.safe_load((tmp_path / "unzipped" / "rdf.yaml").read_text())
    del rdf["config"]["nbseg"]["state_dict"]
    (tmp_path / "unzipped" / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    info = resolve_init(tmp_path / "unzipped" / "rdf.yaml")
    from nbseg.train.init import load_init_weights

    with pytest.raises(InitError, match="do not match an nbseg U-Net"):
        load_init_weights(UNet(**info["spec"]), info)
    # TorchScript weights of an unfolded U-Net (no state dict attached): its parameters load by name
    model, _ = load_model_file(ProjectLayout(source[0]).model(0))
    weights = tmp_path / "unzipped" / info["member"]
    with torch.no_grad():
        torch.jit.trace(model, torch.zeros(1, 1, 64, 64)).save(str(weights))
    rdf["weights"]["torchscript"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()  # the spec checks it
    (tmp_path / "unzipped" / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    info = resolve_init(tmp_path / "unzipped")  # the folder finds its rdf.yaml
    assert info["weights"] == "torchscript"
    fresh = UNet(**info["spec"])
    load_init_weights(fresh, info)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    # not a package bioimageio.spec can read: its own words say why
    (tmp_path / "unzipped" / "rdf.yaml").write_text(yaml.safe_dump({"type": "model", "config": rdf["config"]}))
    with pytest.raises(InitError, match="bioimageio.spec can read"):
        resolve_init(tmp_path / "unzipped" / "rdf.yaml")


@pytest.mark.slow  # fine-tuning from a trained source
def test_panel_start_from_another_project(data2d, source, tmp_path):
    """Notebook 05's 'Start from' passes the choice to the core: config.yaml says it, the plan shows it."""
    pytest.importorskip("ipywidgets")
    from nbseg.ui import TrainPanel

    project = tmp_path / "panel"
    Config(data={"images": data2d / "images", "masks": data2d / "masks", "val_fraction": 0.3},
           model={"size": "S", "patch": [64, 64]}, train={"precision": "fp32"}).save(project)
    panel = TrainPanel(project)
    assert panel.error is None and panel.start.value is None  # scratch
    assert [v for _, v in panel.start.choice.options][-1] == "other"
    panel.epochs.value, panel.steps.value, panel.batch.value = 1, 1, 4
    panel.start.choice.value = "other"
    panel.start.path.value = str(source[0])
    panel.train_button.click()
    assert panel.error is None, panel.errors.message.value
    assert Config.load(project).train.init == str(source[0])
    assert f"init: {source[0]} (nbseg project, fold 0 of 1)" in panel.plan.value
    assert panel.state.plan.lr == pytest.approx(1e-3) and panel.state.plan.init["source"] == str(source[0])


def test_the_shipped_nuclei_model(monkeypatch):
    monkeypatch.delenv(MODELS_ENV, raising=False)
    assert "nuclei" in bundled_models() and "Fluorescent nuclei" in bundled_models()["nuclei"]
    info = resolve_init("nuclei")
    assert info["spec"]["in_channels"] == 1 and info["kind"] == "instances" and info["what"] == "bundled model"
    fg, bg = info["intensity"]["foreground"]["mean"], info["intensity"]["background"]["mean"]
    assert fg > bg  # fluorescence: bright nuclei, what fine-tuning compares a new data set's contrast with
    assert Path(info["path"]).stat().st_size < 3 * 2**20  # the package stays small
