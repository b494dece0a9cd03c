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

# Quick mode trains what `nbseg train` would plan (network, patch, batch, epoch length: nbseg.train.plan)
# for a fixed time, the same for 2D and 3D. The rule: the teaching run 01 -> 07 must end within 5 minutes
# on 2 CPU cores. Besides training the run took about 1 minute (both samples, 2 shared cores), and training
# ends up to half a minute past its budget (the epoch's validation); 2 minutes leaves the rest as margin
# for a slower machine. On a CPU the plan segments the anisotropic 3D sample slice by slice with a 2D
# network, which learns more per CPU minute (docs/benchmarks.md); 8 steps of a 3D network learnt nothing.
QUICK_MINUTES = 2.0
QUICK_MINUTES_ENV = "NBSEG_QUICK_MINUTES"  # tests of the mechanics (not of the quality) train for less


def quick_minutes() -> float:
    """The teaching run's training budget: :data:`QUICK_MINUTES`, or ``NBSEG_QUICK_MINUTES`` when set (02_correct's
    retraining takes a tenth of it: ``nbseg.ui.correct_service.quick_retrain_minutes``)."""
    given = os.environ.get(QUICK_MINUTES_ENV, "").strip()
    return float(given) if given else QUICK_MINUTES
QUICK_SIZE = "S"  # the model size the plan's rules were measured with on CPUs
QUICK_LR_STEPS = {2: 20, 3: 12}
QUICK_PREDICT_IMAGES = 4  # images predicted in quick mode
QUICK_TTA = {2: "flips", 3: "none"}  # 3D TTA multiplies the slowest step by 4


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def quick_mode() -> bool:
    """True when ``NBSEG_QUICK=1``: a teaching run (training for :data:`QUICK_MINUTES`, fewer images predicted)."""
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
    """Model and training settings used in quick mode for 2D or 3D data: the model size and a time
    budget; everything else is planned from the data (``None``)."""
    if dims not in (2, 3):
        raise ValueError(f"dims is {dims}; quick settings exist for 2 and 3.")
    return {"size": QUICK_SIZE, "patch": None, "epochs": None, "minutes": quick_minutes(), "steps_per_epoch": None,
            "batch_size": None}


def apply_quick(config, dims: int):
    """A copy of ``config`` with the quick-mode settings: model size S, :data:`QUICK_MINUTES` of
    training, and the plan's own patch, batch and epoch length."""
    q = quick_settings(dims)
    return update_config(config, {"model": {"size": q["size"], "patch": q["patch"]},
                                  "train": {key: q[key] for key in ("epochs", "minutes", "steps_per_epoch",
                                                                    "batch_size")}})


def needs_step(project, step: str) -> str:
    """A sentence naming the notebook to run first when ``step`` is missing, else ``""``."""
    hints = {
        "config": "No project settings yet: run notebook 01_data first and press 'Check data & save project'.",
        "models": "No trained model yet: run notebook 05_train first and press 'Train'.",
        "predictions": "No predictions yet: run notebook 06_predict first and press 'Predict'.",
    }
    return "" if ProjectLayout(project).status().get(step) else hints.get(step, f"Step {step!r} has not run yet.")
