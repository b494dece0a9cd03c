"""deepflash2 0.3.0 on the DSB2018 split, under a training-time budget, as its Python API is used.

Runs in its own venv (bench/_work/venv-df2, made by bench/peers/setup_deepflash2.sh): deepflash2 pins
its own torch/fastai stack. Writes one instance label image ``<name>.tif`` per test image into
``--output`` and a ``deepflash2.json`` with timings; bench/quality.py scores them with nbseg's metrics.

deepflash2 defaults are kept (U-Net with a ConvNeXt-tiny encoder, 512 tiles, batch 4, Adam, Dice+CE,
its augmentation, its Gaussian-weighted tiled prediction with TTA, instance labels read with
deepflash2's own border separation) except where this machine forces otherwise:
- ``encoder_weights=None``: no downloads here (deepflash2 would fetch ImageNet weights);
- ``mixed_precision_training=False`` (CPU) and ``n_models=1`` (its default ensembles 5 models; one
  model gets the whole budget, like nbseg's default);
- the budget: its ``fine_tune`` (1 frozen epoch, then one-cycle) is driven by time: the frozen phase
  gets 10 % of the budget and the rest goes to the unfrozen phase; the one-cycle progress follows the
  elapsed time, so the schedule completes within the budget. Per-epoch validation is skipped (there
  is no model selection under a budget) and the final weights are kept;
- data loading in the main process (``num_workers=0``) so it uses the same 2 threads as the others;
- instances: deepflash2 splits objects with cellpose, which it installs from GitHub at run time (not
  reachable here); so its fallback, ``deepflash2.utils.label_mask`` (4-connected components of the
  predicted foreground, as its own binary metrics do), gives the labels.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=Path, required=True)
    parser.add_argument("--train-masks", type=Path, required=True)
    parser.add_argument("--test-images", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="folder for <name>.tif instance labels")
    parser.add_argument("--work", type=Path, required=True, help="folder for deepflash2's models and scratch")
    parser.add_argument("--minutes", type=float, required=True, help="training-time budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit-train", type=int, help="use only the first N training images (smoke runs)")
    parser.add_argument("--tile-shape", type=int, help="override deepflash2's 512 tiles (smoke runs only)")
    args = parser.parse_args(argv)

    import numpy as np
    import tifffile
    import torch

    torch.set_num_threads(args.threads)
    from fastai.callback.core import Callback, CancelFitException, CancelValidException
    from deepflash2.config import Config
    from deepflash2.learner import EnsembleLearner, EnsemblePredictor
    from deepflash2.utils import label_mask
    import deepflash2

    started = time.perf_counter()
    budget_s = 60.0 * args.minutes
    args.work.mkdir(parents=True, exist_ok=True)
    args.output.mkdir(parents=True, exist_ok=True)
    os.chdir(args.work)  # deepflash2 writes .tmp and models next to its path

    class TimeBudget(Callback):
        """Ends fine_tune's two phases on time and drives the one-cycle schedule by elapsed time."""

        order = 0  # after TrainEvalCallback (-10), before ParamScheduler (60)

        def __init__(self, budget: float, frozen_share: float = 0.1):
            self.budget, self.frozen_share = budget, frozen_share
            self.phase, self.spent, self.steps = -1, 0.0, 0

        def before_fit(self):
            self.phase += 1
            share = self.frozen_share if self.phase == 0 else 1.0
            left = self.budget - self.spent
            self.phase_budget = max(left * share if self.phase == 0 else left, 1e-3)
            self.phase_start = time.perf_counter()

        def _elapsed(self):
            return time.perf_counter() - self.phase_start

        def before_batch(self):
            if self.training:
                self.learn.pct_train = min(self._elapsed() / self.phase_budget, 0.999)

        def after_batch(self):
            if self.training:
                self.steps += 1
            if self._elapsed() >= self.phase_budget:
                raise CancelFitException()

        def before_validate(self):
            raise CancelValidException()

        def after_fit(self):
            self.spent += self._elapsed()

    train_files = sorted(args.train_images.glob("*.tif"))
    if args.limit_train:
        train_files = train_files[: args.limit_train]
    config = Config(n_models=1, encoder_weights=None, mixed_precision_training=False, instance_labels=True,
                    num_classes=2, use_gpu=False, n_epochs=10_000)
    if args.tile_shape:
        config.tile_shape = args.tile_shape
    config.set_device("cpu")
    budget_cb = TimeBudget(budget_s)
    label_fn = lambda f: args.train_masks / f.name  # noqa: E731 (deepflash2 wants a callable)
    learner = EnsembleLearner(files=train_files, label_fn=label_fn, config=config, path=args.work,
                              cbs=[budget_cb], dl_kwargs={"num_workers": 0})
    prepared = time.perf_counter()
    learner.fit(1)
    train_s = time.perf_counter() - prepared
    learner.save_inference_ensemble()
    ensemble_path = learner.ensemble_dir / f"ensemble_{learner.model_name}.pt"

    predict_start = time.perf_counter()
    test_files = sorted(args.test_images.glob("*.tif"))
    predictor = EnsemblePredictor(files=test_files, config=config, path=args.work, ensemble_path=ensemble_path)
    predictor.get_ensemble_results()
    for f in test_files:
        pred = np.asarray(predictor.g_pred[f.name][:])
        labels = label_mask((pred == 1).astype("uint8"), threshold=0.5, connectivity=4)
        tifffile.imwrite(args.output / f"{f.stem}.tif", labels.astype(np.int32), compression="zlib")
    predict_s = time.perf_counter() - predict_start
    record = {"deepflash2": deepflash2.__version__, "torch": torch.__version__, "train_s": round(train_s, 1),
              "prepare_s": round(prepared - started, 1), "predict_s": round(predict_s, 1),
              "train_steps": budget_cb.steps, "train_images": len(train_files), "test_images": len(test_files),
              "tile_shape": config.tile_shape, "encoder": config.encoder_name, "threads": torch.get_num_threads()}
    (args.output / "deepflash2.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
