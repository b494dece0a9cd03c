"""Learning-rate finder: an exponential sweep, a stop rule, a suggestion, and a result object.
Plotting lives outside the core (``LRFinderResult.plot`` imports matplotlib only when called)."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..project import ProjectLayout, write_json
from ..runtime import memory_format
from .step import TrainStep

MAX_PROPOSED_LR = 1e-2  # AdamW on a U-Net is rarely stable above this


@dataclass
class LRFinderResult:
    """The sweep: learning rates, raw and smoothed losses, the suggestion and why the sweep ended."""

    lrs: list
    losses: list
    smoothed: list
    suggestion: float
    stop_reason: str

    @property
    def proposal(self) -> float:
        """The learning rate to train with: the suggestion, capped (see :func:`propose_lr`)."""
        return propose_lr(self.suggestion)[0]

    @property
    def proposal_note(self) -> str:
        """Why the proposal differs from the suggestion ("" when it does not)."""
        return propose_lr(self.suggestion)[1]

    def save(self, path) -> Path:
        path = Path(path)
        path = ProjectLayout(path).lr_finder if path.is_dir() else path
        return write_json(path, asdict(self))

    @classmethod
    def load(cls, path) -> "LRFinderResult":
        path = Path(path)
        path = ProjectLayout(path).lr_finder if path.is_dir() else path
        return cls(**json.loads(path.read_text()))

    def plot(self, ax=None):
        """Loss vs learning rate (log axis) with the suggestion marked; returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.plot(self.lrs, self.smoothed, label="loss (smoothed)")
        ax.axvline(self.suggestion, color="tab:red", linestyle="--", label=f"suggestion {self.suggestion:.1e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.legend()
        return ax


def exponential_lrs(start: float, end: float, num: int) -> np.ndarray:
    if not 0 < start < end:
        raise ValueError(f"The sweep needs 0 < start < end; got start={start}, end={end}.")
    return np.geomspace(start, end, num)


def should_stop(smoothed_loss: float, best_loss: float, *, diverge: float = 4.0) -> bool:
    """Stop rule: the smoothed loss is not finite, or exceeds ``diverge`` times the best so far."""
    return not math.isfinite(smoothed_loss) or smoothed_loss > diverge * best_loss


def suggest_lr(lrs, smoothed) -> float:
    """The learning rate where the smoothed loss falls fastest (steepest negative slope in log lr),
    searched before the minimum; one tenth of the minimum's lr if the curve is too short."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    if len(lrs) < 5:
        return float(lrs[int(np.argmin(smoothed))] / 10)
    end = max(int(np.argmin(smoothed)), 3)
    slopes = np.gradient(smoothed[:end + 1], np.log(lrs[:end + 1]))
    return float(lrs[int(np.argmin(slopes))])


def propose_lr(suggestion: float, *, cap: float = MAX_PROPOSED_LR) -> tuple[float, str]:
    """The learning rate to propose from a sweep's suggestion, and a note when it was changed.

    Short sweeps (quick mode, few images) can suggest rates where training diverges; above ``cap``
    the proposal is ``cap`` and the note says why. The CLI and notebook 04 both propose this.
    """
    if not suggestion > 0:
        return cap / 3, f"the sweep gave no usable suggestion ({suggestion!r}); proposing {cap / 3:.1e}"
    if suggestion > cap:
        return cap, (f"the suggestion {suggestion:.1e} is above {cap:.0e}, where U-Net training with AdamW rarely "
                     f"stays stable (a short sweep often overshoots); proposing {cap:.0e}")
    return float(f"{suggestion:.3g}"), ""


def rate_in_use(train, *, override: str) -> str:
    """Which peak learning rate training will use with the ``train`` settings, and why, in one sentence.

    The one wording for `nbseg lr-find` and notebook 04: training from scratch runs at ``train.lr``;
    fine-tuning (``train.init``) at :func:`nbseg.train.init.fine_tune_lr`'s rate, its own rule unless the
    rate was set for it on purpose.

    Parameters
    ----------
    train : nbseg.config.TrainConfig
        The settings as training will read them (``lr``, ``lr_for_fine_tuning``, ``init``).
    override : str
        What the user does to fine-tune at ``train.lr`` instead, e.g. "give --lr 1.0e-02 with --init".
    """
    from .init import fine_tune_lr, init_source

    tuned, _ = fine_tune_lr(train)
    if init_source(train.init) is not None:
        head = f"this project fine-tunes from {train.init} (train.init), at {tuned:.2e}"
    else:
        head = f"training from scratch uses {train.lr:.2e}; fine-tuning (train.init) would use {tuned:.2e}"
    if tuned == train.lr:
        return head + " (train.lr, set for fine-tuning too)"
    why = ", its own rule: a third of the default, as weights that already segment need smaller steps"
    return head + why + ("" if train.lr == TrainConfig.model_fields["lr"].default else f"; to use "
                         f"{train.lr:.2e} there, {override}")


def lr_sweep(model, next_batch, *, start_lr: float = 1e-6, end_lr: float = 1.0, num_steps: int = 100,
             beta: float = 0.9, diverge: float = 4.0, weight_decay: float = 1e-4, augment: bool = True,
             device=None, precision: str = "fp32", layout=None, generator=None, step=None,
             progress=None) -> LRFinderResult:
    """Train ``model`` briefly with an exponentially rising learning rate; restore its weights afterwards.

    Each step is fit()'s own :class:`~nbseg.train.step.TrainStep` (augmentation, precision, memory layout).

    Parameters
    ----------
    model : torch.nn.Module
    next_batch : callable() -> (x, y) numpy arrays
    start_lr, end_lr : float
    num_steps : int
    beta : float
        Exponential smoothing of the loss (bias-corrected).
    diverge : float
        Stop once the smoothed loss exceeds this many times its best.
    augment : bool
        Augment each batch, as training does when ``train.augment`` is on.
    step : TrainStep, optional
        Training's own step for ``model`` (:func:`nbseg.train.setup.set_up_training`'s: class weights,
        augmentation, precision); when given, ``weight_decay``, ``augment``, ``device``, ``precision``,
        ``layout`` and ``generator`` are its.
    progress : callable(step, num_steps, lr, loss), optional
    """
    device = device or next(model.parameters()).device
    saved = copy.deepcopy(model.state_dict())
    if step is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=start_lr, weight_decay=weight_decay)
        step = TrainStep(model, optimizer, device=device, precision=precision, augment=augment,
                         layout=layout or memory_format(device, model.spec["spatial_dims"]),
                         generator=generator or torch.Generator().manual_seed(0))
    lrs, losses, smoothed, average, best, reason = [], [], [], 0.0, math.inf, "end of sweep"
    model.train()
    try:
        for i, lr in enumerate(exponential_lrs(start_lr, end_lr, num_steps)):
            step.set_lr(lr)
            value = step(*next_batch())
            average = beta * average + (1 - beta) * value
            current = average / (1 - beta ** (i + 1))
            lrs.append(float(lr)), losses.append(value), smoothed.append(current)
            best = min(best, current)
            if progress:
                progress(i, num_steps, float(lr), current)
            if i > 0 and should_stop(current, best, diverge=diverge):
                reason = f"loss exceeded {diverge:g}x its best"
                break
    finally:
        model.load_state_dict(saved)  # the sweep only looks; the model leaves as it came
    return LRFinderResult(lrs, losses, smoothed, suggest_lr(lrs, smoothed), reason)


def find_lr(config, project=None, *, num_steps: int = 100, dataset=None, progress=None) -> LRFinderResult:
    """Run the sweep for a project's data and model settings; save the result in ``project``.

    The sweep trains what fit() trains (:func:`nbseg.train.setup.set_up_training`): the planned network
    from the ``train.init`` weights when fine-tuning, the class weights and class-balanced patches of a
    multi-class set, and the augmentation, at the plan's working scale.
    """
    from ..data import load_dataset
    from ..runtime import pick_device, pick_precision
    from ..data.resample import rescale_dataset
    from .plan import plan_training
    from .setup import set_up_training

    dataset = dataset or load_dataset(config.data)
    device = pick_device(config.train.device)
    plan, _ = plan_training(config, dataset, device=device)
    dataset = rescale_dataset(dataset, plan.scale, plan.spacing)  # swept at the scale fit() trains at
    setup = set_up_training(config, dataset, plan, dataset.samples, device=device,
                            precision=pick_precision(device, config.train.precision), seed=config.train.seed)
    result = lr_sweep(setup.model, lambda: setup.sampler.batch(plan.batch_size), num_steps=num_steps,
                      step=setup.step, progress=progress)
    if project is not None:
        Path(project).mkdir(parents=True, exist_ok=True)
        result.save(Path(project))
    return result
