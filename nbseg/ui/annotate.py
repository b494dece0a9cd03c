"""What a picture needs to be read: a scale bar in µm, colour bars for probability and uncertainty
maps, and a legend of the classes' colours, drawn into the RGB picture itself (numpy; letters through
Pillow's built-in font, imported when text is drawn), so a saved or pasted screenshot keeps them.
No widgets here; :class:`nbseg.ui.viewers.Viewer2D` draws them on what it shows."""
from __future__ import annotations

import numpy as np

from . import overlay as ov

BAR_SHARE = 0.2  # a scale bar about a fifth of the image's width: long enough to read, short enough to fit
NICE = (1, 2, 5)  # scale bars are 1, 2 or 5 times a power of ten µm long
TEXT_HEIGHT = 15  # pixels of a line of text (room below the baseline for µ's descender)
WHITE, BLACK, PANEL = (255, 255, 255), (0, 0, 0), (40, 40, 40)


def text_mask(text: str, height: int = TEXT_HEIGHT) -> np.ndarray:
    """``(height, W)`` bool array: where ``text`` is drawn (Pillow's built-in font; it has no µ, so a µ
    is drawn as a u with a descender on its left stroke)."""
    if "µ" in text:
        parts = [_glyphs(p, height) for p in text.split("µ")]
        mu = _mu(height)
        joined = [parts[0]]
        for part in parts[1:]:
            joined += [mu, part]
        return np.concatenate(joined, axis=1)
    return _glyphs(text, height)


def _mu(height: int) -> np.ndarray:
    mask = _glyphs("u", height)
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask[:, cols[0]]) if cols.size else []
    if cols.size and len(rows):
        mask[rows[0]:, cols[0]] = True  # the left stroke, down to the bottom of the line
    return mask


