"""On a CUDA GPU: training learns in the GPU's mixed precision (2D and 3D), the plan sizes the batch from
the GPU's free memory, and predictions agree with the CPU's. Skipped where no GPU is visible (CI has
none); run on a GPU machine with ``pytest tests/test_cuda.py``."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from nbseg.data import sample
from nbseg.model.bundled import bundled_model_file
from nbseg.model.unet import load_model_file
from nbseg.predict.image import predict_image
from nbseg.runtime import pick_precision
from nbseg.train.plan import make_plan
from nbseg.train.trainer import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible: these checks run on a GPU machine")


@pytest.mark.parametrize("dims, precision", [(2, "auto"), (3, "auto"), (2, "fp16")])
def test_training_on_the_gpu_learns_in_mixed_precision(tmp_path, dims, precision):
    """Precision "auto" is bf16 where the GPU has it; fp16 (a T4's, with its GradScaler) runs on any GPU."""
    from test_train import crops, quick_config

    config = quick_config(crops(tmp_path, dims), dims, device="cuda", precision=precision, epochs=6)
    result = fit(config, tmp_path / "project")
    history = result.histories[0]
    assert all(np.isfinite(h["train_loss"]) for h in history), history
    assert history[-1]["train_loss"] < 0.85 * history[0]["train_loss"], history
    native_bf16 = torch.cuda.get_device_capability()[0] >= 8 or bool(torch.version.hip)
    assert pick_precision(torch.device("cuda"), "auto") == ("bf16" if native_bf16 else "fp16")
    model, _ = load_model_file(result.model_paths[0])  # saved for any device: it loads on the CPU
    assert next(model.parameters()).device.type == "cpu"


def test_the_plan_gives_a_gpu_a_larger_batch():
    from test_plan import config, dataset
    from nbseg.data.fingerprint import fingerprint

    fp = fingerprint(dataset([(256, 256)] * 2))
    cpu, gpu = make_plan(config(2), fp, device="cpu"), make_plan(config(2), fp, device="cuda")
    assert gpu.batch_size > cpu.batch_size and "GPU" in gpu.reasons["batch"], (cpu, gpu)


def _foreground(prediction) -> np.ndarray:
    return np.asarray(prediction.foreground, np.float32)


def test_gpu_predictions_agree_with_the_cpu():
    """The bundled nuclei model on a real image: fp32 on the GPU matches the CPU to rounding; the GPU's
    mixed precision gives the same mask (Dice >= 0.99)."""
    image = tifffile.imread(sorted(sample("nuclei2d")["images"].glob("*.tif"))[0])
    model = bundled_model_file("nuclei")
    cpu = _foreground(predict_image(model, image, tta="flips", device="cpu", precision="fp32", dtype=np.float32))
    gpu32 = _foreground(predict_image(model, image, tta="flips", device="cuda", precision="fp32", dtype=np.float32))
    gpu = _foreground(predict_image(model, image, tta="flips", device="cuda", precision="auto", dtype=np.float32))
    assert np.abs(cpu - gpu32).max() < 2e-3
    a, b = cpu > 0.5, gpu > 0.5
    assert a.sum() > 100 and 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99
