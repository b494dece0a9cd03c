"""Time to quality on DSB2018 fluorescence nuclei: pooled Dice, F1@0.5 and mAP(0.5:0.95) on the held-back
test images (bench/datasets.py split) after B minutes of CPU training, for nbseg, MONAI, deepflash2 and
a plain Otsu floor. Every method runs as its own process with the same thread count and is scored by
the same code (nbseg.evaluation.evaluate_folders, kind "instances").

    python bench/quality.py [--budgets 2,5,15] [--methods nbseg,monai,deepflash2,otsu] [--json out.json]
    python bench/quality.py --quick        # 0.3 min, 3 test images, small models: a smoke run

- nbseg: ``nbseg train --minutes B`` (defaults: size S, 128x128 patches, batch 8), then
  ``nbseg predict PROJECT TEST --tta flips --instances``.
- MONAI: bench/peers/monai_dsb.py (BasicUNet, DiceCELoss, MONAI transforms, sliding_window_inference
  with the same flips TTA, connected components).
- deepflash2 0.3.0 with its defaults in its own venv (bench/peers/deepflash2_dsb.py; the venv is made
  by bench/peers/setup_deepflash2.sh on first use).
- Otsu: skimage's threshold per image + connected components (no training).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datasets import WORK, dsb_fluorescence_split  # noqa: E402

METHODS = ("nbseg", "monai", "deepflash2", "otsu")
DF2_VENV = WORK / "venv-df2"


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[key] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run(cmd: list, *, log: Path, threads: int, timeout: float) -> float:
    """Run ``cmd``, appending its output to ``log``; return wall seconds. Raises on failure, quoting the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(map(str, cmd))}\n")
        handle.flush()
        try:
            proc = subprocess.run([str(c) for c in cmd], stdout=handle, stderr=subprocess.STDOUT,
                                  env=thread_env(threads), timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(map(str, cmd))}\n{tail(log)}")
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n{tail(log)}")
    return time.perf_counter() - started


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def subset(split: dict, work: Path, *, n_train: int | None, n_test: int | None, name: str = "subset") -> dict:
    """The split, or the first N images of each part (sorted names) linked into ``work / name``."""
    if n_train is None and n_test is None:
        return split
    out = {}
    for part, limit in (("train", n_train), ("test", n_test)):
        files = sorted(p.name for p in split[part]["images"].iterdir())[:limit]
        folders = {}
        for kind in ("images", "masks"):
            folder = work / name / part / kind
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for file in files:
                os.symlink((split[part][kind] / file).resolve(), folder / file)
            folders[kind] = folder
        out[part] = folders
    return out


def score(pred_dir: Path, gt_dir: Path) -> dict:
    from nbseg.metrics import evaluate_folders

    summary = evaluate_folders(pred_dir, gt_dir, kind="instances").summary
    keys = ("images", "dice", "iou", "f1@0.5", "precision@0.5", "recall@0.5", "map", "tp@0.5", "fp@0.5", "fn@0.5")
    return {k: summary[k] for k in keys if k in summary}


def score_on_subset(pred_dir: Path, gt_dir: Path, work: Path) -> dict:
    """Score the predictions of the images in ``gt_dir`` only (a method that predicted more images)."""
    from nbseg.metrics.evaluation import _prediction_files
    from nbseg.io.images import file_stem

    folder = work / "subset_scoring" / pred_dir.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = {file_stem(gt) for gt in gt_dir.iterdir()}
    # evaluate's own pairing rule picks each image's file (nbseg writes <name>.labels.ome.tif beside others)
    for name, pred in _prediction_files(pred_dir, "instances").items():
        if name in names:
            os.symlink(pred.resolve(), folder / pred.name)
    return score(folder, gt_dir)


def otsu_labels(images: Path, out: Path) -> None:
    import tifffile
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(images.glob("*.tif")):
        image = np.asarray(tifffile.imread(path), dtype=np.float32)
        fg = image > threshold_otsu(image) if image.min() < image.max() else np.zeros(image.shape, bool)
        tifffile.imwrite(out / f"{path.stem}.tif", label(fg).astype(np.int32), compression="zlib")


def ensure_deepflash2(log: Path) -> None:
    if (DF2_VENV / ".df2-installed").exists():
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        proc = subprocess.run(["bash", str(HERE / "peers" / "setup_deepflash2.sh")], stdout=handle,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"could not create the deepflash2 venv\n{tail(log)}")


