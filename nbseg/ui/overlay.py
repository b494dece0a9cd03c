"""Pictures for people: display scaling, label overlays, colour maps, orthogonal views and PNG bytes.
Core, numpy only (PNG through imageio); the viewers in ``nbseg.ui`` show what these functions return."""
from __future__ import annotations

import io

import numpy as np

from ..config import DEFAULT_PERCENTILES

# A short, colour-blind-friendly cycle for object labels (RGB, 0..255).
LABEL_COLORS = np.array([
    [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0],
    [204, 121, 167], [255, 255, 255], [153, 153, 255], [255, 102, 102], [102, 255, 178], [255, 178, 102],
], dtype=np.uint8)

# Anchors of perceptual maps (viridis for probability, magma-like for uncertainty), interpolated.
_MAPS = {
    "viridis": [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    "magma": [(0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)],
    "gray": [(0, 0, 0), (255, 255, 255)],
    # blue - grey - red (coolwarm's anchors), for signed values such as a difference: grey is zero
    "diverging": [(59, 76, 192), (141, 176, 254), (221, 221, 221), (244, 154, 123), (180, 4, 38)],
}


UNLABELLED_COLOR = (70, 110, 160)  # blue-grey: not a label colour, not the red of excluded pixels


def to_uint8(image, *, percentiles=DEFAULT_PERCENTILES, low=None, high=None) -> np.ndarray:
    """Scale ``image`` to 0..255 for display between two percentiles (or given ``low``/``high``)."""
    image = np.asarray(image, dtype=np.float32)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, np.uint8)
    if low is None or high is None:
        lo, hi = np.percentile(finite, percentiles)
        low = lo if low is None else low
        high = hi if high is None else high
    if high <= low:
        high = low + 1e-6
    scaled = (np.nan_to_num(image, nan=low) - low) / (high - low)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def colormap(values, name: str = "viridis", *, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Map a 2D array to RGB uint8 with one of ``viridis``, ``magma``, ``gray``, ``diverging``."""
    if name not in _MAPS:
        raise ValueError(f"colour map {name!r} is unknown; use one of {', '.join(_MAPS)}.")
    anchors = np.asarray(_MAPS[name], dtype=np.float32)
    t = np.clip((np.asarray(values, np.float32) - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    t = np.nan_to_num(t) * (len(anchors) - 1)
    i = np.minimum(t.astype(int), len(anchors) - 2)
    frac = (t - i)[..., None]
    return (anchors[i] * (1 - frac) + anchors[i + 1] * frac).astype(np.uint8)


def gray_rgb(image2d, **scale) -> np.ndarray:
    """A 2D image as grey RGB uint8."""
    grey = to_uint8(image2d, **scale) if np.asarray(image2d).dtype != np.uint8 else np.asarray(image2d)
    return np.repeat(grey[..., None], 3, axis=-1)


def boundaries(labels2d) -> np.ndarray:
    """Pixels whose right or lower neighbour carries another label (both sides of the edge)."""
    labels = np.asarray(labels2d)
    edge = np.zeros(labels.shape, bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge & ((labels != 0) | np.roll(labels != 0, 1, 0) | np.roll(labels != 0, 1, 1))


def overlay(image2d, labels2d=None, *, alpha: float = 0.4, outline: bool = True, excluded=None,
            unlabelled=None, **scale) -> np.ndarray:
    """Grey image with each label filled in its colour at ``alpha``, outlined, ``excluded`` pixels hatched red
    and ``unlabelled`` ones tinted blue-grey.

    Parameters
    ----------
    image2d : (Y, X) array, or (Y, X, 3) uint8 RGB
    labels2d : (Y, X) int array, optional
        0 is background; 1, 2, ... get colours from :data:`LABEL_COLORS` (cycled).
    excluded : (Y, X) bool array, optional
        Pixels left out of training, drawn with a red stripe pattern.
    unlabelled : (Y, X) bool array, optional
        Pixels nobody labelled (the mask's "not labelled" value), tinted :data:`UNLABELLED_COLOR`.
    """
    image2d = np.asarray(image2d)
    rgb = image2d.copy() if image2d.ndim == 3 else gray_rgb(image2d, **scale)
    rgb = rgb.astype(np.float32)
    if labels2d is not None:
        labels = np.asarray(labels2d)
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"labels shape {labels.shape} differs from the image's {rgb.shape[:2]}.")
        fg = labels > 0
        colors = LABEL_COLORS[(labels.astype(np.int64) - 1) % len(LABEL_COLORS)].astype(np.float32)
        rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors[fg]
        if outline:
            edge = boundaries(labels)
            rgb[edge] = colors[edge]
    if unlabelled is not None:
        unl = np.asarray(unlabelled, bool)
        rgb[unl] = 0.45 * rgb[unl] + 0.55 * np.asarray(UNLABELLED_COLOR, np.float32)
    if excluded is not None:
        ex = np.asarray(excluded, bool)
        yy, xx = np.indices(ex.shape)
        stripes = ex & (((yy + xx) // 3) % 2 == 0)
        rgb[stripes] = 0.4 * rgb[stripes] + 0.6 * np.array([255, 0, 0], np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def plane(array, z: int | None = None, channel: int = 0) -> np.ndarray:
    """A 2D plane of a ``(C, [Z,] Y, X)`` image or a ``([Z,] Y, X)`` label array."""
    array = np.asarray(array)
    if array.ndim == 4:
        array = array[channel]
    if array.ndim == 3 and z is not None:
        return array[int(np.clip(z, 0, array.shape[0] - 1))]
    if array.ndim == 3:  # (C, Y, X) image
        return array[channel]
    return array


def orthogonal(volume, z: int, y: int, x: int) -> dict[str, np.ndarray]:
    """The three planes through ``(z, y, x)`` of a ``(Z, Y, X)`` volume: ``yx``, ``zx`` and ``zy``."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"orthogonal views need a (Z, Y, X) volume; got shape {volume.shape}.")
    z, y, x = (int(np.clip(v, 0, n - 1)) for v, n in zip((z, y, x), volume.shape))
    return {"yx": volume[z], "zx": volume[:, y, :], "zy": volume[:, :, x]}


def z_scale_of(pixel_sizes) -> float:
    """Z spacing over X spacing from ``(Z, Y, X)`` pixel sizes, so views of anisotropic stacks keep
    their proportions; 1 when the sizes are unknown (None) or not 3D."""
    sizes = tuple(pixel_sizes or ())
    if len(sizes) != 3 or not sizes[0] or not sizes[-1]:
        return 1.0
    return float(sizes[0]) / float(sizes[-1])


def stretch_z(plane2d, factor: float) -> np.ndarray:
    """Repeat rows of a Z-by-something plane ``factor`` times (nearest), for anisotropic voxels."""
    reps = max(1, int(round(factor)))
    return np.repeat(np.asarray(plane2d), reps, axis=0)


def side_by_side(*images, gap: int = 4, fill: int = 40) -> np.ndarray:
    """RGB images next to each other (top-aligned), separated by ``gap`` pixels."""
    images = [np.asarray(i) if np.asarray(i).ndim == 3 else gray_rgb(i) for i in images]
    height = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        pad = np.full((height, im.shape[1], 3), fill, np.uint8)
        pad[:im.shape[0]] = im
        parts.append(pad)
        if k < len(images) - 1:
            parts.append(np.full((height, gap, 3), fill, np.uint8))
    return np.concatenate(parts, axis=1)


def upscale(rgb, min_size: int = 256) -> np.ndarray:
    """Enlarge small images by a whole factor (nearest) so the shorter side reaches ``min_size``."""
    rgb = np.asarray(rgb)
    factor = max(1, int(np.ceil(min_size / max(1, min(rgb.shape[:2])))))
    factor = min(factor, 8)
    return rgb if factor == 1 else np.repeat(np.repeat(rgb, factor, 0), factor, 1)


LARGE_PICTURE = 600_000  # pixels beyond which a redraw is sent as JPEG: PNG takes ~150 ms there, JPEG ~5 ms


def picture_bytes(rgb) -> tuple[bytes, str]:
    """``(bytes, format)`` of a picture to show: PNG (exact pixels) for small ones, JPEG (quality 92, ~10x
    smaller) for large ones, so an edit on a 1024x1024 image redraws at once, in Colab too."""
    rgb = np.ascontiguousarray(np.asarray(rgb, np.uint8))
    if rgb.shape[0] * rgb.shape[1] <= LARGE_PICTURE:
        return png_bytes(rgb), "png"
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue(), "jpeg"


def png_bytes(rgb) -> bytes:
    """Encode an RGB (or grey) uint8 image as PNG, lightly compressed: a redraw after each edit must stay
    quick (zlib level 1 encodes a 1024x1024 overlay about 8 times faster than the default, ~1.5x larger)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(rgb, np.uint8))).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def parse_vertices(text: str, *, minimum: int = 3) -> list[tuple[float, float]]:
    """Parse typed vertices ``"y,x; y,x; y,x"`` (or one pair per line) into ``[(y, x), ...]``; a polygon
    needs ``minimum`` of them (clicks and strokes fewer)."""
    pairs = []
    for chunk in text.replace("\n", ";").split(";"):
        chunk = chunk.strip().strip("()[]")
        if not chunk:
            continue
        parts = [p for p in chunk.replace(" ", ",").split(",") if p.strip()]
        if len(parts) != 2:
            raise ValueError(f"vertex {chunk!r} is not 'y, x'; write vertices like '10,20; 10,80; 60,50'.")
        try:
            pairs.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ValueError(f"vertex {chunk!r} holds something that is not a number; write e.g. '10,20'.") from None
    if len(pairs) < minimum:
        raise ValueError(f"a polygon needs at least {minimum} vertices; got {len(pairs)}. Write e.g. "
                         "'10,20; 10,80; 60,50'.")
    return pairs
