"""`nbseg train` and `nbseg lr-find`: the data and training options shared by both."""
from __future__ import annotations

from pathlib import Path

from ..config import Config, update_config
from ..project import ProjectLayout
from .args import DEVICES, float_list, int_list, name_list, print_progress


def _add_data_options(parser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--images", type=Path, help="folder of raw images (TIFF, OME-TIFF, PNG, CZI, ...)")
    data.add_argument("--masks", type=Path, help="folder of label images with the same file names as the images")
    data.add_argument("--project", type=Path, required=True,
                      help="project folder: settings, split, checkpoints, models and history are kept here")
    data.add_argument("--config", type=Path, help="settings file (YAML); options given here override it")
    data.add_argument("--dims", type=int, choices=(2, 3), help="2 for images, 3 for stacks (default: from the data)")
    data.add_argument("--axes", help="axes of the files if they don't say, e.g. ZYX, CYX, ZCYX, YXC")
    data.add_argument("--channels", type=int_list("channels", "0 or 0,2"), help="channels to use, e.g. 0 or 0,2")
    data.add_argument("--labels", choices=("auto", "binary", "multiclass", "instances"),
                      help="what the masks hold: binary (0/1), multiclass (0..K-1) or instances (one number per "
                           "object; trained as background/interior/boundary so touching objects come apart)")
    data.add_argument("--n-classes", type=int, help="number of classes for multiclass labels, background included")
    data.add_argument("--excluding-masks", type=Path, help="folder of masks whose nonzero pixels training ignores")
    data.add_argument("--unlabelled", type=int, metavar="V",
                      help="the mask value that means 'not labelled' (e.g. slices or regions nobody labelled): "
                           "those pixels count nowhere in training. No default: 255 is foreground in many masks")
    data.add_argument("--seg2", type=Path, help="folder of a second segmentation, used inside the merging masks")
    data.add_argument("--merging-masks", type=Path, help="folder of masks where Seg2 replaces the masks")
    data.add_argument("--val-fraction", type=float, help="share of images held back for validation (default 0.2)")
    test = data.add_mutually_exclusive_group()
    test.add_argument("--test-fraction", type=float, metavar="F",
                      help="share of images held back as the test set (seeded, kept in split.json once chosen): never "
                           "trained on nor used to choose anything, so their scores are honest (default 0: none)")
    test.add_argument("--test-images", type=name_list, metavar="NAMES",
                      help="the test images by name instead: a,b,c or a text file with one name a line")
    data.add_argument("--pixel-size", type=float_list("pixel size", "2,0.5,0.5"), dest="pixel_sizes",
                      help="pixel size Z,Y,X (or Y,X) in µm, for files that do not say (default: from the files)")


def _add_training_options(parser) -> None:
    train = parser.add_argument_group("training")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time budget in minutes (all folds together)")
    budget.add_argument("--epochs", type=int, help="number of epochs (passes of --steps-per-epoch batches)")
    train.add_argument("--model-dims", type=int, choices=(2, 3), dest="model_dims",
                       help="the network's dimensionality; for stacks 2 runs a 2D network over every slice "
                            "(default: planned from the data and the device, printed before training)")
    train.add_argument("--scale", type=float,
                       help="working scale in-plane: 0.5 trains and predicts at half resolution (outputs keep the "
                            "images' size); default planned from the objects' size, printed before training")
    train.add_argument("--size", choices=("S", "M", "L"), help="model size: S fastest (default; best for CPU minutes), M and L larger (for GPUs)")
    train.add_argument("--patch", type=int_list("patch size", "256,256 or 32,128,128"),
                       help="patch size Y,X (2D) or Z,Y,X (3D); each pooled side divisible by 8 (16 for size L)")
    train.add_argument("--batch-size", type=int, help="patches per training step (default: planned from the patch "
                       "and the device, printed before training)")
    train.add_argument("--lr", type=float, help="peak learning rate (default 3e-3; see `nbseg lr-find`); with "
                       "--init it replaces fine-tuning's own rate (a third of the default)")
    train.add_argument("--steps-per-epoch", type=int, help="training steps between two validations (default: planned, "
                       "an epoch of about 4 M voxels, printed before training)")
    train.add_argument("--patience", type=int, help="stop after this many epochs without a better validation Dice")
    train.add_argument("--folds", type=int, help="K >= 2 trains a K-fold ensemble of K models (default 1)")
    train.add_argument("--seed", type=int, help="random seed; the same seed repeats a CPU run")
    train.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    train.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                       help="number format (default auto: fp16/bf16 AMP on GPU, bf16 on CPUs with AMX)")


_DATA_KEYS = {"images": "images", "masks": "masks", "dims": "dims", "axes": "axes", "channels": "channels",
              "labels": "labels", "n_classes": "n_classes", "excluding_masks": "excluding_masks", "seg2": "seg2",
              "unlabelled": "unlabelled",
              "merging_masks": "merging_masks", "val_fraction": "val_fraction", "pixel_sizes": "pixel_sizes",
              "test_fraction": "test_fraction", "test_images": "test_images"}