def run_method(method: str, budget: float, data: dict, work: Path, args) -> dict:
    tag = f"{method}_{budget:g}min" if method != "otsu" else "otsu"
    out = work / "predictions" / tag
    shutil.rmtree(out, ignore_errors=True)
    log = work / "logs" / f"{tag}.log"
    log.unlink(missing_ok=True)
    train, test = data["train"], data["test"]
    row = {"method": method, "budget_min": budget if method != "otsu" else None, "log": str(log.relative_to(ROOT))}
    timeout = 60 * budget * 2 + args.predict_timeout
    if method == "nbseg":
        project = work / "projects" / tag
        shutil.rmtree(project, ignore_errors=True)
        cmd = [sys.executable, "-m", "nbseg", "train", "--images", train["images"], "--masks", train["masks"],
               "--project", project, "--minutes", budget, "--seed", "0", *args.nbseg_train_args]
        row["train_s"] = round(run(cmd, log=log, threads=args.threads, timeout=timeout), 1)
        cmd = [sys.executable, "-m", "nbseg", "predict", project, test["images"], "--output", out,
               "--tta", "flips", "--instances"]
        row["predict_s"] = round(run(cmd, log=log, threads=args.threads, timeout=args.predict_timeout), 1)
        row["note"] = "train s = wall time of `nbseg train` (loading included)"
    elif method == "monai":
        cmd = [sys.executable, HERE / "peers" / "monai_dsb.py", "--train-images", train["images"],
               "--train-masks", train["masks"], "--test-images", test["images"], "--output", out,
               "--minutes", budget, "--threads", args.threads, *args.monai_args]
        run(cmd, log=log, threads=args.threads, timeout=timeout)
        record = json.loads((out / "monai.json").read_text())
        row.update(train_s=record["train_s"], predict_s=record["predict_s"], steps=record["train_steps"])
        row["note"] = f"BasicUNet, {record['train_steps']} steps of batch {record['batch_size']}"
    elif method == "deepflash2":
        ensure_deepflash2(log)
        test = data.get("df2_test", test)
        cmd = [DF2_VENV / "bin" / "python", HERE / "peers" / "deepflash2_dsb.py", "--train-images", train["images"],
               "--train-masks", train["masks"], "--test-images", test["images"], "--output", out,
               "--work", work / "df2" / tag, "--minutes", budget, "--threads", args.threads, *args.df2_args]
        shutil.rmtree(work / "df2" / tag, ignore_errors=True)
        run(cmd, log=log, threads=args.threads, timeout=timeout)
        record = json.loads((out / "deepflash2.json").read_text())
        row.update(train_s=record["train_s"], predict_s=record["predict_s"], steps=record["train_steps"])
        row["note"] = (f"{record['encoder']} U-Net, tiles {record['tile_shape']}, {record['train_steps']} steps; "
                       "instances: 4-connected components (cellpose not installable offline); "
                       f"{len(list(test['images'].iterdir()))} test images")
    elif method == "otsu":
        started = time.perf_counter()
        otsu_labels(test["images"], out)
        row.update(train_s=0.0, predict_s=round(time.perf_counter() - started, 1),
                   note="skimage threshold_otsu per image + connected components")
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    row.update(score(out, test["masks"]))
    row["tag"] = tag
    return row


def paired_on_df2_subset(rows: list, data: dict, work: Path) -> None:
    """deepflash2 predicts only the first N test images (its CPU prediction is slow):
    score every other method on those same images too, so the comparison with it is paired."""
    if "df2_test" not in data:
        return
    gt = data["df2_test"]["masks"]
    for row in rows:
        if row.get("status") != "ok" or row["method"] == "deepflash2":
            continue
        pred = work / "predictions" / row["tag"]
        if pred.is_dir():
            row["df2_subset"] = score_on_subset(pred, gt, work)


EARLIER_MARK = "(earlier run of this benchmark)"


