"""Bad input to every command, tried as a new user would, as one table (issue 16, part 1).

Each case builds its files from small real crops (the bundled samples, and ../shared/data where a
case needs colour images or several experts), runs ``nbseg`` through ``nbseg.cli.main.main`` in this
process and checks what a user sees and what is left on disk:

- the exit status (non-zero; ``qc``, whose job is to report, exits 0 naming the file, 1 with ``--strict``);
- a message that names the file, value or option and the fix, and no traceback;
- nothing written anywhere and every input byte-identical (every file under the case's folder and the
  shared model projects is hashed before and after; no ``nbseg-predict.json`` is left behind).

Positive controls at the end (paths with spaces and non-ASCII characters, an 8x8 image, a rerun that
skips finished images) run through the same harness.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
import torch

from nbseg.cli.main import main

from conftest import need_shared as shared  # ../shared/data/<parts>, or a skip (a failure in CI)
from model_projects import make_project  # tests/model_projects.py

SAMPLES = Path(__file__).resolve().parents[1] / "nbseg" / "samples"
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


# ---------------------------------------------------------------- assets: small real crops, built once


@pytest.fixture(scope="module")
def assets(tmp_path_factory, one_thread):
    """Model projects (2D and 3D, one channel) and crops of real images, shared read-only by the cases."""
    root = tmp_path_factory.mktemp("assets")
    make_project(root / "p2d")
    make_project(root / "p3d", dims=3)
    images = sorted((SAMPLES / "nuclei2d" / "images").glob("*.tif"))[:3]
    masks = sorted((SAMPLES / "nuclei2d" / "masks").glob("*.tif"))[:3]
    for folder in ("grey", "grey_masks"):
        (root / folder).mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):  # 64x64 crops of DSB2018 nuclei
        tifffile.imwrite(root / "grey" / f"nuc{i}.tif", tifffile.imread(image)[:64, :64])
        tifffile.imwrite(root / "grey_masks" / f"nuc{i}.tif", tifffile.imread(mask)[:64, :64])
    stack = tifffile.imread(SAMPLES / "nuclei3d" / "images" / "8_cell_stage.tif")[20:28, 30:94, 30:94]
    tifffile.imwrite(root / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})  # known to be a stack
    return root


def grey(assets, i=0) -> np.ndarray:
    return tifffile.imread(assets / "grey" / f"nuc{i}.tif")


def folder_of(path: Path, arrays: dict) -> Path:
    """``path/`` holding ``name.tif`` for each array; returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        tifffile.imwrite(path / f"{name}.tif", array)
    return path


def good_images(case: Path, assets, n=2) -> Path:
    return folder_of(case / "in", {f"nuc{i}": grey(assets, i) for i in range(n)})


def predict(assets, inputs, out, *extra, project="p2d") -> list[str]:
    project = project if isinstance(project, Path) else assets / project
    return ["predict", str(project), *map(str, inputs if isinstance(inputs, list) else [inputs]),
            "--output", str(out), "--tta", "none", *extra]


def experts(case: Path, masks: dict[str, dict]) -> list[str]:
    """Expert folders ``case/<expert>/<image>.tif``; returns their paths as arguments."""
    return [str(folder_of(case / name, arrays)) for name, arrays in masks.items()]


def bubil(n_experts=3, names=("B01", "B02")) -> dict[str, dict]:
    """Masks of BU-BIL experts, every fourth pixel (203x256), as ``{expert: {image: mask}}``."""
    root = shared("bubil-multirater", "ds1", "experts")
    chosen = sorted(p.name for p in root.iterdir())[:n_experts]
    return {e: {n: tifffile.imread(root / e / f"{n}.tif")[::4, ::4] for n in names} for e in chosen}


# ---------------------------------------------------------------- the harness


