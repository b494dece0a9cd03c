"""Learning-rate schedules driven by training progress, which is steps done or time spent,
whichever is further along — so a time budget gets a complete schedule too."""
from __future__ import annotations

import math


class ProgressSchedule:
    """One-cycle (warm-up then cosine decay) or plain cosine decay from ``max_lr``.

    Parameters
    ----------
    kind : {"onecycle", "cosine"}
    max_lr : float
    total_steps : int or None
        None under a pure time budget.
    minutes : float or None
    """

    def __init__(self, kind: str, max_lr: float, *, total_steps=None, minutes=None, warmup: float = 0.1,
                 final_ratio: float = 0.01):
        self.kind, self.max_lr = kind, max_lr
        self.total_steps, self.minutes = total_steps, minutes
        self.warmup, self.final_ratio = warmup, final_ratio
        self.step_count = 0

    def progress(self, elapsed_seconds: float) -> float:
        done = []
        if self.total_steps:
            done.append(self.step_count / self.total_steps)
        if self.minutes:
            done.append(elapsed_seconds / (60 * self.minutes))
        return min(max(done or [0.0]), 1.0)

    def lr(self, elapsed_seconds: float) -> float:
        t = self.progress(elapsed_seconds)
        low = self.max_lr * self.final_ratio
        if self.kind == "onecycle" and t < self.warmup:
            return low + (self.max_lr - low) * t / self.warmup
        start = self.warmup if self.kind == "onecycle" else 0.0
        t = (t - start) / (1 - start)
        return low + (self.max_lr - low) * 0.5 * (1 + math.cos(math.pi * t))

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