_TRAIN_KEYS = ("minutes", "epochs", "batch_size", "lr", "steps_per_epoch", "patience", "folds", "seed", "device",
               "precision")


def _given(args, keys) -> dict:
    """``{setting: value}`` of the options in ``keys`` (``(arg, setting)`` pairs) given on the command line."""
    return {key: getattr(args, arg) for arg, key in keys if getattr(args, arg, None) is not None}


def config_from_args(args) -> Config:
    """Settings from --config, else the project's saved config; options given on the command line win."""
    saved = args.config or ProjectLayout(args.project).config
    if args.config is not None and not Path(args.config).is_file():  # a typo must not fall back to no settings
        raise FileNotFoundError(f"--config {args.config}: no such file. Check the path (relative to {Path.cwd()}).")
    base = Config.load(saved) if Path(saved).exists() else None
    # init "none" clears a saved init (nbseg.train.init.init_source)
    train = _given(args, [(key, key) for key in (*_TRAIN_KEYS, "init", "warm_start")])
    init = getattr(args, "init", None)  # lr-find has no --init
    if args.lr is not None:
        train["lr_for_fine_tuning"] = True  # given on purpose, for this run whatever it starts from
    elif init is not None and (base is None or init != base.train.init):
        train["lr_for_fine_tuning"] = False  # a new source keeps fine-tuning's own lr unless --lr is given
    if args.minutes is not None:
        train["epochs"] = None
    if args.epochs is not None:
        train["minutes"] = None
    model = _given(args, [("size", "size"), ("patch", "patch"), ("model_dims", "dims"), ("scale", "scale")])
    data = _given(args, _DATA_KEYS.items())
    if getattr(args, "test_fraction", None) is not None:  # the test set given replaces the saved one
        data["test_images"] = None
    if getattr(args, "test_images", None) is not None:
        data["test_fraction"] = 0.0
    changes = {"data": data, "model": model, "train": train}
    if not (changes["data"].get("images") or (base is not None and base.data.images)):
        raise ValueError("No images given: pass --images DIR --masks DIR (or --config FILE).")
    return update_config(base, changes)


def run_train(args) -> int:
    from ..train import distributed

    config = config_from_args(args)
    # under torchrun the process group opens before planning: each process plans for its own GPU
    with distributed.session(config.train.device) as opened:
        say = print if distributed.is_main() else _silent  # N processes, one voice
        if opened:
            say(opened)
        return _train(args, config, say)


def _silent(*args, **kwargs) -> None:
    pass


def _train(args, config, say) -> int:
    from ..data import load_dataset
    from ..train.callbacks import PrintProgress
    from ..train.plan import plan_training
    from ..train.trainer import check_replace, fit, training_dataset

    check_replace(args.project, replace=args.overwrite, resume=args.resume)  # before anything is written
    data = _training_images(args, config, say)
    dataset = training_dataset(config, args.project, load_dataset(data))
    if dataset.test:
        say(f"test set: {len(dataset.test)} image(s) held back, never trained on (split.json): "
            f"{', '.join(dataset.test[:8])}{', ...' if len(dataset.test) > 8 else ''}")
    plan, fingerprint = plan_training(config, dataset)
    for line in fingerprint.notes + plan.lines():
        say(line)
    result = fit(config, args.project, callbacks=[PrintProgress()], resume=args.resume, dataset=dataset,
                 plan=plan, fingerprint=fingerprint)
    for path, dice in zip(result.model_paths, result.best_dice):
        say(f"model {path}  best validation Dice {dice:.4f}")
    _choose_seeds(args.project, data, say)
    if result.interrupted:
        say("Training was stopped; the best model so far is kept. Continue with --resume.")
    return 0


def _choose_seeds(project, data, say) -> None:
    """Instances: each fold's seed threshold, chosen on its validation images (nbseg.predict.seeds)."""
    from ..predict.seeds import calibrate_project
    from ..train import distributed

    for fold, choice in enumerate(distributed.run_on_main(calibrate_project, project, data)):
        say(choice.line(fold))


def _training_images(args, config, say):
    """The data settings to train from: ``config.data``, or with ``--denoise`` (or a denoiser the project carries
    from an earlier run) its images denoised once into the project's cache (nbseg.denoise.segment).

    Under torchrun the first process alone carries the denoiser and fills the cache (N processes writing the
    same files would race); the others wait and read what it made."""
    from ..train import distributed

    return distributed.run_on_main(_denoised_or_raw, args, config, say)


def _denoised_or_raw(args, config, say):
    from ..denoise.segment import denoised_training_data, made_by, training_denoiser

    denoiser = training_denoiser(args.project, getattr(args, "denoise", None), images=config.data.images)
    if denoiser is None:
        return config.data
    if made_by(config.data.images, denoiser):
        say(f"The images in {config.data.images} were denoised by {denoiser} (copied into the project: nbseg predict "
            "denoises new images first, and leaves its own copies as they are).")
    else:
        say(f"Training on the images denoised by {denoiser} (copied from {args.denoise or 'an earlier run'}; "
            f"nbseg predict applies it too; --denoise none drops it). Denoising them once into "
            f"{ProjectLayout(args.project).denoised_images} ...")
    return denoised_training_data(config.data, args.project, denoiser, progress=print_progress)