@dataclass
class Case:
    """One bad input: ``build(case_dir, assets)`` makes the files and returns the command's arguments."""

    id: str
    build: Callable[[Path, Path], list[str]]
    says: tuple[str, ...]  # regular expressions the output must hold (the culprit and the fix)
    code: int | None = None  # the exit status; None: any non-zero
    writes: str | None = None  # a folder (relative to the case) the command may write to
    check: Callable[[Path, str], None] | None = None  # further checks of a case that writes


def snapshot(*roots: Path) -> dict:
    """``{path: sha256 (or link target)}`` of every file under ``roots``; links are not followed."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                if path.is_symlink():
                    found[str(path)] = "link to " + os.readlink(path)
                elif path.is_file():
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    found[str(path)] = "folder"
    return found


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusals
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def run_case(case: Case, tmp_path: Path, assets: Path, capsys):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    argv = case.build(case_dir, assets)
    before = snapshot(case_dir, assets)
    code, output = run_cli(argv, capsys)
    output = output.replace(str(tmp_path), "<tmp>")  # the patterns must match the message, not the path
    assert "Traceback" not in output, output
    if case.code is None:
        assert code not in (0, None), f"exit {code}\n{output}"
    else:
        assert code == case.code, f"exit {code}\n{output}"
    for pattern in case.says:
        assert re.search(pattern, output, re.S), f"{pattern!r} not in:\n{output}"
    after = snapshot(case_dir, assets)
    if case.writes is None:
        assert after == before, f"written or changed: {sorted(set(after.items()) ^ set(before.items()))}"
    else:
        allowed = str(case_dir / case.writes)
        outside = {k: v for k, v in after.items() if not k.startswith(allowed)}
        assert outside == {k: v for k, v in before.items() if not k.startswith(allowed)}, "inputs changed"
    if case.check:
        case.check(case_dir, output)
    return case_dir, output


# ---------------------------------------------------------------- the cases: predict


def _stack_to_2d(case, assets):
    folder_of(case / "in", {})
    (case / "in" / "stack.tif").write_bytes((assets / "stack.tif").read_bytes())
    return predict(assets, case / "in", case / "out")


def _image_to_3d(case, assets):
    return predict(assets, good_images(case, assets, 1), case / "out", project="p3d")


def _two_channels_to_grey_model(case, assets):
    # RGB images are read as grey for a grey model (nbseg.data.normalize.as_grey); two channels are not colour
    metadata = shared("dsb2018", "metadata.csv").read_text().splitlines()
    colour = next(line.split(",")[0] for line in metadata[1:] if line.split(",")[3] == "3")
    rgb = tifffile.imread(shared("dsb2018", "images") / f"{colour}.tif")[:64, :64]
    assert rgb.shape == (64, 64, 3)
    folder = case / "in"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "twochannel.tif", np.moveaxis(rgb[..., :2], -1, 0), metadata={"axes": "CYX"})
    return predict(assets, folder, case / "out")


def _truncated_among_good(case, assets):
    folder = good_images(case, assets, 2)
    data = (folder / "nuc1.tif").read_bytes()
    (folder / "cut.tif").write_bytes(data[: len(data) // 2])
    return predict(assets, folder, case / "out")


def _others_predicted(case, output):
    out = case / "out"
    assert {p.name for p in out.glob("*.mask.ome.tif")} == {"nuc0.mask.ome.tif", "nuc1.mask.ome.tif"}
    assert not list(out.glob("cut.*.ome.tif")) and not list(out.glob("loop.*.ome.tif")) and not list(out.glob(".*tmp*"))
    assert tifffile.imread(out / "nuc0.mask.ome.tif").shape == (64, 64)


def _file_named_tif(content: bytes | None):
    def build(case, assets):
        folder = folder_of(case / "in", {})
        if content is None:  # a PNG with a .tif name
            import imageio.v3 as iio

            iio.imwrite(folder / "shot.tif", grey(assets), extension=".png")
        else:
            (folder / "shot.tif").write_bytes(content)
        return predict(assets, folder, case / "out")
    return build


def _nan_image(all_nan: bool):
    def build(case, assets):
        image = grey(assets).astype(np.float32)
        if all_nan:
            image[:] = np.nan
        else:
            image[10:20, 10:20] = np.nan
        return predict(assets, folder_of(case / "in", {"nans": image}), case / "out")
    return build


def _option(*extra):
    def build(case, assets):
        return predict(assets, good_images(case, assets), case / "out", *extra)
    return build


def _output_is_input(case, assets):
    folder = good_images(case, assets)
    return predict(assets, folder, folder)


def _earlier_results(case, assets):
    folder = good_images(case, assets)
    assert main(predict(assets, folder, case / "out")) == 0  # results made with --tta none
    return predict(assets, folder, case / "out")[:-2] + ["--tta", "flips"]


def _symlink_loop(case, assets):
    folder = good_images(case, assets)
    (folder / "loop.tif").symlink_to(folder / "loop.tif")
    return predict(assets, folder, case / "out")


def _no_models(case, assets):
    (case / "project").mkdir()
    return predict(assets, good_images(case, assets), case / "out", project=case / "project")


def _model_file(kind: str):
    def build(case, assets):
        project = case / "project"
        (project / "models").mkdir(parents=True)
        model = project / "models" / "fold0.pt"
        data = (assets / "p2d" / "models" / "fold0.pt").read_bytes()
        if kind == "truncated":
            model.write_bytes(data[: len(data) // 3])
        elif kind == "corrupt":
            model.write_bytes(np.random.default_rng(0).bytes(4096))
        else:  # pickled code: unpickling it without weights_only would create the marker file
            torch.save({"format": "nbseg-model-1", "payload": _Planted(case / "pwned")}, model)
        return predict(assets, good_images(case, assets), case / "out", project=project)
    return build


class _Planted:
    """Pickles as a call to ``open(marker, "w")``: code that runs when the file is unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _code_never_ran(case, output):
    assert not (case / "pwned").exists(), "the pickled code ran"
    assert "weights_only" not in output  # torch's advice to load it unsafely is not passed on


