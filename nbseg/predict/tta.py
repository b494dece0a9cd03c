"""Test-time augmentation: flips and quarter turns of a tile, each undone on the network's output.

``"none"``: the tile as is. ``"flips"``: the tile, and the tile flipped along each spatial axis
in turn (3 variants in 2D, 4 in 3D). ``"all"``: the full symmetry group of the square in the
Y-X plane (4 quarter turns, each with and without an X flip: 8 variants), times a Z flip in 3D
(16 variants). Z is never turned into Y or X, since stacks are often anisotropic.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..choices import check_choice

TTA_CHOICES = ("none", "flips", "all")


@dataclass(frozen=True)
class Variant:
    """One augmentation: ``turns`` quarter turns in the Y-X plane, then flips of ``flips``.

    ``flips`` holds spatial axis indices (0 = the first spatial axis). Tensors are
    ``(B, C, *spatial)``.
    """

    turns: int = 0
    flips: tuple = ()

    def forward(self, x):
        import torch

        if self.turns:
            x = torch.rot90(x, self.turns, dims=(-2, -1))
        if self.flips:
            x = torch.flip(x, dims=[2 + a for a in self.flips])
        return x

    def inverse(self, y):
        import torch

        if self.flips:
            y = torch.flip(y, dims=[2 + a for a in self.flips])
        if self.turns:
            y = torch.rot90(y, -self.turns, dims=(-2, -1))
        return y

    @property
    def keeps_shape(self) -> bool:
        """False for odd quarter turns, which swap the Y and X sides of a tile."""
        return self.turns % 2 == 0


def check_tta(tta: str) -> str:
    """Return ``tta`` if it is one of :data:`TTA_CHOICES`; else raise ValueError with a "did you mean"."""
    return check_choice(tta, TTA_CHOICES, what="tta",
                        hint=" ('none' = no augmentation, 'flips' = flip each axis, 'all' = flips and quarter turns)")


def tta_variants(tta: str, spatial_dims: int, *, planar: bool = False) -> list[Variant]:
    """The variants for ``tta`` (``"none"``, ``"flips"``, ``"all"``) on 2D or 3D data; the first is identity.

    ``planar``: a 3D stack predicted slice by slice by a 2D network, for which a Z flip gives the same
    prediction: only in-plane variants are made.
    """
    check_tta(tta)
    if tta == "none":
        return [Variant()]
    first = 1 if planar and spatial_dims == 3 else 0
    if tta == "flips":
        return [Variant()] + [Variant(flips=(axis,)) for axis in range(first, spatial_dims)]
    x_axis = spatial_dims - 1
    in_plane = [Variant(turns=k, flips=f) for k in range(4) for f in ((), (x_axis,))]
    if spatial_dims == 2 or planar:
        return in_plane
    return in_plane + [Variant(turns=v.turns, flips=(0,) + v.flips) for v in in_plane]
