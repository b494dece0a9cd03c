"""binder/ (repo2docker): the files are well formed, and what they install resolves in a fresh venv.

The resolution is a ``pip install --dry-run`` of binder/requirements.txt plus ``-e .[notebook]`` in a new
virtual environment (no packages installed), bounded to a few minutes; a full install (~2 GB) would be too
slow for CI. PyTorch's CPU index is checked as text: the test pins torch to the build already on the machine.
The files' form is checked by ``make test``; the resolution, a release check, by ``make test-release``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_binder_files_are_well_formed():
    requirements = (BINDER / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert any(line.startswith("torch") for line in requirements.splitlines())
    post = BINDER / "postBuild"
    assert post.read_text().startswith("#!/bin/bash") and os.access(post, os.X_OK)
    assert '-e ".[notebook]"' in post.read_text()
    assert (BINDER / "runtime.txt").read_text().strip().startswith("python-3.")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "notebook = [" in pyproject and "ui = [" in pyproject


@pytest.mark.slow
@pytest.mark.release  # a packaging check, as the wheel's fresh venv: make test-release (about 40 s of pip)
def test_binder_requirements_resolve_in_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    requirements = tmp_path / "requirements.txt"
    # the CPU index is not reachable from every machine; pin torch to the locally available build instead
    lines = [ln for ln in (BINDER / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith(("#", "--extra-index-url"))]
    requirements.write_text("\n".join(lines) + "\n")
    import torch

    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    report = tmp_path / "report.json"
    try:
        out = subprocess.run(pip + ["install", "--dry-run", "--quiet", "--report", str(report), "-r", str(requirements),
                                    "-c", str(constraints), "-e", f"{ROOT}[notebook]"],
                             capture_output=True, text=True, timeout=420, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.skip("pip could not resolve binder's requirements within 7 minutes (slow package index)")
    assert out.returncode == 0, out.stderr[-4000:]
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in json.loads(report.read_text())["install"]}
    for needed in ("nbseg", "torch", "ipywidgets", "jupyterlab", "ipyvolume", "ipykernel", "fastprogress"):
        assert needed in names, f"{needed} would not be installed; got {sorted(names)[:40]}"