PREDICT = [
    Case("stack-to-2d-model", _stack_to_2d, (r"stack\.tif", r"3D stack", r"\(--axes CYX\)")),
    Case("image-to-3d-model", _image_to_3d, (r"nuc0\.tif", r"2D image", r"3D stacks", r"--axes")),
    Case("two-channels-to-grey-model", _two_channels_to_grey_model, (r"twochannel\.tif", r"2 channel", r"--channels 0")),
    Case("unknown-tta", _option("--tta", "flip"), (r"tta 'flip' is unknown", r"Did you mean 'flips'")),
    Case("unknown-threshold", _option("--threshold", "otsus"), (r"threshold 'otsus'", r"Did you mean 'otsu'")),
    Case("threshold-above-1", _option("--threshold", "1.5"), (r"threshold 1\.5", r"between 0 and 1|\(0, 1\)")),
    Case("threshold-negative", _option("--threshold", "-0.2"), (r"threshold -0\.2", r"0\.5")),
    Case("overlap-1.5", _option("--overlap", "1.5"), (r"overlap 1\.5", r"\[0, 1\)")),
    Case("tile-100", _option("--tile", "100,100"), (r"tile \[100, 100\]", r"\[96, 96\] or \[104, 104\]", r"\(--tile\)")),
    Case("tile-3d-for-2d", _option("--tile", "8,32,32"), (r"tile \[8, 32, 32\]", r"2 numbers")),
    Case("channel-absent", _option("--channels", "2"), (r"nuc0\.tif", r"channel\(s\) \[2\] do not exist")),
    Case("axes-invalid", _option("--axes", "QYX"), (r"Axes 'QYX'", r"end with YX")),
    Case("batch-size-0", _option("--batch-size", "0"), (r"--batch-size 0 must be a whole number of at least 1",)),
    Case("min-size-negative", _option("--min-size", "-3"), (r"--min-size -3 must be a whole number of at least 0",)),
    Case("output-is-input", _output_is_input, (r"output folder .* is also where input images are", r"new folder")),
    Case("earlier-results", _earlier_results, (r"earlier results", r"--overwrite"), code=2),
    Case("truncated-among-good", _truncated_among_good, (r"cut\.tif", r"truncated", r"Predicted 2 image"),
         code=1, writes="out", check=_others_predicted),
    Case("zero-byte-file", _file_named_tif(b""), (r"shot\.tif", r"empty|0 bytes")),
    Case("png-named-tif", _file_named_tif(None), (r"shot\.tif", r"PNG", r"\.png")),
    Case("text-named-tif", _file_named_tif(b"x,y\n1,2\n" * 20), (r"shot\.tif", r"not a TIFF")),
    Case("nan-pixels", _nan_image(False), (r"nans\.tif", r"NaN")),
    Case("all-nan", _nan_image(True), (r"nans\.tif", r"NaN")),
    Case("symlink-loop", _symlink_loop, (r"loop\.tif", r"link", r"Predicted 2 image"), code=1, writes="out",
         check=_others_predicted),
    Case("no-models", _no_models, (r"No trained model", r"nbseg train")),
    Case("corrupt-model", _model_file("corrupt"), (r"fold0\.pt", r"not a readable nbseg model file", r"corrupt")),
    Case("truncated-model", _model_file("truncated"), (r"fold0\.pt", r"truncated")),
    Case("pickled-code-model", _model_file("code"), (r"fold0\.pt", r"holds code", r"never runs code"),
         check=_code_never_ran),
]


