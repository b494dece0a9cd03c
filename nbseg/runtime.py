"""Device and numeric precision, chosen at run time from what the machine offers."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` takes CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is visible; use device 'auto' or 'cpu'.")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has AVX512-BF16 or AMX, on which bf16 convolutions run faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" avx512_bf16", " amx_bf16"))


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """Measured speed of a bf16 convolution step relative to fp32 on this CPU (about 0.3 s).

    The flags alone mislead: with AVX512-BF16 but no AMX, bf16 convolutions can run slower than fp32.
    """
    import time

    conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 32, 96, 96).to(memory_format=torch.channels_last).requires_grad_()

    def seconds(precision: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            with autocast(torch.device("cpu"), precision):
                conv(x).float().sum().backward()
            best = min(best, time.perf_counter() - start)
        return best

    seconds("bf16"), seconds("fp32")  # warm-up: first calls pick kernels
    return seconds("fp32") / seconds("bf16")


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """``"auto"``: fp16/bf16 AMP on CUDA; bf16 on CPUs where it measures at least 1.3x faster; else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16() and cpu_bf16_speedup() >= 1.3:
        return "bf16"
    return "fp32"


def memory_format(device: torch.device, spatial_dims: int):
    """channels_last runs CPU convolutions 1.3-1.5x faster here (oneDNN's native layout); 2D only."""
    if device.type in ("cpu", "cuda") and spatial_dims == 2:
        return torch.channels_last
    return torch.contiguous_format


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
