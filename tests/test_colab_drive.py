"""The project folder on Google Drive in Colab (nbseg.colab, notebook 01's button, the default project of
every notebook), with a stand-in for the Colab module: ``google.colab.drive.mount(path)`` makes a real
``path/MyDrive`` folder, as Colab's does once the user allows it; or raises, as Colab's does when the user
declines (then the project stays on the runtime's disk, with a warning that it is lost when the runtime ends)."""
from __future__ import annotations

import json
import sys
import types

import pytest

from nbseg import colab
from nbseg.config import Config
from nbseg.project import POINTER_FILE
from nbseg.ui import teaching as nbp


def _stand_in(monkeypatch, tmp_path, mount) -> None:
    """``google.colab`` importable with ``drive.mount = mount``, Drive's mount point under tmp_path."""
    google = types.ModuleType("google")
    google.__path__ = []  # a package, so that `import google.colab` looks inside it
    module = types.ModuleType("google.colab")
    module.drive = types.SimpleNamespace(mount=mount)
    google.colab = module
    for name, value in (("google", google), ("google.colab", module), ("google.colab.drive", module.drive)):
        monkeypatch.setitem(sys.modules, name, value)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "content" / "drive")
    monkeypatch.delenv("NBSEG_PROJECT", raising=False)


@pytest.fixture
def drive(tmp_path, monkeypatch):
    """``google.colab`` importable, Drive mounting under tmp_path; yields the mount calls."""
    calls = []

    def mount(path, **_kwargs):
        calls.append(path)
        (tmp_path / "content" / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    _stand_in(monkeypatch, tmp_path, mount)
    return calls


class MessageError(RuntimeError):
    """What Colab's drive.mount raises when the user declines access."""


@pytest.fixture
def declined(tmp_path, monkeypatch):
    """``google.colab`` importable, its Drive mount declined (as Colab's: a MessageError); yields the calls."""
    calls = []

    def mount(path, **_kwargs):
        calls.append(path)
        raise MessageError("Error: credential propagation was unsuccessful")

    _stand_in(monkeypatch, tmp_path, mount)
    monkeypatch.chdir(tmp_path)
    return calls


def test_outside_colab_nothing_is_mounted_and_the_default_stays(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails, as outside Colab
    monkeypatch.delenv("NBSEG_PROJECT", raising=False)
    assert not colab.in_colab()
    assert colab.remembered_project() is None
    assert nbp.default_project("nuclei2d").as_posix() == "projects/nuclei2d"
    with pytest.raises(RuntimeError, match="only inside Google Colab"):
        colab.mount_drive()


def test_keep_on_drive_copies_the_project_and_remembers_it(drive, tmp_path):
    local = tmp_path / "runtime" / "projects" / "cells"
    (local / "models").mkdir(parents=True)
    (local / "config.yaml").write_text("data: {}\n")
    kept = colab.keep_on_drive(local)
    assert kept == tmp_path / "content" / "drive" / "MyDrive" / "nbseg" / "projects" / "cells"
    assert (kept / "config.yaml").read_text() == "data: {}\n" and (kept / "models").is_dir()
    assert (local / "config.yaml").exists()  # the original is left as it was
    assert not list(kept.parent.glob(".*partial"))
    pointer = json.loads((kept.parents[1] / POINTER_FILE).read_text())
    assert pointer == {"project": str(kept)}
    assert len(drive) == 1
    (kept / "config.yaml").write_text("data: {images: x}\n")  # work done on Drive since
    assert colab.keep_on_drive(local) == kept  # again: the Drive copy is kept, not replaced
    assert (kept / "config.yaml").read_text() == "data: {images: x}\n"
    assert len(drive) == 1  # already mounted: Colab is not asked again


def test_a_new_session_finds_the_project_on_drive(drive, tmp_path, monkeypatch):
    kept = colab.keep_on_drive(tmp_path / "nowhere" / "nuclei2d")
    monkeypatch.chdir(tmp_path)  # a fresh runtime: nothing of the old disk
    assert nbp.default_project("nuclei2d") == kept
    kept.rmdir()  # the folder was deleted on Drive: back to the default
    assert nbp.default_project("nuclei2d").as_posix() == "projects/nuclei2d"


def test_data_panel_keeps_the_project_on_drive_for_the_next_notebooks(drive, tmp_path, monkeypatch):
    pytest.importorskip("ipywidgets")
    from nbseg.ui import DataPanel, LabelQCPanel

    monkeypatch.setenv("NBSEG_QUICK", "1")
    monkeypatch.setenv("NBSEG_AUTORUN", "0")
    monkeypatch.chdir(tmp_path)
    panel = DataPanel(nbp.default_project("nuclei2d"), sample_name="nuclei2d")
    assert panel.drive_button.layout.display == ""
    assert panel.drive_button not in panel.buttons  # not pressed by a teaching run
    panel.drive_button.click()
    assert panel.error is None, panel.errors.message.value
    on_drive = tmp_path / "content" / "drive" / "MyDrive" / "nbseg" / "projects" / "nuclei2d"
    assert panel.project.value == str(on_drive) and "Google Drive" in panel.status.text
    panel.check.click()
    assert panel.error is None, panel.errors.message.value
    assert Config.load(on_drive).data.images == panel.service.data_config().images
    assert not (tmp_path / "projects").exists()  # nothing was written on the runtime's disk
    # notebook 03 in a new runtime: the default project is the one on Drive, with its settings
    later = LabelQCPanel(nbp.default_project("nuclei2d"))
    assert later.state.project == on_drive and later.error is None, later.errors.message.value


def test_data_panel_hides_the_drive_button_outside_colab(tmp_path, monkeypatch):
    pytest.importorskip("ipywidgets")
    from nbseg.ui import DataPanel

    monkeypatch.setitem(sys.modules, "google.colab", None)
    panel = DataPanel(tmp_path / "p", sample_name="nuclei2d")
    assert panel.drive_button.layout.display == "none"


def test_declined_drive_keeps_the_project_on_local_disk_with_a_warning(declined, tmp_path):
    with pytest.warns(colab.LocalDiskWarning) as caught:
        project = nbp.default_project("nuclei2d")
    assert declined, "Drive was not asked"
    assert project.as_posix() == "projects/nuclei2d"
    message = str(caught[0].message)
    assert "LOST WHEN THE RUNTIME ENDS" in message and str(tmp_path) in message
    assert "credential propagation" in message  # what Colab said, for whoever reads it
    assert not (tmp_path / "content").exists()  # nothing pretends to be Drive


def test_keep_on_drive_declined_says_what_happened(declined, tmp_path):
    local = tmp_path / "projects" / "cells"
    local.mkdir(parents=True)
    with pytest.raises(colab.DriveNotMounted, match="allow access when Colab asks.*lost when the runtime ends"):
        colab.keep_on_drive(local)
    assert local.is_dir() and not (tmp_path / "content").exists()
