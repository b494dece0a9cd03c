"""`nbseg denoise train` and `nbseg denoise predict`: Noise2Void (N2V2) on the user's own noisy images, or CARE
on noisy/clean pairs (``--targets``)."""
from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..project import ProjectLayout
from .args import DEVICES, ExampleFormatter, float_list, int_list, print_progress


def run_train(args) -> int:
    from ..denoise.train import PAIRED, denoise_config, load_noisy, plan_denoising, train_denoiser
    from ..train.callbacks import PrintProgress

    saved = ProjectLayout(args.project).config
    base = Config.load(saved) if saved.exists() else None
    if args.images is None and base is None:
        raise ValueError("No images given: pass --images DIR, the folder of noisy images to learn from.")
    config = denoise_config(args.images or base.data.images, base=base,
                            data={"axes": args.axes, "channels": args.channels, "dims": args.dims,
                                  "pixel_sizes": args.pixel_sizes, "masks": args.targets},
                            train={"minutes": args.minutes, "epochs": args.epochs, "seed": args.seed,
                                   "device": args.device, "batch_size": args.batch_size,
                                   "steps_per_epoch": args.steps_per_epoch},
                            model={"patch": args.patch, "dims": args.model_dims})
    dataset = load_noisy(config.data)
    plan, fingerprint = plan_denoising(config, dataset)
    for line in dataset.notes + fingerprint.notes + plan.lines():
        print(line)
    result = train_denoiser(config, args.project, callbacks=[PrintProgress()], resume=args.resume, dataset=dataset,
                            plan=plan)
    method = "CARE" if dataset.kind == PAIRED else "N2V2"
    print(f"{method} denoiser {result.model_path}  (denoise with: nbseg denoise predict {args.project} IMAGES "
          "--output DIR)")
    if result.stopped == "interrupted":
        print("Training was stopped; the best model so far is kept. Continue with --resume.")
    return 0


def run_predict(args) -> int:
    from ..denoise.predict import denoise_files

    settings = dict(overwrite=args.overwrite, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size,
                    device=args.device, axes=args.axes, channels=args.channels, progress=print_progress)
    if (args.block or args.max_memory) and not args.cluster:
        raise ValueError("--block and --max-memory size the blocks of a cluster's workers; give --cluster too "
                         "(e.g. --cluster local:2).")
    if args.cluster:
        from ..denoise.cluster import denoise_on_cluster

        written = denoise_on_cluster(args.project, args.inputs, args.output, cluster=args.cluster, block=args.block,
                                     max_memory=args.max_memory, report=print, **settings)
    else:
        written = denoise_files(args.project, args.inputs, args.output, **settings)
    from ..denoise.segment import record_copies

    record_copies(args.project, args.output)  # a project trained on them carries this denoiser
    print(f"Denoised {len(written)} image(s) into {args.output} (<name>.denoised.ome.tif, or .ome.zarr when cut "
          "into blocks; float32, the input's intensity scale).")
    return 0


