"""A 3D network warm-started from a 2D one: the first part of the time budget trains a 2D network over
the slices, whose kernels are then inflated to 3D (:func:`nbseg.train.init.inflate_state`)
for the rest.

Why: on two CPU cores a 3D U-Net from random weights sees few patches in minutes, and learns little from
them (Lucchi++, 10 minutes: IoU 0.46), while the 2D network over slices reaches 0.83 in five. A GPU is no
cure for small sets: on BBBC050's one 51-slice training stack a 3D network from scratch on an H200 fitted its
training part in a minute (67 epochs) and scored pooled Dice 0.11 on the unseen stack. The 3D network
that starts from it begins where the 2D one ended and learns from there what Z adds. nnU-Net trains its 2D
and 3D configurations apart; this chains them, as I3D's inflation does for video networks.

The 2D phase lives in its own project folder inside the project (``ProjectLayout.warm_start``), with the same
seed and so the same training/validation split: the 3D network never trains on what validates it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..project import ProjectLayout

WARM_SHARE = 0.5  # of the time budget, for the 2D phase (measured: 5 + 5 of 10 minutes on Lucchi++)
LR_FACTOR = 0.1  # of the 2D phase's lr, for the 3D network inflated from it (Lucchi++, session 8)


def plan_warm_start(plan, config):
    """``plan`` with ``warm_start`` (minutes of the 2D phase) set where it applies, and its reason.

    It applies to a 3D network trained from scratch on stacks under a time budget, with one fold, on a CPU
    or a GPU (``train.warm_start``: false turns it off).
    """
    given = config.train.warm_start
    if plan.model_dims != 3 or plan.init or given is False:
        return plan
    minutes, why_not = config.train.minutes, None
    if not minutes:
        why_not = "it needs a time budget (train.minutes, CLI --minutes) to share"
    elif config.train.folds > 1:
        why_not = "it is planned for one model, not a k-fold ensemble"
    if why_not:
        reasons = dict(plan.reasons, warm_start=f"none: {why_not}") if given else plan.reasons
        return replace(plan, reasons=reasons)
    first = round(minutes * WARM_SHARE, 2)
    reasons = dict(plan.reasons, warm_start=(
        f"the first {first:g} of {minutes:g} min train a 2D network over the slices; its kernels are then inflated "
        "to 3D for the rest (from scratch a 3D network learns little in minutes: docs/benchmarks.md). "
        "train.warm_start: false (CLI --no-warm-start) trains it from scratch"))
    reasons["lr"] = (f"{plan.lr:.1e} for the 2D phase, a tenth of it for the 3D one "
                     "(nbseg.train.warm_start)")
    norm = plan.norm
    if config.model.norm is None:  # the 3D network keeps the 2D one's layers and their learnt statistics
        norm, reasons["norm"] = "batch", "batch norm: the 2D network's, with the statistics it learnt"
    return replace(plan, warm_start=first, norm=norm, reasons=reasons)


def phase_configs(config, project, warm_minutes: float) -> tuple:
    """The configs of the 2D phase and of the 3D phase that starts from it."""
    train, patch = config.train, config.model.patch
    first = config.model_copy(update={  # a 3D patch set by hand: its planes, one slice at a time
        "model": config.model.model_copy(update={"dims": 2, "patch": [1, *patch[-2:]] if patch else None}),
        "train": train.model_copy(update={"minutes": warm_minutes, "warm_start": False})})
    second = config.model_copy(update={"train": train.model_copy(update={
        "minutes": round(train.minutes - warm_minutes, 2), "warm_start": False,
        "init": str(ProjectLayout(project).warm_start)})})
    return first, second


@dataclass(frozen=True)
class Phase:
    """One run that :func:`nbseg.train.trainer.fit` makes: its settings, its project folder, and how the plan
    it makes is adjusted (what only the chain knows: the 3D phase's lr)."""

    name: str
    config: object
    project: Path
    adjust_plan: Callable | None = None


def warm_start_phases(config, project, plan, *, resume: bool = False) -> list[Phase]:
    """The runs of a warm-started 3D network, in order: the 2D phase in ``ProjectLayout.warm_start``, then
    the 3D network from it in ``project``. A resumed run whose 3D phase has begun skips the 2D one."""
    layout = ProjectLayout(project)
    first, second = phase_configs(config, project, plan.warm_start)
    started_3d = resume and layout.checkpoint(0).exists() and layout.warm_start.is_dir()
    phases = [] if started_3d else [Phase("2D", first, layout.warm_start)]
    return phases + [Phase("3D", second, Path(project), functools.partial(phase_3d_plan, lr_2d=plan.lr))]


def phase_3d_plan(plan, *, lr_2d: float):
    """The 3D phase's ``plan`` (a fine-tuning plan from the 2D phase) at a tenth of the 2D phase's lr: it
    goes on from what that phase learnt, where a transfer from another model's weights takes a third."""
    reasons = dict(plan.reasons, lr=f"{lr_2d * LR_FACTOR:.1e}: a tenth of the 2D phase's {lr_2d:.1e}, as the 3D "
                   "network starts from what that phase learnt (nbseg.train.warm_start)")
    return replace(plan, lr=lr_2d * LR_FACTOR, reasons=reasons)


__all__ = ["LR_FACTOR", "Phase", "WARM_SHARE", "phase_3d_plan", "phase_configs", "plan_warm_start",
           "warm_start_phases"]
