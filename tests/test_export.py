"""TorchScript export: one file for all folds, matching predict, loadable without nbseg."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nbseg.predict.export import export_torchscript, read_export_meta
from nbseg.predict.image import predict_image

import model_projects  # tests/model_projects.py

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def make_project(root, *, dims=2, folds=2, kind="binary", input_shift=None):
    patch = [8, 16, 16] if dims == 3 else [32, 32]
    return model_projects.make_project(root, dims=dims, folds=folds, kind=kind, patch=patch,
                                       percentiles=lambda k: [1.0, 99.0 + k * 0.5], input_shift=input_shift)


@pytest.mark.parametrize("dims,tta,shift", [(2, "none", None), (2, "all", None), (3, "flips", None),
                                            (2, "all", (-0.6, -0.2)), (3, "flips", (0.3, -0.5, 0.4))])
def test_export_matches_predict_on_a_tile(tmp_path, dims, tta, shift):
    project = make_project(tmp_path / "p", dims=dims, kind="instances" if dims == 3 else "binary", input_shift=shift)
    path = export_torchscript(project, tmp_path / "model.pt", tta=tta)
    shape = (8, 16, 16) if dims == 3 else (32, 32)
    image = (np.random.default_rng(0).gamma(2.0, 40.0, shape)).astype(np.float32)
    scripted = torch.jit.load(str(path))
    got = scripted(torch.from_numpy(image)[None, None]).numpy()[0]
    expected = predict_image(project, image, tta=tta, tile=shape, precision="fp32", dtype=np.float32)
    np.testing.assert_allclose(got, expected.probabilities, atol=2e-5)
    meta = read_export_meta(path)
    assert meta["models"] == 2 and meta["tta"] == tta and meta["spatial_dims"] == dims


def test_export_loads_with_plain_torch(tmp_path):
    project = make_project(tmp_path / "p", folds=1)
    path = export_torchscript(project, tmp_path / "model.pt")
    code = (
        "import json, sys, torch\n"
        f"extra = {{'nbseg.json': ''}}\n"
        f"m = torch.jit.load({str(path)!r}, _extra_files=extra)\n"
        "y = m(torch.rand(2, 1, 32, 48) * 100)\n"
        "assert 'nbseg' not in sys.modules\n"
        "print(json.dumps({'shape': list(y.shape), 'sum': float(y.sum(1).mean()), "
        "'classes': json.loads(extra['nbseg.json'])['class_names']}))\n"
    )
    # -I: isolated, so neither the working tree nor PYTHONPATH can supply nbseg
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["shape"] == [2, 2, 32, 48] and out["sum"] == pytest.approx(1, abs=1e-5)


def test_export_refuses_to_overwrite_and_bad_sides(tmp_path):
    project = make_project(tmp_path / "p", folds=1)
    path = export_torchscript(project, tmp_path / "model.pt")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_torchscript(project, path)
    export_torchscript(project, path, overwrite=True)
    with pytest.raises(Exception, match="divisible"):
        torch.jit.load(str(path))(torch.rand(1, 1, 30, 32))
