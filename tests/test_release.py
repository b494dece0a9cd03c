"""The release: one version, no exact pins, a valid CITATION.cff, Open-in-Colab badges from the one repository
address; slow: a wheel and an sdist that hold the notebooks, the bundled model and the samples, pass
``twine check``, and a Colab-like run of the seven notebooks installed from the built wheel.

The Colab-like run: a fresh virtual environment with Colab's pinned ipywidgets 7.7.1, a CPU torch and ipykernel,
and no nbseg; a stand-in ``google.colab`` whose Drive mount is declined; the seven notebooks (taken from the
wheel) alone in an empty folder; pip pointed at the built wheel (PIP_FIND_LINKS). Each notebook's first cell
installs ``nbseg[ui]==<version>`` itself, as in Colab; all seven run in quick mode on the 2D sample."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import nbseg
from nbseg.colab import REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("00_denoise", "01_data", "02_correct", "03_label_qc", "04_lr_finder", "05_train", "06_predict", "07_threshold_export")
MAX_WHEEL_MB = 10


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_source():
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nbseg.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", nbseg.__version__)


def test_no_exact_pins_in_the_requirements():
    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pinned = [r for r in requirements if "==" in r or "===" in r]
    assert not pinned, f"exact pins break installs beside Colab's packages: {pinned}"


def test_citation_cff_is_valid():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    missing = {"cff-version", "message", "title", "authors"} - set(cff)
    assert not missing, f"CITATION.cff lacks {missing}"
    assert str(cff["cff-version"]).startswith("1.2")
    assert cff["authors"] and all(isinstance(a, dict) and ({"name", "family-names"} & set(a)) for a in cff["authors"])
    assert str(cff["version"]) == nbseg.__version__
    assert cff["repository-code"] == REPOSITORY


def test_readme_badges_and_addresses_come_from_the_one_repository_address():
    from nbseg.ui._notebooks import badges

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert badges() in readme, "README's badges are stale: run `python -m nbseg.ui._notebooks`"
    for name in NAMES:
        assert f"{REPOSITORY.removeprefix('https://github.com/')}/blob/main/notebooks/{name}.ipynb" in badges()
    # every address of nbseg's own repository in the README is REPOSITORY's
    own = set(re.findall(r"github\.com/([\w.-]+/nbseg)\b", readme))
    assert own == {REPOSITORY.removeprefix("https://github.com/")}, own


def test_notebooks_install_their_own_version_in_colab_only_and_need_no_checkout():
    nbformat = pytest.importorskip("nbformat")
    for name in NAMES:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        setup = code[0]
        assert f'NBSEG_VERSION = "{nbseg.__version__}"' in setup and 'f"nbseg[ui]=={NBSEG_VERSION}"' in setup
        assert "from google.colab import" in setup and "enable_custom_widget_manager()" in setup
        assert "git+" not in setup and '("torch", "ipywidgets")' in setup  # from the index; Colab's own kept
        for source in code:
            assert not re.search(r"['\"](\.\./|notebooks/|nbseg/samples)", source), f"{name}: a checkout path"


def test_nbseg_notebooks_copies_them_out_and_keeps_edits(tmp_path, capsys):
    from nbseg.cli.main import main

    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    copied = sorted(p.name for p in (tmp_path / "nb").iterdir())
    assert copied == [f"{n}.ipynb" for n in NAMES]
    assert (tmp_path / "nb" / "05_train.ipynb").read_bytes() == (ROOT / "notebooks" / "05_train.ipynb").read_bytes()
    (tmp_path / "nb" / "01_data.ipynb").write_text("my edits")
    assert main(["notebooks", str(tmp_path / "nb")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "nb" / "01_data.ipynb").read_text() == "my edits"


# --- slow: the built release ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel built from it (``python -m build``), in a fresh folder."""
    pytest.importorskip("build", reason="`build` is not installed (pip install build; it is in the dev extra)")
    out = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("src") / "nbseg"  # a clean copy: no build/ or egg-info of the checkout
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info",
                                                              "__pycache__", "artifacts", "bench", "docs", "*_project"))
    try:
        done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(work)],
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("python -m build took over 10 minutes")
    if done.returncode and "ModuleNotFoundError" in done.stdout + done.stderr:
        pytest.skip(f"cannot build here (a build requirement is missing): {(done.stdout + done.stderr)[-800:]}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out


@pytest.mark.slow
def test_wheel_and_sdist_hold_notebooks_model_and_samples(dist):
    import tarfile

    wheel, = dist.glob(f"nbseg-{nbseg.__version__}-py3-none-any.whl")
    sdist, = dist.glob(f"nbseg-{nbseg.__version__}.tar.gz")
    assert wheel.stat().st_size < MAX_WHEEL_MB * 2**20, f"wheel is {wheel.stat().st_size / 2**20:.1f} MB"
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in NAMES:
        assert f"nbseg/notebooks/{name}.ipynb" in names
    assert {"nbseg/models/nuclei/model.pt", "nbseg/models/nuclei/README.md", "nbseg/samples/README.md"} <= names
    assert len([n for n in names if n.startswith("nbseg/samples/nuclei2d/")]) == 48
    assert len([n for n in names if n.startswith("nbseg/samples/nuclei3d/")]) == 4
    inside = set(tarfile.open(sdist).getnames())
    top = f"nbseg-{nbseg.__version__}"
    assert {f"{top}/notebooks/{n}.ipynb" for n in NAMES} | {f"{top}/nbseg/models/nuclei/model.pt"} <= inside
    assert f"{top}/nbseg/samples/nuclei3d/images/8_cell_stage.tif" in inside
    pytest.importorskip("twine", reason="twine is not installed (it is in the dev extra)")
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr


COLAB_STAND_IN = {
    "__init__.py": '"""A stand-in for Google Colab\'s module (tests/test_release.py): Drive access is declined."""\n'
                   "from . import drive, output  # noqa: F401\n",
    "_message.py": "class MessageError(RuntimeError):\n    pass\n",
    "drive.py": "from ._message import MessageError\n\n\ndef mount(mountpoint, **kwargs):\n"
                "    raise MessageError('Error: credential propagation was unsuccessful')  # as Colab, declined\n",
    "output.py": "def enable_custom_widget_manager():\n    print('colab stand-in: custom widget manager on')\n",
}


def _clean_env() -> dict:
    """This environment without PYTHONPATH, which may name the checkout (its nbseg must not be seen)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _pip(venv: Path, *args, timeout=900) -> subprocess.CompletedProcess:
    # run from the venv's folder: `python -m` puts the working directory (maybe the checkout) on sys.path
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=venv, env=_clean_env())


def _colab_like_venv(tmp_path: Path) -> Path:
    """A fresh venv with what Colab brings: torch (the CPU build this machine has), ipywidgets 7.7.1, ipykernel."""
    import torch

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    done = _pip(venv, "install", "-q", f"torch=={torch.__version__}", "ipywidgets==7.7.1", "ipykernel")
    if done.returncode:
        pytest.skip(f"cannot make Colab's environment here (pip failed): {done.stderr[-1500:]}")
    assert _pip(venv, "show", "nbseg").returncode != 0, "the fresh venv must not hold nbseg"
    return venv


def _kernel_spec(tmp_path: Path, venv: Path, env: dict) -> Path:
    """A Jupyter kernel running the venv's Python, with ``env`` (returned: the JUPYTER_PATH folder)."""
    share = tmp_path / "jupyter"
    spec = share / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python", "env": env}))
    return share


@pytest.mark.slow
@pytest.mark.release
def test_colab_like_run_installs_the_wheel_and_runs_all_seven_notebooks(dist, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    venv = _colab_like_venv(tmp_path)
    stand_in = tmp_path / "colab_stand_in" / "google" / "colab"  # `google` stays a namespace package
    stand_in.mkdir(parents=True)
    for name, text in COLAB_STAND_IN.items():
        (stand_in / name).write_text(text)
    folder = tmp_path / "content"  # the notebooks alone, as Colab opens them: taken from the wheel
    folder.mkdir()
    wheel, = dist.glob("nbseg-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in NAMES:
            (folder / f"{name}.ipynb").write_bytes(zf.read(f"nbseg/notebooks/{name}.ipynb"))
    env = {"PYTHONPATH": str(stand_in.parents[1]),  # the stand-in only, never the checkout
           "PIP_FIND_LINKS": " ".join(filter(None, [str(dist), os.environ.get("PIP_FIND_LINKS", "")])),
           "NBSEG_QUICK": "1", "NBSEG_QUICK_MINUTES": "0.3", "NBSEG_SAMPLE": "nuclei2d", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_spec(tmp_path, venv, env)))
    monkeypatch.delenv("NBSEG_PROJECT", raising=False)
    outputs, times = {}, {}
    for name in NAMES:
        nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        started = time.monotonic()
        nbclient.NotebookClient(nb, timeout=1500, kernel_name="colab-like", allow_errors=False,
                                resources={"metadata": {"path": str(folder)}}).execute()
        times[name] = round(time.monotonic() - started)
        outputs[name] = "\n".join(str(o.get("text", "")) + str(o.get("evalue", ""))
                                  for c in nb.cells for o in c.get("outputs", []))
        assert "Traceback" not in outputs[name], f"{name}: {outputs[name][-3000:]}"
    print(f"\nColab-like run (nbseg {nbseg.__version__} from the wheel): {times}")
    for name in NAMES:
        assert "colab stand-in: custom widget manager on" in outputs[name], name
        assert "LOST WHEN THE RUNTIME ENDS" in outputs[name], f"{name} did not warn that the project is local"
    shown = _pip(venv, "show", "-f", "nbseg").stdout
    assert f"Version: {nbseg.__version__}" in shown and str(venv) in shown  # installed from the wheel, in the venv
    import torch

    assert f"Version: {torch.__version__}" in _pip(venv, "show", "torch").stdout  # Colab's torch kept
    assert "Version: 7.7.1" in _pip(venv, "show", "ipywidgets").stdout  # and its ipywidgets
    project = folder / "projects" / "nuclei2d"
    assert list((project / "models").glob("fold*.pt")) and list((project / "export").glob("*.labels.ome.tif"))