def register(subparsers) -> None:
    group = subparsers.add_parser(
        "denoise", help="train a denoiser (Noise2Void N2V2; CARE with clean pairs) and denoise with it",
        description="Denoising before segmentation: Noise2Void with the N2V2 changes learns from the noisy images "
                    "themselves (no clean images needed); CARE learns from noisy/clean pairs (--targets). 2D and "
                    "3D. See docs/denoising.md.",
        epilog="example: nbseg denoise train --images noisy/ --project dn --minutes 5  |  "
               "nbseg denoise predict dn noisy/ --output denoised/", formatter_class=ExampleFormatter)
    commands = group.add_subparsers(dest="denoise_command", metavar="{train,predict}")
    group.set_defaults(func=lambda args: group.print_help() or 2)

    train = commands.add_parser(
        "train", help="train a denoiser on a folder of noisy images", formatter_class=ExampleFormatter,
        description="Train Noise2Void (N2V2: blind spots replaced by the median of their neighbours, a U-Net "
                    "without its top skip connection and with max-blur-pool) on noisy images, or, with --targets, "
                    "CARE (a U-Net learning noisy -> clean from pairs), planned from the images like segmentation. "
                    "Everything is kept in the project folder; --resume continues.",
        epilog="example: nbseg denoise train --images noisy/ --project dn --minutes 5  |  "
               "nbseg denoise train --images noisy/ --targets clean/ --project care")
    train.add_argument("--images", type=Path, help="folder of noisy images (TIFF, OME-TIFF, PNG, CZI, ...)")
    train.add_argument("--targets", type=Path, metavar="DIR",
                       help="folder of clean images, each named as its noisy image (the suffix may differ): trains "
                            "CARE instead of N2V2")
    train.add_argument("--project", type=Path, required=True, help="folder for the denoiser, its checkpoints and history")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time budget in minutes (default 5)")
    budget.add_argument("--epochs", type=int, help="number of epochs instead of a time budget")
    train.add_argument("--seed", type=int, help="random seed; the same seed repeats a CPU run")
    train.add_argument("--dims", type=int, choices=(2, 3), help="2 for images, 3 for stacks (default: from the data)")
    train.add_argument("--axes", help="axes of the files if they don't say, e.g. ZYX, CYX")
    train.add_argument("--channels", type=int_list("channels", "0 or 0,2"), help="channels to use, e.g. 0 or 0,2")
    train.add_argument("--pixel-size", type=float_list("pixel size", "2,0.5,0.5"), dest="pixel_sizes",
                       help="pixel size Z,Y,X (or Y,X) in µm, for files that do not say (plans slices for anisotropic stacks)")
    train.add_argument("--model-dims", type=int, choices=(2, 3), dest="model_dims",
                       help="for stacks: 2 runs a 2D network over every slice, 3 a 3D network (default planned, as "
                            "for segmentation: slices on a CPU or for anisotropic stacks)")
    train.add_argument("--patch", type=int_list("patch size", "128,128 or 16,64,64"), help="patch Y,X or Z,Y,X (default planned)")
    train.add_argument("--batch-size", type=int, help="patches per step (default planned)")
    train.add_argument("--steps-per-epoch", type=int, help="steps between two validations (default planned)")
    train.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    train.add_argument("--resume", action="store_true", help="continue a stopped run from its last checkpoint")
    train.set_defaults(func=run_train)

    predict = commands.add_parser(
        "predict", help="denoise images with a trained denoiser", formatter_class=ExampleFormatter,
        description="Denoise images tile by tile (blended, bounded memory). For each input NAME the output folder "
                    "gets NAME.denoised.ome.tif: float32, in the input's intensity scale, with its axes and pixel "
                    "sizes. Images denoised already are skipped unless --overwrite.",
        epilog="example: nbseg denoise predict dn images/ --output denoised/")
    predict.add_argument("project", type=Path, metavar="DENOISER", help="denoiser project folder (or its model file)")
    predict.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="image files and/or folders of images")
    predict.add_argument("--output", "-o", type=Path, required=True, metavar="DIR", help="folder for the results")
    predict.add_argument("--tile", type=int_list("tile size", "256,256 or 32,128,128"), metavar="[Z,]Y,X",
                         help="tile size (default: the training patch)")
    predict.add_argument("--overlap", type=float, default=0.5, metavar="F", help="tile overlap, 0 to 0.9 (default 0.5)")
    predict.add_argument("--batch-size", type=int, default=4, metavar="N", help="tiles per step (default 4)")
    predict.add_argument("--axes", help="axes of the files if they don't say (default: as in training)")
    predict.add_argument("--channels", type=int_list("channels", "0 or 0,2"), help="channels (default: as in training)")
    predict.add_argument("--device", default="auto", choices=DEVICES, help="where to compute (default auto)")
    predict.add_argument("--cluster", metavar="{local[:N],slurm,tcp://HOST:PORT}",
                         help="denoise on a dask cluster, as `nbseg predict --cluster` (see docs/scaling.md)")
    predict.add_argument("--block", type=int_list("block size", "1024,1024 or 64,512,512"), metavar="[Z,]Y,X",
                         help="with --cluster: cut images larger than this into blocks (rounded up to whole tiles), "
                              "written as NAME.denoised.ome.zarr (default: only images a worker cannot hold whole)")
    predict.add_argument("--max-memory", metavar="SIZE", dest="max_memory",
                         help="with --cluster: the memory bound of each worker, e.g. 2GB")
    predict.add_argument("--overwrite", action="store_true", help="replace earlier results")
    predict.set_defaults(func=run_predict)
