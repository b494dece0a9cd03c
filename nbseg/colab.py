"""The project folder on Google Drive, for notebooks in Google Colab.

A Colab runtime loses its disk when it disconnects, and every notebook opened in Colab gets a runtime
of its own, so a project kept on the runtime's disk is gone for the next notebook (or after a
disconnect mid-training). Kept on Drive (``google.colab.drive.mount``), it survives: notebook 01
moves the project folder there and leaves a small pointer beside it (``MyDrive/nbseg/nbseg-project.json``),
and :func:`remembered_project` — which every notebook's default project asks — mounts Drive and
follows the pointer. When Drive access is declined, the project stays on the runtime's disk, with a
:class:`LocalDiskWarning` saying that it is lost when the runtime ends. Outside Colab nothing here mounts
or writes anything.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from .project import POINTER_FILE, write_json

DRIVE_MOUNT = Path("/content/drive")  # where Colab mounts Drive
DRIVE_FOLDER = ("MyDrive", "nbseg")   # nbseg's folder on Drive, below the mount point
PROJECTS = "projects"
# The one place the repository's address is written: the notebooks' Open-in-Colab badges in the README are
# generated from it (python -m nbseg.ui._notebooks) and CITATION.cff is checked against it (tests/test_release.py).
REPOSITORY = "https://github.com/nbseg/nbseg"
BRANCH = "main"  # the branch whose notebooks the badges open


class DriveNotMounted(RuntimeError):
    """Google Drive did not mount: access was declined, or mounting failed."""


class LocalDiskWarning(UserWarning):
    """The project is kept on the Colab runtime's own disk, which is lost when the runtime ends."""


def colab_url(notebook: str) -> str:
    """The address that opens ``notebooks/<notebook>.ipynb`` of :data:`REPOSITORY` in Google Colab."""
    repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def in_colab() -> bool:
    """True inside Google Colab (``google.colab`` can be imported)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def mount_drive(mount_point=None) -> Path:
    """Mount Google Drive (Colab asks the user to allow it once per runtime); returns nbseg's folder on it.

    Parameters
    ----------
    mount_point : str or Path, optional
        Default ``/content/drive``, where Colab mounts Drive.

    Returns
    -------
    Path
        ``<mount_point>/MyDrive/nbseg`` (created if missing).

    Raises
    ------
    RuntimeError
        Outside Colab.
    DriveNotMounted
        When Drive did not mount, e.g. access was declined (the message says how to retry).
    """
    if not in_colab():
        raise RuntimeError("Google Drive can be mounted only inside Google Colab; elsewhere keep the project "
                           "folder on this machine's disk (it stays there between sessions).")
    from google.colab import drive

    mount_point = Path(mount_point or DRIVE_MOUNT)
    mydrive = mount_point / DRIVE_FOLDER[0]
    if not mydrive.is_dir():
        try:
            drive.mount(str(mount_point))
        except Exception as err:  # Colab raises its own MessageError when the user declines access
            raise DriveNotMounted(f"Google Drive did not mount at {mount_point} ({type(err).__name__}: {err}). "
                                  "Run the cell again and allow access when Colab asks, or keep the project on "
                                  "the runtime's disk, which is lost when the runtime ends.") from err
    if not mydrive.is_dir():
        raise DriveNotMounted(f"Google Drive did not mount at {mount_point} (no {mydrive}). Run the cell again and "
                              "allow access when Colab asks, or keep the project on the runtime's disk, which is "
                              "lost when the runtime ends.")
    folder = mount_point.joinpath(*DRIVE_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep_on_drive(project, mount_point=None) -> Path:
    """Move ``project`` to Google Drive (a copy of what it holds; the original is left as it is) and
    remember it there for the next notebooks.

    Parameters
    ----------
    project : str or Path
        The project folder now (may not exist yet).
    mount_point : str or Path, optional
        As for :func:`mount_drive`.

    Returns
    -------
    Path
        The project folder on Drive: ``MyDrive/nbseg/projects/<name>``. An existing folder of that
        name is used as it is (a project kept there in an earlier session); nothing in it is replaced.
    """
    project = Path(project)
    folder = mount_drive(mount_point)
    target = folder / PROJECTS / project.name
    if project.resolve() == target.resolve():
        remember_on_drive(target, mount_point)
        return target
    if not target.exists() and project.is_dir():
        staging = target.with_name(f".{target.name}.partial")  # a cut copy never looks like a project
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(project, staging)
        staging.rename(target)
    target.mkdir(parents=True, exist_ok=True)
    remember_on_drive(target, mount_point)
    return target


def remember_on_drive(project, mount_point=None) -> Path:
    """Write the pointer to ``project`` in nbseg's folder on Drive; returns the pointer's path."""
    folder = mount_drive(mount_point)
    return write_json(folder / POINTER_FILE, {"project": str(Path(project))})


def remembered_project(mount_point=None) -> Path | None:
    """The project folder notebook 01 kept on Drive, inside Colab (mounting Drive); else None.

    None also when no pointer is there, or it names a folder that no longer exists; and when Drive did not
    mount (access declined), with a :class:`LocalDiskWarning` that the project stays on the runtime's disk.
    """
    if not in_colab():
        return None
    try:
        pointer = mount_drive(mount_point) / POINTER_FILE
    except DriveNotMounted as err:
        warnings.warn(f"{err}\nThe project stays on this Colab runtime's local disk (below {Path.cwd()}): it is "
                      "LOST WHEN THE RUNTIME ENDS (a disconnect, the idle timeout, or 'Disconnect and delete "
                      "runtime'). Download what you need before then (e.g. the project's export/ folder), or run "
                      "this cell again and allow Google Drive access to keep the project.",
                      LocalDiskWarning, stacklevel=2)
        return None
    try:
        project = Path(json.loads(pointer.read_text())["project"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return project if project.is_dir() else None


__all__ = ["DRIVE_MOUNT", "REPOSITORY", "DriveNotMounted", "LocalDiskWarning", "colab_url", "in_colab", "keep_on_drive", "mount_drive", "remember_on_drive", "remembered_project"]
