"""Out of memory in a training step: the batch halves with a message and training goes on; at one patch,
a clean error names the settings to change.

The device is a real model on the CPU behind a memory budget: the real loss raises the error torch raises
on a GPU (torch.OutOfMemoryError) when a batch larger than the budget arrives, as in
tests/test_predict_memory.py. Everything else (model, sampler, optimiser, checkpoints) is the real one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nbseg.train.step as step_module
from nbseg.cli.main import main
from nbseg.runtime import is_out_of_memory
from nbseg.train.callbacks import Callback
from nbseg.train.oom import TrainingMemoryError
from nbseg.train.trainer import fit

from test_train import crops, quick_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _budget(monkeypatch, largest_batch: int) -> list:
    """Steps on batches above ``largest_batch`` run out of memory; returns the batch sizes that ran."""
    real, ran = step_module.dice_ce_loss, []

    def loss(logits, target, **kwargs):
        if logits.shape[0] > largest_batch:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {logits.numel() * 4} bytes")
        ran.append(logits.shape[0])
        return real(logits, target, **kwargs)

    monkeypatch.setattr(step_module, "dice_ce_loss", loss)
    return ran


def test_out_of_memory_is_recognised_from_real_errors():
    with pytest.raises(RuntimeError) as cpu:
        torch.empty(2**62, dtype=torch.uint8)  # the CPU allocator's own error, not made up here
    assert is_out_of_memory(cpu.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 2x2)"))
    assert not is_out_of_memory(ValueError("out of memory"))  # our own errors are not retried


def test_out_of_memory_halves_the_batch_says_so_and_trains_on(tmp_path, monkeypatch):
    ran = _budget(monkeypatch, largest_batch=2)
    warnings = []

    class Watch(Callback):
        def on_epoch_end(self, event):
            warnings.append(event.warning)

    cfg = quick_config(crops(tmp_path, 2), 2, epochs=2, steps_per_epoch=3, batch_size=8, val_tiles=2)
    result = fit(cfg, tmp_path / "p", callbacks=[Watch()])
    assert "out of memory at batch 8: continuing with batch 4" in warnings[0], warnings
    assert "out of memory at batch 4: continuing with batch 2" in warnings[0], warnings
    assert "out of memory" not in warnings[1]  # said once: the smaller batch is kept
    assert ran == [2] * 6  # every step trained, each on the batch that fits
    history = result.histories[0]
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    assert result.model_paths[0].exists()


def test_out_of_memory_at_one_patch_is_a_clean_error_naming_the_settings(tmp_path, monkeypatch, capsys):
    ran = _budget(monkeypatch, largest_batch=0)
    root = crops(tmp_path, 2)
    cfg = quick_config(root, 2, epochs=1, steps_per_epoch=1, batch_size=2, val_tiles=2)
    with pytest.raises(TrainingMemoryError, match=r"one patch of \[64, 64\] \(batch 1\)"):
        fit(cfg, tmp_path / "p")
    assert ran == []
    code = main(["train", "--images", str(root / "images"), "--masks", str(root / "masks"), "--project",
                 str(tmp_path / "cli"), "--epochs", "1", "--steps-per-epoch", "1", "--patch", "64,64",
                 "--batch-size", "2", "--size", "S", "--precision", "fp32", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "nbseg train: error: Out of memory" in err and "--patch" in err and "--batch-size" in err, err
