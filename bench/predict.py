"""Inference: nbseg's predict_image vs MONAI's sliding_window_inference, same model, tiles and TTA.

Each engine runs once in its own subprocess (so peak RSS is its own) on the Lucchi++ training
volume (165 x 768 x 1024), or a crop of it with --quick. MONAI is wrapped in the same TTA loop
(each variant of the whole volume, undone on its softmax, averaged). Printed beside them: the
physical limit, i.e. the convolution FLOPs the tiles need divided by the FLOP/s of a bare 3x3x3
convolution measured on this machine, and the network's own bare forward throughput over the same
tiles, TTA passes and forward batch (timed in nbseg's process right after its run: the share of it
that prediction reaches is what tiling, TTA and blending cost). Speed does not depend on the weights,
so without --project an untrained 3D U-Net of size S is used.

    python bench/predict.py --quick --json /tmp/predict.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
LUCCHI = HERE.parent.parent / "shared" / "data" / "lucchi-pp" / "images" / "train.tif"
QUICK_CROP = (slice(0, 32), slice(0, 256), slice(0, 256))
GOALS = {"speedup": 1.5, "rss_ratio": 0.5}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, help="trained 3D project (default: an untrained UNet size S)")
    p.add_argument("--model", choices=("unet", "tiny"), default="unet",
                   help="tiny: a 1x1x1 convolution instead of the U-Net, to measure what the engines themselves "
                        "cost (stitching, memory) on the full volume in minutes")
    p.add_argument("--volume", type=Path, default=LUCCHI, help="ZYX volume (default Lucchi++ train)")
    p.add_argument("--quick", action="store_true", help=f"crop the volume to {[s.stop for s in QUICK_CROP]}")
    p.add_argument("--crop", action="store_true", help="the same crop as --quick, as a figure of its own: speed "
                   "with many TTA passes in minutes, where the full volume would take hours on a 2-core CPU")
    p.add_argument("--tta", default="flips")
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--tile", default="32,128,128", help="Z,Y,X")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, help="torch threads in each run (default torch's)")
    p.add_argument("--precision", default="auto", help="nbseg precision (auto/fp32/bf16)")
    p.add_argument("--peer-from", type=Path, metavar="JSON",
                   help="take MONAI's figures from an earlier result of this script with the same volume, model, "
                        "tiles, overlap, TTA and batch (MONAI's side does not change with nbseg's code; on the "
                        "full volume it runs for a quarter of an hour)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--worker", choices=("nbseg", "monai", "limit"), help=argparse.SUPPRESS)
    p.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.tile = tuple(int(v) for v in args.tile.split(","))
    return args


# ---------------------------------------------------------------- workers (one per subprocess)


def load_volume(args) -> np.ndarray:
    import tifffile

    volume = tifffile.imread(args.volume)
    return np.ascontiguousarray(volume[QUICK_CROP] if args.quick or args.crop else volume)


def load_models(args):
    import torch

    from nbseg.predict.ensemble import load_ensemble
    from nbseg.model.unet import UNet

    if args.project:
        return load_ensemble(args.project)
    torch.manual_seed(0)
    model = UNet(3, 1, 2, "S") if args.model == "unet" else Tiny()
    return [(model.eval(), {"kind": "binary", "patch": list(args.tile), "percentiles": [1.0, 99.8]})]


class _TinyBase:
    spec = dict(spatial_dims=3, in_channels=1, n_classes=2, size="S", pool_z=True)


def Tiny():
    import torch

    class TinyNet(torch.nn.Module, _TinyBase):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 2, 1)

        def forward(self, x):
            return self.conv(x)

    return TinyNet()


def _shown(path: str) -> str:
    """A data path as the docs show it: relative to the shared data folder, never this machine's path."""
    marker = "/shared/data/"
    return "../shared/data/" + path.split(marker, 1)[1] if marker in path else path


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process: steadier than wall time on a shared machine."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_nbseg(args, volume, ensemble) -> tuple[np.ndarray, dict]:
    from nbseg.predict.image import predict_image
    from nbseg.runtime import pick_device, pick_precision

    options = dict(tta=args.tta, overlap=args.overlap, tile=args.tile, batch_size=args.batch_size,
                   precision=args.precision)
    predict_image(ensemble, volume[: args.tile[0], : args.tile[1], : args.tile[2]], **options)  # warm-up
    start_rss, cpu, start = current_rss_mb(), cpu_seconds(), time.perf_counter()
    prediction = predict_image(ensemble, volume, **options)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    precision = pick_precision(pick_device("auto"), args.precision)
    figures = {"seconds": seconds, "cpu_seconds": cpu, "start_rss_mb": start_rss, "precision": precision}
    figures.update(bare_forward(args, volume.shape, ensemble, seconds))
    return np.asarray(prediction.foreground, np.float16), figures