def _glyphs(text: str, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    if not text:
        return np.zeros((height, 0), bool)
    font = ImageFont.load_default(size=max(6, height - 3))
    left, _top, right, _bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    canvas = Image.new("L", (max(1, right - min(left, 0) + 1), height))
    ImageDraw.Draw(canvas).text((-min(left, 0), 0), text, fill=255, font=font)
    return np.asarray(canvas) > 96


def _put_text(rgb: np.ndarray, text: str, y: int, x: int, color=WHITE, height: int = TEXT_HEIGHT) -> int:
    """Draw ``text`` into ``rgb`` with its top-left at ``(y, x)`` (clipped); returns its width."""
    mask = text_mask(text, height)
    h, w = min(mask.shape[0], rgb.shape[0] - y), min(mask.shape[1], rgb.shape[1] - x)
    if h > 0 and w > 0:
        rgb[y:y + h, x:x + w][mask[:h, :w]] = color
    return mask.shape[1]


def nice_length(pixel_size: float, width_px: int, share: float = BAR_SHARE) -> float:
    """The scale bar's length in µm: 1, 2 or 5 times a power of ten, the longest not over ``share`` of
    ``width_px`` pixels of ``pixel_size`` µm (at least the smallest such length)."""
    if not pixel_size or pixel_size <= 0:
        raise ValueError(f"pixel size is {pixel_size}; give a positive size in µm per pixel.")
    target = share * width_px * pixel_size
    exponent = int(np.floor(np.log10(target)))
    options = [n * 10.0 ** e for e in (exponent - 1, exponent) for n in NICE]
    fitting = [v for v in options if v <= target]
    return max(fitting) if fitting else min(options)


def _label(length_um: float) -> str:
    if length_um >= 1000:
        return f"{length_um / 1000:g} mm"
    return f"{length_um:g} µm" if length_um >= 1 else f"{length_um * 1000:g} nm"


def add_scale_bar(rgb, pixel_size: float, *, region=None) -> np.ndarray:
    """A copy of ``rgb`` with a white scale bar and its length, bottom left of ``region``.

    Parameters
    ----------
    rgb : (H, W, 3) uint8
    pixel_size : float
        µm per shown pixel (the image's pixel size over the display's enlargement).
    region : (height, width), optional
        The top-left part of ``rgb`` that is the image (a viewer shows maps and views beside it).
    """
    out = np.array(rgb, np.uint8, copy=True)
    height, width = region or out.shape[:2]
    length = nice_length(pixel_size, width)
    bar = max(1, int(round(length / pixel_size)))
    thick = max(2, height // 80)
    x0, y0 = max(2, width // 40), height - max(4, height // 30) - thick
    out[max(0, y0 - 1):y0 + thick + 1, max(0, x0 - 1):x0 + bar + 1] = BLACK  # outline: readable on white too
    out[y0:y0 + thick, x0:x0 + bar] = WHITE
    text = _label(length)
    top = max(0, y0 - TEXT_HEIGHT - 2)
    _put_text(out[:height, :width], text, top + 1, x0 + 1, BLACK)  # a shadow, for bright images
    _put_text(out[:height, :width], text, top, x0)
    return out


def view_scale(pixel_sizes, unit: str | None = "µm") -> dict:
    """A viewer's ``pixel_size`` (µm per in-plane X pixel, for the scale bar; None unless the sizes are in µm)
    and ``z_scale`` (Z spacing over X, for orthogonal views; 1 when unknown) from ``([Z,] Y, X)`` pixel sizes.

    Parameters
    ----------
    pixel_sizes : sequence of float or None, or None
    unit : str or None
        What the sizes are in: ``"µm"``, ``"relative"`` (only their ratios mean something: no bar) or None.
    """
    sizes = tuple(pixel_sizes or ())
    size = float(sizes[-1]) if unit == "µm" and sizes and sizes[-1] and sizes[-1] > 0 else None
    return {"pixel_size": size, "z_scale": ov.z_scale_of(sizes)}


def result_scale(result_sizes, image=None, result_unit: str | None = "µm") -> dict:
    """:func:`view_scale` of a predicted image: its input's pixel sizes where they are in µm (the project's
    ``data.pixel_sizes`` applied), else the result file's (as predict wrote them, ``--pixel-size`` included),
    in ``result_unit``; files written before nbseg kept the unit hold an input's relative sizes (Fiji's
    ``relative(x=y=1)``) as µm, and those count as relative.

    Parameters
    ----------
    result_sizes : ([Z,] Y, X) sequence of float or None
        As :func:`nbseg.predict.outputs.read_probability` returns them.
    image : nbseg.io.images.Image, optional
        The input the result was predicted from, when it is at hand.
    result_unit : str or None
        What the result file's sizes are in (read_probability says).
    """
    sizes = tuple(result_sizes or ())
    unit = getattr(image, "unit", None)
    theirs = tuple(image.pixel_sizes or ()) if image is not None else ()
    if unit == "µm":
        return view_scale(theirs, unit)
    copied = unit == "relative" and len(theirs) == len(sizes) and \
        np.allclose([s or 0 for s in sizes], [s or 0 for s in theirs])
    if any(sizes) and not copied:
        return view_scale(sizes, result_unit)
    return view_scale(theirs, unit)


def colour_bar(title: str, cmap: str, width: int, *, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """``(H, width, 3)`` uint8: the colour ramp of ``cmap`` from ``vmin`` (left) to ``vmax`` (right), with
    both ends and the middle written under it and ``title`` above."""
    width = max(width, 60)
    bar_h = 10
    out = np.full((TEXT_HEIGHT * 2 + bar_h + 6, width, 3), PANEL, np.uint8)
    _put_text(out, title, 1, 2)
    ramp = ov.colormap(np.linspace(vmin, vmax, width - 4)[None].repeat(bar_h, 0), cmap, vmin=vmin, vmax=vmax)
    out[TEXT_HEIGHT + 2:TEXT_HEIGHT + 2 + bar_h, 2:width - 2] = ramp
    y = TEXT_HEIGHT + bar_h + 4
    middle = f"{(vmin + vmax) / 2:g}"
    _put_text(out, f"{vmin:g}", y, 2)
    _put_text(out, middle, y, width // 2 - text_mask(middle).shape[1] // 2)
    _put_text(out, f"{vmax:g}", y, width - 2 - text_mask(f"{vmax:g}").shape[1])
    return out


def caption(text: str, width: int) -> np.ndarray:
    """``(H, width, 3)`` uint8: one line of ``text`` on the panels' dark grey, to name a picture above it."""
    out = np.full((TEXT_HEIGHT + 4, max(width, 1), 3), PANEL, np.uint8)
    _put_text(out, text, 2, 2)
    return out


def legend(names, width: int) -> np.ndarray:
    """``(H, width, 3)`` uint8: one swatch in each class's overlay colour and its name, row by row.

    Parameters
    ----------
    names : sequence of str
        Names of labels 1, 2, ... (0, background, is not drawn), coloured as :func:`nbseg.ui.overlay.overlay`
        colours them.
    """
    names = list(names)
    width = max(width, 60)
    items = [(ov.LABEL_COLORS[k % len(ov.LABEL_COLORS)], str(n)) for k, n in enumerate(names)]
    rows, x, y = [], 2, 0
    for color, name in items:  # lay the items out left to right, wrapping at the width
        item_w = TEXT_HEIGHT + 4 + text_mask(name).shape[1] + 10
        if x > 2 and x + item_w > width:
            x, y = 2, y + TEXT_HEIGHT + 4
        rows.append((y, x, color, name))
        x += item_w
    out = np.full((y + TEXT_HEIGHT + 6, width, 3), PANEL, np.uint8)
    for y, x, color, name in rows:
        out[y + 3:y + 3 + TEXT_HEIGHT - 2, x:x + TEXT_HEIGHT - 2] = color
        _put_text(out, name, y + 2, x + TEXT_HEIGHT + 2)
    return out


def below(picture, *strips, gap: int = 4, fill: int = 40) -> np.ndarray:
    """``picture`` with ``strips`` (RGB) stacked under it, left-aligned, padded to one width."""
    parts = [np.asarray(picture, np.uint8), *[np.asarray(s, np.uint8) for s in strips]]
    width = max(p.shape[1] for p in parts)
    out = []
    for k, part in enumerate(parts):
        out.append(np.pad(part, ((0, 0), (0, width - part.shape[1]), (0, 0)), constant_values=fill))
        if k < len(parts) - 1:
            out.append(np.full((gap, width, 3), fill, np.uint8))
    return np.concatenate(out, axis=0)


__all__ = ["add_scale_bar", "below", "caption", "colour_bar", "legend", "nice_length", "result_scale", "text_mask", "view_scale"]
