"""bioimage.io export: packages written with bioimageio.spec and passed by bioimageio.core's test."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("bioimageio.core", reason="bioimage.io export needs bioimageio.core (pip install 'nbseg[bioimageio]')")

from nbseg.cli.main import main  # noqa: E402
from nbseg.config import Config, DataConfig  # noqa: E402
from nbseg.model.unet import load_model_file, save_model_file  # noqa: E402
from nbseg.predict.bioimageio_export import BioimageioError, check_package, export_bioimageio  # noqa: E402
from nbseg.project import ProjectLayout  # noqa: E402
from nbseg.model.history import write_history  # noqa: E402

import model_projects  # noqa: E402  (tests/model_projects.py)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
              pytest.mark.slow]  # each export runs bioimage.io's test of the package


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def dsb_images(shared_data):
    return shared_data / "dsb2018" / "images"


@pytest.fixture(scope="module")
def trained_2d(tmp_path_factory, shared_data):
    """A two-fold 2D project whose config names real training images and whose folds have a history."""
    root = model_projects.make_project(tmp_path_factory.mktemp("p2d") / "nuclei", dims=2, folds=2, patch=[64, 64])
    Config(data=DataConfig(images=dsb_images(shared_data))).save(root)
    layout = ProjectLayout(root)
    for fold, dice in enumerate((0.81, 0.79)):
        model, meta = load_model_file(layout.model(fold))
        save_model_file(layout.model(fold), model, meta={**meta, "val_dice": dice, "epoch": 3})
        write_history(layout.history_file(fold), [
            {"fold": fold, "epoch": e, "train_loss": 0.5, "val_loss": 0.4, "val_dice": dice, "lr": 1e-3,
             "seconds": 1.0} for e in range(5)])
    return root


@pytest.fixture(scope="module")
def package_2d(trained_2d):
    path = export_bioimageio(trained_2d, authors=["Ada Lovelace"])  # default: in the project's export folder
    assert path == trained_2d / "export" / "nuclei.bioimageio.zip"
    return path


def read_zip(path):
    with zipfile.ZipFile(path) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        files = {name: archive.read(name) for name in archive.namelist()}
    return rdf, files


def npy(data: bytes) -> np.ndarray:
    import io

    return np.load(io.BytesIO(data))


def test_2d_ensemble_package_passes_the_spec_test(package_2d, trained_2d):
    rdf, files = read_zip(package_2d)
    assert rdf["format_version"].startswith("0.5") and rdf["authors"] == [{"name": "Ada Lovelace"}]
    assert rdf["name"] == "nuclei" and rdf["config"]["nbseg"]["models"] == 2
    axes = rdf["inputs"][0]["axes"]
    assert [a["type"] for a in axes] == ["batch", "channel", "space", "space"]
    assert axes[2]["size"] == {"min": 16, "step": 8}  # U-Net size S pools 3 times
    prep = [p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range"][0]["kwargs"]
    assert (prep["min_percentile"], prep["max_percentile"], prep["axes"]) == (1.0, 99.8, ["y", "x"])
    assert rdf["outputs"][0]["axes"][2]["halo"] == 4
    readme = files["README.md"].decode()
    assert "# Validation" in readme and "| 1 | 0.810 | 4 | 5 |" in readme and "Mean over folds: 0.800" in readme
    assert files["cover.png"][:8] == b"\x89PNG\r\n\x1a\n"
    # the test input is a real crop (the training patch) and its output is the packaged module's
    raw, expected = npy(files["test_input.npy"]), npy(files["test_output.npy"])
    assert raw.shape == (1, 1, 64, 64) and raw.std() > 0
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)


def test_package_weights_hold_no_normalisation(package_2d):
    """Normalisation is the declared preprocessing: the module's output on scale_range'd input is the
    test output, and the module holds no normalisation of its own."""
    from nbseg.predict.bioimageio_export import scale_range

    _, files = read_zip(package_2d)
    import io

    module = torch.jit.load(io.BytesIO(files["weights_torchscript.pt"]))
    raw, expected = npy(files["test_input.npy"]), npy(files["test_output.npy"])
    normed = scale_range(raw[0], (1.0, 99.8))[None]
    np.testing.assert_allclose(module(torch.from_numpy(normed)).detach().numpy(), expected, atol=1e-5)
    assert [m.original_name for _, m in module.norms.named_children()] == ["Identity"] * 2  # per fold


def test_3d_instances_package(tmp_path, shared_data):
    """Export a 3D instance project (checked by the spec's test), then predict from the package with
    nbseg's tiled TTA predictor: the project's probabilities."""
    from nbseg.io.images import read_image
    from nbseg.predict.image import predict_image

    project = model_projects.make_project(tmp_path / "embryo", dims=3, kind="instances", patch=[16, 32, 32])
    sample = shared_data / "bbbc050-qcanet" / "images" / "16_cell_stage.tif"
    path = export_bioimageio(project, tmp_path / "embryo.zip", authors="Ada Lovelace", sample=sample,
                             name="Embryo nuclei", tags=["nuclei", "3d"])
    rdf, files = read_zip(path)
    assert [a.get("id") for a in rdf["inputs"][0]["axes"][2:]] == ["z", "y", "x"]
    assert rdf["name"] == "Embryo nuclei" and rdf["tags"] == ["nuclei", "3d"]
    assert len(rdf["cite"]) == 2  # U-Net and 3D U-Net
    assert npy(files["test_output.npy"]).shape == (1, 3, 16, 32, 32)
    readme = files["README.md"].decode()
    assert "watershed" in readme and "not** in this package" in readme
    assert "No validation figures were recorded" in readme
    image = np.asarray(read_image(sample).data[:, 10:30, 20:68, 30:70], dtype=np.float32)
    settings = dict(tta="flips", tile=(16, 32, 32), precision="fp32", dtype=np.float32)
    a, b = predict_image(project, image, **settings), predict_image(path, image, **settings)
    assert b.kind == "instances" and np.abs(a.probabilities - b.probabilities).max() < 1e-4


def test_a_package_that_fails_the_spec_test_is_deleted(package_2d, tmp_path):
    """A package whose expected output (hash updated, so the format is valid) is not what its model
    computes: the spec's test fails, the file is removed and the error names the failing check."""
    import hashlib
    import io

    rdf, files = read_zip(package_2d)
    buffer = io.BytesIO()
    np.save(buffer, npy(files["test_output.npy"])[:, ::-1].copy())  # classes swapped
    files["test_output.npy"] = buffer.getvalue()
    rdf["outputs"][0]["test_tensor"]["sha256"] = hashlib.sha256(files["test_output.npy"]).hexdigest()
    files["rdf.yaml"] = yaml.safe_dump(rdf).encode()
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(BioimageioError, match="test of the package failed") as err:
        check_package(broken)
    assert not broken.exists()
    assert "Reproduce test outputs" in str(err.value), str(err.value)


def test_refusals(trained_2d, package_2d, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_bioimageio(trained_2d, package_2d, authors="Ada Lovelace")
    with pytest.raises(BioimageioError, match="authors is missing.*at least one author"):
        export_bioimageio(trained_2d, tmp_path / "m.zip")
    with pytest.raises(BioimageioError, match=r"\.zip"):
        export_bioimageio(trained_2d, tmp_path / "m.pt", authors="Ada Lovelace")
    mixed = model_projects.make_project(tmp_path / "mixed", folds=2, percentiles=lambda k: [1.0, 99.0 + k])
    with pytest.raises(BioimageioError, match="normalise images differently"):
        export_bioimageio(mixed, tmp_path / "m.zip", authors="Ada Lovelace", sample=np.ones((32, 32)))
    coarse = model_projects.make_project(tmp_path / "coarse", folds=1)
    model, meta = load_model_file(ProjectLayout(coarse).model(0))
    save_model_file(ProjectLayout(coarse).model(0), model, meta={**meta, "plan": {"scale": [0.5, 0.5]}})
    with pytest.raises(BioimageioError, match="working scale.*--scale 1"):
        export_bioimageio(coarse, tmp_path / "m.zip", authors="Ada Lovelace", sample=np.ones((32, 32)))
    assert not any(tmp_path.glob("*.zip"))


def test_cli_export_bioimageio(tmp_path, shared_data, capsys):
    project = model_projects.make_project(tmp_path / "p", folds=1)
    sample = sorted(dsb_images(shared_data).glob("*.tif"))[0]
    out = tmp_path / "model.zip"
    assert main(["export", str(project), "--bioimageio", str(out), "--sample", str(sample)]) == 2
    assert "--author" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(project), "--bioimageio", str(out), "--author", "Ada Lovelace",
                 "--sample", str(sample)]) == 0
    assert "passed bioimageio.core's test" in capsys.readouterr().out and out.exists()
    assert main(["export", str(project), "--bioimageio", str(out), "--author", "A", "--sample", str(sample)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_metadata_the_spec_refuses_is_named(trained_2d, tmp_path):
    with pytest.raises(BioimageioError, match="name.*at least 5"):
        export_bioimageio(trained_2d, tmp_path / "m.zip", authors="Ada Lovelace", name="abc")
    assert not any(tmp_path.glob("*.zip")) and not any(tmp_path.glob(".*.zip"))


# ---------------------------------------------------------------- predicting from a package

def dsb_crop(shared_data, shape=(96, 80)):
    from nbseg.io.images import read_image

    path = sorted(dsb_images(shared_data).glob("*.tif"))[0]
    return np.asarray(read_image(path).data[0, :shape[0], :shape[1]], dtype=np.float32)


def test_predict_from_package_equals_predict_from_project(trained_2d, package_2d, shared_data):
    """The package through nbseg's tiled TTA predictor (its tile rule, its scale_range) gives the
    project's probabilities: same tiles, same TTA, an image larger than one tile."""
    from nbseg.predict.image import predict_image

    image = dsb_crop(shared_data)
    settings = dict(tta="flips", tile=(64, 64), precision="fp32", dtype=np.float32)
    from_project = predict_image(trained_2d, image, **settings)
    from_package = predict_image(package_2d, image, **settings)
    assert np.abs(from_project.probabilities - from_package.probabilities).max() < 1e-4
    assert from_package.kind == "binary" and from_package.class_names == ("class 0", "class 1")


def test_cli_predict_from_package(trained_2d, package_2d, shared_data, tmp_path):
    from nbseg.io.images import read_image, write_ome_tiff

    source = tmp_path / "in" / "nucleus.tif"
    source.parent.mkdir()
    write_ome_tiff(source, dsb_crop(shared_data)[None], axes="CYX")
    assert main(["predict", str(package_2d), str(source.parent), "--output", str(tmp_path / "a"), "--tta", "none"]) == 0
    assert main(["predict", str(trained_2d), str(source.parent), "--output", str(tmp_path / "b"), "--tta", "none"]) == 0
    a = read_image(tmp_path / "a" / "nucleus.prob.ome.tif").data.astype(int)
    b = read_image(tmp_path / "b" / "nucleus.prob.ome.tif").data.astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


ARCHITECTURE = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, n_classes=2):
        super().__init__()
        self.conv = nn.Conv2d(1, n_classes, 3, padding=1)

    def forward(self, x):
        return torch.softmax(self.conv(x), dim=1)
'''


def state_dict_package(package_2d, folder):
    """``package_2d`` unpacked with its weights replaced by a state dict + architecture file."""
    import hashlib

    rdf, files = read_zip(package_2d)
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "tiny_net.py").write_text(ARCHITECTURE)
    namespace = {}
    exec(ARCHITECTURE, namespace)
    torch.manual_seed(0)
    net = namespace["TinyNet"]().eval()
    torch.save(net.state_dict(), folder / "weights.pt")
    raw = npy(files["test_input.npy"])
    from nbseg.predict.bioimageio_export import scale_range

    expected = net(torch.from_numpy(scale_range(raw[0], (1.0, 99.8))[None])).detach().numpy()
    np.save(folder / "test_output.npy", expected)
    rdf["outputs"][0]["test_tensor"]["sha256"] = hashlib.sha256((folder / "test_output.npy").read_bytes()).hexdigest()
    rdf["weights"] = {"pytorch_state_dict": {
        "source": "weights.pt", "pytorch_version": "2.13.0",
        "architecture": {"source": "tiny_net.py", "callable": "TinyNet", "kwargs": {"n_classes": 2}}}}
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    return folder / "rdf.yaml", net


def test_state_dict_package_needs_trust(package_2d, tmp_path, shared_data):
    from nbseg.predict.bioimageio_export import scale_range
    from nbseg.model.bioimageio_load import load_package
    from nbseg.predict.image import predict_image

    rdf, net = state_dict_package(package_2d, tmp_path / "pkg")
    with pytest.raises(BioimageioError, match="pytorch_state_dict.*architecture code.*--trust-code"):
        predict_image(rdf, dsb_crop(shared_data))
    image = dsb_crop(shared_data, (64, 64))
    got = predict_image(load_package(rdf, trust_code=True), image, tta="none", tile=(64, 64), precision="fp32",
                        dtype=np.float32)
    expected = net(torch.from_numpy(scale_range(image[None], (1.0, 99.8))[None])).detach().numpy()[0]
    assert np.abs(got.probabilities - expected).max() < 1e-4


def test_package_without_pytorch_weights_is_refused(package_2d, tmp_path):
    """A package declaring only ONNX weights: nbseg names the format it has. (The .onnx file is never
    parsed, only its declared format is read.)"""
    from nbseg.model.bioimageio_load import load_package

    rdf, files = read_zip(package_2d)
    folder = tmp_path / "onnx"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "model.onnx").write_bytes(b"declared, never read")
    rdf["weights"] = {"onnx": {"source": "model.onnx", "opset_version": 17}}
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(BioimageioError, match="has onnx weights; nbseg runs PyTorch models only"):
        load_package(folder / "rdf.yaml")
