"""Predict one image with a project's models: sliding window x TTA x ensemble, memory-bounded."""
from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import DEFAULT_PERCENTILES
from ..data.normalize import as_grey, intensity_bounds
from ..data.resample import image_factors, is_native, resample_image, restore
from ..model.unet import divisibility_problem
from .ensemble import check_image, ensemble_info, load_ensemble
from .heap import retained_heap
from .memory import plan_prediction, release
from .oom import retry_out_of_memory
from ..io.images import Image, read_image, with_pixel_sizes
from .options import PredictOptions
from .tile_predictor import TilePredictor
from ..model.tiling import DiskArray, check_tile, patch_tile, sliding_window

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
            release(self.stored)  # a result on disk: what was read leaves the process again
            fg = stored[0] if self.kind == "binary" else stored[:-1].sum(axis=0)
            yield part, fg, stored[-1]


def predict_image(models, image, options: PredictOptions | None = None, *, dtype=np.float16,
                  memory_budget: int | None = None, scratch_dir=None, progress=None, bounds=None, factors=None,
                  **settings) -> Prediction:
    """Class probabilities and uncertainty for one image, averaged over models and TTA variants.

    Parameters
    ----------
    models : str, Path, or list
        A trained project folder, model file(s), or ``load_ensemble``'s result (fastest when
        predicting many images).
    image : Image, str, Path, or (C, [Z,] Y, X) ndarray
        A ``([Z,] Y, X)`` array is taken as one channel.
    options : PredictOptions, optional
        How to predict: tta, overlap, tile, batch_size, device, precision, uncertainty, and the
        axes and channels of image files (default what the model was trained with). The
        threshold, instances and min_size it holds are not used here.
    dtype : numpy dtype
        Of the results; float16 halves memory.
    memory_budget : int, optional
        Bytes the results may take in memory; beyond it they are written to a file in
        ``scratch_dir`` as they are produced. Default a quarter of the machine's memory.
    scratch_dir : str or Path, optional
        Default the system's temporary folder.
    progress : callable(done, total, message), optional
        Called after each batch of tiles.
    bounds : list of (low, span), optional
        Each model's normalisation (:func:`model_bounds`); default computed from ``image``. Give those
        of the whole image when ``image`` is one block of it, so that the block is normalised alike.
    factors : ([Z,] Y, X) sequence of float, optional
        The working-scale factors to resample ``image`` by; default from its pixel sizes and the
        models' plan. Ones for an image already at the models' scale (a resampled block).
    **settings
        Instead of ``options``, or changing some of it: ``tta="none"``, ``tile=(256, 256)``, ...

    Returns
    -------
    Prediction
    """
    options = PredictOptions.build(options, **settings)  # checks before any work
    ensemble = load_ensemble(models)
    info = ensemble_info(ensemble)
    image = with_pixel_sizes(as_image(image, info, axes=options.axes, channels=options.channels),
                             options.pixel_sizes)
    if factors is None:
        factors = image_factors(info.scale, info.spacing, image.pixel_sizes, image.unit)
    work = image.data if is_native(factors) else resample_image(image.data, factors)  # the models' scale
    tile = choose_tile(options.tile, work.shape[1:], info)
    predictor = _tile_predictor(ensemble, info, image, options, bounds=bounds)  # normalised by the input's own intensities
    batch_size = options.batch_size
    predictor.images = predictor.default_images(tile, batch_size)
    if options.max_memory is not None:  # the largest batch and pass, and results in memory only where they fit
        plan = plan_prediction(options, ensemble, info, image, work.shape[1:], tile, predictor, dtype)
        batch_size, memory_budget = plan.batch_size, memory_budget if plan.results_in_memory else 0
        predictor.images = plan.images
    store = _output_store((info.n_classes,) + work.shape[1:], dtype, memory_budget, scratch_dir)
    # freed blocks kept for reuse would count against a bound: glibc's own policy then
    with retained_heap() if options.max_memory is None else contextlib.nullcontext():
        retry_out_of_memory(lambda b, t: sliding_window(work, predictor, tile=t, n_out=info.n_classes,
                                                        overlap=options.overlap, batch_size=b, out=store,
                                                        progress=progress),
                            batch_size=batch_size, tile=tile, divisors=info.divisors)
    result = store.open() if isinstance(store, DiskArray) else store
    if not is_native(factors):  # back to the input's shape, so outputs keep its pixel sizes
        full = _output_store((info.n_classes,) + image.spatial_shape, dtype, memory_budget, scratch_dir)
        result = restore(result, image.spatial_shape, out=full)
        result = full.open() if isinstance(full, DiskArray) else result
    prediction = Prediction(result, info.kind, info.class_names, name=str(image.path or "image"),
                            pixel_sizes=image.pixel_sizes, n_passes=predictor.n_passes)
    prediction.uncertainty_score = uncertainty_score(prediction)
    return prediction


def _tile_predictor(ensemble, info, image, options: PredictOptions, bounds=None) -> TilePredictor:
    """The per-tile function, with each model's normalisation of ``image`` (or ``bounds``) and the
    device and precision ``options`` resolve to."""
    from ..runtime import pick_device, pick_precision

    device = pick_device(options.device)
    return TilePredictor(ensemble, info=info, tta=options.tta, device=device,
                         precision=pick_precision(device, options.precision), uncertainty=options.uncertainty,
                         bounds=bounds if bounds is not None else model_bounds(ensemble, image))


def model_bounds(ensemble, image) -> list:
    """Each model's ``(low, span)`` normalisation of ``image`` (computed once per distinct percentile pair)."""
    bounds = {}
    for _, meta in ensemble:
        key = tuple(meta.get("percentiles") or DEFAULT_PERCENTILES)
        bounds.setdefault(key, intensity_bounds(image.data, key, name=str(image.path or "image")))
    return [bounds[tuple(m.get("percentiles") or DEFAULT_PERCENTILES)] for _, m in ensemble]


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
    if info.in_channels == 1 and channels is None and image.data.shape[0] in (3, 4) and image.spatial_dims == 2:
        return as_grey(image, bright_objects=info.bright_objects)
    return image


def choose_tile(tile, spatial_shape, info) -> tuple:
    """The tile to use: as given (checked against the image and the models), or the training
    patch clipped to the image rounded up to what the U-Net pools.

    Parameters
    ----------
    tile : ([Z,] Y, X) sequence of int, or None
    spatial_shape : ([Z,] Y, X) tuple of int
        The image's.
    info : EnsembleInfo

    Raises
    ------
    ValueError
        For a tile of the wrong length or with sides the U-Net cannot take (naming the nearest valid tiles).
    """
    divisors = info.divisors
    if tile is not None:
        tile = check_tile(tile, spatial_shape)
        problem = divisibility_problem(tile, divisors, noun="tiles")
        if problem:
            raise ValueError(
                f"tile {list(tile)} does not fit the model: each side must be a multiple of {list(divisors)} "
                f"(what the U-Net pools); {problem}. Give one of them (CLI: --tile), or no tile to use the "
                "training patch."
            )
        return tile
    return patch_tile(info.patch, spatial_shape, divisors)


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
