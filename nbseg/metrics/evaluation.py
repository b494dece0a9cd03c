"""Evaluate a set of predictions against ground truth: per-image table, pooled summary, folders
paired by name. The per-image metrics are in :mod:`nbseg.metrics.scores`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .scores import dice_iou, instance_scores, rand_vi, ratio, same_shape

if TYPE_CHECKING:
    import pandas


RESULT_PRIORITY = {"instances": (".labels", ".mask", ""), "binary": (".mask", ".labels", ""),
                   "multiclass": (".mask", "")}
NOT_MASKS = (".prob", ".uncertainty", ".interior")  # maps predict writes beside the masks
EVALUATION_KINDS = tuple(RESULT_PRIORITY)


@dataclass
class Evaluation:
    """Per-image table and pooled summary of :func:`evaluate` / :func:`evaluate_folders`."""

    table: "pandas.DataFrame"
    summary: dict

    def report(self) -> str:
        """The summary as lines a person reads."""
        s = self.summary
        lines = [f"Evaluated {s['images']} image(s).",
                 f"  Dice (pooled over pixels)      {s['dice']:.3f}",
                 f"  IoU  (pooled over pixels)      {s['iou']:.3f}"]
        if "f1@0.5" in s:
            lines += [f"  F1 at IoU 0.5 (pooled objects) {s['f1@0.5']:.3f}   (TP {s['tp@0.5']}, FP {s['fp@0.5']}, "
                      f"FN {s['fn@0.5']})",
                      f"  mAP, IoU 0.5:0.95 (DSB 2018)   {s['map']:.3f}",
                      f"  Rand error / VI (mean)         {s['rand_error']:.3f} / {s['vi']:.3f}"]
        for key in sorted(k for k in s if k.startswith("dice class")):
            lines.append(f"  {key:<31}{s[key]:.3f}")
        return "\n".join(lines)

    def to_csv(self, path) -> None:
        """Per-image rows and a last row ``(pooled)`` with the summary."""
        import pandas as pd

        pooled = {k: v for k, v in self.summary.items() if k != "images"}
        frame = pd.concat([self.table, pd.DataFrame([{"image": "(pooled)", **pooled}])], ignore_index=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)


def evaluate_image(pred, gt, *, kind: str = "instances", n_classes: int | None = None) -> dict:
    """Metrics of one image.

    Parameters
    ----------
    pred, gt : ([Z,] Y, X) ndarray of int
        Masks (0/1, 0/255) or label images; binary ones are split into connected components
        for the object metrics.
    kind : {"instances", "binary", "multiclass"}
        "instances": foreground Dice/IoU plus object metrics; "binary": foreground only;
        "multiclass": Dice/IoU of each class 1..K-1 (class maps).
    n_classes : int, optional
        Multiclass: K (default the largest class seen + 1).
    """
    pred, gt = same_shape(pred, gt)
    row = {}
    fg = dice_iou(pred > 0, gt > 0)[1]
    row.update(dice=fg["dice"], iou=fg["iou"], intersection=fg["intersection"], pred_pixels=fg["pred"],
               gt_pixels=fg["gt"])
    if kind == "multiclass":
        k = n_classes or int(max(pred.max(initial=0), gt.max(initial=0))) + 1
        for c, s in dice_iou(pred, gt, classes=range(1, k)).items():
            row.update({f"dice class {c}": s["dice"], f"iou class {c}": s["iou"], f"inter class {c}": s["intersection"],
                        f"sum class {c}": s["pred"] + s["gt"]})
    elif kind == "instances":
        pred_labels, gt_labels = as_labels(pred), as_labels(gt)
        scores = instance_scores(pred_labels, gt_labels)
        at = scores.loc[0.5]
        row.update({"n_gt": int(gt_labels.max(initial=0)), "n_pred": int(pred_labels.max(initial=0)),
                    "tp@0.5": int(at.tp), "fp@0.5": int(at.fp), "fn@0.5": int(at.fn),
                    "precision@0.5": at.precision, "recall@0.5": at.recall, "f1@0.5": at.f1,
                    "ap@0.5": at.ap, "ap@0.75": scores.loc[0.75, "ap"], "map": float(scores["ap"].mean())})
        row.update(rand_vi(pred_labels, gt_labels))
    return row


def as_labels(mask) -> np.ndarray:
    """Label images as they are; 0/1 or 0/255 masks split into connected components."""
    from skimage.measure import label

    mask = np.asarray(mask)
    values = np.unique(mask)
    if set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}:
        return label(mask > 0)
    return mask


def evaluate(preds, gts, *, kind: str = "instances", n_classes: int | None = None, progress=None) -> Evaluation:
    """Per-image metrics and their pooled summary.

    Parameters
    ----------
    preds, gts : dict of name -> ([Z,] Y, X) ndarray
        The same names in both.
    kind, n_classes : see :func:`evaluate_image`
    progress : callable(done, total, name), optional
    """
    import pandas as pd

    from ..choices import check_choice

    check_choice(kind, EVALUATION_KINDS, what="evaluation kind")
    missing = sorted(set(preds) ^ set(gts))
    if missing:
        raise ValueError(f"predictions and ground truth name different images: {', '.join(missing)}.")
    rows = []
    for i, name in enumerate(sorted(preds)):
        rows.append({"image": name, **evaluate_image(preds[name], gts[name], kind=kind, n_classes=n_classes)})
        if progress:
            progress(i + 1, len(preds), name)
    table = pd.DataFrame(rows)
    return Evaluation(table=table, summary=pooled_summary(table))


def pooled_summary(table) -> dict:
    """Dice/IoU pooled over pixels, F1 pooled over objects, mean per-image mAP, Rand error and VI."""
    inter, pred, gt = (float(table[c].sum()) for c in ("intersection", "pred_pixels", "gt_pixels"))
    summary = {"images": len(table), "dice": ratio(2 * inter, pred + gt), "iou": ratio(inter, pred + gt - inter)}
    if "tp@0.5" in table:
        tp, fp, fn = (int(table[f"{c}@0.5"].sum()) for c in ("tp", "fp", "fn"))
        summary.update({"tp@0.5": tp, "fp@0.5": fp, "fn@0.5": fn, "precision@0.5": ratio(tp, tp + fp),
                        "recall@0.5": ratio(tp, tp + fn), "f1@0.5": ratio(2 * tp, 2 * tp + fp + fn),
                        "map": float(table["map"].mean()), "rand_error": float(table["rand_error"].mean()),
                        "vi": float(table["vi"].mean())})
    for column in [c for c in table if c.startswith("inter class ")]:
        c = column.removeprefix("inter class ")
        summary[f"dice class {c}"] = ratio(2 * float(table[column].sum()), float(table[f"sum class {c}"].sum()))
    return summary


def evaluate_folders(pred_dir, gt_dir, *, kind: str = "instances", n_classes: int | None = None,
                     progress=None) -> Evaluation:
    """Evaluate a folder of predictions against a folder of ground truth, paired by name.

    Predictions may be ``nbseg predict`` outputs (``<name>.labels.ome.tif`` preferred, else
    ``<name>.mask.ome.tif``; ``.prob``/``.uncertainty``/``.interior`` files are skipped) or plain
    ``<name>.tif`` masks; ground truth is ``<name>.<any image suffix>``.

    Raises
    ------
    ValueError
        Listing every name found on one side only.
    """
    from ..choices import check_choice
    from ..io.images import files_by_stem, read_mask

    check_choice(kind, EVALUATION_KINDS, what="evaluation kind")
    preds, gts = _prediction_files(pred_dir, kind), files_by_stem(gt_dir, "ground-truth")
    only_pred, only_gt = sorted(set(preds) - set(gts)), sorted(set(gts) - set(preds))
    if only_pred or only_gt:
        raise ValueError(
            f"Predictions in {pred_dir} and ground truth in {gt_dir} do not pair up by name. "
            + (f"No ground truth for: {', '.join(preds[n].name for n in only_pred[:20])}. " if only_pred else "")
            + (f"No prediction for: {', '.join(gts[n].name for n in only_gt[:20])}. " if only_gt else "")
            + "A prediction <name>.mask.ome.tif (or .labels.ome.tif, or <name>.tif) pairs with ground truth "
              "<name>.tif; point to folders that hold the same images."
        )
    pred_arrays, gt_arrays = {}, {}
    for name in sorted(preds):
        pred_arrays[name] = read_mask(preds[name])
        gt_arrays[name] = read_mask(gts[name], dims=pred_arrays[name].ndim)
        if pred_arrays[name].shape != gt_arrays[name].shape:
            raise ValueError(f"{preds[name]} has shape {pred_arrays[name].shape} but its ground truth {gts[name]} "
                             f"has {gt_arrays[name].shape}; they must cover the same pixels.")
    return evaluate(pred_arrays, gt_arrays, kind=kind, n_classes=n_classes, progress=progress)


def _prediction_files(folder, kind: str) -> dict:
    from ..io.images import files_by_stem

    by_stem = files_by_stem(folder, "prediction")
    chosen: dict = {}
    for suffix in reversed(RESULT_PRIORITY[kind]):  # later (preferred) suffixes overwrite earlier ones
        for stem, path in by_stem.items():
            if stem.endswith(NOT_MASKS) or not stem.endswith(suffix):
                continue
            base = stem[: len(stem) - len(suffix)] if suffix else stem
            if suffix or not base.endswith((".labels", ".mask")):
                chosen[base] = path
    return chosen
