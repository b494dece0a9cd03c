"""Format readers behind :func:`nbseg.io.read_image`: each returns (array, axes or None, pixel sizes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .pixel_sizes import tiff_pixel_sizes

TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")
BIOIO_SUFFIXES = (".czi", ".nd2", ".lif")
ZARR_SUFFIXES = (".ome.zarr", ".zarr")  # folders, each one image (nbseg.io.zarr)
IMAGE_SUFFIXES = TIFF_SUFFIXES + PLAIN_SUFFIXES + BIOIO_SUFFIXES + ZARR_SUFFIXES
AXES_LETTERS = set("TCZYX")
LARGE_BYTES = 512 * 2**20  # TIFFs above this are memory-mapped rather than loaded


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file and the fix."""


def read_raw(path: Path, *, lazy: bool):
    if path.is_symlink() and not path.exists():  # exists() follows the link: False for a loop or a dead end
        raise ImageReadError(f"{path} is a symbolic link that leads nowhere (a broken link, or a loop back to "
                             "itself). Point it at an image, or remove it from the folder.")
    if not path.exists():
        raise ImageReadError(f"File {path} does not exist.")
    name = path.name.lower()
    try:
        if name.endswith(TIFF_SUFFIXES):
            _check_tiff_header(path)
            return _read_tiff(path, lazy=lazy)
        if name.endswith(PLAIN_SUFFIXES):
            return _read_plain(path)
        if name.endswith(BIOIO_SUFFIXES):
            return _read_bioio(path)
    except ImageReadError:
        raise
    except Exception as err:  # the readers raise many kinds; say which file and why
        raise ImageReadError(
            f"Could not read {path}: {type(err).__name__}: {err}. The file may be truncated or not an image; "
            "open it in Fiji to check, or re-export it as TIFF."
        ) from err
    raise ImageReadError(
        f"{path} is not a supported image file (suffix {path.suffix!r}); nbseg reads {', '.join(IMAGE_SUFFIXES)}. "
        "Remove it from the folder or convert it to TIFF."
    )


# the first bytes of formats that turn up under a .tif name: an export renamed by hand
_OTHER_FORMATS = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"PK\x03\x04": ".zip", b"%PDF": ".pdf",
                  b"BM": ".bmp", b"GIF8": ".gif"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order


def _check_tiff_header(path: Path) -> None:
    """Refuse, by name, an empty file or one that is not a TIFF inside (a PNG renamed .tif, a text file)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise ImageReadError(f"{path} is empty (0 bytes): the copy or export did not finish. Copy or export it "
                             "again, or remove it from the folder.")
    if head[:4] in _TIFF_MAGIC:
        return
    for magic, suffix in _OTHER_FORMATS.items():
        if head.startswith(magic):
            fix = f"Rename it to {path.stem}{suffix}, or export" if suffix in PLAIN_SUFFIXES else "Export"
            raise ImageReadError(f"{path} is named like a TIFF but holds a {suffix[1:].upper()} file. {fix} it "
                                 "as TIFF.")
    raise ImageReadError(f"{path} is not a TIFF file (it starts with {head!r}, not a TIFF header). It may be "
                         "another kind of file given a .tif name; open it in Fiji to check, or export it as TIFF.")


def _check_complete(path: Path, series) -> None:
    """Refuse an uncompressed TIFF whose pixel data runs past the end of the file (a cut-off copy)."""
    offset = series.dataoffset  # None for compressed or scattered data: decoding finds those
    if offset is not None and offset + series.nbytes > path.stat().st_size:
        raise ImageReadError(
            f"{path} is truncated: its pixel data needs {offset + series.nbytes:,} bytes but the file has "
            f"{path.stat().st_size:,}. Copy or export the file again.")


def _read_tiff(path: Path, *, lazy: bool):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        described = tif.is_ome or tif.is_imagej or any("axes" in m for m in (tif.shaped_metadata or ()))
        sizes = tiff_pixel_sizes(tif)
        big = np.prod(series.shape) * np.dtype(series.dtype).itemsize > LARGE_BYTES
        _check_complete(path, series)
        if lazy or big:
            try:  # read-only: tifffile's default 'r+' would write to (and extend) the user's file
                data = tifffile.memmap(path, series=0, mode="r")
            except ValueError:  # compressed or not contiguous: decode into a disk-backed array
                data = series.asarray(out="memmap")
        else:
            data = series.asarray()
    # tifffile names RGB samples S and unknown axes Q/I; without ImageJ/OME metadata "S" is only
    # tifffile's guess from the photometric tag, so let the caller's dims decide instead
    if "S" in axes and not described:
        axes = None
    elif axes is not None:
        axes = axes.replace("S", "C")
        if any(a not in AXES_LETTERS for a in axes):
            axes = None
    return data, axes, sizes


def _read_plain(path: Path):
    import imageio.v3 as iio

    data = np.asarray(iio.imread(path))
    if data.ndim == 3 and data.shape[-1] == 4:
        data = data[..., :3]  # alpha carries no signal in microscopy exports
    return data, ("YXC" if data.ndim == 3 else "YX"), {}


def _read_bioio(path: Path):
    try:
        from bioio import BioImage
    except ImportError as err:  # pragma: no cover - bioio is a dependency
        raise ImageReadError(f"Reading {path} needs bioio: pip install bioio") from err
    try:
        image = BioImage(path)
    except Exception as err:
        extra = path.suffix.lower().lstrip(".")  # each bioio format has its extra: czi, nd2, lif
        hint = f" Install its reader with: pip install 'nbseg[{extra}]'." if extra in ("czi", "nd2", "lif") else ""
        raise ImageReadError(f"Could not open {path} with bioio: {err}.{hint}") from err
    data = image.get_image_data("CZYX", T=0)
    pps = image.physical_pixel_sizes
    sizes = {k: v for k, v in (("Z", pps.Z), ("Y", pps.Y), ("X", pps.X)) if v}
    return data, "CZYX", sizes
