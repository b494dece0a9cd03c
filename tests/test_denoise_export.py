"""bioimage.io export of a denoiser (N2V2 and CARE): the segmentation exporter's package, whose output is the
restored image in the input's intensity scale, passed by bioimage.io's own test (in the export and, for one,
by the ``bioimageio test`` command in its own process)."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

pytest.importorskip("bioimageio.core", reason="bioimage.io export needs bioimageio.core (pip install 'nbseg[bioimageio]')")

from nbseg.predict.bioimageio_export import BioimageioError, export_bioimageio  # noqa: E402
from test_bioimageio import npy, read_zip  # noqa: E402
from test_bioimageio_check import bioimageio_command  # noqa: E402
from test_care import make_pairs  # noqa: E402

# each export runs bioimage.io's test of the package (~20 s in all): make test-release runs them, keeping make test
# under 10 minutes; the segmentation exporter they share is tested in make test (test_bioimageio.py)
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
              pytest.mark.slow, pytest.mark.release]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def train(root, *, care: bool, dims: int = 2):
    """A denoiser trained for a few steps on synthetic pairs (CARE) or their noisy half (N2V2), 2D or 3D."""
    from nbseg.denoise import denoise_config, train_denoiser

    noisy, clean = make_pairs(root, 2, scale=500.0, shape=(64, 64) if dims == 2 else (16, 48, 48))
    data = {"masks": clean} if care else {}
    if dims == 3:
        data.update(axes="ZYX", pixel_sizes=[1.0, 0.5, 0.5])
    config = denoise_config(noisy, data=data, model={"patch": [32, 32] if dims == 2 else [16, 32, 32]},
                            train={"epochs": 1, "steps_per_epoch": 2, "seed": 0, "device": "cpu", "batch_size": 2,
                                   "val_tiles": 1})
    train_denoiser(config, root / "dn")
    return root / "dn"


@pytest.mark.parametrize("care", [False, True], ids=["n2v2", "care"])
def test_denoiser_package_outputs_the_restored_image(tmp_path, care):
    """The package's test output is what `nbseg denoise predict` gives on its test input (one tile): the restored
    image in the input's intensity scale, float32, the input's axes; no normalisation declared, the method's
    paper cited."""
    from nbseg.denoise import denoise_image

    project = train(tmp_path, care=care)
    package = export_bioimageio(project, tmp_path / "dn.zip", authors="Ada Lovelace")
    rdf, files = read_zip(package)
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert out["id"] == "restored" and out["data"]["type"] == "float32"
    assert [a["type"] for a in out["axes"]] == [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert not any(p["id"] == "scale_range" for p in inp.get("preprocessing", []))
    assert rdf["config"]["nbseg"]["kind"] == "denoise" and rdf["config"]["nbseg"]["method"] == ("care" if care else "n2v2")
    cited = " ".join(c["text"] for c in rdf["cite"])
    assert ("Weigert" in cited) == care and ("Höck" in cited) == (not care)
    assert ("CARE" if care else "N2V2") in rdf["description"] and "restored image" in rdf["description"]
    assert {"denoising", "restoration"} <= set(rdf["tags"])
    raw, expected = npy(files["test_input.npy"])[0], npy(files["test_output.npy"])[0]
    assert raw.shape == expected.shape and raw.max() > 100  # the input's scale (x500), not a normalised one
    ours = denoise_image(project, raw, tile=raw.shape[1:], device="cpu")
    np.testing.assert_allclose(expected, ours, rtol=1e-4, atol=1e-3 * float(raw.max()))
    readme = files["README.md"].decode()
    assert "restored image" in readme and "input's intensity scale" in readme
    assert ("PSNR against the held-out clean images" if care else "blind spots") in readme


def test_a_3d_n2v2_package_passes_the_bioimageio_test_command(tmp_path):
    project = train(tmp_path, care=False, dims=3)
    package = export_bioimageio(project, tmp_path / "dn3d.zip", authors="Ada Lovelace", name="Embryo denoiser")
    rdf, files = read_zip(package)
    assert [a.get("id") for a in rdf["outputs"][0]["axes"][2:]] == ["z", "y", "x"]
    assert npy(files["test_output.npy"]).ndim == 5 and rdf["name"] == "Embryo denoiser"
    summary = tmp_path / "summary.json"
    done = subprocess.run(bioimageio_command() + ["test", str(package), "--summary", str(summary)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(summary.read_text())
    checks = {d["name"]: d["status"] for d in report["details"]}
    assert report["status"] == "passed", checks
    assert checks.get("Reproduce test outputs from test inputs (torchscript)") == "passed", checks


def test_cli_exports_a_care_denoiser(tmp_path, capsys):
    from nbseg.cli.main import main

    project = train(tmp_path, care=True)
    out = tmp_path / "care.zip"
    assert main(["export", str(project), "--bioimageio", str(out), "--author", "Ada Lovelace", "--tta", "flips"]) == 2
    assert "test-time augmentation" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(project), "--bioimageio", str(out), "--author", "Ada Lovelace"]) == 0
    assert "passed bioimageio.core's test" in capsys.readouterr().out
    rdf, _ = read_zip(out)
    assert rdf["config"]["nbseg"]["method"] == "care" and "clean targets from `clean`" in rdf["config"]["nbseg"][
        "training_data"]
    with pytest.raises(BioimageioError, match="test-time augmentation"):
        export_bioimageio(project, tmp_path / "x.zip", authors="A", tta="all")
