"""`nbseg predict`, `nbseg evaluate` and `nbseg export`: use a trained project."""
from __future__ import annotations

import sys
from pathlib import Path

from .args import DEVICES, add_command, add_project, float_list, int_list, print_progress


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
                    "with --instances, NAME.labels.ome.tif (one number per object) and NAME.objects.csv (a row per "
                    "object; with --rois also NAME.rois.zip, Fiji ROIs); uncertainty.csv ranks the "
                    "images, most uncertain first (check or annotate those). Run it again after an interruption: "
                    "finished images are skipped. PROJECT may also be a bioimage.io model package (.zip or "
                    "rdf.yaml) with PyTorch weights, run with its tile rule and normalisation. A file that cannot be "
                    "read (truncated, empty, not an image, NaN values) is named and left out while the others are "
                    "predicted; the exit status is then 1.",
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
    p.add_argument("--instances", action="store_true",
                   help="also separate and number the objects (labels file) and measure them (NAME.objects.csv: "
                        "centroid, size in pixels and µm, bounding box, mean intensity)")
    p.add_argument("--rois", action="store_true",
                   help="with --instances: also write the objects' outlines as Fiji ROIs (NAME.rois.zip, for the "
                        "ROI Manager; one per object and slice in 3D)")
    p.add_argument("--min-size", type=int, metavar="N",
                   help="drop objects smaller than this many pixels (default: the training plan's, from the smallest "
                        "labelled objects; 10 for models that do not say)")
    p.add_argument("--seed-threshold", type=float, metavar="P",
                   help="with --instances: the interior probability above which a region seeds one object, 0 to 1 "
                        "(higher splits touching objects more readily; default: the value chosen on the validation "
                        "images after training, printed by nbseg train; 0.5 for models that do not say)")
    p.add_argument("--overlap", type=float, default=0.5, metavar="F",
                   help="how much neighbouring tiles overlap, 0 to 0.9 (default 0.5; less is faster)")
    p.add_argument("--tile", type=int_list("tile size", "256,256 or 32,128,128"), metavar="[Z,]Y,X",
                   help="tile size Y,X or Z,Y,X (default: the training patch); sides divisible by 8 (16 for size L)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="tiles per step (default 4; lower it if memory runs out)")
    p.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                   help="keep the process under this much memory, e.g. 2GB or 500MB: smaller batches, results "
                        "kept on disk while predicting (default: no bound). With --cluster, the bound of each "
                        "worker: an image it cannot hold whole is cut into blocks")
    p.add_argument("--axes", help="axes of the files if they don't say, e.g. ZYX, CYX (default: as in training)")
    p.add_argument("--pixel-size", type=float_list("pixel size", "2,0.5,0.5"), dest="pixel_sizes", metavar="[Z,]Y,X",
                   help="pixel size Z,Y,X (or Y,X) in µm, for files that do not say: the objects' µm columns and the "
                        "working scale use it (default: from the files)")
    p.add_argument("--channels", type=int_list("channels", "0 or 0,2"), metavar="C[,C...]",
                   help="channels to use, e.g. 0 or 0,2 (default: as in training)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where to compute (default auto: a GPU if there is one)")
    p.add_argument("--format", default="auto", choices=("auto", "tiff", "zarr"),
                   help="result files: OME-TIFF or OME-Zarr (chunked, with a pyramid; float32 probabilities); "
                        "default auto: OME-Zarr for OME-Zarr inputs, else OME-TIFF")
    p.add_argument("--cluster", metavar="{local[:N],slurm,tcp://HOST:PORT}",
                   help="predict on a dask cluster: local:N (N worker processes here), slurm (jobs as the project's "
                        "config.yaml 'cluster' section says; pip install 'nbseg[cluster]') or a running scheduler's "
                        "address. See docs/scaling.md")
    p.add_argument("--block", type=int_list("block size", "1024,1024 or 64,512,512"), metavar="[Z,]Y,X",
                   help="with --cluster: cut images larger than this into blocks that workers predict and write "
                        "into OME-Zarr as they finish (objects are stitched across block faces). A block below "
                        "one tile of the model (in the image's pixels: a 256 px tile at scale 0.5 is 512) or not "
                        "a multiple of what the U-Net pools is rounded up, and said. Default: an image a worker "
                        "cannot hold whole (--max-memory; else most of a local or SLURM worker's memory) is cut "
                        "into the largest blocks of whole tiles it holds")
    p.add_argument("--denoise", type=Path, metavar="DENOISER",
                   help="denoise the images first with DENOISER (a project made by `nbseg denoise train`), keeping "
                        "them in OUTPUT/denoised/. A project trained with --denoise applies its own denoiser "
                        "without it. See docs/denoising.md")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in the output folder")
    p.add_argument("--trust-code", action="store_true",
                   help="PROJECT is a bioimage.io package with pytorch_state_dict weights: run its architecture code")


