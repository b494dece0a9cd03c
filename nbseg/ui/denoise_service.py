"""Notebook 00's work without widgets: the noisy images (a folder, or a bundled sample with low-light noise
added for practice), training the denoiser and denoising the images with :mod:`nbseg.denoise`, and reading
a noisy image with its denoised copy for the comparison. The panel (:mod:`.denoise_panel`) holds the widgets.

The denoiser has a folder of its own (settings, model, history, as a segmentation project has), and the
denoised images go to another folder, which notebook 01 can take as its images."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..data import sample
from ..denoise import denoise_config, denoise_files, load_noisy, plan_denoising, train_denoiser
from ..denoise.segment import record_copies
from ..denoise.noise import low_light
from ..io.images import file_stem, image_files, read_image, write_ome_tiff
from ..model.history import read_history
from ..project import ProjectLayout
from ..train.trainer import check_replace
from .annotate import view_scale
from .teaching import QUICK_PREDICT_IMAGES, quick_minutes, quick_mode

MINUTES = 5.0  # the training budget offered, as `nbseg denoise train`'s default
# quick mode: the denoiser trains for a quarter of quick mode's budget (30 s of its 2 minutes): the optional
# step adds little to the teaching run, and half a minute already shows the grain going
QUICK_SHARE = 0.25
# quick mode validates on 4 patches, not the 2 M pixels training's validation otherwise takes: on 2 CPU cores
# that took 10 s an epoch, a third of the budget
QUICK_VAL_TILES = 4
PRACTICE_SEED = 0  # the practice copy's noise is drawn the same every time


def default_minutes() -> float:
    """The training budget the panel starts with: :data:`MINUTES`, or its share of quick mode's budget."""
    return quick_minutes() * QUICK_SHARE if quick_mode() else MINUTES


def practice_folder(denoiser, name: str) -> Path:
    """Where the noisy practice copy of bundled sample ``name`` goes: ``<name>_noisy`` beside the denoiser."""
    return Path(denoiser).parent / f"{name}_noisy"


@dataclass
class DenoiseState:
    project: Path  # the denoiser's own folder (config.yaml, models/, history/), not a segmentation project
    sample: str = ""  # a bundled sample to add low-light noise to; "" = the images below
    images: str = ""  # the folder of noisy images
    output: str = ""  # the folder for the denoised images
    minutes: float = MINUTES
    config: Config | None = None  # the denoiser's saved settings
    result: object = None  # nbseg.train.fold.FoldResult of the last training
    history: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # the noisy files denoised last, in order ...
    written: list = field(default_factory=list)  # ... and their denoised copies


