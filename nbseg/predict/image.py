"""Predict one image with a project's models: sliding window x TTA x ensemble, memory-bounded."""
from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import check_choice
from ..data.normalize import DEFAULT_PERCENTILES, intensity_bounds
from .ensemble import UNCERTAINTY_CHOICES, TilePredictor, check_image, ensemble_info, load_ensemble
from .heap import retained_heap
from ..io.images import Image, read_image
from .tiling import DiskArray, check_tile, sliding_window
from .tta import tta_variants

if TYPE_CHECKING:
    import pandas

SLAB = 8  # first-axis slices per step when summarising disk-backed results


@dataclass
class Prediction:
    """The result of :func:`predict_image`.

    Attributes
    ----------
    stored : (K, [Z,] Y, X) ndarray
        Mean probabilities of classes 1..K-1 over models x TTA variants, then the uncertainty
        (float16 unless asked otherwise; memory-mapped from disk for volumes beyond the memory
        budget). Class 0 is 1 minus the others and is built only when asked for.
    kind : {"binary", "instances", "multiclass"}
    class_names : tuple of str
    uncertainty_score : float
        Mean uncertainty over the objects and their disputed borders (pixels with foreground
        probability or uncertainty of 0.5 or more); 0 where there is neither.
    name : str
    pixel_sizes : tuple
    n_passes : int
        Models x TTA variants averaged.
    """

    stored: np.ndarray
    kind: str
    class_names: tuple
    uncertainty_score: float = 0.0
    name: str = ""
    pixel_sizes: tuple = field(default=())
    n_passes: int = 1

    @property
    def uncertainty(self) -> np.ndarray:
        """``([Z,] Y, X)`` per-pixel uncertainty in [0, 1] (see ``TilePredictor``)."""
        return self.stored[-1]

    @property
    def probabilities(self) -> np.ndarray:
        """``(K, [Z,] Y, X)`` class probabilities (a new array: class 0 is computed)."""
        return self.class_probabilities()

    def class_probabilities(self, part=slice(None)) -> np.ndarray:
        """``(K, ...)`` class probabilities of ``part``, a slice along the first spatial axis."""
        others = np.asarray(self.stored[:-1, part])
        background = 1 - others.sum(axis=0, dtype=np.float32)
        return np.concatenate([background[np.newaxis].astype(others.dtype), others])

    @property
    def foreground(self) -> np.ndarray:
        """``([Z,] Y, X)`` probability that a pixel belongs to any object class (a view for binary)."""
        return self.stored[0] if self.kind == "binary" else self.stored[:-1].sum(axis=0, dtype=self.stored.dtype)

    @property
    def interior(self) -> np.ndarray | None:
        """``([Z,] Y, X)`` interior probability (instance projects only; seeds for the watershed)."""
        return self.stored[0] if self.kind == "instances" else None

    def foreground_slabs(self, step: int = SLAB):
        """Yield ``(slice, foreground, uncertainty)`` as float32 along the first axis: summaries of
        a volume that lives on disk without loading it whole."""
        for start in range(0, self.uncertainty.shape[0], step):
            part = slice(start, start + step)
            stored = np.asarray(self.stored[:, part], dtype=np.float32)
            fg = stored[0] if self.kind == "binary" else stored[:-1].sum(axis=0)
            yield part, fg, stored[-1]


def predict_image(models, image, *, tta: str = "flips", overlap: float = 0.5, tile=None, batch_size: int = 4,
                  device: str = "auto", precision: str = "auto", uncertainty: str = "entropy",
                  axes: str | None = None, channels=None, dtype=np.float16, memory_budget: int | None = None,
                  scratch_dir=None, progress=None) -> Prediction:
    """Class probabilities and uncertainty for one image, averaged over models and TTA variants.

    Parameters
    ----------
    models : str, Path, or list
        A trained project folder, model file(s), or ``load_ensemble``'s result (fastest when
        predicting many images).
    image : Image, str, Path, or (C, [Z,] Y, X) ndarray
        A ``([Z,] Y, X)`` array is taken as one channel.
    tta : {"none", "flips", "all"}
        Test-time augmentation (see :mod:`nbseg.tta`).
    overlap : float
        Share of a tile side that neighbouring tiles overlap, in [0, 1).
    tile : sequence of int, optional
        ``([Z,] Y, X)``; default the training patch, clipped to the image. Sides must be divisible
        by what the U-Net pools (8, or 16 for size "L").
    batch_size : int
        Tiles per forward pass.
    device : {"auto", "cpu", "cuda", "mps"}
    precision : {"auto", "fp32", "bf16", "fp16"}
        "auto": mixed precision on GPUs, bf16 on CPUs where it measures faster, else fp32.
    uncertainty : {"entropy", "mutual_info", "std"}
    axes, channels :
        Passed to :func:`nbseg.io.read_image`; default what the model was trained with.
    dtype : numpy dtype
        Of the results; float16 halves memory.
    memory_budget : int, optional
        Bytes the results may take in memory; beyond it they are written to a file in
        ``scratch_dir`` as they are produced. Default a quarter of the machine's memory.
    scratch_dir : str or Path, optional
        Default the system's temporary folder.
    progress : callable(done, total, message), optional
        Called after each batch of tiles.

    Returns
    -------
    Prediction
    """
    from ..runtime import pick_device, pick_precision

    ensemble = load_ensemble(models)
    info = ensemble_info(ensemble)
    tta_variants(tta, info.spatial_dims)  # name checks before any work
    check_choice(uncertainty, UNCERTAINTY_CHOICES, what="uncertainty")
    image = as_image(image, info, axes=axes, channels=channels)
    tile = choose_tile(tile, image.spatial_shape, info)
    check_tile(tile, image.spatial_shape, overlap)
    name = str(image.path or "image")
    bounds = {}
    for _, meta in ensemble:
        key = tuple(meta.get("percentiles") or DEFAULT_PERCENTILES)
        bounds.setdefault(key, intensity_bounds(image.data, key, name=name))
    torch_device = pick_device(device)
    predictor = TilePredictor(ensemble, info=info, tta=tta, device=torch_device,
                              precision=pick_precision(torch_device, precision), uncertainty=uncertainty,
                              bounds=[bounds[tuple(m.get("percentiles") or DEFAULT_PERCENTILES)] for _, m in ensemble])
    store = _output_store((info.n_classes,) + image.spatial_shape, dtype, memory_budget, scratch_dir)
    with retained_heap():
        sliding_window(image.data, predictor, tile=tile, n_out=info.n_classes, overlap=overlap,
                       batch_size=batch_size, out=store, progress=progress)
    result = store.open() if isinstance(store, DiskArray) else store
    prediction = Prediction(result, info.kind, info.class_names, name=name, pixel_sizes=image.pixel_sizes,
                            n_passes=predictor.n_passes)
    prediction.uncertainty_score = uncertainty_score(prediction)
    return prediction


