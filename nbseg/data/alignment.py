"""Where the labels sit on their images, to a fraction of a pixel.

Masks can sit a little off the structures they mark: a drawing tool's pixel-corner convention, a
resampling on export, or an annotator who always draws on one side of a membrane. A network can learn a
constant offset, but not while flips and 90-degree rotations turn it around at every step: it hedges
instead, and draws every object a little too thick on both sides. ISBI 2012's membrane masks sit 0.57 px
above and 0.15 px left of the membranes, and all 20 sections agree (docs/benchmarks.md, session 11).

The offset is measured here, image by image: the sub-pixel shift at which the image correlates best
with its labelled foreground. The plan (``nbseg.train.plan``) has the network shift its input by the
measured offset when it is large and the images agree on it, so image and labels line up and flips keep
them lined up.
"""
from __future__ import annotations

import itertools

import numpy as np

MIN_IMAGES = 5  # fewer: no way to tell an offset of the labels from one of the objects' shading
SEPARATE_SECTIONS = 0.5  # neighbouring sections whose labels overlap less (median Dice) show different
# structures: serial sections (ISBI 2012 as one stack: 0.39), measured as images; Lucchi++ 0.96, BBBC050 0.86-0.90
MIN_OFFSET = 0.25  # px (length of the offset vector): smaller ones are within the estimate's scatter
MIN_AGREEMENT = 0.8  # share of images whose offset points the same way as the median's largest part
MAX_VOXELS = 2**18  # per image (a 512x512 section, a 16x128x128 block): a central crop beyond it keeps this quick
MAX_IMAGES = 16  # measured, spread over the set: the median is settled by then
STENCILS = (0.5, 0.2, 0.08)  # pixels: the stencil's half-width in each round


def image_offset(image: np.ndarray, foreground: np.ndarray) -> list[float]:
    """Sub-pixel offset of ``foreground`` from the structures of ``image``, per axis.

    The shift within one pixel (cubic interpolation) at which the image correlates best with the labelled
    foreground: a quadratic fitted to the correlation on a 3x3(x3) stencil of shifts, moved to its peak
    and narrowed, three times. Dark objects (membranes) count as bright ones.

    Parameters
    ----------
    image : ([Z,] Y, X) array
        One channel.
    foreground : ([Z,] Y, X) bool array
        The labelled pixels.

    Returns
    -------
    list of float
        Per axis, the shift (pixels) that moves the image onto its labels, as
        ``scipy.ndimage.shift(image, offset)`` would: negative where the labels sit at lower indices
        than the structures. NaN where the peak lies a pixel or more away.
    """
    if image.shape != foreground.shape:
        raise ValueError(f"image {image.shape} and foreground {foreground.shape} differ in shape.")
    image, foreground = _central_crop(image), _central_crop(foreground)
    im = image.astype(np.float32)
    im = (im - im.mean()) / (im.std() + 1e-6)
    fg = foreground.astype(np.float32)
    fg -= fg.mean()
    inner = (slice(3, -3),) * im.ndim  # away from the wrap-around of np.roll
    sign = 1.0 if float(np.mean(im[inner] * fg[inner])) >= 0 else -1.0

    moved = {}  # by the shifts along the first axes: stencil points share their prefixes

    def shifted(shift: tuple) -> np.ndarray:
        if shift not in moved:
            before = shifted(shift[:-1])
            moved[shift] = _shift1d(before, shift[-1], len(shift) - 1) if shift[-1] else before
        return moved[shift]

    def score(shift):
        return sign * float(np.mean(shifted(tuple(shift))[inner] * fg[inner]))

    centre = np.zeros(im.ndim)
    for h in STENCILS:
        moved.clear()  # a new centre: no prefix repeats
        moved[()] = im
        steps = np.array(list(itertools.product((-h, 0.0, h), repeat=im.ndim)))
        centre = centre + _quadratic_peak(steps, [score(centre + d) for d in steps], h)
        if np.any(np.abs(centre) >= 1):
            return [float("nan")] * im.ndim
    return [float(v) for v in centre]


def _quadratic_peak(steps: np.ndarray, scores, h: float) -> np.ndarray:
    """The peak of the quadratic through ``scores`` at ``steps`` (no farther than ``h`` per axis); the
    best step when the fit has no peak."""
    d = steps.shape[1]
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    design = np.column_stack([np.ones(len(steps)), steps] + [steps[:, i] * steps[:, j] for i, j in pairs])
    coef = np.linalg.lstsq(design, np.asarray(scores), rcond=None)[0]
    grad, hess = coef[1:d + 1], np.zeros((d, d))
    for (i, j), c in zip(pairs, coef[d + 1:]):
        hess[i, j] += c if i != j else 2 * c
        hess[j, i] += c if i != j else 0.0
    if np.all(np.linalg.eigvalsh(hess) < 0):
        return np.clip(-np.linalg.solve(hess, grad), -h, h)
    return steps[int(np.argmax(scores))]


