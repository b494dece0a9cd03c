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
    """True where the CPU has AMX (``amx_bf16``), on which bf16 convolutions run faster than fp32.

    AVX512-BF16 alone is not enough: on such a CPU a bf16 training run here did 2 epochs in 10 minutes
    where fp32 did 92. A timing test at start-up decided this before, and a busy machine fooled it;
    the flag does not depend on the load.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags


def cuda_has_native_bf16(device=None) -> bool:
    """Whether the GPU computes in bf16 itself: NVIDIA from compute capability 8.0 (Ampere) on, or ROCm.

    ``torch.cuda.is_bf16_supported()`` answers True on a T4 too (Colab's free GPU, capability 7.5): it
    checks that a bf16 tensor can be made, which emulation allows, while cuDNN has no bf16 convolutions
    there. So the capability is asked instead.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """``"auto"``: bf16 AMP on GPUs that have it (else fp16 AMP); bf16 on CPUs with AMX; else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if cuda_has_native_bf16(device) else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
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


def free_memory(device: str) -> int:
    """Free memory of ``device`` in bytes: the GPU's (torch) or the machine's RAM (psutil)."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional: assume a laptop's few GiB
        return 4 * 2**30


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the device ran out of memory: a GPU's ``torch.OutOfMemoryError``, the CPU
    allocator's "can't allocate memory", or a ``MemoryError`` (a smaller batch may then fit)."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached_memory() -> None:
    """Give the GPU memory the caching allocator holds back, so a retry after running out starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory_name(err: BaseException) -> str:
    """Which memory ``err`` ran out of, for messages: a CPU allocator failure is not the GPU's."""
    text = str(err)
    return "GPU memory" if "CUDA" in text or "HIP" in text or "MPS" in text else "memory (RAM)"


def retry_smaller(run, settings, smaller, *, report, give_up):
    """``run(settings)``, again with ``smaller(settings)`` after each out-of-memory error, until it fits:
    the one out-of-memory retry of training and prediction (the memory free is known only by trying).

    Parameters
    ----------
    run : callable(settings) -> result
    settings : object
        The first try's settings (a batch size; a batch size and tile).
    smaller : callable(settings) -> settings or None
        The next try's settings; None when nothing is left to make smaller.
    report : callable(str, settings, settings)
        Told each retry: the memory's name (:func:`memory_name`), the settings that failed and the next.
    give_up : callable(settings, str, BaseException) -> Exception
        The error to raise when ``smaller`` gives None: given the last settings, the memory's name
        (:func:`memory_name`) and the error.

    Returns
    -------
    (result, settings)
        ``run``'s result and the settings that fitted.
    """
    while True:
        try:
            return run(settings), settings
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):  # a GPU's, or the CPU allocator's "can't allocate memory"
                raise
            next_settings, memory = smaller(settings), memory_name(err)
            if next_settings is None:
                raise give_up(settings, memory, err) from err
        # out of the except block: the failed try's tensors, held by the traceback, are gone by now
        release_cached_memory()
        report(memory, settings, next_settings)
        settings = next_settings