class DenoiseService:
    def __init__(self, state: DenoiseState):
        self.state = state

    def open(self, project=None) -> bool:
        """Fill the state from the denoiser's saved settings, else from segmentation project ``project``'s
        images when it has settings; True when a denoiser was saved."""
        s = self.state
        saved = ProjectLayout(s.project).config
        if saved.exists():
            s.config = Config.load(s.project)
            s.images, s.sample = str(s.config.data.images), ""
            s.minutes = s.config.train.minutes or s.minutes
            s.history = [row for path in ProjectLayout(s.project).history_files() for row in read_history(path)]
            return True
        if project is not None and ProjectLayout(project).config.exists():
            s.images, s.sample = str(Config.load(project).data.images), ""
        return False

    def has_model(self) -> bool:
        return ProjectLayout(self.state.project).status()["models"]

    def noisy_folder(self) -> Path:
        """The folder of noisy images: the one given, or the sample's practice copy (written when missing).

        Raises
        ------
        ValueError
            Neither a sample nor a folder is given.
        """
        s = self.state
        if s.sample:
            return self.practice_images(s.sample)
        if not s.images.strip():
            raise ValueError("No noisy images given: type the folder that holds them under 'Noisy images', or pick "
                             "a bundled sample to practise on.")
        return Path(s.images.strip())

    def practice_images(self, name: str) -> Path:
        """Bundled sample ``name`` with the low-light noise of the benchmarks added (Poisson noise at 20 photons
        plus Gaussian noise of 0.05, on each image scaled to [0, 1]: :func:`nbseg.denoise.noise.low_light`),
        written once into :func:`practice_folder`; returns that folder."""
        folder = practice_folder(self.state.project, name)
        for i, path in enumerate(image_files(sample(name)["images"])):
            target = folder / f"{file_stem(path)}.ome.tif"
            if target.exists():
                continue
            image = read_image(path)
            noisy = low_light(image.data[0], rng=PRACTICE_SEED + i)  # one channel: written without a C axis
            folder.mkdir(parents=True, exist_ok=True)  # relative sizes (nuclei3d's) stay relative
            write_ome_tiff(target, noisy, axes=image.axes[1:], pixel_sizes=image.pixel_sizes, unit=image.unit,
                           overwrite=True)
        return folder

    def check_replace(self, replace: bool) -> None:
        """Refuse to train over the trained denoiser unless ``replace`` (the panel's tick)."""
        check_replace(self.state.project, replace=replace, how="tick 'Replace the trained denoiser' and press "
                      "'Train denoiser' again", resume_how="press 'Denoise images' to use the trained one")

    def train(self, *, callbacks=()):
        """Train a denoiser on the noisy images for ``state.minutes``; saves its settings and model.

        Returns
        -------
        nbseg.train.fold.FoldResult
            ``best_dice`` holds the best validation score, the PSNR against the noisy values (dB).
        """
        s = self.state
        images = self.noisy_folder()
        base = Config.load(s.project) if ProjectLayout(s.project).config.exists() else None
        train = {"minutes": float(s.minutes), "val_tiles": QUICK_VAL_TILES if quick_mode() else None}
        config = denoise_config(str(images), base=base, train=train)
        dataset = load_noisy(config.data)
        plan, _fingerprint = plan_denoising(config, dataset)
        s.result = train_denoiser(config, s.project, callbacks=callbacks, dataset=dataset, plan=plan)
        s.config, s.history = config, list(s.result.history)
        return s.result

    def denoise(self, *, progress=None) -> list[Path]:
        """Denoise the noisy images (quick mode: the first few) into ``state.output`` with the trained denoiser
        (:func:`nbseg.denoise.denoise_files`, replacing earlier results: the denoiser may be new).

        Returns
        -------
        list of Path
            ``<name>.ome.tif``, one per noisy image, in order.
        """
        s = self.state
        if not self.has_model():
            # the step is in this notebook: MissingStep's fix would send the user to another one
            raise ValueError(f"No denoiser in {s.project} yet: press 'Train denoiser' first.")
        if not s.output.strip():
            raise ValueError("No folder for the denoised images: type one under 'Denoised images into'.")
        files = image_files(self.noisy_folder())
        files = files[:QUICK_PREDICT_IMAGES] if quick_mode() else files
        # the noisy images' own names: the folder is 01's images, and masks pair with images by name
        s.written = denoise_files(s.project, files, s.output.strip(), overwrite=True, suffix="", progress=progress)
        record_copies(s.project, s.output.strip())  # a project trained on them carries this denoiser
        s.inputs = files
        return s.written

    def pair(self, index: int) -> dict:
        """The ``index``-th noisy image denoised last and its denoised copy, read as the denoiser read it.

        Returns
        -------
        dict
            ``name``; ``noisy`` and ``denoised``, ``(C, [Z,] Y, X)`` arrays of one shape; ``pixel_size`` for
            the scale bars (:func:`nbseg.ui.annotate.view_scale`).
        """
        s = self.state
        denoised = read_image(s.written[index])
        data = (s.config or Config.load(s.project)).data
        noisy = read_image(s.inputs[index], axes=data.axes, channels=data.channels, dims=denoised.spatial_dims)
        return {"name": file_stem(s.inputs[index]), "noisy": noisy.data, "denoised": denoised.data,
                "pixel_size": view_scale(noisy.pixel_sizes, noisy.unit)["pixel_size"]}


__all__ = ["DenoiseService", "DenoiseState", "MINUTES", "QUICK_SHARE", "QUICK_VAL_TILES", "default_minutes",
           "practice_folder"]
