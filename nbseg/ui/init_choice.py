"""Notebook 05's 'Start from' control: scratch, a bundled model (when one is installed), or another
project or package typed as a path. It only says which; ``nbseg.train.init`` finds and loads it."""
from __future__ import annotations

import ipywidgets as w

from ..model.bundled import bundled_models
from .common import control

SCRATCH, OTHER = "scratch", "other"


def start_options(models_root=None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs: scratch, each bundled model, another project or package."""
    bundled = [(f"bundled {name} model" + (f" ({title})" if title else ""), name)
               for name, title in bundled_models(models_root).items()]
    return [("scratch", SCRATCH)] + bundled + [("another project or package", OTHER)]


def init_value(choice: str, path: str = "") -> str | None:
    """``train.init`` for a choice: None (scratch), a bundled model's name, or the typed path.

    Raises
    ------
    ValueError
        'another project or package' with no path typed.
    """
    if choice == SCRATCH:
        return None
    if choice == OTHER:
        if not path.strip():
            raise ValueError("Start from 'another project or package' needs its path: type a project folder, a "
                             "model file (.pt) or a package (.zip or rdf.yaml), or start from scratch.")
        return path.strip()
    return choice


def choice_for(init: str | None, options) -> tuple[str, str]:
    """The ``(choice, path)`` that shows a saved ``train.init`` among ``options``."""
    values = [value for _, value in options]
    if not init or init.strip().lower() in ("none", SCRATCH):
        return SCRATCH, ""
    if init in values:
        return init, ""
    return OTHER, init


class StartFrom:
    """The control pair: a drop-down of sources and a path box shown for 'another project or package'."""

    def __init__(self, models_root=None):
        self.options = start_options(models_root)
        self.choice = control(w.Dropdown, "init", "Start from", options=self.options, value=SCRATCH)
        self.path = control(w.Text, "init_path", "Path", value="",
                            placeholder="project folder, model .pt, or package .zip / rdf.yaml")
        self.box = w.VBox([self.choice, self.path])
        self.choice.observe(lambda _c: self._show_path(), names="value")
        self._show_path()

    @property
    def value(self) -> str | None:
        return init_value(self.choice.value, self.path.value)

    def show(self, init: str | None) -> None:
        """Show a saved ``train.init``."""
        self.choice.value, self.path.value = choice_for(init, self.options)

    def _show_path(self) -> None:
        self.path.layout.display = "" if self.choice.value == OTHER else "none"