# ---------------------------------------------------------------- config, lr-find, export


def _config(text: str):
    def build(case, assets):
        (case / "settings.yaml").write_text(text.replace("IMAGES", str(assets / "grey"))
                                            .replace("MASKS", str(assets / "grey_masks")))
        return ["train", "--config", str(case / "settings.yaml"), "--project", str(case / "project")]
    return build


def _lr_find_without_masks(case, assets):
    return ["lr-find", "--images", str(assets / "grey"), "--project", str(case / "project"), "--steps", "3"]


def _export_over(case, assets):
    (case / "model.pt").write_bytes(b"mine")
    return ["export", str(assets / "p2d"), str(case / "model.pt")]


OTHERS = [
    Case("config-unknown-key", _config("data: {images: IMAGES, masks: MASKS}\ntrain: {epoch: 3}\n"),
         (r"settings\.yaml", r"'epoch'", r"Did you mean 'epochs'")),
    Case("config-wrong-type", _config("data: {images: IMAGES, masks: MASKS}\ntrain: {epochs: many}\n"),
         (r"settings\.yaml", r"train\.epochs", r"'many'", r"integer")),
    Case("config-malformed-yaml", _config("data:\n  images: IMAGES\n  masks: [MASKS\ntrain: {epochs: 1}\n"),
         (r"settings\.yaml", r"line \d+, column \d+")),
    Case("config-not-a-mapping", _config("- just\n- a list\n"), (r"settings\.yaml", r"data:")),
    Case("config-missing-file", lambda case, assets: ["train", "--config", str(case / "setings.yaml"), "--project",
                                                      str(case / "project")], (r"setings\.yaml: no such file",)),
    Case("config-dims-patch-disagree", _config("data: {images: IMAGES, masks: MASKS, dims: 3}\n"
                                               "model: {patch: [64, 64]}\n"),
         (r"settings\.yaml", r"data is 3D but patch size \[64, 64\] is 2D")),
    Case("config-negative-lr", _config("data: {images: IMAGES, masks: MASKS}\ntrain: {lr: -0.003}\n"),
         (r"settings\.yaml", r"lr is -0\.003", r"positive learning rate")),
    Case("lr-find-without-masks", _lr_find_without_masks, (r"masks", r"--masks DIR")),
    Case("export-over-a-file", _export_over, (r"model\.pt exists", r"--overwrite")),
    Case("export-no-models", lambda case, assets: ["export", str(case), str(case / "m.pt")],
         (r"No trained model",)),
]


