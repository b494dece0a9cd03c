"""One validated configuration drives the CLI and the notebooks; saved as YAML in the project."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .project import ProjectLayout, atomic_write

# Defaults several parts share; they live here, at the bottom, so that no part imports a sibling for them.
DEFAULT_PERCENTILES = (1.0, 99.8)  # low/high intensity percentiles mapped to 0 and 1
IGNORE = -1  # target value the loss skips (excluded, padded or not-labelled pixels)
DEFAULT_MIN_SIZE = 10  # pixels an object needs to be kept when the models' training plan does not say


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the file (if any), each wrong setting and the fix."""


def describe_validation(err: ValidationError) -> str:
    """pydantic's errors as ``setting: problem (given value)``, one after the other."""
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item.get("loc", ()))
        msg = str(item.get("msg", "")).removeprefix("Value error, ")
        if item.get("type") != "value_error" and "input" in item:  # our own messages name the value already
            msg += f" (given {item['input']!r})"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def _yaml_problem(path: Path, err) -> str:
    """A YAML syntax error as a sentence naming the file, the line and the column."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or type(err).__name__
    start = getattr(err, "context_mark", None)
    context = (f" ({err.context} that starts at line {start.line + 1}, column {start.column + 1})"
               if start is not None and getattr(err, "context", None) else "")
    return (f"{path} is not valid YAML: {problem}{where}{context}. Check the brackets, quotes and indentation "
            "there; each setting is written `name: value` under its section (data, model, train).")


class _Strict(BaseModel):
    """Refuses unknown keys, naming the closest known one."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, values):
        if isinstance(values, dict):
            known = list(cls.model_fields)
            for key in values:
                if key not in known:
                    close = difflib.get_close_matches(str(key), known, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"unknown setting {key!r} in {cls.__name__}.{hint} Known: {', '.join(known)}.")
        return values


class DataConfig(_Strict):
    """Where the images and labels are, and how to read them."""

    images: Path
    masks: Optional[Path] = None
    seg2: Optional[Path] = None  # a second segmentation, merged inside the merging masks
    merging_masks: Optional[Path] = None
    excluding_masks: Optional[Path] = None  # nonzero pixels are ignored by the loss
    # the mask value that means "not labelled": such pixels count nowhere in training (no default: 255 is
    # foreground in many binary masks)
    unlabelled: Optional[int] = None
    axes: Optional[str] = None
    channels: Optional[list[int]] = None
    dims: Optional[Literal[2, 3]] = None  # None: taken from the data
    # binary: 0/1 (or 0/255); multiclass: 0..K-1; instances: object ids -> background/boundary/interior
    labels: Literal["auto", "binary", "multiclass", "instances"] = "auto"
    n_classes: Optional[int] = None
    val_fraction: float = 0.2
    # the test set: images never trained on nor used to choose anything, for honest scores (nbseg.data.split).
    # test_fraction: a seeded share of the images, kept once chosen; test_images: their names instead
    test_fraction: float = 0.0
    test_images: Optional[list[str]] = None
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    # ([Z,] Y, X) in micrometres, for files that do not say (or say wrongly); None: read from the files
    pixel_sizes: Optional[list[float]] = None

    @model_validator(mode="after")
    def _check(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction is {self.val_fraction}; it must lie between 0 and 1, e.g. 0.2.")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction is {self.test_fraction}; give a share from 0 (no test set) to below 1, "
                             "e.g. 0.2.")
        if self.test_images and self.test_fraction:
            raise ValueError(f"Both test_images ({len(self.test_images)} names) and test_fraction "
                             f"({self.test_fraction}) are set; give one: the names, or the share to draw.")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles {self.percentiles} must satisfy 0 <= low < high <= 100, e.g. (1, 99.8).")
        if self.pixel_sizes is not None and (len(self.pixel_sizes) not in (2, 3) or min(self.pixel_sizes) <= 0):
            raise ValueError(f"pixel_sizes {self.pixel_sizes} must be 2 (Y, X) or 3 (Z, Y, X) positive numbers, "
                             "e.g. [2.0, 0.5, 0.5] for 2 µm slices of 0.5 µm pixels.")
        if self.unlabelled is not None and self.unlabelled <= 0:
            raise ValueError(f"unlabelled is {self.unlabelled}; 0 is background and labels are not negative: give "
                             "the positive mask value that marks pixels nobody labelled, e.g. 255.")
        if self.merging_masks is not None and self.seg2 is None:
            raise ValueError("merging_masks is set but seg2 is not: the merging mask says where Seg2 replaces Seg1.")
        return self


