"""Models that ship inside the nbseg package: ``nbseg/models/<name>/model.pt`` (a model file as a project's
``models/fold0.pt``) with a ``README.md`` whose first line says what the model is.

``nbseg train --init <name>`` fine-tunes from one of them. The folder is found beside this package, or
where the environment variable ``NBSEG_MODELS`` points (tests, or models kept outside the install).
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "NBSEG_MODELS"
MODEL_FILE, README_FILE = "model.pt", "README.md"


def models_root(root=None) -> Path:
    """The folder holding one sub-folder per bundled model: ``root``, else ``$NBSEG_MODELS``, else
    ``nbseg/models`` in the installed package."""
    if root is not None:
        return Path(root)
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parents[1] / "models"


def bundled_models(root=None) -> dict[str, str]:
    """The bundled models present, by name, each with its README's first line (its title).

    Parameters
    ----------
    root : str or Path, optional
        See :func:`models_root`.

    Returns
    -------
    dict of str -> str
        E.g. ``{"nuclei": "Fluorescent nuclei, 2D (DSB2018)"}``; empty when none is installed.
    """
    folder = models_root(root)
    found = {}
    for model in sorted(folder.glob(f"*/{MODEL_FILE}")) if folder.is_dir() else []:
        found[model.parent.name] = _title(model.parent / README_FILE)
    return found


def bundled_model_file(name: str, root=None) -> Path | None:
    """``<root>/<name>/model.pt`` if that bundled model is present, else None."""
    path = models_root(root) / str(name) / MODEL_FILE
    return path if name and "/" not in str(name) and path.is_file() else None


def describe_bundled(root=None) -> str:
    """The bundled models as a phrase for messages: ``"nuclei (Fluorescent nuclei, 2D)"`` or ``"none"``."""
    found = bundled_models(root)
    listed = ", ".join(f"{name} ({title})" if title else name for name, title in found.items())
    return listed or f"none (no */{MODEL_FILE} in {models_root(root)})"


def _title(readme: Path) -> str:
    if not readme.is_file():
        return ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()
    return ""
