"""Image files in a folder, and matching files by name (stem): ``cell_01.tif`` with ``cell_01.png``."""
from __future__ import annotations

from pathlib import Path

from .readers import IMAGE_SUFFIXES


def file_stem(path) -> str:
    """Name without image suffixes: ``a/b.ome.tif`` -> ``b``."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_image_file(path) -> bool:
    return Path(path).name.lower().endswith(IMAGE_SUFFIXES) and not Path(path).name.startswith(".")


def image_files(folder) -> list[Path]:
    """Image files in ``folder`` (not recursive), sorted by name.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist or holds no image file.
    """
    folder = Path(folder)
    if is_image_file(folder):  # a .ome.zarr folder is one image, not a folder of images
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"Folder {folder} does not exist. Check the path (it is relative to {Path.cwd()}).")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:5]
        raise FileNotFoundError(
            f"Folder {folder} holds no image file (looked for {', '.join(IMAGE_SUFFIXES)}); "
            f"found {others or 'nothing'}. Point to the folder that holds the images."
        )
    return files


class PairingError(ValueError):
    """Files do not pair up by name (two files share a stem, or one has no partner); the message names them."""


KEEP_ONE = "Keep one: rename the other or move it out of the folder."


def by_stem(paths, where: str, *, fix: str = KEEP_ONE) -> dict[str, Path]:
    """``{file_stem(path): path}``: the one way files are matched by name (images with masks, predictions
    with ground truth, results with inputs).

    Parameters
    ----------
    paths : iterable of Path
    where : str
        What the files are, for the message (e.g. ``"image files in data/images"``).
    fix : str
        How to resolve two files with the same stem.

    Raises
    ------
    PairingError
        If two files share a stem (``cell.tif`` next to ``cell.png``): keeping either one silently would
        pair the other's mask with the wrong pixels, or overwrite its results.
    """
    found: dict[str, Path] = {}
    for path in paths:
        stem = file_stem(path)
        if stem in found:
            raise PairingError(f"Two {where} share the name {stem!r}: {found[stem]} and {path}. {fix}")
        found[stem] = Path(path)
    return found


def files_by_stem(folder, role: str = "image") -> dict[str, Path]:
    """``{file_stem(path): path}`` of the image files in ``folder``: how images and masks are paired.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist or holds no image file (see :func:`image_files`).
    PairingError
        If two files share a stem (see :func:`by_stem`).
    """
    return by_stem(image_files(folder), f"{role} files in {folder}")


__all__ = ["PairingError", "by_stem", "file_stem", "files_by_stem", "image_files", "is_image_file"]