# ---------------------------------------------------------------- evaluate, ground truth, qc


def _evaluate(kind: str):
    def build(case, assets):
        masks = {f"nuc{i}": tifffile.imread(assets / "grey_masks" / f"nuc{i}.tif") for i in range(2)}
        gt = folder_of(case / "gt", masks)
        if kind == "unmatched":
            pred = folder_of(case / "pred", {"nuc0": masks["nuc0"], "other": masks["nuc1"]})
        elif kind == "shapes":
            pred = folder_of(case / "pred", {"nuc0": masks["nuc0"][:48], "nuc1": masks["nuc1"]})
        else:
            pred = folder_of(case / "pred", {})
        return ["evaluate", str(pred), str(gt)]
    return build


def _ground_truth(kind: str):
    def build(case, assets):
        masks = bubil()
        first, second, third = masks
        if kind == "one-expert":
            masks = {first: masks[first]}
        elif kind == "shapes":
            masks[second]["B02"] = masks[second]["B02"][:100]
        elif kind == "non-binary":
            masks[third]["B01"] = masks[third]["B01"] * np.uint8(7)
            masks[third]["B01"][:5, :5] = 3
        elif kind == "names":
            masks[second]["B03"] = masks[second].pop("B02")
        return ["ground-truth", "--output", str(case / "truth"), *experts(case, masks)]
    return build


def _qc_empty(case, assets):
    folder_of(case / "images", {})
    return ["qc", "--images", str(case / "images"), "--masks", str(assets / "grey_masks")]


def _qc_unreadable(strict: bool):
    def build(case, assets):
        images = folder_of(case / "images", {f"nuc{i}": grey(assets, i) for i in range(3)})
        (images / "nuc2.tif").write_bytes((images / "nuc2.tif").read_bytes()[:200])
        return ["qc", "--images", str(images), "--masks", str(assets / "grey_masks")] + (["--strict"] if strict else [])
    return build


LABELS = [
    Case("evaluate-unmatched-names", _evaluate("unmatched"), (r"other\.tif", r"No prediction for: nuc1\.tif")),
    Case("evaluate-shapes", _evaluate("shapes"), (r"nuc0\.tif", r"\(48, 64\)", r"\(64, 64\)")),
    Case("evaluate-empty-folder", _evaluate("empty"), (r"pred holds no image file",)),
    Case("evaluate-kind-typo", lambda case, assets: _evaluate("shapes")(case, assets) + ["--kind", "instance"],
         (r"evaluation kind 'instance' is unknown", r"Did you mean 'instances'")),
    Case("ground-truth-threshold", lambda case, assets: _ground_truth("good")(case, assets) + ["--threshold", "1.5"],
         (r"threshold is 1\.5", r"\[0, 1\)")),
    Case("ground-truth-one-expert", _ground_truth("one-expert"), (r"Got 1 expert folder", r"two or more")),
    Case("ground-truth-shapes", _ground_truth("shapes"), (r"B02", r"\(100, 256\)|shape")),
    Case("ground-truth-non-binary", _ground_truth("non-binary"), (r"B01", r"--multiclass")),
    Case("ground-truth-names", _ground_truth("names"), (r"B03", r"lacks")),
    Case("qc-empty-folder", _qc_empty, (r"images holds no image file",)),
    Case("qc-unreadable-file", _qc_unreadable(False), (r"nuc2", r"truncated|unreadable"), code=0),
    Case("qc-unreadable-file-strict", _qc_unreadable(True), (r"nuc2", r"truncated|unreadable"), code=1),
]

CASES = PREDICT + OTHERS + LABELS


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, assets, capsys):
    run_case(case, tmp_path, assets, capsys)


