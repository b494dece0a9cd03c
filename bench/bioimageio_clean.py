"""A DSB2018-trained project's bioimage.io package, checked where nbseg is absent: a fresh venv with
only ``bioimageio.core`` and torch runs ``bioimageio test`` on it and predicts unseen DSB2018 images
through bioimage.io's own pipeline; the thresholded result is compared with ``nbseg predict``'s mask
(Dice), and the Fiji ROIs of ``nbseg predict --instances --rois`` are read back with roifile.

    python bench/bioimageio_clean.py [--project P] [--images DIR] [--n-images 4] [--json out.json]
    python bench/bioimageio_clean.py --reuse-venv    # keep bench/_work/bioimageio_clean/venv from a last run
    python bench/bioimageio_clean.py --venv DIR --reuse-venv   # a clean venv made elsewhere

Steps (each timed): (a) ``python -m venv`` + ``pip install torch==TORCH bioimageio.core`` (nothing else;
nbseg is not importable there), (b) ``nbseg export PROJECT --bioimageio OUT.zip`` then ``bioimageio test
OUT.zip`` in the clean venv, (c) bench/peers/bioimageio_predict.py in the clean venv on the images (read
by nbseg's reader and saved as .npy, so both sides see the same pixels) vs ``nbseg predict PROJECT IMAGES
--tta none --instances --rois``: foreground = nbseg's rule on the package's class probabilities, thresholded
as nbseg thresholds (8-bit probability > 0.5), Dice against NAME.mask.ome.tif; (d) each NAME.rois.zip has
one ROI per object of NAME.labels.ome.tif, named after it, and the ROI's bounds hold the object's pixels.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
WORK = HERE / "_work" / "bioimageio_clean"
PROJECT = HERE / "_work" / "quality" / "projects" / "nbseg_5min"  # `nbseg train --minutes 5` on DSB2018 (quality.py)
IMAGES = HERE / "_work" / "dsb" / "test" / "images"  # held back from that training (bench/datasets.py split)
GOAL_DICE = 0.98


def sh(cmd, *, cwd=WORK, timeout=1800, log=None) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds, output). Raises with the output's tail on failure."""
    started = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if log is not None:
        with open(log, "a") as handle:
            handle.write(f"\n$ {' '.join(map(str, cmd))}\n{out}")
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n{out[-3000:]}")
    return round(time.perf_counter() - started, 1), out


