"""Where fine-tuning's weights come from: a project folder, a model file, a package exported by nbseg, or a
bundled model (:func:`resolve_init`), and reading those weights (:func:`source_state`).

A package (zip, folder or rdf.yaml) is read by bioimageio.spec, as ``nbseg predict PACKAGE`` reads one
(:mod:`nbseg.model.bioimageio_load`): its ``config.nbseg`` section says the network, and its attached nbseg
model file (or TorchScript weights) holds the weights. Packages need the ``bioimageio`` extra.
"""
from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import torch

from ..model.bundled import bundled_model_file, describe_bundled
from ..model.unet import UNet, load_model_file
from ..model.bioimageio_load import PACKAGE_NAMES
from ..project import ProjectLayout
FIRST_CONV = "encoders.0.0.weight"  # the only weight whose shape follows the input channels


class InitError(ValueError):
    """A fine-tuning source that cannot be found, read or used for this data; says what and the fix."""


def resolve_init(source, *, models_root=None) -> dict:
    """Find the fine-tuning ``source`` and read its architecture (not yet its weights).

    Parameters
    ----------
    source : str or Path
        Project folder, model file, package (.zip / rdf.yaml) or bundled model name.
    models_root : str or Path, optional
        Where bundled models live (default :func:`nbseg.model.bundled.models_root`).

    Returns
    -------
    dict
        ``source`` (as given), ``what`` (a phrase), ``path`` (the file to read), ``member`` (a file inside
        a package, or None), ``weights`` ("state_dict" or "torchscript"), ``spec`` (the U-Net's
        arguments), ``kind``, ``scale`` (the source's working scale, or None).

    Raises
    ------
    InitError
        When ``source`` names nothing usable; the message lists the bundled models.
    """
    given = str(source)
    path = Path(given).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in PACKAGE_NAMES):
        path = next(path / name for name in PACKAGE_NAMES if (path / name).is_file())
    if path.is_file() and (path.suffix.lower() == ".zip" or path.name.lower().endswith(PACKAGE_NAMES)):
        return {**_package_info(path), "source": given}
    if path.is_dir():
        files = _project_models(path)
        info = _model_info(given, files[0], f"nbseg project, fold {_fold(files[0])} of {len(files)}")
        # the weights are fold 0's, but a project's folds together saw all its training images
        return {**info, "images": _seen_by((load_model_file(f)[1] for f in files[1:]), info["images"])}
    if path.is_file():
        return _model_info(given, path, "nbseg model file")
    bundled = bundled_model_file(given, models_root)
    if bundled is not None:
        return _model_info(given, bundled, "bundled model")
    raise InitError(f"init {given!r} is neither a project folder, a model file (.pt), a bioimage.io package "
                    f"(.zip or rdf.yaml) nor a bundled model. Bundled models: {describe_bundled(models_root)}. "
                    "Give one of these, or train from scratch (no init; CLI: --init none).")


def _project_models(folder: Path) -> list:
    try:
        return ProjectLayout(folder).model_files()
    except FileNotFoundError as err:
        raise InitError(f"init {folder}: {err}") from None


def _fold(path: Path) -> str:
    return path.stem.removeprefix("fold")


def _model_info(given: str, path: Path, what: str) -> dict:
    try:
        model, meta = load_model_file(path)
    except ValueError as err:
        raise InitError(f"init {given}: {err}") from None
    plan = meta.get("plan") or {}
    return {"source": given, "what": what, "path": str(path), "member": None, "weights": "state_dict",
            "spec": dict(model.spec), "kind": meta.get("kind"), "scale": plan.get("scale"),
            "intensity": meta.get("intensity"), "images": _seen_by([meta]),
            "seed_threshold": meta.get("seed_threshold")}  # kept by a fine-tune that cannot choose its own


def _seen_by(metas, images=None) -> dict:
    """``{"train": [...], "val": [...]}``: the images the source's models trained on and validated with (their
    model files name them); a model fine-tuned from it has seen them too (nbseg.predict.seen)."""
    found = {"train": set(), "val": set()} if images is None else {k: set(v) for k, v in images.items()}
    for meta in metas:
        named = meta.get("images") or {}
        for role in found:
            found[role].update(named.get(role) or ())
    return {role: sorted(names) for role, names in found.items()}


