"""`nbseg predict`, `nbseg evaluate` and `nbseg export`: use a trained project."""
from __future__ import annotations

import sys
from pathlib import Path

from .args import DEVICES, add_command, add_project, int_list


def register(subparsers) -> None:
    _register_predict(subparsers)
    _register_evaluate(subparsers)
    _register_export(subparsers)


def _register_predict(subparsers) -> None:
    p = add_command(
        subparsers, "predict", run_predict, help="segment images with a trained project",
        description="Segment images with the model(s) of a trained project. For each input image NAME the "
                    "output folder gets NAME.prob.ome.tif (probability, 0-255), NAME.mask.ome.tif (the "
                    "segmentation), NAME.uncertainty.ome.tif (0-255, high = the models disagree or doubt) and, "
                    "with --instances, NAME.labels.ome.tif (one number per object); uncertainty.csv ranks the "
                    "images, most uncertain first (check or annotate those). Run it again after an interruption: "
                    "finished images are skipped.",
        example="nbseg predict my_project new_images/ --output predictions/ --instances")
    add_project(p)
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                   help="folder for the results (created if needed)")
    p.add_argument("--tta", default="flips", metavar="{none,flips,all}",
                   help="test-time augmentation: none (fastest), flips (default: also flipped copies), "
                        "all (flips and quarter turns; slowest, a little better)")
    p.add_argument("--threshold", default="0.5", metavar="{otsu,VALUE}",
                   help="probability above which a pixel is foreground: a number between 0 and 1 (default 0.5) "
                        "or 'otsu' (chosen per image)")
    p.add_argument("--instances", action="store_true", help="also separate and number the objects (labels file)")
    p.add_argument("--min-size", type=int, default=10, metavar="N", help="drop objects smaller than this many pixels (default 10)")
    p.add_argument("--overlap", type=float, default=0.5, metavar="F",
                   help="how much neighbouring tiles overlap, 0 to 0.9 (default 0.5; less is faster)")
    p.add_argument("--tile", type=int_list("tile size", "256,256 or 32,128,128"), metavar="[Z,]Y,X",
                   help="tile size Y,X or Z,Y,X (default: the training patch); sides divisible by 8 (16 for size L)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="tiles per step (default 4; lower it if memory runs out)")
    p.add_argument("--axes", help="axes of the files if they don't say, e.g. ZYX, CYX (default: as in training)")
    p.add_argument("--channels", type=int_list("channels", "0 or 0,2"), metavar="C[,C...]",
                   help="channels to use, e.g. 0 or 0,2 (default: as in training)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where to compute (default auto: a GPU if there is one)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in the output folder")


def _register_evaluate(subparsers) -> None:
    p = add_command(
        subparsers, "evaluate", run_evaluate, help="compare predictions with ground truth (Dice, F1, mAP)",
        description="Compare predicted masks with ground-truth masks, paired by file name: NAME.labels.ome.tif "
                    "or NAME.mask.ome.tif (from nbseg predict) or NAME.tif pairs with ground truth NAME.tif. "
                    "Prints Dice and IoU pooled over all pixels, F1 at IoU 0.5 pooled over all objects, and "
                    "mAP (IoU 0.5 to 0.95, the DSB 2018 score); writes one row per image to a CSV file.",
        example="nbseg evaluate predictions/ test_masks/ --csv results.csv")
    p.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="folder of predicted masks or labels")
    p.add_argument("gt_dir", type=Path, metavar="GT_DIR", help="folder of ground-truth masks or labels")
    p.add_argument("--csv", type=Path, metavar="FILE", help="per-image results file (default PRED_DIR/evaluation.csv)")
    p.add_argument("--kind", default="instances", metavar="{instances,binary,multiclass}",
                   help="instances (default: pixels and objects), binary (pixels only) or multiclass "
                        "(Dice per class of class maps)")


def _register_export(subparsers) -> None:
    p = add_command(
        subparsers, "export", run_export, help="write the project's model(s) as one TorchScript file",
        description="Write all models of a project (every fold) as one TorchScript file that takes raw "
                    "intensities and returns class probabilities, normalisation included. Load it with "
                    "torch.jit.load in any PyTorch program; nbseg is not needed there.",
        example="nbseg export my_project my_model.pt")
    add_project(p)
    p.add_argument("output", type=Path, metavar="OUTPUT.pt", help="file to write")
    p.add_argument("--tta", default="none", metavar="{none,flips,all}", help="bake in test-time augmentation: none (default), flips, all")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT.pt if it exists")


def _progress(done: int, total: int, name: str) -> None:
    print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)


def run_predict(args) -> int:
    from ..predict.files import predict_files
    from ..predict.options import PredictOptions

    options = PredictOptions(tta=args.tta, threshold=args.threshold, instances=args.instances, overlap=args.overlap,
                             tile=args.tile, batch_size=args.batch_size, device=args.device, axes=args.axes,
                             channels=args.channels, min_size=args.min_size)
    table = predict_files(args.project, args.inputs, args.output, options, overwrite=args.overwrite,
                          progress=_progress)
    done = int((table["status"] == "predicted").sum())
    print(f"Predicted {done} image(s), {len(table) - done} done earlier; results in {args.output}.")
    if "uncertainty" in table and len(table):
        print("Most uncertain (check these first): " + ", ".join(
            f"{row.image} ({row.uncertainty:.2f})" for row in table.head(5).itertuples()))
    return 0


def run_evaluate(args) -> int:
    from ..metrics.evaluation import evaluate_folders

    evaluation = evaluate_folders(args.pred_dir, args.gt_dir, kind=args.kind)
    csv = args.csv or args.pred_dir / "evaluation.csv"
    evaluation.to_csv(csv)
    print(evaluation.report())
    print(f"Per-image results: {csv}")
    return 0


def run_export(args) -> int:
    from ..predict.export import export_torchscript

    path = export_torchscript(args.project, args.output, tta=args.tta, overwrite=args.overwrite)
    print(f"Wrote {path}. Load it with: model = torch.jit.load({str(path)!r}); "
          "probs = model(image[None].float())")
    return 0
