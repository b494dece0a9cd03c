"""Predict images with a bioimage.io model package through bioimage.io's own pipeline, as a consumer
without nbseg would (run by bench/bioimageio_clean.py inside a clean venv holding only bioimageio.core
and torch; it must not import nbseg).

    python bioimageio_predict.py PACKAGE.zip INPUT_DIR OUTPUT_DIR [--blocksize N]

Every ``INPUT_DIR/NAME.npy`` (raw intensities, axes b,c,y,x as the package's input declares) becomes
``OUTPUT_DIR/NAME.npy`` (the package's output, class probabilities b,c,y,x). The package's declared
preprocessing (``scale_range``) runs inside bioimage.io's pipeline. Prints one JSON line of timings
and versions.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--blocksize", type=int, default=None,
                        help="bioimage.io's blocksize_parameter n (tiles of min + n*step); default: whole images")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("nbseg") is not None:
        raise SystemExit("nbseg is importable here: run this from a clean environment, outside the repository.")

    import bioimageio.core
    import torch
    from bioimageio.core import create_prediction_pipeline, load_model_description, predict
    from bioimageio.spec.model.v0_5 import TensorId

    started = time.perf_counter()
    model = load_model_description(str(args.package))
    pipeline = create_prediction_pipeline(model)
    load_s = time.perf_counter() - started
    in_id, out_id = model.inputs[0].id, model.outputs[0].id
    args.outputs.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for path in sorted(args.inputs.glob("*.npy")):
        raw = np.load(path)
        started = time.perf_counter()
        sample = predict(model=pipeline, inputs={TensorId(str(in_id)): raw}, sample_id=path.stem,
                         blocksize_parameter=args.blocksize)
        probs = np.asarray(sample.members[TensorId(str(out_id))].data, dtype=np.float32)
        seconds[path.stem] = round(time.perf_counter() - started, 3)
        np.save(args.outputs / path.name, probs)
    print(json.dumps({"load_s": round(load_s, 3), "predict_s": seconds, "bioimageio.core": bioimageio.core.__version__,
                      "torch": torch.__version__, "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
