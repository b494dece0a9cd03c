"""Quick (teaching) mode and the notebooks' defaults: tiny settings so 01 -> 07 on a bundled sample
runs in a few minutes on 2 CPU cores, the sample and project folder the notebooks open, and which
notebook to run first when a step is missing. No widgets here."""
from __future__ import annotations

import os
from pathlib import Path

from ..config import update_config
from ..project import ProjectLayout

QUICK_ENV = "NBSEG_QUICK"
SAMPLE_ENV = "NBSEG_SAMPLE"
PROJECT_ENV = "NBSEG_PROJECT"
AUTORUN_ENV = "NBSEG_AUTORUN"

QUICK = {
    2: {"size": "S", "patch": [64, 64], "epochs": 4, "steps_per_epoch": 12, "batch_size": 4},
    3: {"size": "S", "patch": [16, 48, 48], "epochs": 2, "steps_per_epoch": 4, "batch_size": 1},
}
QUICK_LR_STEPS = {2: 20, 3: 12}
QUICK_PREDICT_IMAGES = 4  # images predicted in quick mode
QUICK_TTA = {2: "flips", 3: "none"}  # 3D TTA multiplies the slowest step by 4


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def quick_mode() -> bool:
    """True when ``NBSEG_QUICK=1``: epochs, steps and data shrink for a teaching run."""
    return _flag(QUICK_ENV)


def autorun() -> bool:
    """Whether the notebooks press their own buttons (``NBSEG_AUTORUN``; on by default in quick mode)."""
    return _flag(AUTORUN_ENV, default=quick_mode())


def default_sample() -> str:
    """The bundled sample the notebooks use: ``NBSEG_SAMPLE`` or ``"nuclei2d"``."""
    return os.environ.get(SAMPLE_ENV, "").strip() or "nuclei2d"


def default_project(sample: str | None = None) -> Path:
    """``NBSEG_PROJECT``; inside Colab the project notebook 01 kept on Google Drive (Drive is mounted
    to look); else ``./projects/<sample>`` beside the notebooks."""
    from ..colab import remembered_project

    given = os.environ.get(PROJECT_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    return remembered_project() or Path("projects") / (sample or default_sample())


def quick_settings(dims: int) -> dict:
    """Model and training settings used in quick mode for 2D or 3D data."""
    if dims not in QUICK:
        raise ValueError(f"dims is {dims}; quick settings exist for 2 and 3.")
    return dict(QUICK[dims])


def apply_quick(config, dims: int):
    """A copy of ``config`` with the quick-mode model and training settings."""
    q = quick_settings(dims)
    return update_config(config, {"model": {"size": q["size"], "patch": list(q["patch"])},
                                  "train": {"epochs": q["epochs"], "minutes": None,
                                            "steps_per_epoch": q["steps_per_epoch"], "batch_size": q["batch_size"]}})


def needs_step(project, step: str) -> str:
    """A sentence naming the notebook to run first when ``step`` is missing, else ``""``."""
    hints = {
        "config": "No project settings yet: run notebook 01_data first and press 'Check data & save project'.",
        "models": "No trained model yet: run notebook 05_train first and press 'Train'.",
        "predictions": "No predictions yet: run notebook 06_predict first and press 'Predict'.",
    }
    return "" if ProjectLayout(project).status().get(step) else hints.get(step, f"Step {step!r} has not run yet.")
