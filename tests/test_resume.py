"""A run killed with SIGKILL and resumed repeats the uninterrupted run of the same seed, epoch for epoch.

Equal training losses after the restart can only come from restored weights, optimiser moments, learning
rate schedule and random streams (patches, augmentation): a run that restarted any of them from scratch
gives other numbers. The runs are CLI processes on one thread, so a CPU run repeats exactly.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from nbseg.config import Config
from nbseg.model.history import read_history

from test_train import crops

pytestmark = pytest.mark.slow  # three training runs in processes of their own

EPOCHS = 4
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _args(config, project) -> list:
    return [sys.executable, "-m", "nbseg", "train", "--config", str(config), "--project", str(project)]


def _train(args) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _kill_when(args, ready, *, timeout: float = 300.0) -> str:
    """Start ``args``, SIGKILL it as soon as ``ready(line)`` holds for a line it prints; return what it printed."""
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None or ready(line):
                break
            seen.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up runs: what is on disk is all a resume gets
        proc.wait()
    return "".join(seen)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Settings, and the history of the uninterrupted run (seed 0, fp32, CPU)."""
    tmp = tmp_path_factory.mktemp("resume")
    root = crops(tmp, 2)
    config = Config(data={"images": root / "images", "masks": root / "masks", "val_fraction": 0.3},
                    model={"size": "S", "patch": [64, 64]},
                    train=dict(epochs=EPOCHS, steps_per_epoch=4, batch_size=4, seed=0, precision="fp32",
                               lr=3e-3, device="cpu", val_tiles=4)).save(tmp / "settings.yaml")
    _train(_args(config, tmp / "whole"))
    return config, read_history(tmp / "whole" / "history" / "fold0.csv")


def _rows(history) -> list:
    return [(h["epoch"], h["train_loss"], h["val_loss"], h["val_dice"], h["lr"]) for h in history]


def test_killed_mid_run_resumes_as_if_never_stopped(reference, tmp_path):
    config, whole = reference
    args = _args(config, tmp_path / "killed")
    printed = _kill_when(args, lambda line: line.startswith("epoch   2"))  # 2 epochs written, the third starts
    before = read_history(tmp_path / "killed" / "history" / "fold0.csv")
    assert 2 <= len(before) < EPOCHS, "the run must be killed mid-training:\n" + printed
    done = _train(args + ["--resume"])
    assert f"resuming at epoch {len(before) + 1}" in done.stdout, done.stdout
    after = read_history(tmp_path / "killed" / "history" / "fold0.csv")
    assert after[:len(before)] == before  # the rows written before the kill are kept as they were
    # every resumed epoch is the uninterrupted run's: same weights, optimiser, schedule and patches
    assert _rows(after) == _rows(whole)
    # ... which is far from a fresh start: the first resumed epoch's loss is well below the first epoch's
    assert after[len(before)]["train_loss"] < whole[0]["train_loss"] - 0.1, (after, whole)


def test_killed_before_the_first_epoch_ends_starts_cleanly(reference, tmp_path):
    config, whole = reference
    args = _args(config, tmp_path / "early")
    printed = _kill_when(args, lambda line: line.startswith("fold 1/1"))  # training began, no epoch has ended
    assert not (tmp_path / "early" / "history" / "fold0.csv").exists(), "killed too late:\n" + printed
    done = _train(args + ["--resume"])
    assert "no checkpoint" in done.stdout and "from epoch 1" in done.stdout, done.stdout
    assert _rows(read_history(tmp_path / "early" / "history" / "fold0.csv")) == _rows(whole)
