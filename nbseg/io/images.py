"""Read microscopy files into ``C[Z]YX`` arrays with pixel sizes; write OME-TIFF.

TIFF and OME-TIFF go through tifffile (fast, and memory-mapped for large files);
PNG/JPEG through imageio; everything else (CZI, ND2, ...) through bioio readers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .readers import AXES_LETTERS, IMAGE_SUFFIXES, ImageReadError, read_raw
from .names import PairingError, by_stem, file_stem, files_by_stem, image_files, is_image_file
from .zarr import is_zarr, read_ome_zarr, zarr_axes_problem
from ..project import atomic_write

__all__ = ["IMAGE_SUFFIXES", "Image", "ImageReadError", "PairingError", "by_stem", "file_stem", "files_by_stem",
           "image_files", "is_image_file", "read_image", "read_mask", "write_ome_tiff"]


@dataclass
class Image:
    """An image with axes ``C[Z]YX`` and its physical pixel sizes.

    Attributes
    ----------
    data : (C, [Z,] Y, X) ndarray
    axes : str
        ``"CYX"`` or ``"CZYX"``.
    pixel_sizes : tuple of float or None
        ``([Z,] Y, X)`` in micrometres; None where the file does not say.
    path : Path or None
    unit : str or None
        ``"µm"``, or ``"relative"`` when the file gives only ratios (Fiji's ``relative(x=y=1)``);
        None when it gives no pixel sizes.
    """

    data: np.ndarray
    axes: str
    pixel_sizes: tuple = field(default=())
    path: Path | None = None
    unit: str | None = None

    @property
    def spatial_dims(self) -> int:
        return len(self.axes) - 1

    @property
    def spatial_shape(self) -> tuple:
        return tuple(self.data.shape[1:])


def read_image(path, *, axes: str | None = None, channels=None, dims: int | None = None,
               lazy: bool = False) -> Image:
    """Read one image file as ``C[Z]YX``.

    Parameters
    ----------
    path : str or Path
    axes : str, optional
        The file's axes, e.g. ``"ZYX"``, ``"CYX"``, ``"ZCYX"``, ``"YXC"``; overrides what the
        file says. A ``T`` axis must have length 1.
    channels : int or list of int, optional
        Channels to keep, in this order.
    dims : {2, 3}, optional
        Spatial dimensions expected; resolves files whose third axis could be Z or C.
    lazy : bool
        Memory-map large TIFFs, and keep Zarr as a dask array, instead of loading them.

    Returns
    -------
    Image
    """
    path = Path(path)
    raw, file_axes, sizes = read_ome_zarr(path) if is_zarr(path) else read_raw(path, lazy=lazy)
    problem = zarr_axes_problem(path, raw, file_axes, axes, _guess_axes(raw, dims))
    if problem:
        raise ImageReadError(problem)
    axes = _resolve_axes(raw, axes or file_axes, dims, path)
    data = _to_czyx(raw, axes, path)
    if not lazy and hasattr(data, "compute"):  # Zarr is read as a dask array
        data = np.asarray(data)
    if channels is not None:
        data = _select_channels(data, channels, path)
    spatial = "ZYX" if data.ndim == 4 else "YX"
    pixel_sizes = tuple(sizes.get(a) for a in spatial)
    unit = sizes.get("unit", "µm") if any(s is not None for s in pixel_sizes) else None
    return Image(data=data, axes="C" + spatial, pixel_sizes=pixel_sizes, path=path, unit=unit)


def read_mask(path, *, dims: int | None = None, axes: str | None = None, return_pixel_sizes: bool = False,
              allow_float: bool = True):
    """Read a label file as an integer ``([Z,] Y, X)`` array.

    Parameters
    ----------
    allow_float : bool
        Accept float files holding whole numbers (converted). False refuses float files, for settings
        that give one value a meaning, such as "not labelled".
    return_pixel_sizes : bool
        Also return the file's ``([Z,] Y, X)`` pixel sizes (``None`` where it has none), so
        that masks derived from it can be written with them.

    Raises
    ------
    ImageReadError
        For several channels, or float values that are not whole numbers.
    """
    image = read_image(path, dims=dims, axes=axes)
    if not allow_float and image.data.dtype.kind == "f":
        raise ImageReadError(
            f"Mask {path} is a float image ({image.data.dtype}); a 'not labelled' value (--unlabelled, "
            "data.unlabelled) needs integer masks. Save the masks as 8- or 16-bit integer images.")
    mask = _mask_values(image, path)
    return (mask, image.pixel_sizes) if return_pixel_sizes else mask


def _mask_values(image: Image, path) -> np.ndarray:
    if image.data.shape[0] != 1:
        raise ImageReadError(
            f"Mask {path} has {image.data.shape[0]} channels (shape {image.data.shape}); a mask needs one. "
            "Save it as a single-channel label image (0 = background)."
        )
    mask = np.asarray(image.data[0])
    if mask.dtype.kind == "f":
        if not np.all(np.isfinite(mask)) or not np.all(mask == np.round(mask)):
            raise ImageReadError(
                f"Mask {path} holds float values such as {mask.ravel()[np.argmax(mask != np.round(mask))]!r}; "
                "labels must be whole numbers (0 = background, 1, 2, ... = classes or objects). "
                "Threshold or round it and save it as an integer image."
            )
        mask = mask.astype(np.int64)
    elif mask.dtype == bool:
        mask = mask.astype(np.uint8)
    return mask


def with_pixel_sizes(image: Image, pixel_sizes) -> Image:
    """``image`` with the ``([Z,] Y, X)`` pixel sizes given in µm (for files that do not say, or say wrongly);
    ``image`` itself when ``pixel_sizes`` is None."""
    from dataclasses import replace

    if pixel_sizes is None:
        return image
    if len(pixel_sizes) != image.spatial_dims:
        name = image.path.name if image.path is not None else "the image"
        raise ValueError(f"pixel sizes {list(pixel_sizes)} have {len(pixel_sizes)} numbers but {name} is "
                         f"{image.spatial_dims}D: give {'Z,Y,X' if image.spatial_dims == 3 else 'Y,X'} "
                         "(CLI: --pixel-size).")
    return replace(image, pixel_sizes=tuple(float(v) for v in pixel_sizes), unit="µm")


def write_ome_tiff(path, data, *, axes: str, pixel_sizes=None, unit: str | None = "µm",
                   overwrite: bool = False) -> Path:
    """Write ``data`` as OME-TIFF with its axes and pixel sizes, atomically.

    Parameters
    ----------
    path : str or Path
    data : ndarray
        Any of ``YX``, ``ZYX``, ``CYX``, ``CZYX`` (as ``axes`` says).
    axes : str
    pixel_sizes : sequence of float or None, optional
        ``([Z,] Y, X)`` in micrometres.
    unit : str or None
        What ``pixel_sizes`` are in: ``"µm"`` (as :class:`Image` says), or ``"relative"`` (Fiji's
        ``relative(x=y=1)``, only their ratios known), written as OME's ``pixel`` unit and read back so.
    overwrite : bool
        Refuse to replace an existing file unless True.
    """
    import tifffile

    path = Path(path)
    if len(axes) != np.ndim(data):
        raise ValueError(f"axes {axes!r} has {len(axes)} letters but data has {np.ndim(data)} dimensions {np.shape(data)}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already; pass overwrite=True (CLI: --overwrite) to replace it.")
    metadata = {"axes": axes}
    spatial = [a for a in axes if a in "ZYX"]
    for letter, size in zip(spatial, pixel_sizes or ()):
        if size:
            metadata[f"PhysicalSize{letter}"] = float(size)
            metadata[f"PhysicalSize{letter}Unit"] = "pixel" if unit == "relative" else "µm"
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(data), ome=True, metadata=metadata, compression="zlib")
    return path


# ---------------------------------------------------------------- axes


def _resolve_axes(raw: np.ndarray, axes: str | None, dims: int | None, path: Path) -> str:
    if axes is not None:
        axes = axes.upper()
        if set(axes) - AXES_LETTERS or len(set(axes)) != len(axes) or not axes.endswith(("YX", "YXC")):
            raise ImageReadError(
                f"Axes {axes!r} for {path} are not valid: use each of T, C, Z once at most and end with YX "
                "(or YXC for RGB), e.g. 'ZYX', 'CYX', 'ZCYX', 'YXC'."
            )
        if len(axes) != raw.ndim:
            raise ImageReadError(
                f"Axes {axes!r} name {len(axes)} dimensions but {path} has {raw.ndim}, shape {raw.shape}. "
                f"Give {raw.ndim} letters, e.g. {_guess_axes(raw, dims)!r}."
            )
        return axes
    return _guess_axes(raw, dims)


def _guess_axes(raw: np.ndarray, dims: int | None) -> str:
    shape = raw.shape
    if raw.ndim == 2:
        return "YX"
    if raw.ndim == 3:
        if shape[-1] in (3, 4) and shape[0] > 4:
            return "YXC"
        if dims == 2:
            return "CYX"
        if dims == 3:
            return "ZYX"
        return "CYX" if shape[0] <= 4 else "ZYX"
    if raw.ndim == 4:
        return "CZYX" if shape[0] <= shape[1] else "ZCYX"
    return "TCZYX"[-raw.ndim:] if raw.ndim <= 5 else "?" * raw.ndim


def _to_czyx(raw: np.ndarray, axes: str, path: Path) -> np.ndarray:
    if "?" in axes:
        raise ImageReadError(f"{path} has {raw.ndim} dimensions {raw.shape}; give its axes, e.g. axes='TCZYX'.")
    data = raw
    for letter in ("T",):
        if letter in axes:
            index = axes.index(letter)
            if data.shape[index] != 1:
                raise ImageReadError(
                    f"{path} has a time axis of length {data.shape[index]} (shape {data.shape}, axes {axes}). "
                    "Save each time point as its own file."
                )
            data = np.take(data, 0, axis=index)
            axes = axes.replace(letter, "")
    if "C" not in axes:
        data, axes = data[np.newaxis], "C" + axes
    if "Z" in axes and data.shape[axes.index("Z")] == 1:
        data, axes = np.take(data, 0, axis=axes.index("Z")), axes.replace("Z", "")
    target = "CZYX" if "Z" in axes else "CYX"
    return np.transpose(data, [axes.index(a) for a in target])


def _select_channels(data: np.ndarray, channels, path: Path) -> np.ndarray:
    channels = [channels] if isinstance(channels, int) else list(channels)
    bad = [c for c in channels if not -data.shape[0] <= c < data.shape[0]]
    if bad:
        raise ImageReadError(
            f"{path} has {data.shape[0]} channel(s) (0..{data.shape[0] - 1}); channel(s) {bad} do not exist."
        )
    return data[channels]
