"""Denoising on DSB2018 fluorescence nuclei with low-light noise: PSNR and SSIM against the clean images, and
what denoising does to segmentation (the bundled nuclei model's F1@0.5 on noisy, denoised and clean images).

    python bench/denoise.py [--minutes 5] [--part test] [--json out.json]
    python bench/denoise.py --quick        # 0.2 min on 3 images of the train part: a smoke run

- Noise (the issue's model): each image scaled to [0, 1], then Poisson noise at a peak of 20 photons plus
  Gaussian noise of sigma 0.05 (``nbseg.denoise.noise.low_light``, seeded per image); ``--peaks 10,20,50`` adds
  levels.
- Data: ``bench/datasets.py``'s ``dsb_fluorescence_split()``. Develop on ``--part train``; the figures to report
  come from ``--part test`` (92 images never looked at while developing). Noise2Void learns from the noisy
  images themselves, so it trains on the part it is scored on; no clean image is used for training.
- nbseg: ``nbseg denoise train --images noisy/ --minutes M --seed 0``, then ``nbseg denoise predict``.
- Floors and peers in the same run: a Gaussian filter (sigma 1.5 px, no training); BM3D (the ``bm3d`` package,
  ``pip install bm3d``; skipped with a note when it is not installed) with its sigma estimated per image
  (``skimage.restoration.estimate_sigma``). CAREamics N2V2 runs in its own venv (it pins its own torch and
  Lightning): ``python -m venv bench/_work/venv-careamics && bench/_work/venv-careamics/bin/pip install
  careamics==0.3.5``; then ``bench/peers/careamics_n2v2.py`` trains it on the same noisy folder for the same
  minutes on the same threads, one after the other with nbseg (never at once), and its output is scored the
  same way. Without that venv (``--careamics-python``) the row says so.
- Segmentation: ``nbseg predict nuclei <images> --instances --tta flips``, scored against the DSB2018 masks with
  ``bench/quality.py``'s ``score`` (F1@0.5 pooled over objects).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from datasets import WORK, dsb_fluorescence_split  # noqa: E402
from quality import run, score  # noqa: E402

GAUSSIAN_SIGMA = 1.5


def noisy_set(part: dict, out: Path, *, peak: float, limit: int | None, crop: int | None) -> dict:
    """``out/clean``, ``out/noisy`` (float32 TIFFs) and ``out/masks`` (links) for the part's images."""
    import tifffile

    from nbseg.denoise.noise import SIGMA, low_light, scale_to_unit

    folders = {k: out / k for k in ("clean", "noisy", "masks")}
    for folder in folders.values():  # the same seeds make the same noise; the denoisers' folders are left
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for i, path in enumerate(sorted(part["images"].iterdir())[:limit]):
        cut = (slice(0, crop), slice(0, crop)) if crop else (slice(None),) * 2
        clean = scale_to_unit(tifffile.imread(path)[cut])
        tifffile.imwrite(folders["clean"] / path.name, clean)
        tifffile.imwrite(folders["noisy"] / path.name, low_light(clean, peak=peak, sigma=SIGMA, rng=i))
        mask = tifffile.imread(part["masks"] / path.name)[cut]
        tifffile.imwrite(folders["masks"] / path.name, mask, compression="zlib")
    return folders


def restoration(folder: Path, clean: Path) -> dict:
    from nbseg.metrics.restoration import evaluate_restoration

    summary = evaluate_restoration(folder, clean).summary
    return {"psnr": round(summary["psnr"], 2), "ssim": round(summary["ssim"], 3)}


def classic(noisy: Path, out: Path, method: str) -> float:
    """Denoise each image with a filter that needs no training; returns the seconds it took."""
    import tifffile
    from scipy import ndimage

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in sorted(noisy.iterdir()):
        image = tifffile.imread(path)
        if method == "gaussian":
            result = ndimage.gaussian_filter(image, GAUSSIAN_SIGMA)
        else:
            import bm3d
            from skimage.restoration import estimate_sigma

            result = bm3d.bm3d(image, sigma_psd=float(estimate_sigma(image)))
        tifffile.imwrite(out / path.name, np.asarray(result, np.float32))
    return time.perf_counter() - started


