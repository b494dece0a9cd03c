"""`nbseg ground-truth` and `nbseg qc`: one ground truth from several experts, and checks of a
training set before training."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``ground-truth`` and ``qc`` commands to ``nbseg``'s sub-command parsers."""
    _register_ground_truth(subparsers)
    _register_qc(subparsers)


def _register_ground_truth(subparsers) -> None:
    parser = subparsers.add_parser(
        "ground-truth",
        help="combine several experts' masks of the same images into one ground truth",
        description="Combine several experts' masks of the same images into one ground truth, and score "
                    "each expert against it (sensitivity, specificity, Dice).",
        epilog="example:\n"
               "  nbseg ground-truth --method staple --output consensus/ alice/ bob/ carol/\n\n"
               "Each EXPERT_DIR holds one expert's masks, named like the images (cell_01.tif in\n"
               "every folder). Binary masks hold 0 (background) and 1 (or 255); use --multiclass\n"
               "for class numbers 0, 1, 2, ...\n"
               "Majority voting (the default) gives every expert one vote, and a tie (e.g. 2 of 4\n"
               "experts) goes to background; STAPLE weighs each expert by how reliable it estimates\n"
               "them to be. Majority voting was chosen by leaving one expert out on BU-BIL (see\n"
               "docs/benchmarks.md).\n"
               "Writes one mask per image into DIR, with the image's name, and expert_scores.csv.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("expert_dirs", nargs="+", metavar="EXPERT_DIR",
                        help="two or more folders, one per expert")
    parser.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="new folder for the ground-truth masks and expert_scores.csv (existing files "
                             "are never replaced)")
    parser.add_argument("--method", choices=("majority", "staple"), default="majority",
                        help="majority (default): one vote each; staple: weigh experts by estimated reliability")
    parser.add_argument("--multiclass", action="store_true",
                        help="masks hold class numbers (0 = background, 1, 2, ...) instead of 0/1")
    parser.add_argument("--threshold", type=float, default=0.5, metavar="P",
                        help="with --method staple (binary): foreground where its probability is above this "
                             "(default 0.5)")
    parser.add_argument("--save-probability", action="store_true",
                        help="also write STAPLE's probability (or the share of experts voting foreground) "
                             "to DIR/probability")
    parser.add_argument("--dims", type=int, choices=(2, 3),
                        help="2 or 3, if the masks' third axis could be either slices or channels")
    parser.set_defaults(func=_ground_truth)


def _register_qc(subparsers) -> None:
    parser = subparsers.add_parser(
        "qc",
        help="check images and masks for problems before training",
        description="Check a folder of images and a folder of masks before training: missing or unreadable "
                    "files, masks that do not fit their image, empty masks, tiny or cut-off objects, "
                    "unusual brightness, object counts or labelled area, and duplicate images. "
                    "Lists every flagged image with the reason.",
        epilog="Example: nbseg qc --images data/images --masks data/masks --csv qc.csv",
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    parser.add_argument("--masks", required=True, metavar="DIR", help="folder of masks, named like the images")
    parser.add_argument("--csv", metavar="FILE", help="write the full table (every image, every measurement)")
    parser.add_argument("--overwrite", action="store_true", help="replace the CSV file if it exists")
    parser.add_argument("--n-classes", type=int, metavar="K",
                        help="masks hold class numbers 0..K-1; without it, masks are binary (0/1) or number "
                             "each object")
    parser.add_argument("--min-object-size", type=int, default=10, metavar="N",
                        help="flag objects smaller than N pixels (voxels in 3D); default 10")
    parser.add_argument("--dims", type=int, choices=(2, 3), help="2 or 3, if a third axis could be slices or channels")
    parser.add_argument("--unlabelled", type=int, metavar="V",
                        help="the mask value that means 'not labelled': counts and checks use the other pixels")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any image is flagged")
    parser.set_defaults(func=_qc)


def _ground_truth(args) -> int:
    from ..labels.expert_folders import ground_truth_folders, summarise_experts

    table = ground_truth_folders(
        args.expert_dirs, args.output, method=args.method, labels="multiclass" if args.multiclass else "binary",
        threshold=args.threshold, save_probability=args.save_probability, dims=args.dims,
        progress=_progress("ground truth"),
    )
    means = summarise_experts(table).drop(columns=["images", "lowest_dice"])
    n_images = table["image"].nunique()
    print(f"\n{args.method} ground truth of {n_images} image(s) written to {args.output}")
    details = Path(args.output) / "expert_scores.csv"
    print(f"Per expert, mean over images (against the ground truth; details in {details}):")
    print(means.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.method == "staple":
        print("(staple_*: STAPLE's own estimates, over the pixels that at least one expert marked)")
    return 0


def _qc(args) -> int:
    from ..labels.qc import qc_dataset

    csv = Path(args.csv) if args.csv else None
    if csv is not None and csv.exists() and not args.overwrite:
        raise FileExistsError(f"{csv} exists already; pass --overwrite to replace it, or choose another --csv file.")
    report = qc_dataset(args.images, args.masks, n_classes=args.n_classes, min_object_size=args.min_object_size,
                        dims=args.dims, unlabelled=args.unlabelled, progress=_progress("checking"))
    print()
    print(report)
    flagged = report.flagged
    if len(flagged):
        print("\nFlagged images:")
        for name, reasons in flagged["reasons"].items():
            print(f"- {name}: {reasons}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        report.to_csv(csv)
        print(f"\nFull table written to {csv}")
    return 1 if args.strict and len(flagged) else 0


def _progress(what: str):
    def report(done: int, total: int, name: str) -> None:
        if sys.stderr.isatty() or done == total:
            end = "\n" if done == total else "\r"
            print(f"{what}: {done}/{total} {name[:40]:<40}", end=end, file=sys.stderr, flush=True)
    return report