class ModelConfig(_Strict):
    """The U-Net's size and the patch it sees."""

    # S: measured best within minutes of CPU training (DSB2018: Dice 0.94 after 5 min); M/L for GPUs
    size: Literal["S", "M", "L"] = "S"
    patch: Optional[list[int]] = None  # None: planned from the data (nbseg.train.plan)
    # the network's dimensionality; for 3D data 2 means a 2D U-Net over every slice. None: planned
    dims: Optional[Literal[2, 3]] = None
    # working scale in-plane: 0.5 trains and predicts at half the resolution (outputs keep the input's
    # shape). None: planned from the objects' size and how well the labels survive a coarser scale
    scale: Optional[float] = None
    # normalisation layers: batch (2D networks) or instance (3D networks). None: planned
    norm: Optional[Literal["batch", "instance"]] = None
    # pixels per axis ([Z,] Y, X), -1 to 1, the network moves its input by, for labels that sit a fraction
    # of a pixel off their structures. None: measured from the labels (fingerprint); [0, 0]: no shift
    input_shift: Optional[list[float]] = None

    @model_validator(mode="after")
    def _check(self):
        if self.input_shift is not None and any(abs(v) > 1 for v in self.input_shift):
            raise ValueError(f"input_shift is {self.input_shift}; give pixels between -1 and 1 per axis, "
                             "or leave it out to let the plan measure it.")
        if self.scale is not None and not 0.05 <= self.scale <= 1:
            raise ValueError(f"scale is {self.scale}; give a factor from 0.05 to 1 (1 = the images' own "
                             "resolution, 0.5 = half), or leave it out to let the plan choose.")
        return self


class TrainConfig(_Strict):
    """How long and how to train."""

    epochs: Optional[int] = None
    minutes: Optional[float] = None
    batch_size: Optional[int] = None  # None: 8 patches in 2D, 2 in 3D (3D patches hold ~30x more pixels)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    steps_per_epoch: Optional[int] = None  # None: planned (an epoch of ~4 million voxels: 32 steps of 8x128x128)
    patience: Optional[int] = None  # epochs without a better validation Dice before stopping
    # pixels predicted for validation each epoch, in patches' worth (sliding window over centred regions of
    # every validation image). None: 2 million pixels
    val_tiles: Optional[int] = None
    folds: int = 1
    seed: int = 0
    foreground_fraction: float = 0.5  # share of patches centred on a labelled object
    augment: bool = True
    # multi-class sets: patches centred on each class equally often, rare classes weighted. None: planned
    balance_classes: Optional[bool] = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # fine-tuning: start from this model's weights (project folder, model file, bioimage.io package or bundled
    # model name; nbseg.train.init). None: from scratch. The architecture is the source's, the lr a third
    init: Optional[str] = None
    # whether a train.lr other than the default is fine-tuning's peak too. Notebook 04 saves its sweep's rate
    # with False unless ticked: a rate for training from scratch would be too large for weights that already
    # segment, which keep their own rule (nbseg.train.init.fine_tune_lr). CLI --lr sets True
    lr_for_fine_tuning: bool = True
    # a 3D network trained from scratch starts from a 2D network over the slices trained for the first half of
    # the time (nbseg.train.warm_start). None: planned (with a time budget and one fold)
    warm_start: Optional[bool] = None

    @model_validator(mode="after")
    def _check(self):
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs is {self.epochs}; give 1 or more.")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes is {self.minutes}; give a positive training time.")
        if not self.lr > 0:  # a typed 0 or a sign slip would train nothing, or train away from the optimum
            raise ValueError(f"lr is {self.lr}; give a positive learning rate such as 3e-3 (notebook 04 or "
                             "`nbseg lr-find` proposes one).")
        if self.folds < 1:
            raise ValueError(f"folds is {self.folds}; 1 trains one model, K >= 2 trains a K-fold ensemble.")
        if not 0 <= self.foreground_fraction <= 1:
            raise ValueError(f"foreground_fraction is {self.foreground_fraction}; it is a share between 0 and 1.")
        return self

    @property
    def max_epochs(self) -> int:
        """Epochs to run: as given, else effectively unbounded under a time budget, else 50."""
        if self.epochs is not None:
            return self.epochs
        return 10**6 if self.minutes is not None else 50