def keep_earlier_rows(earlier: dict, rows: list) -> list:
    """Rows of an earlier run for (method, budget) pairs this run did not measure, marked as such."""
    now = {(r["method"], r.get("budget_min")) for r in rows}
    kept = [{**r, "earlier": True} for r in earlier.get("rows", [])
            if (r["method"], r.get("budget_min")) not in now and r.get("status") == "ok"]
    for r in kept:
        r.setdefault("tag", f"{r['method']}_{r['budget_min']:g}min" if r["method"] != "otsu" else "otsu")
        # once only: a row kept through several runs would otherwise collect one marker per run
        note = r.get("note", "").replace(EARLIER_MARK, "").strip()
        r["note"] = f"{note} {EARLIER_MARK}".strip()
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows + kept, key=lambda r: (order.get(r["method"], 9), r.get("budget_min") or 0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default=None, help="training minutes, comma-separated (default 2,5,15)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.3 min, 3 test images, small settings")
    parser.add_argument("--test-limit", type=int, help="score only the first N test images (sorted names)")
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method (default 2)")
    parser.add_argument("--predict-timeout", type=float, default=None, help="seconds allowed for one prediction run")
    parser.add_argument("--df2-budgets", help="deepflash2's budgets (default: the same as --budgets)")
    parser.add_argument("--df2-test-limit", type=int, default=None,
                        help="deepflash2 predicts only the first N test images (default 10; its CPU prediction "
                             "takes 1-5 min per image); the others are scored on those too, as a paired table")
    parser.add_argument("--keep-earlier", type=Path, metavar="JSON",
                        help="keep the rows of an earlier result for (method, budget) pairs not run now")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    budgets = [float(b) for b in (args.budgets or ("0.3" if args.quick else "2,5,15")).split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.quick:
        args.test_limit = args.test_limit or 3
        args.train_limit = args.train_limit or 12
        args.nbseg_train_args = ["--size", "S", "--batch-size", "2", "--steps-per-epoch", "4"]
        args.monai_args = ["--batch-size", "2"]
        args.df2_args = ["--tile-shape", "256"]
    else:
        args.nbseg_train_args, args.monai_args, args.df2_args = [], [], []
    args.predict_timeout = args.predict_timeout or (900 if args.quick else 4 * 3600)

    work = WORK / "quality"
    data = subset(dsb_fluorescence_split(), work, n_train=args.train_limit, n_test=args.test_limit)
    n_test = len(list(data["test"]["images"].iterdir()))
    n_train = len(list(data["train"]["images"].iterdir()))
    earlier = json.loads(args.keep_earlier.read_text()) if args.keep_earlier else {}
    df2_limit = args.df2_test_limit or earlier.get("df2_test_images") or (None if args.quick else 10)
    df2_rows = "deepflash2" in methods or any(r["method"] == "deepflash2" for r in earlier.get("rows", []))
    if df2_rows and df2_limit and df2_limit < n_test:
        data["df2_test"] = subset({"train": data["train"], "test": data["test"]}, work, n_train=None,
                                  n_test=df2_limit, name="df2_subset")["test"]
    df2_budgets = [float(b) for b in args.df2_budgets.split(",")] if args.df2_budgets else budgets
    rows = []
    for method in methods:
        for budget in ([0.0] if method == "otsu" else df2_budgets if method == "deepflash2" else budgets):
            started = time.perf_counter()
            try:
                row = run_method(method, budget, data, work, args)
                row["status"] = "ok"
            except Exception as err:  # one failing method must not lose the others
                row = {"method": method, "budget_min": budget if method != "otsu" else None, "status": "error",
                       "error": str(err)[-2500:]}
            row["wall_s"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "error"}
            print(json.dumps(shown), flush=True)
            if row["status"] == "error":
                print(row["error"], file=sys.stderr, flush=True)
    rows = keep_earlier_rows(earlier, rows) if earlier else rows
    paired_on_df2_subset(rows, data, work)
    result = {"quick": args.quick, "budgets_min": sorted({r["budget_min"] for r in rows if r.get("budget_min")}),
              "df2_test_images": len(list(data["df2_test"]["images"].iterdir())) if "df2_test" in data else None,
              "methods": methods, "threads": args.threads,
              "test_images": n_test, "train_images": n_train, "rows": rows,
              "setup": {"nbseg train extra args": " ".join(args.nbseg_train_args) or "(defaults)",
                        "MONAI extra args": " ".join(args.monai_args) or "(defaults)",
                        "deepflash2 extra args": " ".join(args.df2_args) or "(defaults)"}}
    print("\n| method | budget (min) | Dice | F1@0.5 | mAP | train s | predict s |\n|---|---|---|---|---|---|---|")
    for r in rows:
        if r["status"] == "ok":
            print(f"| {r['method']} | {r['budget_min']} | {r['dice']:.3f} | {r['f1@0.5']:.3f} | {r['map']:.3f} | "
                  f"{r.get('train_s')} | {r.get('predict_s')} |")
        else:
            print(f"| {r['method']} | {r['budget_min']} | error | | | | |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
