"""How to predict, as one frozen object: every setting checked once, when it is made.

:func:`~nbseg.predict.files.predict_files` and :func:`~nbseg.predict.image.predict_image` take a
:class:`PredictOptions` or the same settings as keywords, and pass the object down the chain.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace

import numpy as np

from ..choices import check_choice
from ..data.resample import image_factors
from .ensemble import UNCERTAINTY_CHOICES
from .sizes import parse_size
from ..config import DEFAULT_MIN_SIZE
from .post import parse_threshold
from ..model.tiling import check_overlap, check_tile_sides
from .tta import check_tta

__all__ = ["DEVICE_CHOICES", "PRECISION_CHOICES", "PredictOptions", "planned_min_size"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
FORMAT_CHOICES = ("auto", "tiff", "zarr")


@dataclass(frozen=True)
class PredictOptions:
    """The settings of a prediction; checked when made, so a typo fails before any work.

    Change one with ``dataclasses.replace(options, tta="none")`` (checked again).

    Attributes
    ----------
    tta : {"none", "flips", "all"}
        Test-time augmentation (see :mod:`nbseg.predict.tta`).
    threshold : float in (0, 1) or "otsu"
        Foreground probability above which a pixel is in the mask (ignored for multi-class
        projects, whose mask is the most probable class). Strings such as ``"0.4"`` are read as numbers.
    instances : bool
        Also label objects (watershed from interiors for ``instances`` projects, else connected components).
    overlap : float
        Share of a tile side that neighbouring tiles overlap, in [0, 1).
    tile : ([Z,] Y, X) tuple of int, or None
        Default the training patch, clipped to the image. Sides must be divisible by what the
        U-Net pools (8, or 16 for size "L"); checked against the models when predicting.
    batch_size : int
        Tiles per forward pass, 1 or more.
    device : {"auto", "cpu", "cuda", "mps"}
        Or ``"cuda:N"`` for GPU number N.
    precision : {"auto", "fp32", "bf16", "fp16"}
        "auto": mixed precision on GPUs, bf16 on CPUs with AMX, else fp32.
    uncertainty : {"entropy", "mutual_info", "std"}
        See :class:`nbseg.predict.tile_predictor.TilePredictor`.
    axes : str, optional
        Axes of image files that do not say (e.g. ``"ZYX"``); default what the models were trained with.
    channels : int or tuple of int, optional
        Channels to read from image files; default what the models were trained with.
    min_size : int, optional
        Objects smaller than this many pixels are dropped from the labels (0 or more). None: the models'
        training plan says (:mod:`nbseg.train.min_size`: from the labelled objects' sizes, at least
        :data:`~nbseg.config.DEFAULT_MIN_SIZE`; see :meth:`min_size_for`).
    seed_threshold : float, optional
        Instances: the interior probability above which a region seeds one object (0 to 1; higher splits
        touching objects more readily). None: the value chosen for the models on their validation images
        (:mod:`nbseg.predict.seeds`; 0.5 for model files without one).
    rois : bool
        Also write the objects' outlines as Fiji ROIs (``<stem>.rois.zip``); needs ``instances``.
    format : {"auto", "tiff", "zarr"}
        Of the result files: OME-TIFF, or OME-Zarr (chunked, with a pyramid; probabilities as
        float32). "auto": OME-Zarr for OME-Zarr inputs, else OME-TIFF.
    max_memory : int or str, optional
        Bound on the process's memory while predicting, in bytes or as text (``"2GB"``,
        ``"500MB"``): the batch shrinks and the results go to a scratch file until the estimated
        peak fits (see :mod:`nbseg.predict.memory`); stored as bytes. Default: no bound.
    pixel_sizes : ([Z,] Y, X) tuple of float, optional
        In µm, for image files that do not say (or say wrongly): the objects' µm columns and the working
        scale use them. Default: read from each file.
    """

    tta: str = "flips"
    threshold: float | str = 0.5
    instances: bool = False
    overlap: float = 0.5
    tile: tuple | None = None
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    uncertainty: str = "entropy"
    axes: str | None = None
    channels: int | tuple | None = None
    min_size: int | None = None
    seed_threshold: float | None = None
    rois: bool = False
    format: str = "auto"
    max_memory: int | str | None = None
    pixel_sizes: tuple | None = None

    def __post_init__(self) -> None:
        check_tta(self.tta)
        check_choice(self.format, FORMAT_CHOICES, what="format")
        check_choice(self.uncertainty, UNCERTAINTY_CHOICES, what="uncertainty")
        check_choice(self.precision, PRECISION_CHOICES, what="precision")
        _check_device(self.device)
        if self.axes is not None and not isinstance(self.axes, str):
            raise ValueError(f"axes {self.axes!r} is not text; give the letters of the file's axes, e.g. 'ZYX'.")
        normalised = dict(
            threshold=parse_threshold(self.threshold),
            instances=bool(self.instances),
            overlap=check_overlap(_number(self.overlap, "overlap", "0.5")),
            tile=_tile(self.tile),
            batch_size=_whole(self.batch_size, "batch_size", minimum=1),
            min_size=None if self.min_size is None else _whole(self.min_size, "min_size", minimum=0),
            seed_threshold=None if self.seed_threshold is None else _seed(self.seed_threshold),
            channels=_channels(self.channels),
            rois=bool(self.rois),
            max_memory=None if self.max_memory is None else parse_size(self.max_memory),
            pixel_sizes=_pixel_sizes(self.pixel_sizes),
        )
        if normalised["rois"] and not normalised["instances"]:
            raise ValueError("ROIs without objects: to use rois=True (CLI: --rois), set instances=True "
                             "(CLI: --instances) too; the ROIs outline the objects.")
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    @classmethod
    def build(cls, options: PredictOptions | None = None, **settings) -> PredictOptions:
        """``options`` with ``settings`` changed, or new options from ``settings`` alone.

        Parameters
        ----------
        options : PredictOptions, optional
        **settings
            Any of the attributes, e.g. ``tta="none"``.

        Raises
        ------
        TypeError
            For a setting that is not one (naming the closest), or ``options`` of another type.
        ValueError
            For a value a setting does not take.
        """
        names = [f.name for f in fields(cls)]
        for name in settings:
            if name not in names:
                try:
                    check_choice(name, names, what="prediction setting")
                except ValueError as err:
                    raise TypeError(str(err)) from None
        if options is None:
            return cls(**settings)
        if not isinstance(options, cls):
            raise TypeError(f"options is a {type(options).__name__}, not a PredictOptions; give "
                            "PredictOptions(...) or the settings as keywords (tta='flips', ...).")
        return replace(options, **settings) if settings else options

    def format_for(self, path) -> str:
        """"tiff" or "zarr": the format of the results of input ``path``."""
        from ..io.zarr import is_zarr

        if self.format != "auto":
            return self.format
        return "zarr" if is_zarr(path) else "tiff"

    def seed_threshold_for(self, info) -> float:
        """The interior probability that seeds an object: ``seed_threshold`` as given, else the one chosen for the
        models on their validation images (``info``, an :class:`~nbseg.predict.ensemble.EnsembleInfo`;
        :mod:`nbseg.predict.seeds`)."""
        return info.seed_threshold if self.seed_threshold is None else self.seed_threshold

    def min_size_for(self, info, pixel_sizes=None, unit=None) -> int:
        """Pixels an object of one image needs to be kept.

        ``min_size`` as given (in this image's pixels); else the training plan's bound (``info``, an
        :class:`~nbseg.predict.ensemble.EnsembleInfo`) in this image's pixels (:func:`planned_min_size`).
        """
        if self.min_size is not None:
            return self.min_size
        return planned_min_size(info.min_size, info.scale, info.spacing, pixel_sizes, unit)

    def record(self, models) -> dict:
        """The settings kept in ``nbseg-predict.json``: results made with others are not mixed in.

        Parameters
        ----------
        models : list of str
            The model files' resolved paths.

        Returns
        -------
        dict
            Keys ``models``, ``tta``, ``threshold``, ``instances``, ``overlap``, ``tile`` (a list or
            None), ``uncertainty``, ``min_size`` and, when given, ``pixel_sizes``; JSON-ready. Batch size, device, precision, axes,
            channels and rois are left out: they do not change which pixels are foreground.
        """
        return {"models": list(models), "tta": self.tta, "threshold": self.threshold, "instances": self.instances,
                "overlap": self.overlap, "tile": list(self.tile) if self.tile else None,
                "uncertainty": self.uncertainty, "min_size": self.min_size,
                **({"seed_threshold": self.seed_threshold} if self.seed_threshold is not None else {}),
                **({"pixel_sizes": list(self.pixel_sizes)} if self.pixel_sizes else {})}


def _check_device(device) -> None:
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return
    check_choice(device, DEVICE_CHOICES, what="device", hint=", or 'cuda:N' for GPU number N")


def _number(value, what: str, example: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number; give one such as {example}.") from None


def _whole(value, what: str, *, minimum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or (minimum is not None and number < minimum):
        at_least = f" of at least {minimum}" if minimum is not None else ""
        raise ValueError(f"{what} {value!r} must be a whole number{at_least}, e.g. {max(minimum or 0, 4)}.")
    return number


def _whole_numbers(values, what: str, example: str) -> tuple:
    try:
        return tuple(_whole(v, what) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {values!r} is not a list of whole numbers; give e.g. {example}.") from None


def _tile(tile):
    if tile is None:
        return None
    return check_tile_sides(_whole_numbers(tile, "tile", "[256, 256] or [32, 128, 128]"))


def _channels(channels):
    if channels is None:
        return None
    if isinstance(channels, numbers.Integral):
        return int(channels)
    return _whole_numbers(channels, "channels", "[0] or [0, 2]")


def _seed(value) -> float:
    value = _number(value, "seed_threshold", "0.7")
    if not 0 < value < 1:
        raise ValueError(f"seed_threshold is {value}; give an interior probability between 0 and 1, e.g. 0.7 (higher "
                         "splits touching objects more readily).")
    return value


def planned_min_size(planned, scale, spacing, pixel_sizes=None, unit=None) -> int:
    """The training plan's smallest object (:mod:`nbseg.train.min_size`) in one image's pixels.

    Parameters
    ----------
    planned : int or None
        The plan's bound, in pixels of the training data's size (``Plan.min_size``); None: not planned,
        so :data:`~nbseg.config.DEFAULT_MIN_SIZE`.
    scale, spacing : sequence of float or None
        The plan's working scale and its pixel size (``Plan.scale``, ``Plan.spacing``).
    pixel_sizes : ([Z,] Y, X) sequence of float, optional
        The image's, in ``unit``: an image of larger pixels holds its objects in fewer of them.
    """
    if planned is None:
        return DEFAULT_MIN_SIZE
    factors = image_factors(scale, spacing, pixel_sizes, unit)
    trained = scale or [1.0] * len(factors)  # the training images' factors
    area = float(np.prod([t / f for t, f in zip(trained, factors)]))
    return max(DEFAULT_MIN_SIZE, int(round(planned * area)))


def _pixel_sizes(value):
    if value is None:
        return None
    sizes = tuple(_number(v, "pixel_sizes", "0.5") for v in value)
    if len(sizes) not in (2, 3) or min(sizes) <= 0:
        raise ValueError(f"pixel_sizes {list(value)} must be 2 (Y, X) or 3 (Z, Y, X) positive numbers in µm, "
                         "e.g. (2.0, 0.5, 0.5) (CLI: --pixel-size 2,0.5,0.5).")
    return sizes
