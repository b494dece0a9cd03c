"""Training on several processes: ``torchrun --nproc_per_node N -m nbseg train ...``.

torchrun starts N copies of the command and tells each its place in the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``). Each copy holds a replica of the model; DistributedDataParallel
averages the gradients, so every replica takes the same optimiser step. Everything here is a
no-op in a plain single process, so :func:`~nbseg.train.trainer.fit` calls it unconditionally.

What keeps the copies in step (a copy that takes another branch waits forever in a collective):

- rank 0 decides what depends on a clock, on free memory or on the disk (the plan, the split, the
  time budget, the precision, validation) and sends its decision to the others (:func:`from_main`);
- each rank draws its own patches (:func:`shard_streams`): N different batches per step;
- only rank 0 writes files (:func:`is_main`); every rank reads the same checkpoint to resume.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os

import numpy as np
import torch
import torch.distributed as dist

from ..runtime import pick_device


def launched() -> bool:
    """True in a process that torchrun started as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def active() -> bool:
    """True while a process group of more than one process is open."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 in a single process; read from torchrun's environment before the group opens)."""
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True in the process that writes files and reports progress: rank 0, or the only process."""
    return rank() == 0


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_device(device: torch.device) -> torch.device:
    """``device`` as this process uses it: ``cuda`` becomes ``cuda:<LOCAL_RANK>``, one GPU per process."""
    if active() and device.type == "cuda":
        return torch.device("cuda", _local_rank())
    return device


@contextlib.contextmanager
def session(device_name: str = "auto"):
    """Open the process group for the duration of a training run, when torchrun started this process.

    gloo on the CPU, NCCL on CUDA with one GPU per process (``LOCAL_RANK``). Nothing happens in a
    single process or when a group is already open (the command line opens it before planning, so
    each process plans for its own GPU; fit() then finds it open).

    Yields
    ------
    str or None
        ``"distributed: N processes (backend)"`` when this call opened the group, else None.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield None
        return
    if not dist.is_available():
        raise RuntimeError("torchrun started several processes, but this PyTorch build has no torch.distributed; "
                           "run a single process (`nbseg train ...` without torchrun).")
    device = pick_device(device_name)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"training on several processes runs on the CPU or on CUDA GPUs, not on {device.type!r}; "
                         "pass --device cpu (or train in one process).")
    if device.type == "cuda":
        if _local_rank() >= torch.cuda.device_count():
            raise ValueError(f"process {_local_rank()} of this machine needs GPU {_local_rank()}, but "
                             f"{torch.cuda.device_count()} GPU(s) are visible: start at most that many processes "
                             "(torchrun --nproc_per_node).")
        torch.cuda.set_device(_local_rank())
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    try:
        yield f"distributed: {dist.get_world_size()} processes ({backend})"
        # all leave together: a rank closing its group while another still talks aborts ("terminate called")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def in_session(fit):
    """Run ``fit(config, ...)`` inside :func:`session` (``config.train.device`` picks the backend)."""
    @functools.wraps(fit)
    def wrapper(config, *args, **kwargs):
        with session(config.train.device):
            return fit(config, *args, **kwargs)
    return wrapper


# ---------------------------------------------------------------- decisions made once

def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def from_main(value):
    """Rank 0's ``value`` on every rank (``value`` itself in a single process).

    Numbers travel as one small tensor (cheap enough for every training step); anything else
    picklable (a plan, a tuple) as an object.
    """
    if not active():
        return value
    if isinstance(value, (bool, int, float)):  # every rank passes its own number of the same kind
        box = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
        dist.broadcast(box, src=0)
        return type(value)(box.item())
    return _broadcast_object(value)


def average(value: float) -> float:
    """The mean of ``value`` over all ranks (``value`` itself in a single process)."""
    if not active():
        return value
    box = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(box, op=dist.ReduceOp.SUM)
    return box.item() / dist.get_world_size()


def _broadcast_object(value):
    box = [value]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def run_on_main(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` computed by rank 0 alone; every rank gets its result (the others wait for it)."""
    if not active():
        return fn(*args, **kwargs)
    # as an object whatever it is: the other ranks, which have no value, must take the same path
    return _broadcast_object(fn(*args, **kwargs) if is_main() else None)


# ---------------------------------------------------------------- the model and its data

def shard_streams(rng: np.random.Generator, generator: torch.Generator) -> None:
    """Give this rank random streams of its own, in place: its patches and augmentations differ from
    every other rank's.

    Rank 0 keeps the streams as they are (so its draws, and a checkpoint's saved state, are the
    single-process ones); rank r jumps the numpy stream r * 2**127 draws ahead (PCG64 streams that never
    overlap) and seeds the torch generator from it. Called after seeding and after restoring a
    checkpoint, which holds rank 0's state.
    """
    r = rank()
    if r == 0:
        return
    rng.bit_generator.state = rng.bit_generator.jumped(r).state
    generator.manual_seed(int(rng.integers(2**62)))


def sync_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Batch norm over the batches of all GPUs (SyncBatchNorm) when training on several CUDA processes.

    SyncBatchNorm refuses CPU tensors (it needs CUDA), so on the CPU each process normalises by its own
    batch, as plain DDP does, and :func:`agree_on_weights` averages the running statistics each epoch.
    """
    if active() and next(model.parameters()).device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the processes), or as it is."""
    if not active():
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # running statistics are averaged once an epoch (agree_on_weights), not sent from rank 0 every step;
    # newer PyTorch names the switch forward_sync_buffers (and deprecates broadcast_buffers)
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    buffers = {"forward_sync_buffers" if newer else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, **buffers)


def _unsynced_norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            and not isinstance(m, torch.nn.SyncBatchNorm)]


def checksum(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``model`` (bit for bit, layout-independent)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def agree_on_weights(model: torch.nn.Module) -> None:
    """End of an epoch: average the running statistics of batch norms that are not synchronised, then
    check that every rank holds the very same weights.

    The running mean of each process is a moving average of its own batches' means, so their average is
    the moving average of the mean over all processes (the variance: the average within-process one).

    Raises
    ------
    RuntimeError
        When the replicas differ: training has gone out of step (a bug), and the model would depend on
        which process saved it.
    """
    if not active():
        return
    for norm in _unsynced_norms(model):
        for stat in (norm.running_mean, norm.running_var):
            if stat is not None:
                dist.all_reduce(stat, op=dist.ReduceOp.SUM)
                stat /= dist.get_world_size()
    sums = [None] * dist.get_world_size()
    dist.all_gather_object(sums, checksum(model))
    if len(set(sums)) > 1:
        differ = [r for r, s in enumerate(sums) if s != sums[0]]
        raise RuntimeError(f"the model replicas went out of step: ranks {differ} hold other weights than rank 0. "
                           "This is a bug in distributed training; train in one process meanwhile.")


__all__ = ["active", "agree_on_weights", "average", "checksum", "from_main", "in_session", "is_main", "launched",
           "local_device", "rank", "run_on_main", "session", "shard_streams", "sync_batchnorm", "world_size",
           "wrap"]
