"""The working scale of the training plan: the resolution a network learns and predicts at.

Objects wider than the network's view (its receptive field) are learnt at half or a quarter of the images'
resolution in-plane, as long as their labels survive the trip there and back; predictions are brought back
to the input's shape and pixel sizes (:mod:`nbseg.data.resample`). The input shift for labels that sit off
their structures is planned here too: it is measured in the images' pixels and applied at the working scale.
"""
from __future__ import annotations

from ..model.unet import receptive_field

# a coarser working scale may cost the labels at most this (lowest per-class Dice of a round trip):
# Lucchi++ mitochondria keep 0.998 at half scale, EPFL's thinnest class 0.981 (and its held-back IoU rose
# from 0.46-0.59 to 0.71 there), one-pixel borders between touching nuclei 0.10 (docs/benchmarks.md)
MIN_FIDELITY = 0.95


def plan_scale(config, fingerprint, slices: bool) -> tuple[list, str | None]:
    """Working-scale factors per axis, and why (None: nothing worth saying): the finest scale at which
    90 % of objects fit the network's view (its receptive field), unless the labels would not survive it
    (``MIN_FIDELITY``)."""
    dims, given, why = fingerprint.spatial_dims, config.model.scale, None
    extent = fingerprint.typical_extent(spanning=False)  # a mesh asks for no wider view (half scale cost ISBI)
    if given is not None:
        s = float(given)
        why = f"{s:g} in-plane, as set (model.scale; CLI --scale)"
    else:
        view = receptive_field(config.model.size)
        s = 1.0
        for candidate in (0.5, 0.25):  # coarser only while objects still overflow the view
            if not extent or max(extent[-2:]) * s <= view:
                break
            if fingerprint.scale_fidelity.get(str(candidate), 0.0) < MIN_FIDELITY:
                break
            s = candidate
        if s < 1:
            why = (f"{s:g} in-plane: 90 % of objects are up to {max(extent[-2:]):.0f} px wide, more than "
                   f"the network's {view} px view; at {s:g} the labels keep Dice "
                   f"{fingerprint.scale_fidelity[str(s)]:.3f} (outputs keep the input's size)")
        elif extent and max(extent[-2:]) > view:
            why = (f"1 (the images' own): objects are wider than the network's {view} px view, but "
                   "their labels lose detail at half scale (thin structures); set --scale to try")
        elif extent is None and fingerprint.typical_extent():
            why = ("1 (the images' own): the objects span whole images (a mesh, such as membranes): "
                   "what the network needs to see of it is local, and a coarser scale would only "
                   "thin it; set --scale to try")
    # Z shrinks with the plane only where its pixels are as fine (a slice model never mixes slices)
    z = [] if dims == 2 else [1.0 if slices else min(1.0, s * fingerprint.anisotropy)]
    return z + [s, s], why


def physical_spacing(fingerprint, scale) -> list | None:
    """Physical pixel sizes at the working scale, where the files give them on every axis."""
    if fingerprint.unit != "µm" or fingerprint.pixel_sizes is None or any(v is None for v in fingerprint.pixel_sizes):
        return None
    return [round(v / f, 6) for v, f in zip(fingerprint.pixel_sizes, scale)]


def plan_input_shift(config, fingerprint, scale, slices: bool) -> tuple[list | None, str | None]:
    """The shift that lines images up with their labels at the working scale, per axis of the network
    (Y, X or Z, Y, X), and why; None when the labels sit where their structures are, or the offset is
    unclear (:func:`nbseg.data.alignment.label_offset`). ``model.input_shift`` wins, ``[0, 0]`` turns it off."""
    from ..data.alignment import describe_offset

    axes = "YX" if fingerprint.spatial_dims == 2 or slices else "ZYX"
    given = config.model.input_shift
    if given is not None:
        if len(given) != len(axes):
            raise ValueError(f"model.input_shift is {list(given)}; give one value per axis {', '.join(axes)}.")
        shift = [float(v) for v in given]
        return (shift if any(shift) else None), f"{describe_offset(shift, axes)}, as set (model.input_shift)"
    found = getattr(fingerprint, "label_offset", None) or {}
    if not found.get("clear"):
        return None, None
    offset = found["offset"][-len(axes):]
    factors = list(scale)[-len(axes):] if scale else [1.0] * len(axes)
    shift = [round(max(-1.0, min(1.0, v * f)), 3) for v, f in zip(offset, factors)]  # pixels at the working scale
    return shift, (
        f"the labels sit {describe_offset(offset, axes)} from what they mark ({found['reason']}): the network "
        "moves its input to match, so flips keep images and labels aligned (model.input_shift; [0, 0] turns it off)")


__all__ = ["MIN_FIDELITY", "physical_spacing", "plan_input_shift", "plan_scale"]