def _register_evaluate(subparsers) -> None:
    p = add_command(
        subparsers, "evaluate", run_evaluate, help="compare predictions with ground truth (Dice, F1, mAP)",
        description="Compare predicted masks with ground-truth masks, paired by file name: NAME.labels.ome.tif "
                    "or NAME.mask.ome.tif (from nbseg predict) or NAME.tif pairs with ground truth NAME.tif. "
                    "Prints Dice and IoU pooled over all pixels, F1 at IoU 0.5 pooled over all objects, and "
                    "mAP (IoU 0.5 to 0.95, the DSB 2018 score); writes one row per image to a CSV file. With "
                    "--kind restoration it compares denoised images (NAME.denoised.ome.tif from nbseg denoise "
                    "predict) with clean ones (NAME.tif): PSNR and SSIM.",
        example="nbseg evaluate predictions/ test_masks/ --csv results.csv")
    p.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="folder of predicted masks or labels (or denoised images)")
    p.add_argument("gt_dir", type=Path, metavar="GT_DIR", help="folder of ground-truth masks or labels (or clean images)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="per-image results file (default PRED_DIR/evaluation.csv)")
    p.add_argument("--kind", default="instances", metavar="{instances,binary,multiclass,restoration}",
                   help="instances (default: pixels and objects), binary (pixels only), multiclass "
                        "(Dice per class of class maps) or restoration (PSNR and SSIM of denoised images)")
    p.add_argument("--project", type=Path, metavar="PROJECT",
                   help="the trained project (or model file) that made the predictions: a warning names the images "
                        "it trained on or validated with, whose scores are inflated (default: what nbseg predict "
                        "recorded in PRED_DIR)")


def _register_export(subparsers) -> None:
    p = add_command(
        subparsers, "export", run_export, help="write the project's model(s) as one TorchScript file or a bioimage.io package",
        description="Write all models of a project (every fold) as one TorchScript file that takes raw "
                    "intensities and returns class probabilities, normalisation included. Load it with "
                    "torch.jit.load in any PyTorch program; nbseg is not needed there. With --bioimageio, write "
                    "a bioimage.io model package instead (for deepImageJ, ilastik, QuPath, ...), tested with "
                    "bioimageio.core before it is kept (pip install 'nbseg[bioimageio]').",
        example="nbseg export my_project my_model.pt  |  nbseg export my_project --bioimageio my_model.zip --author 'Ada Lovelace'")
    add_project(p)
    p.add_argument("output", type=Path, nargs="?", metavar="OUTPUT.pt", help="TorchScript file to write (not with --bioimageio)")
    p.add_argument("--tta", default="none", metavar="{none,flips,all}", help="bake in test-time augmentation: none (default), flips, all")
    p.add_argument("--bioimageio", type=Path, metavar="OUT.zip", help="write a bioimage.io model package (format 0.5)")
    p.add_argument("--author", action="append", metavar="NAME", help="bioimage.io: an author of the model, 'Name' or 'Name; Affiliation; github-user' (repeat for several; required)")
    p.add_argument("--name", help="bioimage.io: the model's name (default: the project folder's name)")
    p.add_argument("--description", help="bioimage.io: one-sentence description (default: from the model's task)")
    p.add_argument("--license", default="CC-BY-4.0", help="bioimage.io: SPDX license of the model (default CC-BY-4.0)")
    p.add_argument("--tags", metavar="A,B", help="bioimage.io: comma-separated search words (default: nbseg, unet, segmentation, ...)")
    p.add_argument("--training-data", metavar="TEXT", help="bioimage.io: what the model learnt from (default: the project's data folders, pixel size, classes)")
    p.add_argument("--sample", type=Path, metavar="FILE", help="bioimage.io: image to cut the test input from (default: the first training image)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")


def _memory_size(text: str) -> int:
    """``--max-memory`` text as bytes; bad text is an argparse error that shows the form."""
    import argparse

    from ..predict.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as err:
        message = str(err).replace("max_memory ", "", 1).replace(" (CLI: --max-memory 2GB)", "")
        raise argparse.ArgumentTypeError(message) from None


def run_predict(args) -> int:
    from ..predict.files import NOT_READ, predict_files
    from .main import cli_words
    from ..predict.options import PredictOptions

    options = PredictOptions(tta=args.tta, threshold=args.threshold, instances=args.instances, overlap=args.overlap,
                             tile=args.tile, batch_size=args.batch_size, device=args.device, axes=args.axes,
                             channels=args.channels, min_size=args.min_size, seed_threshold=args.seed_threshold,
                             rois=args.rois, max_memory=args.max_memory, format=args.format,
                             pixel_sizes=args.pixel_sizes)
    project = args.project
    if args.trust_code:  # a bioimage.io package whose Python architecture code the user trusts
        from ..model.bioimageio_load import load_package

        project = load_package(args.project, trust_code=True)
    if args.block and not args.cluster:
        raise ValueError("--block cuts images for the workers of a cluster; give --cluster too (e.g. --cluster local:2).")
    inputs, options = _denoised_inputs(args, options)
    if args.cluster:
        from ..predict.cluster import predict_on_cluster

        table = predict_on_cluster(project, inputs, args.output, options, cluster=args.cluster, block=args.block,
                                   overwrite=args.overwrite, progress=print_progress, report=print)
    else:
        table = predict_files(project, inputs, args.output, options, overwrite=args.overwrite, progress=print_progress)
    if "merges" in table and table["merges"].notna().any():
        print(f"Stitching across block faces made {int(table['merges'].sum())} merge(s).")
    done, earlier = (int((table["status"] == status).sum()) for status in ("predicted", "done earlier"))
    print(f"Predicted {done} image(s), {earlier} done earlier; results in {args.output}.")
    if "uncertainty" in table and table["uncertainty"].notna().any():
        print("Most uncertain (check these first): " + ", ".join(
            f"{row.image} ({row.uncertainty:.2f})" for row in table.dropna(subset=["uncertainty"]).head(5).itertuples()))
    failed = table[table["status"] == NOT_READ]
    _warn_seen(table[table["status"] != NOT_READ], "predict", scoring=False)
    for row in failed.itertuples():  # the others were predicted; these need the user
        print(f"nbseg predict: error: not predicted: {cli_words(row.error)}", file=sys.stderr)
    return 1 if len(failed) else 0


def _denoised_inputs(args, options):
    """The inputs to segment and how to read them: as given, or denoised first (``--denoise``, or the denoiser the
    project was trained with) into OUTPUT/denoised/, on the cluster too with ``--cluster``."""
    from ..denoise.segment import denoised_inputs

    return denoised_inputs(args.project, args.inputs, args.output, options, given=args.denoise,
                           overwrite=args.overwrite, cluster=args.cluster, block=args.block, progress=print_progress,
                           report=print)


def run_evaluate(args) -> int:
    from ..metrics.evaluation import evaluate_folders
    from ..predict.files import prediction_roles
    from ..metrics.restoration import evaluate_restoration

    if args.kind == "restoration":
        evaluation = evaluate_restoration(args.pred_dir, args.gt_dir)
    else:
        evaluation = evaluate_folders(args.pred_dir, args.gt_dir, kind=args.kind)
    csv = args.csv or args.pred_dir / "evaluation.csv"
    evaluation.to_csv(csv)
    print(evaluation.report())
    print(f"Per-image results: {csv}")
    table = evaluation.table
    roles = prediction_roles(list(table["image"]), args.pred_dir, args.project, models_first=True)
    _warn_seen(table.assign(role=table["image"].map(roles)), "evaluate", scoring=True)
    return 0


def _warn_seen(table, command: str, *, scoring: bool) -> None:
    """Say so when the images of ``table`` (its ``image`` and ``role`` columns) were trained on or validated with."""
    from ..predict.seen import inflated_note

    if "role" not in table:
        return
    note = inflated_note(dict(zip(table["image"], table["role"].fillna("new"))), scoring=scoring)
    if note:
        print(f"nbseg {command}: warning: {note}", file=sys.stderr)


def run_export(args) -> int:
    from ..predict.export import export_torchscript

    if args.bioimageio is not None:
        return _run_bioimageio_export(args)
    if args.output is None:
        raise ValueError("Give the file to write (nbseg export PROJECT OUTPUT.pt) or a bioimage.io package "
                         "(nbseg export PROJECT --bioimageio OUT.zip --author NAME).")
    path = export_torchscript(args.project, args.output, tta=args.tta, overwrite=args.overwrite)
    print(f"Wrote {path}. Load it with: model = torch.jit.load({str(path)!r}); "
          "probs = model(image[None].float())")
    _say_working_scale(args.project)
    return 0


def _say_working_scale(project) -> None:
    """A model trained at a coarser working scale expects images resampled to it (nbseg predict does that)."""
    from ..data.resample import is_native
    from ..predict.ensemble import ensemble_info, load_ensemble

    scale = ensemble_info(load_ensemble(project)).scale
    if not is_native(scale):
        print(f"Note: this model was trained at working scale {'x'.join(f'{f:g}' for f in scale)} ([Z,]Y,X): give it "
              "images resized by these factors and resize its output back (nbseg predict does both itself).")


def _run_bioimageio_export(args) -> int:
    from ..predict.bioimageio_export import export_bioimageio

    if args.output is not None:
        raise ValueError(f"Give either OUTPUT.pt ({args.output}) or --bioimageio {args.bioimageio}, not both: "
                         "run nbseg export twice for both files.")
    path = export_bioimageio(args.project, args.bioimageio, authors=args.author, name=args.name,
                             description=args.description, license=args.license, tags=args.tags,
                             training_data=args.training_data, sample=args.sample,
                             tta=args.tta, overwrite=args.overwrite)
    print(f"Wrote {path}: a bioimage.io model package that passed bioimageio.core's test. Open it in deepImageJ, "
          "ilastik or QuPath, or upload it to https://bioimage.io.")
    return 0