def _shift1d(a: np.ndarray, shift: float, axis: int) -> np.ndarray:
    """``a`` moved by ``shift`` pixels along ``axis`` (out[i] = a(i - shift)), Keys' cubic convolution."""
    n = int(np.floor(-shift))
    u = -shift - n
    weights = (((-0.5 * u + 1) * u - 0.5) * u, (1.5 * u - 2.5) * u * u + 1, ((-1.5 * u + 2) * u + 0.5) * u,
               (0.5 * u - 0.5) * u * u)
    return sum(w * np.roll(a, -(n + m), axis=axis) for w, m in zip(weights, (-1, 0, 1, 2)) if w)


def _central_crop(a: np.ndarray) -> np.ndarray:
    while a.size > MAX_VOXELS:  # halve the longest axis around its centre
        axis = int(np.argmax(a.shape))
        n = a.shape[axis]
        a = np.take(a, np.arange(n // 4, n // 4 + n // 2), axis=axis)
    return a


def label_offset(samples) -> dict:
    """The labels' offset over a training set, and whether it is clear enough to act on.

    Parameters
    ----------
    samples : list of nbseg.data.dataset.Sample
        Normalised images (the first channel is used) and their targets (``> 0`` is foreground). With fewer
        than ``MIN_IMAGES`` stacks, the sections of serial-section stacks are measured as images.

    Returns
    -------
    dict
        ``offset`` (median per axis, pixels; 0 along Z for sections), ``images`` (how many images or
        sections were measured), ``agreement``
        (share of them on the median's side along its largest axis), ``clear`` (bool) and ``reason``.
    """
    labelled, noun = _measured(samples)
    if len(labelled) < MIN_IMAGES:
        return {"offset": None, "images": len(labelled), "agreement": None, "clear": False,
                "reason": f"not measured: {len(labelled)} labelled images, {MIN_IMAGES} are needed to tell"}
    spread = np.linspace(0, len(labelled) - 1, min(len(labelled), MAX_IMAGES)).round().astype(int)
    dims = samples[0].target.ndim
    # a section's estimate is in-plane: no offset along Z
    estimates = [[0.0] * (dims - labelled[i][1].ndim) + image_offset(*labelled[i]) for i in spread]
    per_image = np.array(estimates)
    median = np.nan_to_num(np.nanmedian(per_image, axis=0)).round(3)
    main = int(np.argmax(np.abs(median)))
    agreement = float(np.mean(np.sign(per_image[:, main]) == np.sign(median[main])))
    length = float(np.linalg.norm(median))
    clear = length >= MIN_OFFSET and agreement >= MIN_AGREEMENT
    reason = (f"{length:.2f} px, {agreement:.0%} of {len(estimates)} {noun} agree"
              + ("" if clear else f" (acted on from {MIN_OFFSET} px and {MIN_AGREEMENT:.0%})"))
    return {"offset": median.tolist(), "images": len(estimates), "agreement": round(agreement, 3),
            "clear": bool(clear), "reason": reason}


def _measured(samples) -> tuple[list, str]:
    """(image, foreground) pairs to measure and what they are: the labelled images, or, with fewer than
    ``MIN_IMAGES`` stacks, the sections of the stacks whose neighbouring sections label different structures."""
    labelled = [(s.image[0], s.target > 0) for s in samples if (s.target > 0).any() and (s.target == 0).any()]
    if len(labelled) >= MIN_IMAGES or not labelled or labelled[0][1].ndim != 3:
        return labelled, "images"
    sections = [(image[z], fg[z]) for image, fg in labelled if _neighbour_dice(fg) < SEPARATE_SECTIONS
                for z in range(fg.shape[0]) if fg[z].any() and not fg[z].all()]
    return (sections, "sections") if len(sections) >= MIN_IMAGES else (labelled, "images")


def _neighbour_dice(foreground: np.ndarray) -> float:
    """Median Dice of each labelled section of a (Z, Y, X) mask with the next one."""
    a, b = foreground[:-1], foreground[1:]
    sums = (a.sum(axis=(1, 2)) + b.sum(axis=(1, 2))).astype(float)
    shared = 2 * (a & b).sum(axis=(1, 2))
    return float(np.median(shared[sums > 0] / sums[sums > 0])) if (sums > 0).any() else 1.0


def describe_offset(offset, axes: str) -> str:
    """'0.63 px up, 0.21 px left' for an offset along ``axes`` (e.g. ``"YX"``)."""
    words = {"Z": ("shallower", "deeper"), "Y": ("up", "down"), "X": ("left", "right")}
    parts = [f"{abs(v):.2f} px {words[a][v > 0]}" for a, v in zip(axes, offset) if abs(v) >= 0.005]
    return ", ".join(parts) or "none"