def run_lr_find(args) -> int:
    from ..data import load_dataset
    from ..train.lr_finder import find_lr, rate_in_use
    from ..train.trainer import training_dataset

    config = config_from_args(args)
    # the images training will read: denoised first with --denoise or a denoiser the project carries
    dataset = training_dataset(config, args.project, load_dataset(_training_images(args, config, print)))
    result = find_lr(config, args.project, num_steps=args.steps, dataset=dataset)  # the test images stay unseen
    print(f"swept {len(result.lrs)} learning rates from {result.lrs[0]:.1e} to {result.lrs[-1]:.1e} "
          f"({result.stop_reason})")
    print(f"steepest descent at {result.suggestion:.2e}")
    if result.proposal_note:
        print(f"note: {result.proposal_note}")
    proposal = f"{result.proposal:.2e}"
    print(f"proposed learning rate: {proposal}  (use: nbseg train ... --lr {proposal})")
    # as `nbseg train` would read it without --lr: a fine-tuning run keeps its own rate
    train = config.train.model_copy(update={"lr": result.proposal, "lr_for_fine_tuning": False})
    print("with it, " + rate_in_use(train, override=f"give --lr {proposal} with --init"))
    print(f"saved: {ProjectLayout(args.project).lr_finder}")
    return 0


def run_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.project, name=args.sample, minutes=args.minutes, quick=args.quick)
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a U-Net on images and masks",
        description="Train a U-Net on a folder of images and a folder of masks (2D or 3D). Everything is kept in "
                    "the project folder, so prediction and the notebooks continue from it.",
        epilog="Example: nbseg train --images raw/ --masks labels/ --project myproject --minutes 10")
    _add_data_options(train)
    _add_training_options(train)
    train.add_argument("--init", metavar="SOURCE",
                       help="fine-tune: start from the weights of SOURCE, an nbseg project folder (its fold 0 model), "
                            "a model file, a bioimage.io package exported by nbseg (.zip or rdf.yaml) or a bundled "
                            "model name (e.g. nuclei); 'none' trains from scratch. The network (2D/3D, size, norm, "
                            "scale) is the source's; the classes must match; a 1-channel model is spread over 3 "
                            "channels (or 3 summed to 1); percentiles come from your data; the peak lr is a third "
                            "of the default unless --lr is given with it (a rate saved by notebook 04 is for "
                            "training from scratch unless ticked for fine-tuning). --resume continues from the "
                            "checkpoint")
    train.add_argument("--no-warm-start", dest="warm_start", action="store_false", default=None,
                       help="train a 3D network from random weights; by default it starts from a 2D network "
                            "over the slices trained for the first half of --minutes (train.warm_start)")
    train.add_argument("--denoise", metavar="DENOISER",
                       help="train on the images denoised by DENOISER, a project made by `nbseg denoise train`: it is "
                            "copied into --project (nbseg predict then applies it too) and the images are denoised "
                            "once into the project (reused by --resume; the masks as they are). A project that "
                            "carries one keeps it; 'none' drops it. See docs/denoising.md")
    train.add_argument("--resume", action="store_true", help="continue a stopped run from its last checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the trained model of --project: without it, training into a project that "
                            "holds one is refused (--resume continues its run instead)")
    train.set_defaults(func=run_train)

    finder = subparsers.add_parser(
        "lr-find", help="suggest a learning rate with a short sweep",
        description="Train briefly while raising the learning rate, and suggest the rate where the loss falls "
                    "fastest. The model is not kept.",
        epilog="Example: nbseg lr-find --images raw/ --masks labels/ --project myproject")
    _add_data_options(finder)
    _add_training_options(finder)
    finder.add_argument("--steps", type=int, default=100, help="sweep length in training steps (default 100)")
    finder.add_argument("--denoise", metavar="DENOISER",
                        help="sweep on the images denoised by DENOISER (carried into --project, as nbseg train "
                             "--denoise does); a project that carries one sweeps on its denoised images anyway")
    finder.set_defaults(func=run_lr_find)

    demo = subparsers.add_parser(
        "demo", help="the whole pipeline on the bundled sample, headless",
        description="Train on the bundled sample data, predict its held-back images, threshold, split objects, "
                    "score them and write a short report — the notebooks' sequence without the notebooks.",
        epilog="Example: nbseg demo --sample nuclei3d --minutes 5")
    demo.add_argument("--project", type=Path, default=Path("demo_project"), help="folder for everything")
    demo.add_argument("--sample", choices=("nuclei2d", "nuclei3d"), default="nuclei2d", help="which sample")
    demo.add_argument("--minutes", type=float, default=2.0, help="training time budget (default 2)")
    demo.add_argument("--quick", action="store_true", help="a run of seconds, to check the set-up")
    demo.set_defaults(func=run_demo)
