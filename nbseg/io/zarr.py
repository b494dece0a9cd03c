"""OME-Zarr (NGFF 0.4 and 0.5) in and out.

Reading gives one resolution level (the highest by default) as a lazy dask array with its axes
and pixel sizes, for :func:`nbseg.io.images.read_image`; writing goes through ome-zarr-py's writer
(chunked, with a multiscale pyramid), to a temporary folder renamed when complete.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from .readers import AXES_LETTERS, ZARR_SUFFIXES, ImageReadError

__all__ = ["is_zarr", "read_ome_zarr", "zarr_axes_problem", "write_ome_zarr", "remove_tree"]

# NGFF units -> factor to micrometres (what nbseg's pixel sizes are in)
_TO_MICROMETRE = {"micrometer": 1.0, "micron": 1.0, "µm": 1.0, "um": 1.0, "nanometer": 1e-3, "nm": 1e-3,
                  "angstrom": 1e-4, "millimeter": 1e3, "mm": 1e3, "centimeter": 1e4, "meter": 1e6}
PYRAMID_MIN_SIDE = 64  # pyramid levels stop once Y or X would be smaller


def is_zarr(path) -> bool:
    """True for a path named ``*.zarr`` / ``*.ome.zarr`` (a folder that is one image)."""
    return Path(path).name.lower().endswith(ZARR_SUFFIXES)


def read_ome_zarr(path, *, level: int = 0):
    """One resolution level of an OME-Zarr image, lazily.

    Parameters
    ----------
    path : str or Path
        A ``.ome.zarr`` folder (NGFF 0.4: Zarr v2; 0.5: Zarr v3), or a plain Zarr array.
    level : int
        0 is the highest resolution.

    Returns
    -------
    data : dask array
        In the file's axis order.
    axes : str or None
        E.g. ``"CZYX"``; None for Zarr without OME metadata (see :func:`zarr_axes_problem`).
    sizes : dict
        ``{"Z": µm, "Y": µm, "X": µm}`` where the file gives them, and ``"unit"`` ("µm", or
        "relative" when the axes carry no known unit).
    """
    import dask.array as da

    zarr = _require_zarr()
    if not Path(path).exists():
        raise ImageReadError(f"File {path} does not exist.")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises many kinds; say which folder and why
        raise ImageReadError(f"Could not open {path} as Zarr: {type(err).__name__}: {err}. Check that the folder "
                             "is complete (it holds zarr.json or .zgroup/.zarray).") from err
    if isinstance(node, zarr.Array):
        return da.from_zarr(node), None, {}
    multiscales = _multiscales(node)
    if multiscales is None:
        arrays = sorted(node.array_keys())
        if len(arrays) != 1:
            raise ImageReadError(f"{path} is a Zarr group without OME-NGFF 'multiscales' metadata and holds "
                                 f"{len(arrays)} arrays ({arrays[:4]}); nbseg cannot tell which is the image. "
                                 "Write it as OME-Zarr (e.g. with ome-zarr-py) or point to the array itself.")
        return da.from_zarr(node[arrays[0]]), None, {}
    datasets = multiscales["datasets"]
    if not 0 <= level < len(datasets):
        raise ImageReadError(f"{path} has {len(datasets)} resolution level(s) (0..{len(datasets) - 1}); "
                             f"level {level} does not exist.")
    names = [a["name"] if isinstance(a, dict) else a for a in multiscales.get("axes", [])]
    axes = "".join(n.upper() for n in names)
    data = da.from_zarr(node[datasets[level]["path"]])
    if len(axes) != data.ndim or set(axes) - AXES_LETTERS or len(set(axes)) != len(axes):
        raise ImageReadError(f"{path} names its axes {names} for data of shape {data.shape}; nbseg reads the axes "
                             "t, c, z, y, x. Give the axes (axes='ZYX', CLI: --axes) or rewrite the file.")
    return data, axes, _pixel_sizes(multiscales, level, names)


def _require_zarr():
    try:
        import ome_zarr  # noqa: F401  (the writer; checked here so that both are named at once)
        import zarr
    except ImportError:
        raise ImageReadError("OME-Zarr needs zarr and ome-zarr-py, which are not installed. Install them with: "
                             "pip install 'nbseg[zarr]'") from None
    return zarr


def zarr_axes_problem(path, raw, file_axes, axes, guess: str) -> str | None:
    """A message when a Zarr file says nothing about its axes and none were given; else None."""
    if file_axes is not None or axes is not None or not is_zarr(path):
        return None
    return (f"{path} is Zarr without OME-NGFF metadata: it does not say which axes its shape {tuple(raw.shape)} "
            f"has. nbseg would assume {guess!r}; give the axes to be sure (axes={guess!r}, CLI: --axes {guess}).")


def _multiscales(group):
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests everything under "ome"
    multiscales = ome.get("multiscales")
    return multiscales[0] if multiscales else None


def _scale(transforms) -> list | None:
    for t in transforms or ():
        if t.get("type") == "scale":
            return list(t["scale"])
    return None


def _pixel_sizes(multiscales, level: int, names) -> dict:
    scale = _scale(multiscales["datasets"][level].get("coordinateTransformations")) or [1.0] * len(names)
    overall = _scale(multiscales.get("coordinateTransformations"))  # optional, applies to every level
    if overall:
        scale = [a * b for a, b in zip(scale, overall)]
    units = {a["name"]: a.get("unit") for a in multiscales.get("axes", []) if isinstance(a, dict)}
    sizes, known = {}, True
    for name, value in zip(names, scale):
        if name.upper() in "ZYX":
            factor = _TO_MICROMETRE.get(str(units.get(name)).lower())
            known &= factor is not None
            sizes[name.upper()] = float(value) * (factor or 1.0)
    sizes["unit"] = "µm" if known else "relative"
    return sizes


def _scale_factors(shape, axes: str) -> tuple:
    """Pyramid factors 2, 4, ... while Y and X stay at least PYRAMID_MIN_SIDE."""
    smallest = min(shape[axes.index("Y")], shape[axes.index("X")])
    factors, f = [], 2
    while smallest // f >= PYRAMID_MIN_SIDE and len(factors) < 4:
        factors.append(f)
        f *= 2
    return tuple(factors)


def default_chunks(shape, axes: str) -> tuple:
    """One channel, up to 64 slices, up to 256 x 256 pixels per chunk."""
    limits = {"C": 1, "T": 1, "Z": 64, "Y": 256, "X": 256}
    return tuple(min(n, limits[a]) for n, a in zip(shape, axes))


def write_ome_zarr(path, data, *, axes: str, pixel_sizes=None, unit: str | None = "µm", overwrite: bool = False,
                   labels: bool = False, chunks=None) -> Path:
    """Write ``data`` as OME-Zarr (NGFF 0.5) with a multiscale pyramid, its axes and pixel sizes.

    Parameters
    ----------
    path : str or Path
        Usually ``*.ome.zarr``.
    data : ndarray or dask array
        Any of ``YX``, ``ZYX``, ``CYX``, ``CZYX`` (as ``axes`` says). A dask array is written chunk
        by chunk (on the dask cluster in use, if any).
    axes : str
    pixel_sizes : sequence of float or None, optional
        ``([Z,] Y, X)`` in micrometres.
    unit : str or None
        ``"µm"``, or ``"relative"`` (only the sizes' ratios known): the scale without a unit, which reads
        back as relative.
    overwrite : bool
        Refuse to replace an existing image unless True.
    labels : bool
        Masks and object labels: pyramid levels pick pixels (nearest) instead of resizing.
    chunks : tuple of int, optional
        Default :func:`default_chunks`.
    """
    zarr = _require_zarr()
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    path = Path(path)
    if len(axes) != np.ndim(data):
        raise ValueError(f"axes {axes!r} has {len(axes)} letters but data has {np.ndim(data)} dimensions "
                         f"{np.shape(data)}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already; pass overwrite=True (CLI: --overwrite) to replace it.")
    spatial = [a for a in axes if a in "ZYX"]
    scale = {a.lower(): float(s) for a, s in zip(spatial, pixel_sizes or ()) if s}
    units = {a: "micrometer" for a in scale} if unit != "relative" else {}  # as write_ome_tiff reads unit
    if scale:  # ome-zarr-py warns about axes without a scale
        scale.update({a.lower(): 1.0 for a in axes if a.lower() not in scale})
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        group = zarr.open_group(str(tmp), mode="w")
        write_image(data, group, axes=axes.lower(), scale_factors=_scale_factors(np.shape(data), axes),
                    method=Methods.NEAREST if labels else Methods.RESIZE, scale=scale or None,
                    axes_units=units or None,
                    storage_options={"chunks": tuple(chunks or default_chunks(np.shape(data), axes))})
        _replace_tree(tmp, path)
    finally:
        remove_tree(tmp)
    return path


def _replace_tree(tmp: Path, path: Path) -> None:
    """Put folder ``tmp`` at ``path``; an earlier folder there is moved aside first (a folder
    cannot be replaced in one rename)."""
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    remove_tree(old)


def remove_tree(path) -> None:
    """Remove a folder (or file) if it exists."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