def plain_names(folder: Path, out: Path) -> Path:
    """``<name>.denoised.ome.tif`` linked as ``<name>.ome.tif``, so segmentation results pair with the masks."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for path in folder.iterdir():
        os.symlink(path.resolve(), out / path.name.replace(".denoised", ""))
    return out


def segmentation(images: Path, masks: Path, work: Path, tag: str, args) -> dict:
    out = work / "segmented" / tag
    shutil.rmtree(out, ignore_errors=True)
    run([sys.executable, "-m", "nbseg", "predict", "nuclei", images, "--output", out, "--instances", "--tta", "flips"],
        log=work / "logs" / f"segment_{tag}.log", threads=args.threads, timeout=3 * 3600)
    found = score(out, masks)
    return {"f1@0.5": round(found["f1@0.5"], 3), "dice": round(found["dice"], 3)}


def one_level(peak: float, data: dict, work: Path, args) -> dict:
    sets = noisy_set(data, work / f"peak{peak:g}", peak=peak, limit=args.limit, crop=args.crop)
    rows = {"noisy": restoration(sets["noisy"], sets["clean"])}
    project, out = work / f"peak{peak:g}" / "dn", work / f"peak{peak:g}" / "denoised"
    if args.segment_only:
        return segment_again(peak, sets, out, work, args, rows)
    log = work / "logs" / f"nbseg_peak{peak:g}.log"
    log.unlink(missing_ok=True)
    train_s = run([sys.executable, "-m", "nbseg", "denoise", "train", "--images", sets["noisy"], "--project", project,
                   "--minutes", args.minutes, "--seed", "0", *args.train_args], log=log, threads=args.threads,
                  timeout=60 * args.minutes * 3 + 600)
    predict_s = run([sys.executable, "-m", "nbseg", "denoise", "predict", project, sets["noisy"], "--output", out],
                    log=log, threads=args.threads, timeout=3 * 3600)
    rows["nbseg"] = {**restoration(out, sets["clean"]), "train_s": round(train_s, 1), "predict_s": round(predict_s, 1)}
    rows["careamics"] = careamics(sets, work / f"peak{peak:g}", args)
    rows["gaussian"] = {**restoration(_filtered(sets, work, peak, "gaussian", rows), sets["clean"])}
    try:
        import bm3d  # noqa: F401

        rows["bm3d"] = {**restoration(_filtered(sets, work, peak, "bm3d", rows), sets["clean"])}
    except ImportError:
        rows["bm3d"] = {"status": "not run: pip install bm3d"}
    if not args.no_segmentation:
        named = plain_names(out, work / f"peak{peak:g}" / "denoised_named")
        segment = [("noisy", sets["noisy"]), ("nbseg", named), ("clean", sets["clean"])]
        if "psnr" in rows["careamics"]:
            segment.append(("careamics", work / f"peak{peak:g}" / "careamics"))
        for tag, images in segment:
            rows.setdefault(tag, {}).update(segmentation(images, sets["masks"], work, f"peak{peak:g}_{tag}", args))
    return {"peak": peak, "images": len(list(sets["noisy"].iterdir())), "methods": rows}


def segment_again(peak: float, sets: dict, out: Path, work: Path, args, rows: dict) -> dict:
    """The segmentation rows again on the denoised images an earlier run left (nbseg's and CAREamics'): what a
    change to the segmentation alone (the bundled model, its post-processing) does, with the denoisers as
    they were."""
    level = work / f"peak{peak:g}"
    segment = [("noisy", sets["noisy"]), ("nbseg", plain_names(out, level / "denoised_named")),
               ("careamics", level / "careamics"), ("clean", sets["clean"])]
    for tag, images in segment:
        if tag in ("nbseg", "careamics"):
            rows[tag] = restoration(images, sets["clean"])
        rows.setdefault(tag, {}).update(segmentation(images, sets["masks"], work, f"peak{peak:g}_{tag}", args))
    return {"peak": peak, "images": len(list(sets["noisy"].iterdir())), "methods": rows, "segment_only": True}


def careamics(sets: dict, level: Path, args) -> dict:
    """CAREamics N2V2 (bench/peers/careamics_n2v2.py in its own venv) on the noisy folder, scored."""
    python = Path(args.careamics_python)
    if not python.exists():
        return {"status": f"not run: no CAREamics venv at {args.careamics_python} (see this script's docstring)"}
    out = level / "careamics"
    shutil.rmtree(out, ignore_errors=True)
    log = level.parent / "logs" / f"careamics_{level.name}.log"
    log.unlink(missing_ok=True)
    run([python, HERE / "peers" / "careamics_n2v2.py", sets["noisy"], out, "--minutes", args.minutes,
         "--threads", args.threads, "--work", level / "careamics_work"], log=log, threads=args.threads,
        timeout=60 * args.minutes * 3 + 1800)
    facts = json.loads(log.read_text().strip().splitlines()[-1])
    return {**restoration(out, sets["clean"]), **facts}


def _filtered(sets, work, peak, method, rows) -> Path:
    out = work / f"peak{peak:g}" / method
    shutil.rmtree(out, ignore_errors=True)
    rows.setdefault(method, {})["seconds"] = round(classic(sets["noisy"], out, method), 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, help="nbseg's training budget (default 5)")
    parser.add_argument("--part", choices=("train", "test"), help="the split's part to denoise and score (default "
                        "test; develop on train)")
    parser.add_argument("--peaks", default="20", help="photon peaks of the noise levels, comma-separated (default 20)")
    parser.add_argument("--limit", type=int, help="only the first N images of the part (sorted names)")
    parser.add_argument("--crop", type=int, help="crop every image to its top-left CROP x CROP pixels")
    parser.add_argument("--threads", type=int, default=2, help="threads for every step (default 2)")
    parser.add_argument("--no-segmentation", action="store_true", help="skip the nuclei model's F1")
    parser.add_argument("--segment-only", action="store_true",
                        help="only segment again the denoised images an earlier run of the same part left")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.2 min, 3 train images cut to 128 px")
    parser.add_argument("--careamics-python", default=str(WORK / "venv-careamics" / "bin" / "python"),
                        help="the Python of CAREamics' own venv (default bench/_work/venv-careamics)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.part = args.minutes or 0.2, args.part or "train"
        args.limit, args.crop = args.limit or 3, args.crop or 128
        args.train_args = ["--steps-per-epoch", "4", "--batch-size", "4"]
    else:
        args.train_args = []
    args.minutes, args.part = args.minutes or 5.0, args.part or "test"

    work = WORK / "denoise" / args.part
    data = dsb_fluorescence_split()[args.part]
    levels = [one_level(float(p), data, work, args) for p in args.peaks.split(",")]
    result = {"benchmark": "denoise", "part": args.part, "minutes": args.minutes, "threads": args.threads,
              "noise": "Poisson (peak photons) + Gaussian sigma 0.05 on [0, 1]", "levels": levels}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
