"""Project-folder helpers shared by the notebooks and their panels: quick (teaching) mode, the
sample choice, where things live in a project, and the UI log. Core: no widgets here."""
from __future__ import annotations

import datetime
import os
from pathlib import Path

QUICK_ENV = "NBSEG_QUICK"
SAMPLE_ENV = "NBSEG_SAMPLE"
PROJECT_ENV = "NBSEG_PROJECT"
AUTORUN_ENV = "NBSEG_AUTORUN"
UI_LOG = Path("logs") / "ui.log"

# Quick mode: tiny settings so 01 -> 06 on a bundled sample runs in a few minutes on 2 CPU cores.
QUICK = {
    2: {"size": "S", "patch": [64, 64], "epochs": 4, "steps_per_epoch": 12, "batch_size": 4},
    3: {"size": "S", "patch": [16, 48, 48], "epochs": 2, "steps_per_epoch": 4, "batch_size": 1},
}
QUICK_LR_STEPS = {2: 20, 3: 12}
MAX_PROPOSED_LR = 1e-2  # AdamW on a U-Net is rarely stable above this
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
    """``NBSEG_PROJECT`` or ``./projects/<sample>`` beside the notebooks."""
    given = os.environ.get(PROJECT_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    return Path("projects") / (sample or default_sample())


def quick_settings(dims: int) -> dict:
    """Model and training settings used in quick mode for 2D or 3D data."""
    if dims not in QUICK:
        raise ValueError(f"dims is {dims}; quick settings exist for 2 and 3.")
    return dict(QUICK[dims])


def apply_quick(config, dims: int):
    """A copy of ``config`` with the quick-mode model and training settings."""
    q = quick_settings(dims)
    config = config.model_copy(deep=True)
    config.model.size = q["size"]
    config.model.patch = list(q["patch"])
    config.train.epochs = q["epochs"]
    config.train.minutes = None
    config.train.steps_per_epoch = q["steps_per_epoch"]
    config.train.batch_size = q["batch_size"]
    return config


def project_layout(project) -> dict[str, Path]:
    """Where each step writes inside a project folder."""
    project = Path(project)
    return {
        "config": project / "config.yaml",
        "lr_finder": project / "lr_finder.json",
        "models": project / "models",
        "history": project / "history",
        "predictions": project / "predictions",
        "results": project / "results",
        "export": project / "export",
        "labels": project / "labels",
        "logs": project / "logs",
        "ui_log": project / UI_LOG,
    }


def append_log(project, text: str) -> Path:
    """Append ``text`` with a time stamp to ``project/logs/ui.log``; returns the log's path."""
    path = Path(project) / UI_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"----- {stamp}\n{text.rstrip()}\n")
    return path


def project_status(project) -> dict[str, bool]:
    """Which steps a project folder has done, read from disk (so a fresh kernel can pick up)."""
    lay = project_layout(project)
    return {
        "config": lay["config"].exists(),
        "lr_finder": lay["lr_finder"].exists(),
        "models": any(lay["models"].glob("fold*.pt")) if lay["models"].is_dir() else False,
        "predictions": any(lay["predictions"].iterdir()) if lay["predictions"].is_dir() else False,
        "export": any(lay["export"].iterdir()) if lay["export"].is_dir() else False,
    }


def needs_step(project, step: str) -> str:
    """A sentence naming the notebook to run first when ``step`` is missing, else ``""``."""
    hints = {
        "config": "No project settings yet: run notebook 01_data first and press 'Check data & save project'.",
        "models": "No trained model yet: run notebook 04_train first and press 'Train'.",
        "predictions": "No predictions yet: run notebook 05_predict first and press 'Predict'.",
    }
    return "" if project_status(project).get(step) else hints.get(step, f"Step {step!r} has not run yet.")


def propose_lr(suggestion: float, *, cap: float = MAX_PROPOSED_LR) -> tuple[float, str]:
    """The learning rate to propose from an LR-finder suggestion, and a note when it was capped.

    Short sweeps (quick mode, few images) can suggest rates where training diverges; above ``cap``
    the proposal is ``cap`` and the note says why.
    """
    if not suggestion > 0:
        return cap / 3, f"the sweep gave no usable suggestion ({suggestion!r}); proposing {cap / 3:.1e}"
    if suggestion > cap:
        return cap, (f"the suggestion {suggestion:.1e} is above {cap:.0e}, where U-Net training with AdamW rarely "
                     f"stays stable (a short sweep often overshoots); proposing {cap:.0e}")
    return float(f"{suggestion:.3g}"), ""