def bare_forward(args, volume_shape, ensemble, seconds: float) -> dict:
    """The networks alone over the prediction's tile images: each model's inference copy on a blank batch of
    as many tiles as nbseg's forward pass takes, timed (best of 3), times the tiles x TTA passes."""
    import torch

    from nbseg.model.tiling import axis_placements
    from nbseg.predict.inference import forward_images, inference_copy
    from nbseg.predict.tta import tta_variants
    from nbseg.runtime import autocast, pick_device, pick_precision

    device = pick_device("auto")
    precision = pick_precision(device, args.precision)
    images = forward_images(device, args.tile, args.batch_size)
    x = torch.zeros((images, 1) + tuple(args.tile), device=device).contiguous(memory_format=torch.channels_last_3d)
    per_image = 0.0
    for model, _ in ensemble:
        net = inference_copy(model, device)
        with torch.inference_mode(), autocast(device, precision):
            net(x)  # warm-up
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                net(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
        per_image += best / images
    tiles = int(np.prod([len(axis_placements(s, t, args.overlap)) for s, t in zip(volume_shape, args.tile)]))
    network_seconds = per_image * tiles * len(tta_variants(args.tta, 3))
    return {"forward_images": images, "forward_s_per_image": per_image, "network_seconds": network_seconds,
            "network_mpx_per_s": float(np.prod(volume_shape)) / network_seconds / 1e6,
            "network_share": network_seconds / seconds}


def run_monai(args, volume, ensemble) -> tuple[np.ndarray, dict]:
    import torch
    from monai.inferers import sliding_window_inference

    from nbseg.data.normalize import percentile_normalize
    from nbseg.predict.tta import tta_variants

    def infer(x):
        total = None
        for model, meta in ensemble:
            def predictor(t, model=model):
                return torch.softmax(model(t), dim=1)
            for variant in tta_variants(args.tta, 3):
                out = sliding_window_inference(variant.forward(x), args.tile, args.batch_size, predictor,
                                               overlap=args.overlap, mode="gaussian", sigma_scale=0.125)
                out = variant.inverse(out)
                total = out if total is None else total + out
        return total / (len(ensemble) * len(tta_variants(args.tta, 3)))

    def prepare(v):
        percentiles = ensemble[0][1].get("percentiles", (1.0, 99.8))
        return torch.from_numpy(percentile_normalize(v[None], percentiles=percentiles))[None]

    with torch.inference_mode():
        infer(prepare(volume[: args.tile[0], : args.tile[1], : args.tile[2]]))  # warm-up
        start_rss, cpu, start = current_rss_mb(), cpu_seconds(), time.perf_counter()
        probs = infer(prepare(volume))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return probs[0, 1].numpy().astype(np.float16), {"seconds": seconds, "cpu_seconds": cpu,
                                                    "start_rss_mb": start_rss, "precision": "fp32"}


def run_limit(args, volume_shape, ensemble) -> dict:
    """FLOPs the tiles need, and what a bare convolution achieves here (forward only)."""
    import torch
    from flops import forward_flops

    from nbseg.predict.inference import inference_copy
    from nbseg.runtime import autocast, pick_device, pick_precision
    from nbseg.model.tiling import axis_placements
    from nbseg.predict.tta import tta_variants

    model = ensemble[0][0]
    tile_flops = forward_flops(model, torch.zeros((1, 1) + args.tile))
    tiles = int(np.prod([len(axis_placements(s, t, args.overlap)) for s, t in zip(volume_shape, args.tile)]))
    passes = len(ensemble) * len(tta_variants(args.tta, 3))
    voxels = float(np.prod(volume_shape))
    device = pick_device("auto")
    precision = pick_precision(device, args.precision)
    conv = inference_copy(torch.nn.Sequential(torch.nn.Conv3d(32, 32, 3, padding=1)), device)
    x = torch.randn(args.batch_size, 32, *args.tile).contiguous(memory_format=torch.channels_last_3d)
    conv_flops = forward_flops(conv, x)
    best = float("inf")
    with torch.inference_mode(), autocast(device, precision):
        for _ in range(4):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    gflops = conv_flops / best / 1e9
    work = tile_flops * tiles * passes
    return {"gflop_per_tile": tile_flops / 1e9, "tiles": tiles, "passes": passes, "bare_conv_gflops": gflops,
            "precision": precision, "flop_per_voxel": tile_flops / float(np.prod(args.tile)),
            "limit_mpx_per_s": voxels / (work / (gflops * 1e9)) / 1e6,
            "limit_no_overlap_mpx_per_s": gflops * 1e9 / (tile_flops / float(np.prod(args.tile)) * passes) / 1e6}


def worker(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    volume = load_volume(args)
    ensemble = load_models(args)
    if args.worker == "limit":
        result = run_limit(args, volume.shape, ensemble)
    else:
        fg, result = (run_nbseg if args.worker == "nbseg" else run_monai)(args, volume, ensemble)
        voxels = float(volume.size)
        result.update(mpx_per_s=voxels / result["seconds"] / 1e6, peak_rss_mb=peak_rss_mb(),
                      mpx_per_cpu_s=voxels / result["cpu_seconds"] / 1e6,
                      threads=torch.get_num_threads())
        result["rss_above_start_mb"] = result["peak_rss_mb"] - result["start_rss_mb"]
        np.save(args.save, fg)
    print(json.dumps(result))


# ---------------------------------------------------------------- driver


def spawn(args, kind: str, save: Path) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--save", str(save), "--tta", args.tta,
               "--overlap", str(args.overlap), "--tile", ",".join(map(str, args.tile)), "--batch-size",
               str(args.batch_size), "--precision", args.precision, "--volume", str(args.volume)]
    command += ["--quick"] * args.quick + ["--crop"] * args.crop + (["--threads", str(args.threads)] if args.threads else [])
    command += ["--project", str(args.project)] if args.project else ["--model", args.model]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def earlier_peer(args) -> dict:
    """MONAI's figures from an earlier result, after checking it measured the same thing."""
    earlier = json.loads(args.peer_from.read_text())
    now = {"tile": list(args.tile), "overlap": args.overlap, "tta": args.tta, "batch_size": args.batch_size,
           "model": str(args.project or args.model), "volume": str(args.volume)}
    differs = {k: (earlier.get(k), v) for k, v in now.items() if earlier.get(k) != v}
    if differs or earlier.get("case", "").startswith("crop") != bool(args.quick or args.crop):
        raise SystemExit(f"{args.peer_from} measured something else ({differs or 'another crop'}); run MONAI again.")
    return earlier["monai"]


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = a.astype(np.float32), b.astype(np.float32)
    ma, mb = a > 0.5, b > 0.5
    dice = 2 * np.sum(ma & mb) / max(1, ma.sum() + mb.sum()) if (ma.any() or mb.any()) else 1.0
    return {"max_abs_diff": float(np.abs(a - b).max()), "mean_abs_diff": float(np.abs(a - b).mean()),
            "mask_dice": float(dice)}


def markdown(report: dict) -> str:
    nb, mo, lim = report["nbseg"], report["monai"], report["limit"]
    shape = "x".join(map(str, report["volume_shape"]))
    rows = [
        "| engine | precision | seconds | CPU seconds | Mpx/s | Mpx per CPU s | peak RSS (MB) | RSS added (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {label} | {r['precision']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['mpx_per_s']:.3f} | "
          f"{r['mpx_per_cpu_s']:.3f} | {r['peak_rss_mb']:.0f} | {r['rss_above_start_mb']:.0f} |"
          for label, r in (("nbseg predict_image", nb), ("MONAI sliding_window_inference", mo))],
        f"| physical limit, these tiles | {lim['precision']} | | | {lim['limit_mpx_per_s']:.3f} | | | |",
        f"| physical limit, no overlap | {lim['precision']} | | | {lim['limit_no_overlap_mpx_per_s']:.3f} | | | |",
        f"| the network's bare forward, same tiles and batch | {nb['precision']} | {nb['network_seconds']:.1f} | | "
        f"{nb['network_mpx_per_s']:.3f} | | | |",
    ]
    agree = report["agreement"]
    if agree is None:
        agreement_line = f"MONAI's figures are from an earlier run of this script ({report['peer_from']}), same settings."
    else:
        agreement_line = (f"Agreement of the foreground probabilities: max |diff| {agree['max_abs_diff']:.3f}, "
                          f"mean {agree['mean_abs_diff']:.4f}, Dice of the masks {agree['mask_dice']:.4f} "
                          "(the engines pad borders and place the last tile alike but not identically).")
    return "\n".join([
        f"Volume {shape} ({_shown(report['volume'])}), model {report['model']}, tile {list(report['tile'])}, overlap {report['overlap']}, "
        f"TTA {report['tta']} ({lim['passes']} passes x {lim['tiles']} tiles), batch {report['batch_size']}, "
        f"threads {nb['threads']}.", "", *rows, "",
        f"nbseg vs MONAI: **{report['speedup']:.2f}x** the speed (goal >= {GOALS['speedup']}x; "
        f"{report['cpu_speedup']:.2f}x per CPU second, which other load on the machine disturbs less), "
        f"**{report['rss_ratio']:.2f}x** the peak RSS (goal <= {GOALS['rss_ratio']}x); "
        f"{report['limit_share']:.0%} of the physical limit for these tiles "
        f"({lim['gflop_per_tile']:.1f} GFLOP per tile; bare 3x3x3 conv {lim['bare_conv_gflops']:.0f} GFLOP/s); "
        f"**{nb['network_share']:.0%}** of the network's own bare forward throughput over the same tiles "
        f"({nb['forward_images']} tile image(s) per forward pass, {nb['forward_s_per_image']:.2f} s each).",
        agreement_line,
    ])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nb = spawn(args, "nbseg", tmp / "nbseg.npy")
        mo = earlier_peer(args) if args.peer_from else spawn(args, "monai", tmp / "monai.npy")
        limit = spawn(args, "limit", tmp / "limit.npy")
        agree = None if args.peer_from else agreement(np.load(tmp / "nbseg.npy"), np.load(tmp / "monai.npy"))
        shape = np.load(tmp / "nbseg.npy", mmap_mode="r").shape
    case = ("crop " if args.quick or args.crop else "full volume ") + "x".join(map(str, shape))
    report = {"volume": str(args.volume), "case": case, "quick": args.quick, "model": str(args.project or args.model), "volume_shape": list(shape), "tile": list(args.tile),
              "overlap": args.overlap, "tta": args.tta, "batch_size": args.batch_size,
              "nbseg": nb, "monai": mo, "limit": limit, "agreement": agree,
              "peer_from": str(args.peer_from) if args.peer_from else None,
              "speedup": nb["mpx_per_s"] / mo["mpx_per_s"], "cpu_speedup": nb["mpx_per_cpu_s"] / mo["mpx_per_cpu_s"],
              "rss_ratio": nb["peak_rss_mb"] / mo["peak_rss_mb"],
              "limit_share": nb["mpx_per_s"] / limit["limit_mpx_per_s"], "network_share": nb["network_share"],
              "goals": GOALS}
    report["goals_met"] = {"speedup": report["speedup"] >= GOALS["speedup"],
                           "rss_ratio": report["rss_ratio"] <= GOALS["rss_ratio"]}
    report["markdown"] = markdown(report)
    print(report["markdown"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
