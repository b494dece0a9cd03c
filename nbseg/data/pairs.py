"""Pair image files with mask files (and optional Seg2 / merging / excluding masks) by file stem."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io.images import PairingError, files_by_stem

__all__ = ["Pair", "PairingError", "find_pairs"]  # PairingError is io's: one error for every pairing by name


@dataclass
class Pair:
    """One training example's files; optional ones are None."""

    name: str
    image: Path
    mask: Path | None = None
    seg2: Path | None = None
    merging: Path | None = None
    excluding: Path | None = None


def find_pairs(images, masks=None, *, seg2=None, merging=None, excluding=None, role: str = "mask") -> list[Pair]:
    """Match files across folders by stem (``cell_01.tif`` with ``cell_01.png``).

    Parameters
    ----------
    images, masks : str or Path
        Folders. Every image needs a mask and every mask an image.
    seg2, merging, excluding : str or Path, optional
        Folders whose files are optional per image, but must each name an existing image.
    role : str
        What the ``masks`` files are, for messages (CARE's clean images: "target").

    Raises
    ------
    PairingError
        Listing every unmatched file.
    """
    image_by_stem = files_by_stem(images, "image")
    pairs = {stem: Pair(name=stem, image=path) for stem, path in sorted(image_by_stem.items())}
    problems: list[str] = []
    if masks is not None:
        mask_by_stem = files_by_stem(masks, role)
        no_mask = sorted(set(pairs) - set(mask_by_stem))
        no_image = sorted(set(mask_by_stem) - set(pairs))
        if no_mask:
            problems.append(f"images without a {role} in {masks}: {', '.join(image_by_stem[s].name for s in no_mask)}")
        if no_image:
            problems.append(f"{role}s without an image in {images}: {', '.join(mask_by_stem[s].name for s in no_image)}")
        for stem, path in mask_by_stem.items():
            if stem in pairs:
                pairs[stem].mask = path
    for folder, attribute in ((seg2, "seg2"), (merging, "merging"), (excluding, "excluding")):
        if folder is None:
            continue
        extra = files_by_stem(folder, attribute)
        orphans = sorted(set(extra) - set(pairs))
        if orphans:
            problems.append(f"{attribute} files without an image: {', '.join(extra[s].name for s in orphans)}")
        for stem, path in extra.items():
            if stem in pairs:
                setattr(pairs[stem], attribute, path)
    if problems:
        raise PairingError("Files do not pair up by name — " + "; ".join(problems)
                           + f". Each {role} must have the same name as its image (the suffix may differ).")
    return list(pairs.values())
