"""Beyond one machine: blocks on a dask cluster give what one process gives, at what speed and memory.

Each prediction is its own process of the real CLI (``nbseg predict``), watched by psutil (peak RSS of
the client and of each worker process, sampled every 0.2 s):

(a) Lucchi++: the validation slab (bench/lucchi3d.py's split: the last 20 % of z) written as OME-Zarr by
    ome-zarr-py's own writer (0.005 µm isotropic), predicted in one process and with
    ``--cluster local:2 --block B``. Both outputs must be OME-Zarr that ome-zarr-py reads with the input's
    shape and pixel sizes; the goal is mask IoU >= 0.995 between them.
(b) DSB2018: 36 held-back fluorescence images (bench/datasets.py's test split; 256x256 crops, 6x6 grid,
    1536x1536) and their instance masks (ids offset per tile) in one mosaic, predicted with
    ``--instances`` in one process and with ``--cluster local:2 --block 384,384``: F1@0.5 against the
    mosaic's ground truth and object counts; goal F1 within 0.01, count within 1 %.
(c) Blocks per second with ``local:1`` and ``local:2`` (progress lines' arrival times, first block to
    last: model loading and stitching left out, they are timed apart) and peak memory, on the whole
    Lucchi++ training volume as OME-Zarr, against one-process prediction of it.
(d) A plan on paper for 1 TB (1e12 8-bit voxels) computed from (c).

With a model at another working scale (the Lucchi++ plan: 0.5 in-plane) a block must hold one tile of the
input (256 px tile at half scale: 512 px), hence the default block 32,512,512.

    python bench/scaling.py --lucchi-project P --dsb-project Q [--tta none] [--json out.json]
    python bench/scaling.py --quick       # small crops: a smoke run
Without a project, one is trained (``nbseg train --minutes M``) on the split's training part.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datasets import WORK, dsb_fluorescence_split, require_shared  # noqa: E402
from quality import run, tail, thread_env  # noqa: E402

TRAIN_SHARE = 0.8  # bench/lucchi3d.py's split
PIXEL = 0.005  # Lucchi++: 5 nm isotropic
TERABYTE = 1e12
PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] .* block ")


def watch(cmd: list, *, log: Path, threads: int, timeout: float) -> dict:
    """Run ``cmd`` (appending its output to ``log``) and sample the memory of it and its children.

    Returns wall seconds, peak RSS (MiB) of the client, of the largest other process and of their sum, and
    the arrival time of each block's progress line (seconds from the start)."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    started, blocks = time.perf_counter(), []
    peaks = {"client_mb": 0.0, "worker_mb": 0.0, "total_mb": 0.0}
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(map(str, cmd))}\n")
        handle.flush()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=handle, stderr=subprocess.PIPE, text=True,
                                env=thread_env(threads), cwd=ROOT)

        def read_progress():
            for line in proc.stderr:
                handle.write(line)
                if PROGRESS.match(line):
                    blocks.append(time.perf_counter() - started)

        reader = threading.Thread(target=read_progress, daemon=True)
        reader.start()
        client = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = {p.pid: p.memory_info().rss / 2**20 for p in [client, *client.children(recursive=True)]}
            except psutil.Error:  # a process ended between listing and reading
                rss = {}
            if rss:
                peaks["client_mb"] = max(peaks["client_mb"], rss.get(proc.pid, 0.0))
                peaks["worker_mb"] = max([peaks["worker_mb"]] + [v for k, v in rss.items() if k != proc.pid])
                peaks["total_mb"] = max(peaks["total_mb"], sum(rss.values()))
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(map(str, cmd))}")
            time.sleep(0.2)
        reader.join(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n{tail(log)}")
    wall = time.perf_counter() - started
    row = {"wall_s": round(wall, 1), **{k: round(v) for k, v in peaks.items()}, "blocks": len(blocks)}
    if len(blocks) >= 2:  # steady throughput: first block done to last block done
        row["blocks_per_s"] = round((len(blocks) - 1) / max(1e-9, blocks[-1] - blocks[0]), 4)
        row["before_first_block_s"], row["after_last_block_s"] = round(blocks[0], 1), round(wall - blocks[-1], 1)
    return row


def write_ome_zarr_py(path: Path, data: np.ndarray, axes: str, pixel: float) -> Path:
    """``data`` as OME-Zarr written by ome-zarr-py itself (not nbseg's writer), with pixel sizes in µm."""
    import zarr
    from ome_zarr.writer import write_image

    shutil.rmtree(path, ignore_errors=True)
    group = zarr.open_group(str(path), mode="w")
    write_image(data, group, axes=axes, scale={a: pixel for a in axes},
                axes_units={a: "micrometer" for a in axes})
    return path


def read_ome_zarr_py(path: Path) -> tuple[np.ndarray, list, list]:
    """Highest level, axis names and scale of an OME-Zarr image, as ome-zarr-py's reader gives them."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = list(Reader(parse_url(str(path)))())[0]
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    return np.asarray(node.data[0]), [a["name"] for a in node.metadata["axes"]], list(scale)


def lucchi(work: Path, *, quick: bool) -> dict:
    """The validation slab and the whole training volume (and their masks), as OME-Zarr by ome-zarr-py."""
    import tifffile

    data = require_shared() / "lucchi-pp"
    image, mask = (tifffile.imread(data / k / "train.tif") for k in ("images", "masks"))
    cut = int(round(image.shape[0] * TRAIN_SHARE))
    val, whole = (slice(cut, None),), (slice(None),)
    if quick:  # crops with mitochondria in them
        val, whole = (slice(cut, cut + 8), slice(0, 512)), (slice(0, 8), slice(0, 512))
    out = {}
    for name, region in (("lucchi_val", val), ("lucchi_volume", whole)):
        out[name] = write_ome_zarr_py(work / "in" / name / f"{name}.ome.zarr", np.ascontiguousarray(image[region]),
                                      "zyx", PIXEL)
        out[name + "_gt"] = np.asarray(mask[region]) > 0
    return out


def dsb_mosaic(work: Path, *, side: int) -> tuple[Path, np.ndarray]:
    """``side`` x ``side`` held-back DSB2018 images (the first by name with both sides >= 256; top-left 256x256)
    tiled into one image, with their instance masks (ids offset per tile)."""
    import tifffile

    from nbseg.io.images import write_ome_tiff

    test = dsb_fluorescence_split()["test"]
    picked = []
    for path in sorted(test["images"].iterdir()):
        image = np.asarray(tifffile.imread(path))
        if image.shape[0] >= 256 and image.shape[1] >= 256:
            picked.append((image[:256, :256], np.asarray(tifffile.imread(test["masks"] / path.name))[:256, :256]))
        if len(picked) == side * side:
            break
    if len(picked) < side * side:
        raise SystemExit(f"only {len(picked)} test images of 256x256 or more; {side * side} needed")
    mosaic = np.zeros((256 * side,) * 2 + picked[0][0].shape[2:], picked[0][0].dtype)
    gt, next_id = np.zeros((256 * side,) * 2, np.uint32), 0
    for k, (image, mask) in enumerate(picked):
        place = (slice(256 * (k // side), 256 * (k // side + 1)), slice(256 * (k % side), 256 * (k % side + 1)))
        mosaic[place] = image
        ids, local = np.unique(mask, return_inverse=True)  # consecutive 0..n in this tile (crop may drop some)
        local = local.reshape(mask.shape)
        gt[place] = np.where(local > 0, local + next_id, 0) if ids[0] == 0 else local + 1 + next_id
        next_id = int(gt.max())
    path = work / "in" / "dsb_mosaic" / "dsb_mosaic.tif"
    write_ome_tiff(path, mosaic, axes="YX" if mosaic.ndim == 2 else "YXC", overwrite=True)
    return path, gt


def train_project(project: Path, images, masks, *, minutes: float, extra: list, log: Path, threads: int) -> Path:
    if not (project / "models").is_dir():
        shutil.rmtree(project, ignore_errors=True)
        run([sys.executable, "-m", "nbseg", "train", "--images", images, "--masks", masks, "--project", project,
             "--minutes", minutes, "--seed", "0", *extra], log=log, threads=threads, timeout=60 * minutes * 2 + 900)
    return project


def predict(project, source: Path, out: Path, extra: list, args, log: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    return watch([sys.executable, "-m", "nbseg", "predict", project, source, "--output", out, "--tta", args.tta,
                  *extra], log=log, threads=args.threads, timeout=args.timeout)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def part_a(project, data: dict, work: Path, args, log: Path) -> dict:
    source = data["lucchi_val"]
    shape = np.asarray(read_ome_zarr_py(source)[0]).shape
    runs = {"single": [], "cluster": ["--cluster", "local:2", "--block", args.block]}
    row, masks = {"input": str(source.relative_to(ROOT)), "shape": list(shape), "block": args.block}, {}
    for name, extra in runs.items():
        out = work / "out" / f"a_{name}"
        row[name] = predict(project, source, out, extra, args, log)
        mask, axes, scale = read_ome_zarr_py(out / "lucchi_val.mask.ome.zarr")
        row[name].update(ome_zarr_axes=axes, ome_zarr_scale=scale, shape_ok=list(mask.shape[-3:]) == list(shape),
                         scale_ok=bool(np.allclose(scale[-3:], PIXEL)))
        masks[name] = mask.reshape(shape) > 0
        row[name]["iou_vs_gt"] = round(iou(masks[name], data["lucchi_val_gt"]), 4)
    row["mask_iou"] = round(iou(masks["single"], masks["cluster"]), 5)
    row["goal_met"] = row["mask_iou"] >= 0.995 and all(row[n]["shape_ok"] and row[n]["scale_ok"] for n in runs)
    return row


def part_b(project, work: Path, args, log: Path) -> dict:
    from nbseg.io.images import read_image
    from nbseg.metrics.scores import instance_scores

    source, gt = dsb_mosaic(work, side=2 if args.quick else 6)
    block = "256,256" if args.quick else "384,384"
    row = {"mosaic": list(gt.shape), "gt_objects": int(len(np.unique(gt)) - 1), "block": block}
    runs = {"single": ["--format", "zarr"], "cluster": ["--cluster", "local:2", "--block", block]}
    for name, extra in runs.items():
        out = work / "out" / f"b_{name}"
        row[name] = predict(project, source, out, ["--instances", *extra], args, log)
        labels = np.asarray(read_image(out / "dsb_mosaic.labels.ome.zarr").data).reshape(gt.shape)
        scores = instance_scores(labels, gt, thresholds=(0.5,)).loc[0.5]
        row[name].update(objects=int(len(np.unique(labels)) - 1), f1_05=round(float(scores["f1"]), 4))
    row["f1_diff"] = round(abs(row["single"]["f1_05"] - row["cluster"]["f1_05"]), 4)
    row["count_diff_pct"] = round(100 * abs(row["single"]["objects"] - row["cluster"]["objects"]) /
                                  max(1, row["single"]["objects"]), 3)
    row["goal_met"] = row["f1_diff"] <= 0.01 and row["count_diff_pct"] <= 1.0
    return row


def part_c(project, data: dict, work: Path, args, log: Path) -> dict:
    source = data["lucchi_volume"]
    row = {"input": str(source.relative_to(ROOT)), "shape": list(read_ome_zarr_py(source)[0].shape),
           "block": args.block}
    for name, extra in (("single", []), ("local1", ["--cluster", "local:1", "--block", args.block]),
                        ("local2", ["--cluster", "local:2", "--block", args.block])):
        row[name] = predict(project, source, work / "out" / f"c_{name}", extra, args, log)
    one, two = row["local1"].get("blocks_per_s"), row["local2"].get("blocks_per_s")
    if one and two:
        row["speedup_2_workers"] = round(two / one, 2)
    return row


def plan_terabyte(c: dict, threads: int) -> dict:
    """1e12 voxels from (c)'s throughput and memory: blocks, workers for a day, memory per worker, time."""
    block = [int(v) for v in c["block"].split(",")]
    voxels_per_block = math.prod(block)
    blocks = math.ceil(TERABYTE / voxels_per_block)
    per_worker = c["local1"]["blocks_per_s"]  # one single-threaded worker (torch on this share of the cores)
    measured = c["local2"]["blocks_per_s"] / 2  # per worker, two of them on these cores
    # writing the OME-Zarr results (every pyramid level, chunk by chunk on every worker): voxels/s per worker
    finish_rate = math.prod(c["shape"]) / max(1e-9, c["local2"]["after_last_block_s"]) / 2
    rows = []
    for workers in (16, 64, 256, 1024):
        hours = blocks / (measured * workers) / 3600
        rows.append({"workers": workers, "predict_h": round(hours, 1),
                     "write_h": round(TERABYTE / (finish_rate * workers) / 3600, 1)})
    return {"voxels": TERABYTE, "block": block, "blocks": blocks, "blocks_per_s_per_worker": round(measured, 4),
            "blocks_per_s_one_worker": per_worker, "cores_per_worker": threads / 2,
            "memory_per_worker_mb": c["local2"]["worker_mb"], "client_mb_measured": c["local2"]["client_mb"],
            "single_process_mb": c["single"]["total_mb"],
            "write_h_one_worker": round(TERABYTE / finish_rate / 3600, 1), "by_workers": rows,
            "output_tb": "prob float32 + uncertainty float32 + mask uint8 = 9 bytes a voxel: ~9 TB, +~1/3 pyramid"}


def print_plan(plan: dict) -> None:
    print(f"\n1 TB plan (1e12 voxels, block {plan['block']}): {plan['blocks']:,} blocks; measured "
          f"{plan['blocks_per_s_per_worker']} blocks/s per worker ({plan['cores_per_worker']:g} core(s) each), "
          f"peak {plan['memory_per_worker_mb']} MiB per worker, client {plan['client_mb_measured']} MiB "
          f"(one-process prediction of the same volume: {plan['single_process_mb']} MiB).")
    for r in plan["by_workers"]:
        print(f"  {r['workers']:>5} workers: {r['predict_h']} h of block prediction, then {r['write_h']} h writing "
              "the OME-Zarr results")
    print(f"  writing on one worker: {plan['write_h_one_worker']} h (every pyramid level chunk by chunk on all "
          f"workers); output {plan['output_tb']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lucchi-project", type=Path, help="a project trained on Lucchi++'s training split")
    parser.add_argument("--dsb-project", type=Path, help="a project trained on DSB2018's training split")
    parser.add_argument("--minutes", type=float, help="training budget when a project is not given (10; quick 0.1)")
    parser.add_argument("--block", help="Lucchi++ block, Z,Y,X (default 32,512,512; quick 4,512,512)")
    parser.add_argument("--parts", default="a,b,c", help="which of a,b,c to run (d follows c)")
    parser.add_argument("--tta", choices=("none", "flips"), default="none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per prediction")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.block = args.block or ("4,512,512" if args.quick else "32,512,512")
    minutes = args.minutes or (0.1 if args.quick else 10.0)
    work = WORK / "scaling" / ("quick" if args.quick else "full")
    log = work / "scaling.log"
    log.unlink(missing_ok=True)
    parts = {p.strip() for p in args.parts.split(",")}
    result = {"quick": args.quick, "tta": args.tta, "threads": args.threads}
    if parts & {"a", "c"}:
        data = lucchi(work, quick=args.quick)
        project = args.lucchi_project or train_project(
            work / "projects" / "lucchi", *_lucchi_train(work), minutes=minutes, log=log, threads=args.threads,
            extra=["--dims", "3", "--labels", "binary"] + (["--patch", "1,64,64", "--steps-per-epoch", "2"]
                                                           if args.quick else []))
        result["lucchi_project"] = str(project)
        if "a" in parts:
            result["a"] = part_a(project, data, work, args, log)
            print(json.dumps({"a": result["a"]}), flush=True)
        if "c" in parts:
            result["c"] = part_c(project, data, work, args, log)
            print(json.dumps({"c": result["c"]}), flush=True)
            if all(result["c"][k].get("blocks_per_s") for k in ("local1", "local2")):
                result["d"] = plan_terabyte(result["c"], args.threads)
                print_plan(result["d"])
    if "b" in parts:
        split = dsb_fluorescence_split()
        project = args.dsb_project or train_project(
            work / "projects" / "dsb", split["train"]["images"], split["train"]["masks"], minutes=minutes, log=log,
            threads=args.threads, extra=["--steps-per-epoch", "2"] if args.quick else [])
        result["dsb_project"] = str(project)
        result["b"] = part_b(project, work, args, log)
        print(json.dumps({"b": result["b"]}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(result[p].get("goal_met", True) for p in ("a", "b") if p in result) else 1


def _lucchi_train(work: Path) -> tuple[Path, Path]:
    """bench/lucchi3d.py's training part (its TIFF crops, written once)."""
    from lucchi3d import write_split

    parts = write_split(WORK / "lucchi", quick=False)
    return parts["train"]["images"], parts["train"]["masks"]


if __name__ == "__main__":
    sys.exit(main())
