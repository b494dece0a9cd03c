"""Pixel sizes from TIFF metadata: OME (with its units), Fiji/ImageJ calibration (``unit``,
``spacing``, X/YResolution, including ``relative(x=y=1)``) and the TIFF resolution tags.

Each function returns ``{"X": .., "Y": .., "Z": .., "unit": ..}`` with the sizes in micrometres
(``unit`` "µm"), or in the file's relative units (``unit`` "relative": only their ratios mean
something, which is what the anisotropy of a stack needs); keys the file does not give are absent.
"""
from __future__ import annotations

import re

# micrometres per unit, for the spellings OME, ImageJ and Fiji write
TO_MICRONS = {"m": 1e6, "mm": 1e3, "cm": 1e4, "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
              "\\u00b5m": 1.0, "μm": 1.0, "nm": 1e-3, "nanometer": 1e-3, "å": 1e-4, "a": 1e-4, "pm": 1e-6}
RELATIVE_UNITS = ("pixel", "pixels", "px", "relative", "")


def tiff_pixel_sizes(tif) -> dict:
    """Pixel sizes of an open :class:`tifffile.TiffFile` (OME first, then ImageJ, then TIFF tags)."""
    if tif.is_ome and tif.ome_metadata:
        return _ome_sizes(tif.ome_metadata)
    if tif.is_imagej:
        return _imagej_sizes(tif.imagej_metadata or {}, tif.pages[0])
    return _resolution_tag_sizes(tif.pages[0])


def _ome_sizes(xml: str) -> dict:
    pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
    text = pixels.group(0) if pixels else xml
    sizes: dict = {}
    relative: dict = {}  # OME's "pixel" unit: sizes known only as ratios (nbseg writes Fiji's relative ones so)
    for letter in "XYZ":
        found = re.search(rf'PhysicalSize{letter}="([0-9.eE+-]+)"', text)
        if not found or float(found.group(1)) <= 0:
            continue
        unit = re.search(rf'PhysicalSize{letter}Unit="([^"]+)"', text)
        unit = unit.group(1).lower() if unit else "µm"
        if unit in RELATIVE_UNITS:
            relative[letter] = float(found.group(1))
        elif unit in TO_MICRONS:
            sizes[letter] = float(found.group(1)) * TO_MICRONS[unit]
    if sizes:
        return dict(sizes, unit="µm")
    return dict(relative, unit="relative") if relative else {}


def _imagej_sizes(meta: dict, page) -> dict:
    unit = str(meta.get("unit", "")).strip().lower()
    xy = _resolution(page)
    if unit.startswith("relative") or unit in RELATIVE_UNITS:
        # Fiji's "relative(x=y=1)": X and Y are 1, Z is the spacing in the same relative unit
        sizes = {"X": xy.get("X", 1.0), "Y": xy.get("Y", 1.0), "unit": "relative"}
        if "spacing" in meta:
            sizes["Z"] = float(meta["spacing"])
        return sizes if "Z" in sizes or unit else {}
    factor = TO_MICRONS.get(unit)
    if factor is None:
        return {}
    sizes = {k: v * factor for k, v in xy.items()}
    if "spacing" in meta:
        sizes["Z"] = float(meta["spacing"]) * factor
    if sizes:
        sizes["unit"] = "µm"
    return sizes


def _resolution_tag_sizes(page) -> dict:
    """Only a centimetre resolution unit is trusted: 72 or 200 'pixels per inch' are scanner defaults."""
    unit = page.tags.get("ResolutionUnit")
    if unit is None or getattr(unit.value, "name", str(unit.value)) not in ("CENTIMETER", "3"):
        return {}
    sizes = {k: v * TO_MICRONS["cm"] for k, v in _resolution(page).items()}
    if sizes:
        sizes["unit"] = "µm"
    return sizes


def _resolution(page) -> dict:
    """Pixel size in the file's unit from X/YResolution (pixels per unit)."""
    sizes = {}
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in page.tags:
            num, den = page.tags[tag].value
            if num and den:
                sizes[letter] = den / num
    return sizes