def test_planted_pickle_would_run_without_weights_only(tmp_path):
    """The pickled-code case can fail: loaded the unsafe way, the same file creates its marker."""
    torch.save({"payload": _Planted(tmp_path / "ran")}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "ran").exists()


# ---------------------------------------------------------------- positive controls


def test_paths_with_spaces_and_non_ascii(tmp_path, assets, capsys):
    folder = folder_of(tmp_path / "raw images ü", {"kern é 1": grey(assets, 0), "зерно 2": grey(assets, 1)})
    project = tmp_path / "my project ñ"
    project.mkdir()
    (project / "models").mkdir()
    (project / "models" / "fold0.pt").write_bytes((assets / "p2d" / "models" / "fold0.pt").read_bytes())
    out = tmp_path / "résultats finaux"
    truth = folder_of(tmp_path / "vérité", {"kern é 1": tifffile.imread(assets / "grey_masks" / "nuc0.tif"),
                                             "зерно 2": tifffile.imread(assets / "grey_masks" / "nuc1.tif")})
    inputs = snapshot(folder, project, truth)
    code, output = run_cli(predict(assets, folder, out, project=project), capsys)
    assert code == 0 and "Traceback" not in output, output
    assert (out / "kern é 1.mask.ome.tif").exists() and (out / "зерно 2.mask.ome.tif").exists()
    code, output = run_cli(["evaluate", str(out), str(truth)], capsys)
    assert code == 0 and "Evaluated 2 image(s)" in output, output
    code, output = run_cli(["qc", "--images", str(folder), "--masks", str(truth), "--csv", str(out / "qc ü.csv")],
                           capsys)
    assert code == 0 and (out / "qc ü.csv").exists(), output
    assert snapshot(folder, project, truth) == inputs


def test_ground_truth_of_real_experts_leaves_them_unchanged(tmp_path, capsys):
    folders = experts(tmp_path / "experts ü", bubil())
    before = snapshot(tmp_path / "experts ü")
    code, output = run_cli(["ground-truth", "--output", str(tmp_path / "wahrheit"), *folders], capsys)
    assert code == 0 and "ground truth of 2 image(s)" in output, output  # whichever method is the default
    assert snapshot(tmp_path / "experts ü") == before
    truth = tifffile.imread(tmp_path / "wahrheit" / "B01.tif")
    assert truth.shape == (203, 256) and set(np.unique(truth)) <= {0, 1} and truth.any()


def test_an_8x8_image_is_padded_and_predicted(tmp_path, assets, capsys):
    folder = folder_of(tmp_path / "in", {"tiny": grey(assets)[20:28, 20:28]})
    code, output = run_cli(predict(assets, folder, tmp_path / "out", "--instances"), capsys)
    assert code == 0, output
    for kind in ("prob", "mask", "labels", "uncertainty"):
        assert tifffile.imread(tmp_path / "out" / f"tiny.{kind}.ome.tif").shape == (8, 8)


def test_a_rerun_skips_finished_images(tmp_path, assets, capsys):
    folder = folder_of(tmp_path / "in", {f"nuc{i}": grey(assets, i) for i in range(3)})
    argv = predict(assets, folder, tmp_path / "out")
    assert run_cli(argv, capsys)[0] == 0
    (tmp_path / "out" / "nuc1.mask.ome.tif").unlink()  # as if cut off before its last file
    before = snapshot(tmp_path / "out")
    code, output = run_cli(argv, capsys)
    assert code == 0 and "Predicted 1 image(s), 2 done earlier" in output, output
    after = snapshot(tmp_path / "out")
    for name in ("nuc0.mask.ome.tif", "nuc2.mask.ome.tif", "nuc0.prob.ome.tif"):
        key = str(tmp_path / "out" / name)
        assert after[key] == before[key]  # finished images untouched
    assert (tmp_path / "out" / "nuc1.mask.ome.tif").exists()