class ClusterConfig(_Strict):
    """The SLURM jobs `nbseg predict --cluster slurm` asks for (through dask-jobqueue); each job runs one worker."""

    queue: Optional[str] = None  # partition; None: the cluster's default
    account: Optional[str] = None
    cores: int = 4  # CPU cores per job (torch threads of its worker)
    memory: str = "16GB"  # per job
    walltime: str = "01:00:00"
    gpus: int = 0  # per job (--gres=gpu:N)
    jobs: int = 2  # workers started


class Config(_Strict):
    """A project's settings: data, model, training, and the cluster prediction may use."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _patch_matches_dims(self):
        patch, dims = self.model.patch, self.data.dims
        if patch is not None and len(patch) not in (2, 3):
            raise ValueError(f"patch {patch} must have 2 (Y, X) or 3 (Z, Y, X) entries.")
        if patch is not None and dims is not None and len(patch) != dims:
            kind = f"{len(patch)}D"
            raise ValueError(f"data is {dims}D but patch size {patch} is {kind}; give {dims} numbers.")
        return self

    @classmethod
    def model_validate(cls, obj, *args, **kwargs) -> "Config":
        """Settings from a dict, checked.

        Raises
        ------
        ConfigError
            Naming every setting that is wrong, what was given and the fix.
        """
        return cls._validated(obj, "The settings", *args, **kwargs)

    @classmethod
    def _validated(cls, obj, source: str, *args, **kwargs) -> "Config":
        try:
            return super(Config, cls).model_validate(obj, *args, **kwargs)
        except ValidationError as err:
            raise ConfigError(f"{source} are not valid: {describe_validation(err)}") from None

    def save(self, path) -> Path:
        import yaml

        path = Path(path)
        if path.suffix.lower() not in (".yaml", ".yml"):  # a project folder
            path = ProjectLayout(path).config
        with atomic_write(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path

    @classmethod
    def load(cls, path) -> "Config":
        """The settings saved at ``path`` (a YAML file, or a project folder's ``config.yaml``).

        Raises
        ------
        FileNotFoundError
            When there is no such file.
        ConfigError
            For a file that is not YAML (naming the line and column), or settings that are wrong.
        """
        import yaml

        path = Path(path)
        if path.is_dir():
            path = ProjectLayout(path).config
        if not path.exists():
            raise FileNotFoundError(f"No configuration at {path}. Create one with `nbseg train --images ... --project ...`.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(_yaml_problem(path, err)) from None
        if not isinstance(data, (dict, type(None))):
            raise ConfigError(f"{path} holds a {type(data).__name__}, not settings. A settings file looks like:\n"
                              "data:\n  images: raw/\n  masks: labels/\ntrain:\n  minutes: 10")
        return cls._validated(data or {}, f"The settings in {path}")


def update_config(config, changes: dict) -> Config:
    """The one way settings are changed from a dict: ``config`` with ``changes`` applied section by section,
    checked again.

    Parameters
    ----------
    config : Config, dict or None
        The settings to start from (None: the defaults, with no data yet).
    changes : dict
        ``{section: {setting: value}}``, e.g. ``{"train": {"lr": 1e-3}, "model": {"size": "S"}}``; settings not
        named keep their value.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        For an unknown section or setting, or a value that does not fit, naming it and the fix.
    """
    merged = config.model_dump() if isinstance(config, Config) else dict(config or {})
    sections = list(Config.model_fields)
    for section, values in changes.items():
        if section not in sections:
            raise ConfigError(f"No settings section {section!r}; the sections are {', '.join(sections)}.")
        merged[section] = {**(merged.get(section) or {}), **values}
    return Config.model_validate(merged)
