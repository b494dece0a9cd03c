"""Matplotlib figures rendered to PNG bytes (Agg, no pyplot state), shown in ipywidgets.Image."""
from __future__ import annotations

import io


def _figure(width=6.0, height=3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def history_png(history: list[dict], score_name: str = "val Dice") -> bytes:
    """Train/validation loss and the validation score per epoch (one line per fold): the Dice (0..1) for
    segmentation, or another task's score named ``score_name`` (a denoiser's PSNR in dB), held in ``val_dice``."""
    return to_png(history_figure(history, score_name))


def history_figure(history: list[dict], score_name: str = "val Dice"):
    """:func:`history_png`'s figure (matplotlib), loss left and score right."""
    fig = _figure(7.5, 3.0)
    ax_loss, ax_dice = fig.subplots(1, 2)
    folds = sorted({int(h.get("fold", 0)) for h in history}) or [0]
    for fold in folds:
        rows = [h for h in history if int(h.get("fold", 0)) == fold]
        epochs = [int(h["epoch"]) + 1 for h in rows]
        suffix = f" (fold {fold + 1})" if len(folds) > 1 else ""
        ax_loss.plot(epochs, [h["train_loss"] for h in rows], "o-", label="train loss" + suffix)
        ax_loss.plot(epochs, [h["val_loss"] for h in rows], "s--", label="validation loss" + suffix)
        ax_dice.plot(epochs, [h["val_dice"] for h in rows], "o-", color="tab:green", label=score_name + suffix)
    from matplotlib.ticker import MaxNLocator

    last = max((int(h["epoch"]) + 1 for h in history), default=1)
    for ax in (ax_loss, ax_dice):  # whole epochs only: a first epoch alone would get ticks at 0.96, 0.98, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, last + 0.5)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss (lower is better)")
    ax_loss.legend(fontsize=7)
    ax_dice.set_xlabel("epoch")
    dice = score_name == "val Dice"
    ax_dice.set_ylabel("Dice" if dice else score_name)
    if dice:  # another score has its own range (a PSNR in dB)
        ax_dice.set_ylim(0, 1)
    ax_dice.set_title(f"{'Validation Dice' if dice else score_name} (higher is better)")
    ax_dice.legend(fontsize=7)
    return fig


def lr_png(result) -> bytes:
    """Loss vs learning rate with the suggestion marked (``LRFinderResult.plot``)."""
    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    result.plot(ax)
    ax.set_title("LR finder: pick where the loss falls fastest")
    return to_png(fig)


def curve_png(x, ys: dict, *, xlabel: str, ylabel: str, title: str = "", mark=None) -> bytes:
    """Lines ``ys[name]`` over ``x``, an optional vertical mark at ``mark``."""
    fig = _figure(6.0, 3.0)
    ax = fig.subplots()
    for name, y in ys.items():
        ax.plot(x, y, "o-", markersize=3, label=name)
    if mark is not None:
        ax.axvline(mark, color="tab:red", linestyle="--", label=f"chosen {mark:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return to_png(fig)


def bars_png(names, values, *, ylabel: str, title: str = "") -> bytes:
    fig = _figure(6.0, 2.8)
    ax = fig.subplots()
    ax.bar(range(len(values)), values, color="tab:purple")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels([str(n)[:14] for n in names], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return to_png(fig)


SIZE_LABELS = {"area_um2": "area (µm²)", "volume_um3": "volume (µm³)", "area_px": "area (pixels)",
               "volume_px": "volume (voxels)"}


def object_sizes_png(table) -> bytes | None:
    """A histogram of the sizes in an objects' table (``predict.objects.object_table``): in µm² or µm³
    when the pixel sizes are known, else in pixels; None for a table without objects."""
    if not len(table):
        return None
    column = next((c for c in SIZE_LABELS if c in table and table[c].notna().any()), None)
    if column is None:
        return None
    return histogram_png(table[column], xlabel=SIZE_LABELS[column], title=f"Object sizes ({len(table)} objects)")


def histogram_png(values, *, xlabel: str, title: str = "", bins: int = 30) -> bytes:
    """A histogram of ``values`` (e.g. object sizes); NaN left out."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    fig = _figure(6.0, 2.8)
    ax = fig.subplots()
    ax.hist(values, bins=max(1, min(bins, len(values))), color="tab:blue", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objects")
    if title:
        ax.set_title(title)
    return to_png(fig)
