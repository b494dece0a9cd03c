"""Train a candidate for the bundled nuclei model, and score it on the 92 held-back fluorescence images.

The bundled model (nbseg/models/nuclei) is trained only on CC0 data: the 368 training images of the fixed
DSB2018 fluorescence split (bench/datasets.py). ``--with-brightfield`` adds DSB2018's 14 grey brightfield
images, inverted so that their nuclei are bright as in fluorescence (the way a model with bright nuclei sees
dark-nuclei images: nbseg negates its first convolution when it fine-tunes on them). Their cells' cytoplasm is
what H&E-like images show too; fluorescence has none. No colour (H&E-like) image is read: those are the
correction loop's data (bench/correction_loop.py, bench/suggest_protocol.py).

    python bench/bundled_model.py --with-brightfield --minutes 30 --work bench/_work/bundled_v3
    python bench/suggest_protocol.py --start bench/_work/bundled_v3/project --tag v3 ...   (it proposes)

Each run writes ``WORK/result.json``: the training's best validation Dice and the held-back scores
(``nbseg predict --instances``, flips), the figures the bundled model's README quotes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from datasets import dsb_fluorescence_split, dsb_split, link_file  # noqa: E402
from quality import run, score  # noqa: E402

from nbseg.project import ProjectLayout  # noqa: E402

BRIGHTFIELD = "brightfield-gray"


def training_folder(work: Path, *, brightfield: bool) -> dict:
    """``work/train/{images,masks}``: links to the fluorescence training images, plus (``brightfield``) the grey
    brightfield images written inverted (255 - x) with links to their masks."""
    import tifffile

    split = dsb_fluorescence_split()
    folders = {kind: work / "train" / kind for kind in ("images", "masks")}
    for kind, folder in folders.items():
        for file in split["train"][kind].iterdir():
            link_file(file.resolve(), folder / file.name)
    if brightfield:
        grey = dsb_split(BRIGHTFIELD, "dsb_brightfield", test_fraction=0)["train"]  # all 14: none is tested on
        for file in grey["images"].iterdir():
            tifffile.imwrite(folders["images"] / file.name, 255 - tifffile.imread(file))  # uint8 stays uint8
            link_file((grey["masks"] / file.name).resolve(), folders["masks"] / file.name)
    return {"folders": folders, "test": split["test"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--with-brightfield", action="store_true")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data = training_folder(args.work, brightfield=args.with_brightfield)
    project, log = args.work / "project", args.work / "log.txt"
    seconds = run([sys.executable, "-m", "nbseg", "train", "--images", data["folders"]["images"], "--masks",
                   data["folders"]["masks"], "--project", project, "--minutes", args.minutes, "--seed", "0",
                   "--labels", "instances"], log=log, threads=args.threads, timeout=120 * args.minutes + 600)
    out = args.work / "test_predictions"
    run([sys.executable, "-m", "nbseg", "predict", project, data["test"]["images"], "--output", out,
         "--instances", "--tta", "flips", "--overwrite"], log=log, threads=args.threads, timeout=3600)
    meta = torch.load(ProjectLayout(project).model_files()[0], map_location="cpu", weights_only=False)["meta"]
    result = {"brightfield": args.with_brightfield, "minutes": args.minutes, "train_s": round(seconds),
              "epoch": meta["epoch"], "val_dice": meta["val_dice"], "seed_threshold": meta.get("seed_threshold"),
              "test": score(out, data["test"]["masks"])}
    (args.work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