def _package_info(path: Path) -> dict:
    """What an nbseg-exported package says about its network (``config.nbseg``) and where its weights are."""
    descr = _description(path)
    nbseg = dict((descr.config.model_extra or {}).get("nbseg") or {})
    if not nbseg:
        raise InitError(f"init {path}: this bioimage.io package was not exported by nbseg (its rdf has no "
                        "config.nbseg section), so its network is not an nbseg U-Net to fine-tune. Fine-tune from "
                        "an nbseg project or package, or train from scratch.")
    member = nbseg.get("state_dict")
    torchscript = descr.weights.torchscript
    if member:
        info = {"path": str(path), "member": member, "weights": "state_dict"}
        with _member_file(info) as model_file:
            found = _model_info(str(path), model_file, "")
        return {**found, "path": str(path), "member": member,
                "what": f"bioimage.io package by nbseg, state dict of its first model of {nbseg.get('models', 1)}"}
    if not (torchscript and nbseg.get("spec")):
        raise InitError(f"init {path}: the package carries no nbseg state dict and does not say its network's "
                        "architecture (exported by an older nbseg). Export the project again with this version "
                        "(nbseg export PROJECT --bioimageio OUT.zip), or fine-tune from the project folder.")
    return {"path": str(path), "member": str(torchscript.source), "weights": "torchscript",
            "spec": dict(nbseg["spec"]), "kind": nbseg.get("kind"), "scale": None,
            "what": "bioimage.io package by nbseg, TorchScript weights matched by name"}


def _description(path: Path):
    """The package's model description, read and validated by bioimageio.spec (once per version of its
    files: a fine-tuning run asks for it for the network, for the model file and again for the weights)."""
    from ..model.bioimageio_load import BioimageioError, bioimageio_modules

    try:
        bioimageio_modules()
    except BioimageioError as err:
        raise InitError(f"init {path}: {err}") from None
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    try:  # file hashes are not checked here: the weights are read, and fail loudly, on use
        return _load_description(str(path.resolve()), tuple(f.stat().st_mtime_ns for f in files))
    except Exception as err:  # noqa: BLE001 - pydantic, YAML and zip errors alike: the spec's words say which
        raise InitError(f"init {path}: not a bioimage.io model package that bioimageio.spec can read: "
                        f"{str(err)[:500]}") from None


@functools.lru_cache(maxsize=4)
def _load_description(path: str, versions: tuple):
    from bioimageio.spec import load_model_description

    return load_model_description(Path(path), format_version="latest", perform_io_checks=False)


def _read_member(info: dict) -> bytes:
    """The bytes of the package's file ``info['member']`` (its weights or an attachment)."""
    descr = _description(Path(info["path"]))
    files = [descr.weights.torchscript] if descr.weights.torchscript else []
    for file in files + list(descr.attachments):
        if Path(str(file.source)).name == Path(info["member"]).name:
            return file.get_reader().read()
    raise InitError(f"init {info['path']}: the package names {info['member']} but does not hold it; export it "
                    "again.")


class _member_file:
    """A package's attached model file on disk, for the one model-file reader (``load_model_file``)."""

    def __init__(self, info):
        self.info, self.folder = info, None

    def __enter__(self) -> Path:
        data = _read_member(self.info)
        self.folder = tempfile.TemporaryDirectory(prefix="nbseg-init-")
        file = Path(self.folder.name) / Path(self.info["member"]).name
        file.write_bytes(data)
        return file

    def __exit__(self, *exc):
        self.folder.cleanup()


def source_state(info: dict) -> dict:
    if info["weights"] == "state_dict" and info["member"] is None:
        return dict(load_model_file(info["path"])[0].state_dict())
    if info["weights"] == "state_dict":
        with _member_file(info) as file:
            return dict(load_model_file(file)[0].state_dict())
    return _torchscript_state(info)


def _torchscript_state(info: dict) -> dict:
    """The parameters of the package's TorchScript module that form one U-Net of ``info['spec']``."""
    scripted = torch.jit.load(io.BytesIO(_read_member(info)), map_location="cpu")
    found = scripted.state_dict()
    expected = UNet(**info["spec"]).state_dict()
    prefixes = sorted(k[: -len(FIRST_CONV)] for k in found if k.endswith(FIRST_CONV))
    best = 0
    for prefix in prefixes:  # the first member of an ensemble module whose names and shapes all match
        matched = [k for k, v in expected.items() if prefix + k in found and found[prefix + k].shape == v.shape]
        if len(matched) == len(expected):
            return {k: found[prefix + k] for k in expected}
        best = max(best, len(matched))
    raise InitError(f"init {info['source']}: its TorchScript weights do not match an nbseg U-Net {info['spec']} "
                    f"parameter by parameter ({best} of {len(expected)} found; nbseg's TorchScript export folds "
                    "batch norm into the convolutions). Export the project again with this nbseg version (the "
                    "package then carries a state dict), or fine-tune from the project folder.")
