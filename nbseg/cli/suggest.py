"""`nbseg suggest`: the images of a pool to correct next (nbseg.predict.suggest), for scripted correction loops."""
from __future__ import annotations

from pathlib import Path

from ..choices import SUGGEST_CHOICES, SUGGEST_DEFAULT
from .args import DEVICES, add_command, print_progress


def register(subparsers) -> None:
    p = add_command(
        subparsers, "suggest", run_suggest, help="the images to correct next, most useful first",
        description="Predict a pool of images (nothing is written) and print the K to correct next, one path a "
                    "line, most useful first (by default, among the 3K images where the model finds the most "
                    "foreground, the K that together look most like the pool; see --by): correct those, add them to "
                    "the training masks and fine-tune (nbseg train --init MODEL). MODEL is a trained project, a "
                    "model file, a bioimage.io package or a bundled model's name (e.g. nuclei). Colour images are "
                    "read as grey for a model trained on one channel.",
        example="nbseg suggest nuclei pool/ -n 8")
    p.add_argument("project", metavar="MODEL", help="trained project, model file, bioimage.io package or bundled "
                                                     "model name (nuclei)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="IMAGES", help="image files and/or folders (the pool)")
    p.add_argument("-n", type=int, default=8, metavar="K", help="how many images to propose (default 8)")
    p.add_argument("--by", choices=SUGGEST_CHOICES, default=SUGGEST_DEFAULT,
                   help=f"uncertain: the most uncertain prediction first; disagree: where the folds' models and "
                        f"the TTA variants disagree most; representative: the K that together look most like the "
                        f"pool; diverse: the same among the 2K most uncertain; crowded: the same among the 3K images "
                        f"where the model finds the most objects; dense: among the 3K where it finds the most "
                        f"foreground (default {SUGGEST_DEFAULT})")
    p.add_argument("--tta", default="flips", metavar="{none,flips,all}",
                   help="test-time augmentation (default flips: its variants' disagreement counts)")
    p.add_argument("--skip", type=Path, metavar="DIR",
                   help="a folder of masks: images with a mask of their name there are left out (done already)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the whole ranking (every image, its score)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where to run (default auto)")


def run_suggest(args) -> int:
    from ..io.images import files_by_stem
    from ..predict.suggest import suggest_images

    if args.n < 1:
        raise ValueError(f"-n is {args.n}; give how many images to propose, 1 or more (e.g. -n 8).")
    if args.skip and not args.skip.is_dir():
        raise FileNotFoundError(f"--skip {args.skip}: no such folder. Give the folder of masks done already.")
    skip = files_by_stem(args.skip) if args.skip and any(args.skip.iterdir()) else {}  # empty: nothing done yet
    table = suggest_images(args.project, args.inputs, by=args.by, tta=args.tta, skip=skip, device=args.device,
                           progress=print_progress, batch=args.n)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    for path in table["image"].head(args.n):
        print(path)
    return 0
