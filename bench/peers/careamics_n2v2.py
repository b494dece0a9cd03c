"""CAREamics N2V2 as the denoising peer of bench/denoise.py: train on a folder of noisy 2D TIFFs for a time
budget, then denoise the same folder into another (same file names, float32).

Runs in CAREamics' own venv (it pins its own torch and Lightning):

    python -m venv bench/_work/venv-careamics
    bench/_work/venv-careamics/bin/pip install careamics==0.3.5
    bench/_work/venv-careamics/bin/python bench/peers/careamics_n2v2.py NOISY OUT --minutes 5 --threads 2

Its own defaults where the factory has them (``create_n2v_config(..., use_n2v2=True)``: augmentations, the
N2V2 U-Net, masking, normalisation); patch 64 x 64 and batch 16 as in CAREamics' N2V examples. The epoch count
is left high and Lightning's ``max_time`` stops training at the budget, as nbseg's ``--minutes`` does.
Prints one JSON line: train and predict seconds, epochs run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("noisy", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--work", type=Path, help="CAREamics' work folder (default OUT/../careamics_work)")
    args = parser.parse_args(argv)

    import numpy as np
    import tifffile
    import torch
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    torch.set_num_threads(args.threads)
    paths = sorted(p for p in args.noisy.iterdir() if p.suffix in (".tif", ".tiff"))
    images = [tifffile.imread(p).astype(np.float32) for p in paths]
    config = create_n2v_config(experiment_name="bench_n2v2", data_type="array", axes="YX",
                               patch_size=[args.patch, args.patch], batch_size=args.batch, num_epochs=100_000,
                               use_n2v2=True)
    seconds = int(round(args.minutes * 60))
    config.training_config.trainer_params = {**config.training_config.trainer_params,
                                             "max_time": {"seconds": seconds}}
    work = args.work or args.out.parent / "careamics_work"
    careamist = CAREamist(config, work_dir=work)
    started = time.perf_counter()
    careamist.train(train_data=images)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    for path, image in zip(paths, images):
        tile = tuple(min(256, s - s % 16) for s in image.shape)  # whole multiples of the U-Net's 16
        prediction = careamist.predict(pred_data=image, data_type="array", axes="YX", tile_size=tile,
                                       tile_overlap=(48, 48))
        arrays = prediction[0] if isinstance(prediction, tuple) else prediction  # (arrays, names) in 0.3.5
        result = arrays[0] if isinstance(arrays, list) else arrays
        tifffile.imwrite(args.out / path.name, np.squeeze(np.asarray(result)).astype(np.float32))
    predict_s = time.perf_counter() - started
    epochs = int(getattr(careamist.trainer, "current_epoch", -1))
    print(json.dumps({"train_s": round(train_s, 1), "predict_s": round(predict_s, 1), "epochs": epochs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
