"""The bundled nuclei model's seed threshold, chosen on its own validation images (as `nbseg train` now chooses
every instances model's; nbseg.predict.seeds) and written into nbseg/models/nuclei/model.pt.

Its validation images are the 74 that its training run held back (bench/datasets.py's `dsb_fluorescence_split`,
train part, `make_folds` with seed 0 and val_fraction 0.2, as `nbseg train --seed 0` split them); the 92
test images are not read.

    python bench/bundled_seeds.py [--write]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from datasets import dsb_fluorescence_split  # noqa: E402

MODEL = HERE.parent / "nbseg" / "models" / "nuclei" / "model.pt"


def main(argv=None) -> int:
    from nbseg.data.pairs import find_pairs
    from nbseg.data.split import make_folds
    from nbseg.model.unet import load_model_file
    from nbseg.predict.seeds import choose_seed_threshold, write_choice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the choice into the bundled model file")
    args = parser.parse_args(argv)
    train = dsb_fluorescence_split()["train"]
    pairs = find_pairs(train["images"], train["masks"])
    val = set(make_folds(sorted(p.name for p in pairs), folds=1, val_fraction=0.2, seed=0)[0]["val"])
    model, meta = load_model_file(MODEL)
    choice = choose_seed_threshold([(model, meta)], [p for p in pairs if p.name in val])
    print(json.dumps({"threshold": choice.threshold, "f1": choice.f1, "images": choice.images,
                      "objects": choice.objects}, indent=1))
    if args.write:
        write_choice(MODEL, model, meta, choice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
