"""GPU set: what AMP, channels_last and larger batches give on CUDA, against plain fp32 on the same GPU.

Training patches/s (nbseg's 2D U-Net size M on 256x256 patches, and 3D on 32x128x128) and inference
Mpx/s (``nbseg.inference.predict_image`` with 8x TTA on a 2048x2048 image). Without a CUDA device it
says so, writes ``{"gpu": null, ...}`` and exits 0, so ``run_all`` records "no GPU lent in this run".

    python bench/gpu.py [--quick] [--json out.json]
    python bench/gpu.py --device cpu --quick   # exercises the measuring code on the CPU (tests only)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def training_rate(*, device, dims: int, size: str, patch, batch: int, precision: str, channels_last: bool,
                  seconds: float) -> float:
    """Training patches/s (AdamW, Dice+CE) after warm-up."""
    import torch

    from nbseg.model.loss import dice_ce_loss
    from nbseg.model.unet import UNet
    from nbseg.runtime import autocast

    torch.manual_seed(0)
    model = UNet(dims, 1, 3, size).to(device)
    layout = torch.channels_last if channels_last and dims == 2 else torch.contiguous_format
    model = model.to(memory_format=layout).train()
    x = torch.randn((batch, 1, *patch), device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 3, (batch, *patch), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None

    def step():
        with autocast(device, precision):
            loss = dice_ce_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def inference_rate(*, device, side: int, precision: str, batch_size: int, tta: str) -> float:
    """Mpx/s of predict_image on a ``side`` x ``side`` image (an untrained size-M model)."""
    from nbseg.predict.image import predict_image
    from nbseg.model.unet import UNet

    model = UNet(2, 1, 3, "M").eval()
    meta = {"kind": "instances", "patch": [256, 256], "percentiles": [1.0, 99.8], "n_classes": 3,
            "class_names": ["background", "interior", "boundary"], "spatial_dims": 2, "in_channels": 1}
    image = np.random.default_rng(0).random((side, side), dtype=np.float32)
    kwargs = dict(tta=tta, device=device.type, precision=precision, batch_size=batch_size)
    predict_image([(model, meta)], image[:512, :512], **kwargs)  # warm-up
    _sync(device)
    start = time.perf_counter()
    predict_image([(model, meta)], image, **kwargs)
    _sync(device)
    return side * side / 1e6 / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, small sizes")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cuda (default); cpu only to test this script")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        result = {"gpu": None, "torch": torch.__version__, "note": "no CUDA device visible"}
        print(result["note"])
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    device = torch.device(args.device)
    from nbseg.runtime import cuda_has_native_bf16

    amp = "bf16" if device.type == "cpu" or cuda_has_native_bf16(device) else "fp16"
    seconds = 1.0 if args.quick else 10.0
    small = args.quick and device.type == "cpu"
    cases = [(2, "M", (64, 64) if small else (256, 256), (2, 4) if small else (8, 32)),
             (3, "M", (16, 32, 32) if small else (32, 128, 128), (1, 2) if small else (2, 8))]
    rows, notes = [], []
    for dims, size, patch, (batch, big_batch) in cases:
        settings = {"fp32": dict(precision="fp32", channels_last=False, batch=batch)}
        if dims == 2:
            settings["fp32 + channels_last"] = dict(precision="fp32", channels_last=True, batch=batch)
        settings[f"{amp} AMP" + (" + channels_last" if dims == 2 else "")] = dict(precision=amp, channels_last=dims == 2,
                                                                                   batch=batch)
        settings[f"{amp} AMP, batch {big_batch}"] = dict(precision=amp, channels_last=dims == 2, batch=big_batch)
        rates = {}
        for name, s in settings.items():
            try:
                rates[name] = training_rate(device=device, dims=dims, size=size, patch=patch, seconds=seconds, **s)
            except RuntimeError as err:  # out of memory at the large batch, say
                notes.append(f"{dims}D {name}: {str(err).splitlines()[0][:200]}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        label = f"training patches/s, {dims}D size {size}, patch {'x'.join(map(str, patch))}"
        best = max((k for k in rates if k != "fp32"), key=rates.get, default=None)
        if "fp32" in rates and best:
            rows.append({"what": label, "fp32": rates["fp32"], "best": rates[best], "setting": best,
                         "unit": "patches/s", "all": rates})
    side = 512 if small else 2048
    rates = {}
    for name, precision, bs in (("fp32", "fp32", 4), (f"{amp} AMP", amp, 4), (f"{amp} AMP, batch 16", amp, 16)):
        try:
            rates[name] = inference_rate(device=device, side=side, precision=precision, batch_size=bs, tta="all")
        except RuntimeError as err:
            notes.append(f"inference {name}: {str(err).splitlines()[0][:200]}")
    best = max((k for k in rates if k != "fp32"), key=rates.get, default=None)
    if "fp32" in rates and best:
        rows.append({"what": f"inference Mpx/s, 8x TTA, {side}x{side}", "fp32": rates["fp32"], "best": rates[best],
                     "setting": best, "unit": "Mpx/s", "all": rates})
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (script test only)"
    result = {"gpu": name, "torch": torch.__version__, "cuda": torch.version.cuda, "rows": rows, "notes": notes}
    for r in rows:
        print(f"{r['what']}: fp32 {r['fp32']:.1f}, best {r['best']:.1f} {r['unit']} ({r['setting']}, "
              f"{r['best'] / r['fp32']:.2f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