def as_image(image, info, *, axes=None, channels=None) -> Image:
    """An Image the ensemble can take; files are read with the axes/channels the model was trained on."""
    if isinstance(image, Image):
        result = image
    elif isinstance(image, (str, os.PathLike)):
        result = read_for_models(image, info, axes=axes, channels=channels)
    else:
        data = np.asarray(image)
        if data.ndim == info.spatial_dims:
            data = data[np.newaxis]
        spatial = "ZYX" if data.ndim == 4 else "YX"
        result = Image(data=data, axes="C" + spatial[-(data.ndim - 1):])
    check_image(result, info)
    return result


def read_for_models(path, info, *, axes=None, channels=None, lazy: bool = True) -> Image:
    """Read ``path`` as the models expect, resolving a 3-axis file (Z or C first?) by the models' dims."""
    axes = axes or info.axes
    channels = channels if channels is not None else info.channels
    image = read_image(path, axes=axes, channels=channels, lazy=lazy)
    fits = image.spatial_dims == info.spatial_dims and image.data.shape[0] == info.in_channels
    if not fits and axes is None:
        other = read_image(path, channels=channels, dims=info.spatial_dims, lazy=lazy)
        if other.spatial_dims == info.spatial_dims and other.data.shape[0] == info.in_channels:
            return other
    return image


def choose_tile(tile, spatial_shape, info) -> tuple:
    """The tile to use: as given (checked), or the training patch clipped to the image rounded up
    to what the U-Net pools."""
    divisors = info.divisors
    if tile is not None:
        tile = tuple(int(t) for t in tile)
        bad = [(t, d) for t, d in zip(tile, divisors) if t % d or t < d]
        if len(tile) == len(divisors) and bad:
            nearest = [max(d, round(t / d) * d) for t, d in zip(tile, divisors)]
            raise ValueError(
                f"tile {list(tile)} does not fit the model: each side must be a multiple of {list(divisors)} "
                f"(what the U-Net pools). Nearest valid tile: {nearest}."
            )
        return tile
    patch = info.patch if len(info.patch) == len(spatial_shape) else (256,) * len(spatial_shape)
    return tuple(min(p, -(-s // d) * d) for p, s, d in zip(patch, spatial_shape, divisors))


def _output_store(shape, dtype, budget, scratch_dir):
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size <= (budget if budget is not None else default_memory_budget()):
        return np.empty(shape, dtype=dtype)
    folder = Path(scratch_dir or tempfile.gettempdir())
    return DiskArray(folder / f".nbseg-prediction-{uuid.uuid4().hex}.npy", shape, dtype)


def default_memory_budget() -> int:
    """A quarter of the machine's memory (4 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):
        return 4 * 2**30


def uncertainty_score(prediction: Prediction) -> float:
    """Mean uncertainty over pixels with foreground probability or uncertainty >= 0.5."""
    total, count = 0.0, 0
    for _, fg, unc in prediction.foreground_slabs():
        region = (fg >= 0.5) | (unc >= 0.5)
        total += float(unc[region].sum(dtype=np.float64))
        count += int(region.sum())
    return total / count if count else 0.0


def uncertainty_table(predictions) -> "pandas.DataFrame":
    """Images ranked by uncertainty score, most uncertain first — the ones to check or annotate next.

    Parameters
    ----------
    predictions : dict of name -> Prediction, or iterable of Prediction

    Returns
    -------
    DataFrame with columns ``image``, ``uncertainty``, ``foreground_fraction``, ``rank``.
    """
    import pandas as pd

    items = predictions.items() if isinstance(predictions, dict) else ((p.name, p) for p in predictions)
    rows = []
    for name, prediction in items:
        fg_pixels = sum(int((fg >= 0.5).sum()) for _, fg, _ in prediction.foreground_slabs())
        rows.append({"image": name, "uncertainty": prediction.uncertainty_score,
                     "foreground_fraction": fg_pixels / max(1, prediction.uncertainty.size)})
    table = pd.DataFrame(rows, columns=["image", "uncertainty", "foreground_fraction"])
    table = table.sort_values("uncertainty", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table
