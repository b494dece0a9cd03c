"""The MONAI peer: what a plain MONAI user writes to train a binary U-Net under a time budget and
predict a folder, in 2D or 3D.

BasicUNet (MONAI's defaults, 2 output classes) + DiceCELoss + Adam, MONAI's own dictionary transforms
for augmentation chosen to match nbseg's as far as they go (foreground-centred crops half of the time,
flips, quarter turns in-plane, a small affine warp on 30 % of patches, gamma / contrast / brightness
/ noise), images scaled by their 1-99.8 percentiles as nbseg does, and ``sliding_window_inference``
(overlap 0.5, Gaussian blending) averaged over the same flips TTA as ``nbseg predict --tta flips``.
Instances: connected components of the foreground (``skimage.measure.label``), as a plain user gets.

Writes ``<name>.tif`` per input (int32 labels with ``--instances``, else a uint8 0/1 mask) and
``monai.json`` with timings into ``--output``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def percentile_scale(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    lo, hi = np.percentile(image, (low, high))
    return ((image.astype(np.float32) - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def read(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def load_pairs(images: Path, masks: Path, dims: int, limit: int | None = None) -> list[dict]:
    data = []
    for path in sorted(images.glob("*.tif"))[:limit]:
        image, mask = read(path), read(masks / path.name)
        if image.ndim != dims:
            raise ValueError(f"{path} has {image.ndim} axes; expected a {dims}D grey image")
        data.append({"image": percentile_scale(image)[None], "label": (mask > 0).astype(np.float32)[None],
                     "name": path.stem})
    return data


def transforms(patch, dims: int):
    from monai import transforms as T

    keys = ["image", "label"]
    plane = (0, 1) if dims == 2 else (1, 2)  # quarter turns in the Y-X plane only (Z may be anisotropic)
    return T.Compose([
        T.SpatialPadd(keys, spatial_size=patch),
        T.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=patch, pos=1, neg=1, num_samples=1),
        *[T.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(dims)],
        T.RandRotate90d(keys, prob=0.75, max_k=3, spatial_axes=plane),
        T.RandAffined(keys, prob=0.3, rotate_range=0.26 if dims == 2 else (0.26, 0.0, 0.0),  # +-15 deg in-plane
                      scale_range=0.15, mode=("bilinear", "nearest"), padding_mode="reflection"),
        T.RandAdjustContrastd("image", prob=1.0, gamma=(0.67, 1.5)),
        T.RandScaleIntensityd("image", factors=0.25, prob=1.0),
        T.RandShiftIntensityd("image", offsets=0.1, prob=1.0),
        T.RandGaussianNoised("image", prob=0.5, std=0.05),
        T.EnsureTyped(keys, track_meta=False),
    ])


def train(data: list[dict], *, dims: int, patch, batch_size: int, minutes: float, lr: float, seed: int):
    """Train until the budget is spent (data loading and augmentation included). Returns model, steps, seconds."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet
    from monai.utils import set_determinism

    set_determinism(seed)
    model = BasicUNet(spatial_dims=dims, in_channels=1, out_channels=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(Dataset([{k: d[k] for k in ("image", "label")} for d in data], transforms(patch, dims)),
                        batch_size=batch_size, shuffle=True, num_workers=0, drop_last=len(data) >= batch_size)
    model.train()
    steps, start, budget = 0, time.perf_counter(), 60.0 * minutes
    while time.perf_counter() - start < budget:
        for batch in loader:
            x, y = batch["image"], batch["label"]
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if time.perf_counter() - start >= budget:
                break
    return model, steps, time.perf_counter() - start


def predict(model, image: np.ndarray, *, patch, dims: int, tta: str = "flips") -> np.ndarray:
    """Foreground probability of one (already scaled) image, sliding window x flips TTA."""
    import torch
    from monai.inferers import sliding_window_inference

    model.eval()
    x = torch.from_numpy(image[None, None])
    flips = [()] + ([(2 + a,) for a in range(dims)] if tta == "flips" else [])
    total = None
    with torch.no_grad():
        for axes in flips:
            xi = torch.flip(x, axes) if axes else x
            out = sliding_window_inference(xi, roi_size=patch, sw_batch_size=4, predictor=model, overlap=0.5,
                                           mode="gaussian")
            prob = torch.softmax(out, dim=1)
            prob = torch.flip(prob, axes) if axes else prob
            total = prob if total is None else total + prob
    return (total / len(flips))[0, 1].numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=Path, required=True)
    parser.add_argument("--train-masks", type=Path, required=True)
    parser.add_argument("--test-images", type=Path, required=True, help="folder of images to predict")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2)
    parser.add_argument("--minutes", type=float, required=True, help="training-time budget")
    parser.add_argument("--patch", type=lambda s: [int(v) for v in s.split(",")], help="default 256,256 / 32,128,128")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tta", choices=("none", "flips"), default="flips")
    parser.add_argument("--instances", action="store_true", help="write connected components (else a 0/1 mask)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-train", type=int)
    args = parser.parse_args(argv)

    import tifffile
    import torch

    torch.set_num_threads(args.threads)
    patch = args.patch or ([256, 256] if args.dims == 2 else [32, 128, 128])
    started = time.perf_counter()
    data = load_pairs(args.train_images, args.train_masks, args.dims, args.limit_train)
    loaded = time.perf_counter()
    model, steps, train_s = train(data, dims=args.dims, patch=patch, batch_size=args.batch_size, minutes=args.minutes,
                                  lr=args.lr, seed=args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    predict_start = time.perf_counter()
    files = sorted(args.test_images.glob("*.tif"))
    for path in files:
        prob = predict(model, percentile_scale(read(path)), patch=patch, dims=args.dims, tta=args.tta)
        fg = prob > 0.5
        if args.instances:
            from skimage.measure import label

            out = label(fg).astype(np.int32)
        else:
            out = fg.astype(np.uint8)
        tifffile.imwrite(args.output / f"{path.stem}.tif", out, compression="zlib")
    predict_s = time.perf_counter() - predict_start
    import monai

    record = {"monai": monai.__version__, "torch": torch.__version__, "train_s": round(train_s, 1),
              "load_s": round(loaded - started, 1), "predict_s": round(predict_s, 1), "train_steps": steps,
              "patch": patch, "batch_size": args.batch_size, "train_images": len(data), "test_images": len(files),
              "threads": torch.get_num_threads()}
    (args.output / "monai.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
