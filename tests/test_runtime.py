"""Device and precision rules (nbseg.runtime) that do not need the hardware they describe."""
from __future__ import annotations

import torch

from nbseg.runtime import pick_precision


def test_auto_precision_asks_the_gpu_for_bf16_hardware(monkeypatch):
    """A T4 (Colab's free GPU) answers torch.cuda.is_bf16_supported() with True through emulation, but has
    no bf16 convolutions: it trains in fp16. Ampere and later train in bf16."""
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 says
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert pick_precision(cuda) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert pick_precision(cuda) == "bf16"
    assert pick_precision(cuda, "fp32") == "fp32"  # what the person set wins
