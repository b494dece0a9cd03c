"""Training state on disk: written atomically every epoch so a killed run resumes, losing at most one epoch."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import __version__
from ..data.targets import CLASS_NAMES
from ..project import atomic_write

def _atomic_save(obj, path: Path) -> None:
    with atomic_write(path, fsync=True) as tmp:  # on disk before the rename: a crash leaves the old or the new
        torch.save(obj, tmp)


def model_meta(config, dataset, *, patch, fold: int, epoch: int, val_dice: float, plan, intensity,
               images: dict | None = None) -> dict:
    """What a model file keeps beside its weights: enough to predict with it, fine-tune it and trace it, and
    ``images``: the names it was trained on (``train``), validated with (``val``) and the test images held back
    (``test``), so that scoring can say when scores are inflated (:mod:`nbseg.predict.seen`)."""
    return {
        "percentiles": list(config.data.percentiles), "kind": dataset.kind, "n_classes": dataset.n_classes,
        "class_names": CLASS_NAMES.get(dataset.kind, [f"class {i}" for i in range(dataset.n_classes)]),
        "in_channels": dataset.in_channels, "spatial_dims": dataset.spatial_dims, "patch": list(patch),
        "axes": config.data.axes, "channels": config.data.channels, "fold": fold, "epoch": epoch,
        "val_dice": float(val_dice), "nbseg_version": __version__, "plan": plan.to_dict(),
        "intensity": intensity,  # objects brighter or darker than background: fine-tuning checks it
        "images": images or {},
    }


def save_training_state(path, *, model, optimizer, schedule, rng, generator, epoch: int, best_dice: float,
                        best_epoch: int, elapsed: float, history: list) -> None:
    _atomic_save({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "numpy_rng": _jsonable(rng.bit_generator.state),
        "torch_generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "best_dice": best_dice,
        "best_epoch": best_epoch,
        "elapsed": elapsed,
        "history": history,
    }, Path(path))


def load_training_state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_rng(rng, state: dict) -> None:
    rng.bit_generator.state = _from_jsonable(state)


def _jsonable(state: dict) -> dict:
    # numpy's PCG64 state holds 128-bit ints; strings travel through weights_only loading
    return {k: (_jsonable(v) if isinstance(v, dict) else str(v) if isinstance(v, int) else v) for k, v in state.items()}


def _from_jsonable(state: dict) -> dict:
    return {k: (_from_jsonable(v) if isinstance(v, dict) else int(v) if isinstance(v, str) and v.isdigit() else v)
            for k, v in state.items()}
