"""bioimage.io's own check, run by its own command line on a package nbseg exports.

nbseg's export already calls ``bioimageio.core.test_model`` before it keeps a package; this test does not
trust that call. It runs ``bioimageio test`` (the tool bioimage.io's curators and deepImageJ/ilastik users
run) in a separate process on the written zip, so a package that only nbseg believes valid fails here.
A tiny untrained 2D U-Net and a synthetic image keep it at about 15 s and free of ../shared/data.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bioimageio.core", reason="bioimage.io export needs bioimageio.core (pip install 'nbseg[bioimageio]')")

from nbseg.predict.bioimageio_export import export_bioimageio  # noqa: E402

import model_projects  # noqa: E402  (tests/model_projects.py)

# bioimage.io's test runs twice: in the export and in its own process. A packaging check (11 s), as the wheel's
# fresh venv: make test-release runs it (CI too), which keeps make test under 10 minutes
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
              pytest.mark.slow, pytest.mark.release]


def bioimageio_command() -> list[str]:
    """The ``bioimageio`` console script beside this interpreter (the venv's), else the module."""
    script = Path(sys.executable).with_name("bioimageio")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bioimageio.core"]


def test_exported_package_passes_bioimageio_test_command(tmp_path):
    project = model_projects.make_project(tmp_path / "nuclei", folds=1, patch=[32, 32])
    sample = np.random.default_rng(0).gamma(2.0, 50.0, (48, 48)).astype(np.float32)
    package = export_bioimageio(project, tmp_path / "nuclei.zip", authors="Ada Lovelace", sample=sample, tta="none")
    summary = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(bioimageio_command() + ["test", str(package), "--summary", str(summary)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(summary.read_text())
    checks = {d["name"]: d["status"] for d in report["details"]}
    assert report["status"] == "passed", checks
    # the checks that matter to a consumer ran: the format, the test output reproduced from the test input
    # (through the declared scale_range), and inference at other batch sizes and tile sizes
    assert any(n.startswith("bioimageio.spec format validation") for n in checks), checks
    assert checks.get("Reproduce test outputs from test inputs (torchscript)") == "passed", checks
    assert sum(n.startswith("Run torchscript inference") for n in checks) >= 4, checks
