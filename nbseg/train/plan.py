"""The training plan: network dimensionality, Z pooling, patch, batch, model size and learning rate,
each chosen from the data fingerprint and the device, each with its reason, each overridable.

How the rules were chosen (measured, not tuned to one split) is written in docs/benchmarks.md.
The CLI prints the plan before training and notebook 05 shows it; both show this same object.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.resample import is_native
from ..runtime import free_memory
from ..model.unet import PatchSizeError, divisibility_problem, pool_z_for, pooling_divisors
from .working_scale import physical_spacing, plan_input_shift, plan_scale
from .min_size import plan_min_size

ANISOTROPIC = 3.0  # Z spacing / XY spacing from which a stack is segmented slice by slice
THIN_STACK = 16  # fewer slices than this: too thin for 3D patches that pool
BASE_PATCH = {2: 128, 3: (32, 128)}  # in-plane patch (and Z for 3D models)
BASE_BATCH = {2: 8, 3: 2}  # patches per step at the base patch on a CPU (time, not memory, binds)
LARGE_OBJECT_SHARE = 0.5  # objects wider than this share of the base patch get a patch twice as wide
MAX_BATCH = 32
# training memory per voxel of a batch, in bytes (activations, gradients, optimiser), by model size;
# measured as peak RSS growth of a training step on a CPU (S: ~1.4 kB, with margin)
BYTES_PER_VOXEL = {"S": 2000, "M": 4000, "L": 4500}
MEMORY_SHARE = 0.4  # of the free device memory a batch may take
EPOCH_VOXELS = 32 * 8 * 128 * 128  # voxels trained between two validations (the measured 2D default)


@dataclass(frozen=True)
class Plan:
    """What training will do, and why.

    Attributes
    ----------
    data_dims : int
        2 or 3: the images.
    model_dims : int
        2 or 3: the network's convolutions; 2 for 3D data means a 2D U-Net on every slice.
    patch : list of int
        ``([Z,] Y, X)`` training patch (Z is 1 for a slice model).
    batch_size : int
    steps_per_epoch : int
        Steps between two validations.
    size : str
    pool_z : bool
    lr : float
    class_weights : list of float or None
        Multi-class only: cross-entropy weight per class, and patches centred on each object class
        equally often (rare classes are otherwise never learnt).
    scale : list of float or None
        ``([Z,] Y, X)`` working-scale factors (0.5: half resolution); None or ones: the images' own.
    spacing : list of float or None
        The pixel size per axis at the working scale (the fingerprint's unit), where the files give
        pixel sizes: images of another pixel size are resampled to it.
    norm : {"batch", "instance"}
        The network's normalisation layers.
    input_shift : list of float or None
        Pixels per axis the network moves its input by, for labels that sit off their structures.
    init : dict or None
        Fine-tuning: the source whose weights training starts from (:func:`nbseg.train.init.resolve_init`).
    warm_start : float or None
        Minutes of a 2D network over the slices that a 3D network starts from (:mod:`nbseg.train.warm_start`).
    min_size : int or None
        Instance and binary labels: the pixels (of the training images' size) an object of `nbseg predict
        --instances` needs to be kept (:mod:`nbseg.train.min_size`).
    reasons : dict of str -> str
        One sentence per choice, keyed by the choice.
    """

    data_dims: int
    model_dims: int
    patch: list
    batch_size: int
    steps_per_epoch: int
    size: str
    pool_z: bool
    lr: float
    class_weights: list | None = None
    scale: list | None = None
    spacing: list | None = None
    norm: str = "batch"
    input_shift: list | None = None
    reasons: dict = field(default_factory=dict)
    init: dict | None = None
    warm_start: float | None = None
    min_size: int | None = None

    @property
    def slices(self) -> bool:
        """True when a 3D stack is segmented slice by slice by a 2D network."""
        return self.data_dims == 3 and self.model_dims == 2

    def lines(self) -> list[str]:
        """The plan as lines a person reads."""
        what = ("2D network over each slice" if self.slices else f"{self.model_dims}D network")
        what += " warm-started from 2D" if self.warm_start else ""
        scale = "" if is_native(self.scale) else f", scale {'x'.join(f'{f:g}' for f in self.scale)}"
        head = (f"plan: {what}, model {self.size}{scale}, patch {'x'.join(map(str, self.patch))}, "
                f"batch {self.batch_size}, lr {self.lr:.1e}")
        return [head] + [f"  {key}: {why}" for key, why in self.reasons.items()]

    def to_dict(self) -> dict:
        return {**asdict(self), "slices": self.slices}


def plan_training(config, dataset, *, device=None, fingerprint=None):
    """The fingerprint of ``dataset`` and the plan for it: what `nbseg train`, the LR finder and
    notebook 05 all use. ``device`` defaults to ``config.train.device`` resolved; ``fingerprint``, the
    dataset's when it is known already. With ``train.init`` the network is the init model's and the
    learning rate a fine-tuning one (:mod:`nbseg.train.init`)."""
    from . import init
    from .warm_start import plan_warm_start
    from ..data.fingerprint import fingerprint as data_fingerprint
    from ..runtime import pick_device

    if fingerprint is None:
        fingerprint = data_fingerprint(dataset, seed=config.train.seed)
    device = device or pick_device(config.train.device)
    source = init.init_source(config.train.init)
    if source is None:
        return plan_warm_start(make_plan(config, fingerprint, device=device), config), fingerprint
    info = init.resolve_init(source)  # fine-tuning: the source's architecture, checked against the data
    init.check_compatible(info, dataset)
    plan = make_plan(init.architecture_config(config, info, fingerprint.spatial_dims), fingerprint, device=device)
    return init.fine_tune_plan(plan, config, info, dataset, fingerprint.intensity), fingerprint


def make_plan(config, fingerprint, *, device="cpu") -> Plan:
    """Plan training for the data ``fingerprint`` describes on ``device``.

    Parameters
    ----------
    config : nbseg.config.Config
        What the user set wins over every rule (``model.dims``, ``model.patch``, ``train.batch_size``, ...).
    fingerprint : nbseg.data.fingerprint.Fingerprint
    device : str or torch.device
    """
    data_dims, size = fingerprint.spatial_dims, config.model.size
    # each rule gives its value and why (None: nothing worth saying); the reasons are listed in this order
    model_dims, why_network = _model_dims(config, fingerprint, str(device))
    slices = data_dims == 3 and model_dims == 2
    scale, why_scale = plan_scale(config, fingerprint, slices)
    weights, why_classes = _class_weights(fingerprint) if config.train.balance_classes is not False else (None, None)
    patch, why_patch = _patch(config, fingerprint, slices, scale, balanced=weights is not None)
    pool_z, why_pool_z = _pool_z(patch, fingerprint, slices)
    problem = divisibility_problem(patch, pooling_divisors(len(patch), size, pool_z=pool_z or data_dims == 2))
    if problem:
        raise PatchSizeError(f"Patch size {list(patch)} does not fit model size {size!r}: {problem}.")
    batch, why_batch = _batch(config, patch, size, data_dims if not slices else 2, str(device))
    norm, why_norm = _norm(config, model_dims, data_dims)
    shift, why_shift = plan_input_shift(config, fingerprint, scale, slices)
    why_lr = f"{config.train.lr:.1e} (train.lr; notebook 04 or `nbseg lr-find` proposes one from a sweep)"
    steps, why_epoch = _steps(config, batch * int(np.prod(patch)))
    min_size, why_min_size = plan_min_size(fingerprint)
    reasons = {key: why for key, why in (
        ("network", why_network), ("scale", why_scale), ("patch", why_patch), ("pool_z", why_pool_z),
        ("batch", why_batch), ("norm", why_norm), ("input_shift", why_shift), ("lr", why_lr),
        ("classes", why_classes), ("epoch", why_epoch), ("min_size", why_min_size)) if why}
    return Plan(data_dims=data_dims, model_dims=model_dims, patch=patch, batch_size=batch, steps_per_epoch=steps,
                size=size, pool_z=pool_z, lr=float(config.train.lr), class_weights=weights, scale=scale,
                spacing=physical_spacing(fingerprint, scale), norm=norm, input_shift=shift, reasons=reasons,
                min_size=min_size)


def _pool_z(patch, fingerprint, slices: bool) -> tuple[bool, str | None]:
    """Whether a 3D network pools Z, and why (None for 2D networks, which have no Z to pool)."""
    if fingerprint.spatial_dims != 3 or slices:
        return False, None
    pooled = _pools_z(patch[0], fingerprint)
    return pooled, (f"Z {'is' if pooled else 'is not'} pooled (patch Z {patch[0]}, Z spacing "
                    f"{fingerprint.anisotropy:.1f}x XY)")


def _norm(config, model_dims: int, data_dims: int) -> tuple[str, str | None]:
    """Instance norm for 3D networks (their batches hold 1-4 patches), batch norm for 2D ones; and why."""
    if config.model.norm is not None:
        return config.model.norm, f"{config.model.norm} norm, as set (model.norm)"
    if model_dims == 3 and data_dims == 3:
        return "instance", ("instance norm: a 3D batch holds a few patches, too few for batch statistics that "
                            "also suit validation (nnU-Net normalises 3D patches one by one too)")
    return "batch", None


def _steps(config, voxels_per_step: int) -> tuple[int, str | None]:
    """Steps per epoch: as set, else an epoch of EPOCH_VOXELS, so 3D epochs are not ten times longer; and why."""
    if config.train.steps_per_epoch:
        return int(config.train.steps_per_epoch), None
    steps = int(np.clip(round(EPOCH_VOXELS / voxels_per_step), 4, 256))
    return steps, f"{steps} steps ({steps * voxels_per_step / 1e6:.1f} M voxels) between validations"


def _class_weights(fingerprint) -> tuple[list | None, str | None]:
    """Multi-class sets: CE weights (median share / share)^0.5, between 0.5 and 10; and why."""
    fractions = np.asarray(fingerprint.class_fractions, float)
    if fingerprint.kind != "multiclass" or fractions.size < 3:
        return None, None  # binary and instance targets: the soft Dice balances object and background
    present = fractions[fractions > 0]
    weights = np.clip(np.sqrt(np.median(present) / np.maximum(fractions, 1e-6)), 0.5, 10.0)
    rarest = int(np.argmin(np.where(fractions > 0, fractions, np.inf)))
    return weights.round(3).tolist(), (f"class {rarest} covers {fractions[rarest]:.2%} of the labelled pixels: "
                                       "patches are centred on each class equally often and rare classes weigh up "
                                       f"to {weights.max():.1f}x in the cross-entropy")


def _model_dims(config, fingerprint, device: str) -> tuple[int, str | None]:
    """A 2D or a 3D network, and why."""
    if fingerprint.spatial_dims == 2:
        return 2, None
    given = config.model.dims
    if given is not None:
        return given, f"{given}D network, as set (model.dims; CLI --model-dims)"
    thinnest = min(shape[0] for shape in fingerprint.shapes)
    if fingerprint.anisotropy >= ANISOTROPIC:
        why = (f"Z spacing is {fingerprint.anisotropy:.1f}x XY (from {ANISOTROPIC:g}x on, slices are too far apart "
               "for 3D kernels)")
    elif thinnest < THIN_STACK:
        why = f"the thinnest stack has {thinnest} slices (3D patches need {THIN_STACK} or more)"
    elif not device.startswith("cuda"):
        why = ("on a CPU a 2D network over the slices learns more per minute than a 3D one (measured on "
               "Lucchi++ and BBBC050, docs/benchmarks.md); a GPU plans a 3D network")
    else:
        return 3, "3D network (a GPU; Z spacing and stack depth allow 3D kernels)"
    return 2, "2D network over each slice: " + why + "; force with --model-dims 3"


def _patch(config, fingerprint, slices: bool, scale, *, balanced: bool = False) -> tuple[list, str]:
    """The patch, and why."""
    dims = fingerprint.spatial_dims
    smallest = np.maximum(1, np.round(np.min(np.asarray(fingerprint.shapes), axis=0) * np.asarray(scale))).astype(int)
    if config.model.patch is not None:
        patch = list(config.model.patch)
        if len(patch) != dims:
            raise ValueError(f"data is {dims}D but patch size {patch} is {len(patch)}D; give {dims} numbers.")
        return patch, "as set (model.patch; CLI --patch)" + _padded(patch, smallest)
    side = BASE_PATCH[2] if dims == 2 or slices else BASE_PATCH[3][1]
    extent = fingerprint.typical_extent()
    extent = [e * f for e, f in zip(extent, scale)] if extent else None
    why = f"{side} px in-plane"
    # a wider patch for large objects; 3D patches stay as wide: a batch of wider ones would hold one patch
    if extent and max(extent[-2:]) > LARGE_OBJECT_SHARE * side and (dims == 2 or slices):
        if balanced:  # a wider patch halves the batch twice: two patches a step cannot show every class
            why = (f"{side} px in-plane: objects up to {max(extent[-2:]):.0f} px wide would widen it, but class-"
                   "balanced patches need a batch that shows every class each step (docs/benchmarks.md)")
        else:
            side *= 2
            why = f"{side} px in-plane: 90 % of objects are up to {max(extent[-2:]):.0f} px wide"
    plane = [min(side, int(n)) for n in smallest[-2:]]
    at = " at the working scale" if any(f != 1 for f in scale) else ""
    cut = f", cut to the smallest image's {min(plane)} px{at}" if min(plane) < side else ""  # why it is narrower
    if slices:
        patch = [1] + plane
    elif dims == 3:
        anisotropy = fingerprint.anisotropy
        z = BASE_PATCH[3][0] if anisotropy < 2 else max(8, int(round(BASE_PATCH[3][0] / anisotropy)))
        patch = [min(z, int(smallest[0]))] + plane
    else:
        patch = plane
    pool_z = dims == 2 or (not slices and _pools_z(patch[0], fingerprint))
    divisors = pooling_divisors(dims, config.model.size, pool_z=pool_z)
    patch = [max(d, -(-p // d) * d) for p, d in zip(patch, divisors)]  # round up; small images get padded
    return patch, why + (" (one slice at a time)" if slices else "") + (_padded(patch, smallest) or cut)


def _pools_z(patch_z: int, fingerprint) -> bool:
    """Z is pooled when the patch has the slices for it and Z spacing is close to XY (nnU-Net's rule of 2)."""
    return pool_z_for(patch_z) and fingerprint.anisotropy < 2


def _padded(patch, smallest) -> str:
    if not any(p > n for p, n in zip(patch, smallest)):
        return ""
    return (f"; the smallest image {list(map(int, smallest))} is padded to it (padded pixels are ignored by "
            "the loss)")


def _batch(config, patch, size: str, conv_dims: int, device: str) -> tuple[int, str]:
    """Patches per step, and why."""
    if config.train.batch_size:
        return int(config.train.batch_size), "as set (train.batch_size; CLI --batch-size)"
    voxels = int(np.prod(patch))
    base_voxels = BASE_PATCH[2] ** 2 if conv_dims == 2 else int(np.prod(BASE_PATCH[3][:1] + (BASE_PATCH[3][1],) * 2))
    by_time = max(1, round(BASE_BATCH[conv_dims] * base_voxels / voxels))
    free = free_memory(device)
    by_memory = max(1, int(MEMORY_SHARE * free / (BYTES_PER_VOXEL[size] * voxels)))
    if device.startswith("cuda"):
        batch = max(1, min(MAX_BATCH, by_memory, 4 * by_time))
        return batch, f"{batch}: fits {MEMORY_SHARE:.0%} of the GPU's {free / 2**30:.1f} GiB free"
    batch = max(1, min(by_time, by_memory))
    return batch, (f"{batch}: {batch * voxels:,} voxels a step keeps CPU steps short" +
                   (f" (memory allows {by_memory})" if by_memory < by_time else ""))


__all__ = ["Plan", "make_plan", "plan_training"]
