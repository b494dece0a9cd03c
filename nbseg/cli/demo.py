"""The guided pipeline without notebooks: sample → train → predict → threshold → evaluate → report.

`make demo` runs it on the bundled sample; it is also the notebooks' sequence in one call.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..train.callbacks import PrintProgress
from ..config import Config
from ..project import ProjectLayout
from ..data import sample
from ..io.images import image_files

HELD_BACK = 4  # sample images kept out of training, to show results on unseen images


def prepare_sample_project(project, *, name: str = "nuclei2d", held_back: int = HELD_BACK) -> dict[str, Path]:
    """Copy a bundled sample into ``project/data``: ``train`` (training + validation) and ``test`` (unseen)."""
    project = Path(project)
    src = sample(name)
    files = image_files(src["images"])
    held_back = min(held_back, max(len(files) // 3, 1)) if len(files) > 2 else 0
    parts = {"train": files[held_back:], "test": files[:held_back] if held_back else files}
    folders = {}
    for part, members in parts.items():
        for kind in ("images", "masks"):
            folder = project / "data" / part / kind
            folder.mkdir(parents=True, exist_ok=True)
            for path in members:
                shutil.copy2(src[kind] / path.name, folder / path.name)
            folders[f"{part}_{kind}"] = folder
    return folders


def run_demo(project, *, name: str = "nuclei2d", minutes: float = 2.0, quick: bool = False, stream=None) -> Path:
    """Train on a bundled sample, predict its held-back images, score them, and write ``report.md``.

    Parameters
    ----------
    project : str or Path
        Folder for everything (created).
    name : {"nuclei2d", "nuclei3d"}
    minutes : float
        Training time budget.
    quick : bool
        A run of seconds, for tests and teaching set-up checks.

    Returns
    -------
    Path of the report.
    """
    from ..metrics.evaluation import evaluate_folders
    from ..predict.files import predict_files
    from ..predict.options import PredictOptions
    from ..predict.seeds import calibrate_project
    from ..train.trainer import fit

    project = Path(project)
    started = time.monotonic()
    folders = prepare_sample_project(project, name=name)
    dims = 3 if name == "nuclei3d" else 2
    train = {"minutes": 0.15 if quick else minutes, "steps_per_epoch": 4 if quick else 32, "seed": 0}
    quick_patch = [16, 64, 64] if dims == 3 else [128, 128]
    model = {"size": "S", "patch": quick_patch if quick else None}
    config = Config(data={"images": folders["train_images"], "masks": folders["train_masks"]},
                    model=model, train=train)
    result = fit(config, project, callbacks=[PrintProgress(stream)])
    calibrate_project(project, config.data)  # the seeded watershed's threshold, on the validation images
    output = ProjectLayout(project).predictions
    options = PredictOptions(tta="none" if quick else "flips", threshold=0.5, instances=True)
    table = predict_files(project, folders["test_images"], output, options, overwrite=True)
    evaluation = evaluate_folders(output, folders["test_masks"], kind="instances")
    evaluation.table.to_csv(project / "evaluation.csv", index=False)
    report = write_report(project, result, evaluation, table, seconds=time.monotonic() - started)
    print(evaluation.report(), file=stream)
    print(f"Report: {report}", file=stream)
    return report


def write_report(project: Path, result, evaluation, predictions, *, seconds: float) -> Path:
    """A short markdown report: training, scores on unseen images, and the files written."""
    history = result.histories[0]
    s = evaluation.summary
    figure = plot_history(history, project / "training.png")
    lines = [
        "# nbseg report", "",
        f"Project: `{project}` — finished in {seconds / 60:.1f} min.", "",
        "## Training", "",
        f"- epochs: {len(history)}, stopped by: {result.stopped[0]}, training time {history[-1]['seconds']:.0f} s",
        f"- best validation Dice: {max(result.best_dice):.3f}", f"- model: `{result.model_paths[0]}`", "",
        f"![training curves]({figure.name})", "",
        "## Unseen images", "",
        "| score | value |", "|---|---|",
        f"| Dice (pooled) | {s['dice']:.3f} |", f"| IoU (pooled) | {s['iou']:.3f} |",
    ]
    for key, label in (("f1@0.5", "F1 at IoU 0.5"), ("map", "mean AP, IoU 0.5:0.95")):
        if key in s:
            lines.append(f"| {label} | {s[key]:.3f} |")
    lines += ["", "Per image: `evaluation.csv`.", "", "## Files written", ""]
    lines += [f"- `predictions/{p.name}`" for p in sorted(ProjectLayout(project).predictions.glob("*.ome.tif"))]
    report = project / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def plot_history(history, path: Path) -> Path:
    """Loss and validation Dice per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot(epochs, [h["train_loss"] for h in history], label="train")
    left.plot(epochs, [h["val_loss"] for h in history], label="validation")
    left.set(xlabel="epoch", ylabel="loss")
    left.legend()
    right.plot(epochs, [h["val_dice"] for h in history], color="tab:green")
    right.set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

