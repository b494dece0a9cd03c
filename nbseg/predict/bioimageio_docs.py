"""The human side of a bioimage.io package: default metadata read from the project, the README
(with the project's validation figures) and the cover image. No bioimage.io import here: the
spec's classes are built in :mod:`nbseg.predict.bioimageio_export`."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..project import ProjectLayout, atomic_write
from ..model.bioimageio_load import BioimageioError

# The papers behind the network nbseg trains (Ronneberger 2015; Cicek 2016 for 3D).
UNET_CITATION = {"text": "Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for Biomedical Image "
                         "Segmentation. MICCAI 2015.", "doi": "10.1007/978-3-319-24574-4_28"}
UNET3D_CITATION = {"text": "Cicek et al. 3D U-Net: Learning Dense Volumetric Segmentation from Sparse "
                           "Annotation. MICCAI 2016.", "doi": "10.1007/978-3-319-46723-8_49"}
GITHUB_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")  # GitHub's rule for user names
KIND_WORDS = {"binary": "foreground/background", "multiclass": "multi-class semantic",
              "instances": "instance (object interior and boundary)"}


def default_metadata(project, info, n_models: int) -> dict:
    """Name, description, tags and citations that describe ``project``'s ensemble.

    Parameters
    ----------
    project : str or Path
        The project folder (its name becomes the model's name).
    info : EnsembleInfo
    n_models : int

    Returns
    -------
    dict with keys ``name``, ``description``, ``tags``, ``cite`` (list of dicts with text, doi)
    """
    dims = f"{info.spatial_dims}D"
    folds = f"an ensemble of {n_models} U-Nets (one per cross-validation fold)" if n_models > 1 else "a U-Net"
    description = (f"{dims} {KIND_WORDS.get(info.kind, info.kind)} segmentation of microscopy images by {folds} "
                   f"trained with nbseg; outputs the probability of each class ({', '.join(info.class_names)}).")
    tags = ["nbseg", "unet", "segmentation", "pytorch", dims.lower(),
            "instance-segmentation" if info.kind == "instances" else "semantic-segmentation"]
    cite = [UNET_CITATION] + ([UNET3D_CITATION] if info.spatial_dims == 3 else [])
    return {"name": default_name(project), "description": description, "tags": tags, "cite": cite}


def default_name(project) -> str:
    """The project folder's name (bioimage.io names have 5 characters or more: a short one gets a prefix)."""
    name = Path(project).resolve().name if isinstance(project, (str, os.PathLike)) and Path(project).is_dir() else ""
    return name if len(name) >= 5 else f"nbseg model {name}".strip()


def validation_figures(project, ensemble) -> list[dict]:
    """Per fold: the kept model's validation Dice, its epoch and the epochs trained, read from the
    model files' meta and ``history/fold<k>.csv`` (empty where training wrote neither)."""
    from ..model.history import read_history

    rows = []
    for k, (_, meta) in enumerate(ensemble):
        fold = int(meta.get("fold", k))
        row = {"fold": fold, "val_dice": meta.get("val_dice"), "best_epoch": meta.get("epoch"), "epochs": None}
        if project is not None and Path(project).is_dir():
            history = ProjectLayout(project).history_file(fold)
            if history.exists():
                row["epochs"] = len(read_history(history))
        if row["val_dice"] is not None or row["epochs"] is not None:
            rows.append(row)
    return rows


def readme_text(name: str, description: str, info, *, percentiles, tile_rule: str, figures: list[dict],
                n_models: int, tta: str, training_data: str = "", cite=()) -> str:
    """The package's README.md, with a ``# Validation`` section holding ``figures`` and, where
    given, ``## Training data`` and ``## How to cite`` (``cite``: dicts with text and doi or url)."""
    axes = "b,c," + ",".join("zyx"[-info.spatial_dims:])
    lines = [f"# {name}", "", description, "",
             "## Input", "",
             f"Raw intensities, axes `{axes}`, {info.in_channels} channel(s). Declared preprocessing: per image "
             f"and channel, the {percentiles[0]:g} and {percentiles[1]:g} intensity percentiles are mapped to 0 and "
             f"1 (`scale_range`), as nbseg did in training. {tile_rule}", "",
             "## Output", "",
             f"Class probabilities, axes `{axes}`, one channel per class ({', '.join(info.class_names)}); they sum "
             f"to 1 at every pixel (softmax inside the model"
             + (f", averaged over {n_models} models" if n_models > 1 else "")
             + (f" and test-time augmentation '{tta}'" if tta != "none" else "") + ").", ""]
    if info.kind == "instances":
        lines += ["nbseg numbers the objects with a seeded watershed on these maps (seeds from the interior "
                  "probability). That watershed is **not** in this package: the package outputs the probability "
                  "maps it is computed from. Run `nbseg predict --instances` for numbered objects.", ""]
    else:
        lines += ["A pixel belongs to the class of highest probability (nbseg thresholds the foreground at 0.5 by "
                  "default). nbseg's post-processing (threshold choice, small-object removal, seeded watershed "
                  "for instances) is not in this package: it outputs the probability maps.", ""]
    if training_data:
        lines += ["## Training data", "", training_data, ""]
    lines += ["# Validation", ""]
    if figures:
        lines += ["Validation Dice of the kept model of each fold, on the images held out from that fold's "
                  "training (smoothed over epochs, as nbseg keeps its best model):", "",
                  "| fold | validation Dice | kept epoch | epochs trained |", "|---|---|---|---|"]
        for row in figures:
            kept = row["best_epoch"] + 1 if row["best_epoch"] is not None else None  # 1-based, as nbseg reports
            lines.append("| {} | {} | {} | {} |".format(row["fold"] + 1, _num(row["val_dice"]), _num(kept),
                                                        _num(row["epochs"])))
        dice = [r["val_dice"] for r in figures if r["val_dice"] is not None]
        if len(dice) > 1:
            lines += ["", f"Mean over folds: {np.mean(dice):.3f} (standard deviation {np.std(dice):.3f})."]
    else:
        lines.append("No validation figures were recorded for these models (they were not trained by nbseg's "
                     "trainer). Validate on annotated images of your own before relying on the output.")
    lines += ["", "Check the model on a few annotated images of your own data before use: its figures hold for "
              "images like those it was trained on.", "", "## Made with", "",
              "Exported from a trained nbseg project with `nbseg export PROJECT --bioimageio MODEL.zip`.", ""]
    return "\n".join(lines + _cite_lines(cite))


def denoiser_readme(meta: dict, info, *, title: str, percentiles, tile_rule: str, figures: dict) -> str:
    """A denoiser package's README.md: input, output (the restored image in the input's scale), tiles, training
    data, ``# Validation`` (``figures``: ``score``, ``what``, ``epoch`` of the kept model) and citations."""
    axes = "b,c," + ",".join("zyx"[-info.spatial_dims:])
    score = figures.get("score")
    lines = [f"# {meta['name']}", "", meta["description"], "",
             "## Input", "",
             f"Raw intensities, axes `{axes}`, {info.in_channels} channel(s), no normalisation declared: the model "
             f"maps the {percentiles[0]:g} and {percentiles[1]:g} intensity percentiles of each image and channel to "
             f"0 and 1 itself, as nbseg did in training, and maps its output back. {tile_rule} Each tile is "
             "normalised by its own percentiles: give tiles of a few hundred pixels a side (or the whole image), "
             "not slivers of background.", "",
             "## Output", "",
             f"The restored image ({title}), axes `{axes}`, float32, in the input's intensity scale: it can stand in "
             "for the raw image in any later step (segmentation, measurements).", ""]
    if meta.get("training_data"):
        lines += ["## Training data", "", meta["training_data"], ""]
    lines += ["# Validation", ""]
    lines.append(f"The kept model (epoch {figures['epoch'] + 1 if figures.get('epoch') is not None else '-'}) scored "
                 f"{score:.2f} dB: the {figures['what']}, in the normalised scale (range 1)." if score is not None
                 else "No validation figure was recorded for this model.")
    lines += ["", "Compare the restored and the raw image of a few images of your own before relying on the output: "
              "a denoiser is only as good on images like those it learnt from.", "", "## Made with", "",
              "Exported from a trained nbseg denoiser with `nbseg export PROJECT --bioimageio MODEL.zip`.", ""]
    return "\n".join(lines + _cite_lines(meta.get("cite")))


def _cite_lines(cite) -> list[str]:
    if not cite:
        return []
    return ["## How to cite", ""] + [f"- {c['text']} " + (f"doi:{c['doi']}" if c.get("doi") else c.get("url", ""))
                                     for c in cite] + [""]


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_cover(path, image, probs, kind: str) -> Path:
    """A PNG: the test input beside its foreground probability (a denoiser: its restored image, shown with the
    input's contrast), middle slice of a stack.

    Parameters
    ----------
    path : str or Path
    image : (C, [Z,] Y, X) ndarray
        Input (first channel shown).
    probs : (K, [Z,] Y, X) ndarray
        Class probabilities, or the restored image of a denoiser (``kind`` "denoise").
    kind : str
    """
    import imageio.v3 as iio

    from .ensemble import foreground_of

    first = np.asarray(image[0], dtype=np.float32)
    fg = np.asarray(probs[0] if kind == "denoise" else foreground_of(probs, kind), dtype=np.float32)
    if first.ndim == 3:
        first, fg = first[first.shape[0] // 2], fg[fg.shape[0] // 2]
    low, high = np.percentile(first, (1, 99))
    left = np.clip((first - low) / max(float(high - low), 1e-6), 0, 1)
    if kind == "denoise":
        fg = (fg - low) / max(float(high - low), 1e-6)
    panel = np.concatenate([left, np.clip(fg, 0, 1)], axis=1)
    scale = max(1, 256 // panel.shape[0])  # small test crops would make a postage stamp
    panel = np.kron(panel, np.ones((scale, scale), dtype=np.float32))
    with atomic_write(path, keep_suffix=True) as tmp:
        iio.imwrite(tmp, (panel * 255).round().astype(np.uint8), extension=".png")
    return Path(path)


def training_data_text(project, info) -> str:
    """A sentence on what the models learnt from: the image and mask folders of ``project``'s
    ``config.yaml``, how many images, the pixel size and the classes (empty parts left out)."""
    from ..config import Config
    from ..io.images import image_files

    parts = []
    layout = ProjectLayout(project) if isinstance(project, (str, os.PathLike)) else None
    if layout is not None and layout.config.exists():
        data = Config.load(layout.config).data
        try:
            count = f"{len(image_files(data.images))} images" if Path(data.images).is_dir() else "images"
        except (OSError, ValueError):
            count = "images"
        paired = "clean targets" if info.kind == "denoise" else "masks"  # a denoiser's masks: CARE's clean images
        parts.append(f"{count} from `{Path(data.images).name}`"
                     + (f" with {paired} from `{Path(data.masks).name}`" if data.masks else ""))
    spacing = pixel_sizes(project, info)
    if spacing:
        parts.append("pixel size " + " x ".join(f"{s:g}" for s in spacing) + " µm (" + "".join("ZYX"[-len(spacing):])
                     + ")")
    if info.kind != "denoise":
        parts.append(f"classes {', '.join(info.class_names)}")
    return f"{info.spatial_dims}D microscopy images: " + "; ".join(parts) + "."


def pixel_sizes(project, info) -> list | None:
    """``([Z,] Y, X)`` µm per pixel the models learnt at: the training plan's, else ``config.yaml``'s
    ``data.pixel_sizes``, else None."""
    from ..config import Config

    if getattr(info, "spacing", None):
        return [float(s) for s in info.spacing]
    layout = ProjectLayout(project) if isinstance(project, (str, os.PathLike)) else None
    if layout is not None and layout.config.exists():
        sizes = Config.load(layout.config).data.pixel_sizes
        return [float(s) for s in sizes[-info.spatial_dims:]] if sizes else None
    return None


def citation_entry(text: str, link: str) -> dict:
    """``{"text": text, "doi": ...}`` or ``{"text": text, "url": ...}`` from a DOI (``10.xxx/...``,
    ``doi:10...``, ``https://doi.org/10...``) or a web address, as bioimage.io's ``cite`` holds them."""
    text, link = (text or "").strip(), (link or "").strip()
    if not text or not link:
        raise ValueError(f"A citation needs its text and a DOI or web address; got text={text!r}, link={link!r}. "
                         "Give both, e.g. 'Doe et al. Nuclei in 3D. Nat Methods 2024.' and '10.1038/s41592-...'.")
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if link.lower().startswith(prefix):
            link = link[len(prefix):]
            break
    if link.startswith("10."):
        return {"text": text, "doi": link}
    if link.startswith(("http://", "https://")):
        return {"text": text, "url": link}
    raise ValueError(f"{link!r} is neither a DOI (10.xxxx/...) nor a web address (https://...): give one of them.")


def export_defaults(project) -> dict:
    """What the bioimage.io form of notebook 07 starts from: :func:`default_metadata` plus
    ``training_data`` (:func:`training_data_text`), ``class_names``, ``pixel_sizes`` (µm or None),
    ``figures`` (:func:`validation_figures`) and ``output`` (the default package path)."""
    from .ensemble import ensemble_info, load_ensemble

    ensemble = load_ensemble(project)
    info = ensemble_info(ensemble)
    meta = default_metadata(project, info, len(ensemble))
    meta.update(training_data=training_data_text(project, info), class_names=list(info.class_names),
                pixel_sizes=pixel_sizes(project, info),
                figures=validation_figures(project, ensemble), output=ProjectLayout(project).bioimageio_package)
    return meta


def author_dicts(authors) -> list[dict]:
    """``[{"name", "affiliation", "github_user"}, ...]`` (empty parts left out) from ``authors`` of
    :func:`~nbseg.predict.bioimageio_export.export_bioimageio`: str, dict or a list of them."""
    if isinstance(authors, (str, dict)):
        authors = [authors]
    authors = [_author(a) for a in (authors or []) if a]
    authors = [a for a in authors if a.get("name")]
    if not authors:
        raise BioimageioError("authors is missing: bioimage.io requires at least one author, the people who made "
                              "the model and answer questions about it. Give authors=['Your Name'] "
                              "(CLI: --author 'Your Name').")
    bad = [a["name"] for a in authors if "/" in a["name"]]
    if bad:
        raise BioimageioError(f"author names may not contain '/': {bad}. Give plain names, e.g. 'Ada Lovelace'.")
    bad = [a["github_user"] for a in authors if a.get("github_user") and not GITHUB_USER.match(a["github_user"])]
    if bad:
        raise BioimageioError(f"{bad} is not a GitHub user name (letters, digits and single hyphens, at most 39 "
                              "characters, e.g. 'ada-lovelace'); give the name without '@' or leave it empty.")
    return authors


def _author(author) -> dict:
    if isinstance(author, str):  # "Name; Affiliation; github-user", as the CLI and notebook 07 take it
        author = dict(zip(("name", "affiliation", "github_user"), author.split(";")))
    known = {"name", "affiliation", "github_user"}
    if not isinstance(author, dict) or set(author) - known:
        raise BioimageioError(f"author {author!r}: give 'Name; Affiliation; github-user' or a dict with keys "
                              f"{sorted(known)}.")
    author = {k: str(v).strip() for k, v in author.items() if v and str(v).strip()}
    if "github_user" in author:
        author["github_user"] = author["github_user"].removeprefix("@")
    return author
