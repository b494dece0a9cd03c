"""Training throughput: nbseg's U-Net vs a bare convolution and vs MONAI's BasicUNet, in one run.

Prints patches/s and achieved GFLOP/s for each, with the ratios. Same patch, batch, loss and threads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flops import bare_conv_gflops, forward_flops  # noqa: E402

from nbseg.model.loss import dice_ce_loss  # noqa: E402
from nbseg.model.unet import SIZES, UNet  # noqa: E402
from nbseg.runtime import memory_format  # noqa: E402


def monai_basic_unet(spatial_dims: int, size: str, n_classes: int):
    from monai.networks.nets import BasicUNet

    w = SIZES[size]
    # BasicUNet always pools 4 times; give it nbseg's widths and one more level
    features = (w[0], w[1], w[2], w[3], w[3] * 2 if len(w) == 4 else w[4], w[0])
    return BasicUNet(spatial_dims=spatial_dims, in_channels=1, out_channels=n_classes, features=features)


def time_training(model, x, y, *, seconds: float, layout) -> float:
    """Training steps per second (AdamW, Dice+CE), after two warm-up steps."""
    model = model.to(memory_format=layout).train()
    x = x.contiguous(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = dice_ce_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(), step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
    return steps / (time.perf_counter() - start)


def measure(spatial_dims: int, size: str, patch: int, batch: int, seconds: float) -> dict:
    shape = (batch, 1) + ((patch,) * 2 if spatial_dims == 2 else (patch // 4, patch, patch))
    x, y = torch.randn(shape), torch.randint(0, 3, (shape[0],) + shape[2:])
    layout = memory_format(torch.device("cpu"), spatial_dims)
    rows = {}
    for name, model in (("nbseg UNet", UNet(spatial_dims, 1, 3, size)),
                        ("MONAI BasicUNet", monai_basic_unet(spatial_dims, size, 3))):
        flops = 3 * forward_flops(model, x)  # forward + backward
        rate = time_training(model, x, y, seconds=seconds, layout=layout)
        rows[name] = {"patches_per_s": rate * batch, "gflops": flops * rate / 1e9,
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "gflop_per_step": flops / 1e9}
    rows["bare 3x3 conv"] = {"gflops": bare_conv_gflops(spatial_dims=spatial_dims, channels=SIZES[size][1],
                                                        size=patch // 2, batch=batch, seconds=seconds)}
    return {"spatial_dims": spatial_dims, "size": size, "patch": list(shape[2:]), "batch": batch, "rows": rows}


def markdown(result: dict) -> str:
    rows, bare = result["rows"], result["rows"]["bare 3x3 conv"]["gflops"]
    monai = rows["MONAI BasicUNet"]["patches_per_s"]
    lines = [f"{result['spatial_dims']}D, size {result['size']}, patch {result['patch']}, batch {result['batch']}, "
             f"{torch.get_num_threads()} threads", "",
             "| model | params (M) | GFLOP/step | patches/s | GFLOP/s | % of bare conv | vs MONAI |", "|---|---|---|---|---|---|---|"]
    for name in ("nbseg UNet", "MONAI BasicUNet"):
        r = rows[name]
        lines.append(f"| {name} | {r['params_m']:.2f} | {r['gflop_per_step']:.1f} | {r['patches_per_s']:.1f} | "
                     f"{r['gflops']:.1f} | {100 * r['gflops'] / bare:.0f}% | {r['patches_per_s'] / monai:.2f}x |")
    lines.append(f"| bare 3x3 conv (fwd+bwd) | | | | {bare:.1f} | 100% | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short timings")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 12.0
    results = [measure(2, "S", 128, 8, seconds), measure(3, "S", 64, 2, seconds)]
    for result in results:
        print(markdown(result), end="\n\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
