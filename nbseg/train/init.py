"""Fine-tuning (transfer learning): start training from another model's weights instead of random ones.

``train.init`` (CLI ``nbseg train --init SOURCE``) names the source:

- an nbseg **project folder**: the model of its first fold (``models/fold0.pt``, or the lowest fold present);
- an nbseg **model file** (``.pt``, e.g. ``otherproject/models/fold2.pt``);
- a **bioimage.io package** exported by nbseg (``.zip``, or its unpacked ``rdf.yaml``): the state dict it
  carries (the first fold's model file, attached). A package with TorchScript weights only is loaded
  parameter by parameter into a rebuilt U-Net when names and shapes match; otherwise it is refused;
- the name of a **bundled model** (``nuclei``: ``nbseg/models/nuclei/model.pt``, see :mod:`nbseg.model.bundled`).

What fine-tuning keeps and changes:

- The **architecture comes from the source**: 2D, 3D or 2D over slices, size, normalisation layers, working
  scale, classes. The plan says so; model settings in the config that differ are overridden.
- **2D to 3D**: a 2D source (or a 2D network over slices) on stacks with ``model.dims: 3`` (CLI
  ``--model-dims 3``) is *inflated* into a 3D network of its size and working scale: each 3x3 kernel becomes
  the centre slice of a 3x3x3 one (zeros around it), each up-convolution is repeated along Z, and the
  normalisation layers (with their running statistics) carry over unless ``model.norm`` names another. The 3D network starts out seeing
  each slice as the 2D one did and learns from there what Z adds (I3D's inflation, Carreira & Zisserman 2017,
  done the conservative way).
- **Classes** must match: a source with another number of output classes is refused, naming both (the
  last layer is not re-initialised: its classes would mean something else than the source's).
- **Channels**: a 1-channel source on 3-channel data (e.g. RGB brightfield), or a 3-channel source on
  1-channel data, gets its first convolution adapted as timm's ``adapt_input_conv`` does (weights repeated
  over the new channels and divided by their number, or summed over the old ones), so that an image
  with equal channels gives the same activations. Other channel counts are refused.
- **Normalisation** percentiles come from the new data (``data.percentiles``), as always.
- **Learning rate**: the peak is a third of the default ``train.lr`` (:func:`fine_tune_lr`): the weights
  already segment, and a full-size first step would undo much of that. A ``train.lr`` set on purpose for
  fine-tuning (CLI ``--lr``, notebook 04's tick 'Use this rate for fine-tuning too', or a config with
  ``train.lr_for_fine_tuning: true``, the default) is used as given; a rate notebook 04's LR finder saved
  for training from scratch (``lr_for_fine_tuning: false``) is not, nor an earlier command's ``--lr`` once
  a new ``--init`` comes without one.
- ``--resume`` continues from the project's checkpoint, not from the source.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..config import TrainConfig
from ..model.unet import SIZES
from .init_sources import FIRST_CONV, InitError, resolve_init, source_state

# of the default lr, for another model's weights: on two transfer pairs (the bundled nuclei model to H&E images
# and to BBBC050) validation preferred 1e-3 to 3e-4 in 5 of 5 runs (docs/benchmarks.md, session 10)
FINE_TUNE_LR_FACTOR = 1 / 3
SCRATCH = ("", "none", "scratch")  # values that mean: no init (CLI --init none clears a saved one)


def init_source(value) -> str | None:
    """``train.init`` as a source, or None for training from scratch."""
    return None if value is None or str(value).strip().lower() in SCRATCH else str(value)


# ---------------------------------------------------------------- the plan


def check_compatible(info: dict, dataset) -> None:
    """Raise :class:`InitError` unless the source's network can be trained on ``dataset``.

    Parameters
    ----------
    info : dict
        From :func:`resolve_init`.
    dataset : nbseg.data.Dataset
    """
    spec, given = info["spec"], info["source"]
    if spec["n_classes"] != dataset.n_classes:
        raise InitError(f"init {given} outputs {spec['n_classes']} classes ({info.get('kind') or 'unknown kind'}) "
                        f"but this data has {dataset.n_classes} ({dataset.kind}): fine-tuning keeps the source's "
                        "classes. Fine-tune from a model of the same kind of labels (labels=, CLI: --labels), or "
                        "train from scratch (CLI: --init none).")
    src, dst = spec["in_channels"], dataset.in_channels
    if src != dst and 1 not in (src, dst):
        raise InitError(f"init {given} reads {src} channels but this data has {dst}: only a 1-channel model can be "
                        "spread over several channels or the reverse. Pick channels (channels=, CLI: --channels) "
                        "to match, or train from scratch (CLI: --init none).")
    if not is_planar(spec) and dataset.spatial_dims == 2:
        raise InitError(f"init {given} is a 3D network; this data is 2D images. Fine-tune from a 2D model (or a "
                        "2D network over slices), or train from scratch (CLI: --init none).")


def is_planar(spec: dict) -> bool:
    """True for a 2D U-Net or a 2D U-Net over slices (their weights are 2D kernels)."""
    return spec["spatial_dims"] == 2 or bool(spec.get("slices"))


def inflates(info: dict, config, data_dims: int) -> bool:
    """True when a 2D source is to become a 3D network: stacks, and ``model.dims`` set to 3."""
    return data_dims == 3 and config.model.dims == 3 and is_planar(info["spec"])


def architecture_config(config, info: dict, data_dims: int):
    """``config`` with the source's architecture as the model settings the plan follows (a 2D source
    inflated to 3D keeps its size, scale and normalisation, the last unless ``model.norm`` is set)."""
    spec, scale = info["spec"], info.get("scale")
    inflated = inflates(info, config, data_dims)  # its normalisation stays the source's unless model.norm is set
    update = {"size": spec["size"], "scale": float(scale[-1]) if scale else 1.0,
              "norm": (inflated and config.model.norm) or spec.get("norm", "batch"),
              "dims": 3 if inflated else ((2 if is_planar(spec) else 3) if data_dims == 3 else None)}
    return config.model_copy(update={"model": config.model.model_copy(update=update)})


def fine_tune_plan(plan, config, info: dict, dataset, intensity=None):
    """``plan`` (made from :func:`architecture_config`) with the init, its learning rate and reasons;
    ``intensity`` is the data's fingerprint ``intensity`` (objects brighter or darker than background)."""
    spec, reasons = info["spec"], dict(plan.reasons)
    patch, pool_z = list(plan.patch), plan.pool_z
    inflated = plan.model_dims == 3 and is_planar(spec)
    if plan.model_dims == 3 and not inflated:  # a 3D source pools Z or not; the patch follows it
        pool_z = bool(spec.get("pool_z"))
        step = 2 ** (len(SIZES[spec["size"]]) - 1) if pool_z else 1
        patch[0] = max(step, -(-patch[0] // step) * step)
        reasons["pool_z"] = f"Z {'is' if pool_z else 'is not'} pooled, as in the init model"
    for key in ("scale", "norm"):  # "as set" by architecture_config: the network line says where from
        reasons.pop(key, None)
    network = "3D network" if plan.model_dims == 3 else "2D network" + (" over each slice" if plan.slices else "")
    if inflated:
        reasons["network"] = (f"3D network, model {spec['size']}, {plan.norm} norm, scale {plan.scale[-1]:g}: "
                              "the init model's 2D kernels inflated to 3D (each the centre slice of a 3x3x3 "
                              "kernel), as model.dims is 3")
    else:
        reasons["network"] = (f"{network}, model {spec['size']}, {spec.get('norm', 'batch')} norm, scale "
                              f"{plan.scale[-1]:g}: the init model's architecture")
    lr, reasons["lr"] = fine_tune_lr(config.train)
    note = channel_note(spec["in_channels"], dataset.in_channels)
    if note:
        reasons["channels"] = note
    info = dict(info, invert=contrast_flipped(info.get("intensity"), intensity))
    if info["invert"]:
        reasons["contrast"] = CONTRAST_NOTE
    head = {"init": f"{info['source']} ({info['what']}); normalisation from this data's percentiles"}
    return replace(plan, patch=patch, pool_z=pool_z, lr=lr, init=info, reasons={**head, **reasons})


CONTRAST_NOTE = ("objects are darker than the background here and brighter in the init model's training data "
                 "(or the reverse): its first convolution is negated, so it sees this data as it saw its own")


def contrast_flipped(source, data) -> bool:
    """True when objects are brighter than the background in one of two fingerprint ``intensity`` dicts
    and darker in the other (fluorescence vs brightfield nuclei); False when either is unknown."""
    def brighter(stats):
        try:
            return stats["foreground"]["mean"] > stats["background"]["mean"]
        except (TypeError, KeyError):  # an older model file, or no objects: nothing to compare
            return None
    a, b = brighter(source), brighter(data)
    return a is not None and b is not None and a != b


def fine_tune_lr(train) -> tuple[float, str]:
    """The peak lr for fine-tuning with the ``train`` settings (:class:`~nbseg.config.TrainConfig`), and why.

    ``train.lr`` when it is not the default and ``train.lr_for_fine_tuning`` says it is meant for fine-tuning
    too; otherwise a third of the default. The warm start's 3D phase sets its own afterwards
    (:func:`nbseg.train.warm_start.warm_start_phases`).
    """
    default, lr = TrainConfig.model_fields["lr"].default, float(train.lr)
    if lr != default and train.lr_for_fine_tuning:
        return lr, f"{lr:.1e}, as set (train.lr; CLI --lr)"
    rule = default * FINE_TUNE_LR_FACTOR
    why = (f"{rule:.1e}: fine-tuning, a third of the {default:.0e} default: the init weights already segment and "
           "full-size steps would undo much of what they learnt")
    if lr == default:
        return rule, why + " (set train.lr, CLI --lr, to choose)"
    return rule, why + (f"; train.lr {lr:.1e} is for training from scratch (train.lr_for_fine_tuning is false, as "
                        "notebook 04 saves a swept rate): pass --lr, or tick 'Use this rate for fine-tuning too' "
                        "in 04, to fine-tune at it")


def channel_note(src: int, dst: int) -> str | None:
    if src == dst:
        return None
    if src == 1:
        return (f"the init model reads 1 channel, this data has {dst}: its first convolution is repeated over the "
                f"{dst} channels and divided by {dst}")
    return (f"the init model reads {src} channels, this data has 1: its first convolution is summed over its "
            f"{src} channels")


# ---------------------------------------------------------------- the weights


def load_init_weights(model, info: dict) -> list[str]:
    """Copy the source's weights into ``model`` (built from the plan), adapting the first convolution to
    ``model``'s input channels.

    Parameters
    ----------
    model : nbseg.model.unet.UNet
        The network the plan describes (on any device).
    info : dict
        From :func:`resolve_init` (``plan.init``).

    Returns
    -------
    list of str
        Notes for the run: where the weights came from, and any channel adaptation.
    """
    state = source_state(info)
    notes = [f"fine-tuning from {info['source']} ({info['what']})"]
    target = model.spec["in_channels"]
    if state[FIRST_CONV].shape[1] != target:
        note = channel_note(int(state[FIRST_CONV].shape[1]), target)
        state[FIRST_CONV] = adapt_input_conv(state[FIRST_CONV], target)
        notes.append(note)
    if info.get("invert"):
        invert_input(state)
        notes.append(CONTRAST_NOTE)
    if model.spec["spatial_dims"] == 3 and not model.slices and state[FIRST_CONV].ndim == 4:
        state = inflate_state(state, model.state_dict())
        notes.append("2D kernels inflated to 3D: each the centre slice of its 3D kernel")
    model.load_state_dict(state)
    return notes


def inflate_state(state: dict, target: dict) -> dict:
    """A 2D U-Net's state dict made into one for ``target``, the state dict of a 3D U-Net of the same size.

    A convolution's ``(out, in, k, k)`` kernel becomes the centre slice of ``(out, in, kz, k, k)``, zeros
    elsewhere: at first each slice is seen as the 2D network saw it. An up-convolution's kernel is repeated
    along Z (both output slices of a Z-strided one get what the 2D one gave). Normalisation keeps its learnt
    scale and shift; running statistics go where the 3D network has none (instance norm).

    Parameters
    ----------
    state : dict of tensors
        The 2D network's (or a 2D network over slices').
    target : dict of tensors
        ``UNet(spatial_dims=3, ...).state_dict()``: names and shapes to fill.
    """
    out = {}
    for name, want in target.items():
        have = state.get(name)
        if have is None:
            raise InitError(f"the init model has no {name}: it is not the 2D form of this 3D network.")
        if have.ndim == 4 and want.ndim == 5:
            have = _inflated(have, want.shape[2], up=name.startswith("ups."))
        if have.shape != want.shape:
            raise InitError(f"the init model's {name} has shape {list(have.shape)}, the 3D network's "
                            f"{list(want.shape)}: the sizes differ.")
        out[name] = have.to(want.dtype)
    return out


def _inflated(weight: torch.Tensor, depth: int, *, up: bool) -> torch.Tensor:
    if up:  # a transposed convolution: every output slice gets the 2D kernel
        return weight.unsqueeze(2).repeat(1, 1, depth, 1, 1)
    kernel = torch.zeros(weight.shape[:2] + (depth,) + weight.shape[2:], dtype=weight.dtype)
    kernel[:, :, depth // 2] = weight
    return kernel


def invert_input(state: dict) -> None:
    """Make the network see ``1 - x`` where it is given ``x`` (images normalised to about 0..1).

    The first convolution (no bias) gives ``W * (1 - x) = c - W * x`` with ``c`` the sum of each filter's
    weights, so it becomes ``-W`` and the normalisation after it, which subtracts its mean, shifts that
    mean by ``-c``. Instance norm subtracts each image's own mean and needs nothing, but for the zero-padded
    border, where ``c`` is not whole (exact inside the image, close at its edge).
    """
    weight = state[FIRST_CONV]
    state[FIRST_CONV] = -weight
    running = FIRST_CONV.rsplit(".", 2)[0] + ".1.running_mean"
    if running in state:
        state[running] = state[running] - weight.flatten(1).sum(1)


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first convolution's weight ``(out, C, k, k[, k])`` for ``in_channels`` inputs instead of C.

    From 1 channel: repeated and divided by ``in_channels``; to 1 channel: summed over C. Either way an
    image whose channels are equal gives the activations the source gave (timm's ``adapt_input_conv``).
    """
    channels = weight.shape[1]
    if channels == in_channels:
        return weight
    if channels == 1:
        return weight.repeat(1, in_channels, *([1] * (weight.ndim - 2))) / in_channels
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    raise InitError(f"a first convolution over {channels} channels cannot be adapted to {in_channels}; only "
                    "1 -> N and N -> 1 can.")


__all__ = ["InitError", "adapt_input_conv", "architecture_config", "check_compatible", "contrast_flipped",
           "fine_tune_lr", "fine_tune_plan", "inflate_state", "inflates", "init_source", "invert_input", "is_planar",
           "load_init_weights", "resolve_init"]