def make_venv(venv: Path, log: Path, reuse: bool, pins=()) -> dict:
    """(a) A fresh venv with torch (the version nbseg's environment has) and bioimageio.core only."""
    import torch

    torch_version = torch.__version__.split("+")[0]
    if venv.exists() and not reuse:
        shutil.rmtree(venv)
    result = {"reused": venv.exists(), "torch_requested": torch_version, "pins": list(pins)}
    if not venv.exists():
        base = getattr(sys, "_base_executable", sys.executable)  # not this venv's packages
        result["venv_s"], _ = sh([base, "-m", "venv", venv], log=log)
        result["install_s"], _ = sh([venv / "bin" / "pip", "install", "--disable-pip-version-check",
                                     f"torch=={torch_version}", "bioimageio.core", *pins], log=log, timeout=3600)
    _, listing = sh([venv / "bin" / "pip", "list", "--format", "json"], log=log)
    packages = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listing)}
    result.update(packages=len(packages), versions={k: packages.get(k) for k in (
        "bioimageio.core", "bioimageio.spec", "torch", "numpy", "xarray", "pydantic", "pydantic-core")})
    _, found = sh([venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('nbseg'))"], log=log)
    result["nbseg_importable"] = found.strip() != "None"
    if result["nbseg_importable"]:
        raise RuntimeError(f"nbseg is importable in {venv}: the environment is not clean ({found.strip()}).")
    return result


def export_and_test(project: Path, venv: Path, package: Path, log: Path) -> dict:
    """(b) nbseg writes the package (it runs bioimageio.core's test itself); the clean venv's CLI tests it again."""
    nbseg = Path(sys.executable).parent / "nbseg"
    export_s, _ = sh([nbseg, "export", project, "--bioimageio", package, "--author", "nbseg benchmark",
                      "--overwrite"], cwd=ROOT, log=log)
    try:  # a failure is a result here (e.g. a bioimageio.spec that the resolved pydantic breaks), not the end
        test_s, out = sh([venv / "bin" / "bioimageio", "test", package], log=log)
        status = "passed"
    except RuntimeError as err:
        test_s, out, status = None, str(err), "failed"
    lines = [line.strip() for line in out.splitlines() if line.strip() and not line.lstrip().startswith(("'", "{"))]
    return {"export_s": export_s, "bioimageio_test_s": test_s, "bioimageio_test": status,
            "bioimageio_test_lines": lines[:40]}


def prepare_inputs(project: Path, images: list, folder: Path) -> dict:
    """Each image as nbseg reads it (C, Y, X), saved as a (1, C, Y, X) float32 .npy for the clean side."""
    from nbseg.config import Config
    from nbseg.io.images import read_image

    data = Config.load(project / "config.yaml").data
    folder.mkdir(parents=True, exist_ok=True)
    shapes = {}
    for path in images:
        image = read_image(path, axes=data.axes, channels=data.channels, dims=2).data
        np.save(folder / f"{path.name.split('.')[0]}.npy", np.asarray(image, np.float32)[np.newaxis])
        shapes[path.name.split(".")[0]] = list(np.shape(image))
    return shapes


def compare(project: Path, package_out: Path, nbseg_out: Path) -> dict:
    """(c) Dice of the package's thresholded foreground with nbseg predict's mask, per image."""
    from nbseg.io.images import read_mask
    from nbseg.predict.ensemble import ensemble_info, foreground_of, load_ensemble
    from nbseg.predict.outputs import to_uint8

    kind = ensemble_info(load_ensemble(project)).kind
    rows = {}
    for path in sorted(package_out.glob("*.npy")):
        probs = np.load(path)[0]
        fg = foreground_of(probs, kind)
        ours = read_mask(nbseg_out / f"{path.stem}.mask.ome.tif") > 0
        nb_prob = read_mask(nbseg_out / f"{path.stem}.prob.ome.tif").astype(np.float32) / 255
        theirs = to_uint8(fg) > 127.5  # nbseg's rule: the 8-bit probability above 0.5
        inter = np.logical_and(ours, theirs).sum()
        total = ours.sum() + theirs.sum()
        rows[path.stem] = {"dice": round(float(2 * inter / total) if total else 1.0, 5),
                           "pixels_differing": int(np.logical_xor(ours, theirs).sum()),
                           "foreground_pixels": int(ours.sum()),
                           "prob_max_abs_diff": round(float(np.abs(fg - nb_prob).max()), 4),
                           "prob_mean_abs_diff": round(float(np.abs(fg - nb_prob).mean()), 5)}
    return rows


def check_rois(nbseg_out: Path) -> dict:
    """(d) One ROI per object, named after its label, whose bounds hold the object's pixels."""
    import roifile

    from nbseg.io.images import read_mask

    rows = {}
    for path in sorted(nbseg_out.glob("*.labels.ome.tif")):
        stem = path.name[: -len(".labels.ome.tif")]
        labels = read_mask(path)
        rois = roifile.roiread(nbseg_out / f"{stem}.rois.zip")
        rois = rois if isinstance(rois, list) else [rois]
        objects = [int(v) for v in np.unique(labels) if v]
        named = sorted(int(r.name.removeprefix("obj")) for r in rois)
        inside = 0
        for roi in rois:
            ys, xs = np.nonzero(labels == int(roi.name.removeprefix("obj")))
            inside += int(roi.left <= xs.min() and xs.max() < roi.right and roi.top <= ys.min() and ys.max() < roi.bottom)
        rows[stem] = {"objects": len(objects), "rois": len(rois), "names_match": named == objects,
                      "bounds_hold_object": inside}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=PROJECT)
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--n-images", type=int, default=4)
    parser.add_argument("--venv", type=Path, default=WORK / "venv", help="the clean venv (made afresh unless --reuse-venv)")
    parser.add_argument("--reuse-venv", action="store_true", help="keep --venv if it exists (it must hold only "
                        "bioimageio.core and torch: checked by nbseg not being importable there)")
    parser.add_argument("--pin", action="append", default=[], metavar="REQ",
                        help="an extra requirement for the clean venv, e.g. 'pydantic<2.13' (repeat for several)")
    parser.add_argument("--json", type=Path, default=WORK / "results.json")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    log, venv, package = WORK / "log.txt", args.venv, WORK / "dsb_nuclei.bioimageio.zip"
    log.write_text("")
    started = time.perf_counter()
    images = sorted(args.images.glob("*.tif"))[: args.n_images]
    result = {"project": str(args.project), "images": [p.name for p in images], "goal_dice": GOAL_DICE}
    result["venv"] = make_venv(venv, log, args.reuse_venv, args.pin)
    result["package"] = export_and_test(args.project, venv, package, log)
    inputs, outputs, nbseg_out = WORK / "inputs", WORK / "package_out", WORK / "nbseg_out"
    for folder in (inputs, outputs, nbseg_out):
        shutil.rmtree(folder, ignore_errors=True)
    result["shapes"] = prepare_inputs(args.project, images, inputs)
    seconds, out = sh([venv / "bin" / "python", HERE / "peers" / "bioimageio_predict.py", package, inputs, outputs],
                      log=log)
    result["bioimageio_predict"] = {"wall_s": seconds, **json.loads(out.strip().splitlines()[-1])}
    nbseg = Path(sys.executable).parent / "nbseg"
    result["nbseg_predict_s"], _ = sh([nbseg, "predict", args.project, *images, "--output", nbseg_out, "--tta", "none",
                                       "--instances", "--rois"], cwd=ROOT, log=log)
    result["dice"] = compare(args.project, outputs, nbseg_out)
    result["min_dice"] = min(r["dice"] for r in result["dice"].values())
    result["rois"] = check_rois(nbseg_out)
    result["rois_ok"] = all(r["objects"] == r["rois"] and r["names_match"] and r["bounds_hold_object"] == r["rois"]
                            for r in result["rois"].values())
    result["passed"] = (result["min_dice"] >= GOAL_DICE and result["rois_ok"]
                        and result["package"]["bioimageio_test"] == "passed")
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("min_dice", "rois_ok", "passed", "total_s")}))
    print(f"results: {args.json}; commands and their output: {log}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
