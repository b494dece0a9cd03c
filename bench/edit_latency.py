"""Latency of the correction notebook's label edits (nbseg.labels.edit) and of the classic first
segmentation's live preview (nbseg.labels.classic), on real label images.

- 2D: the largest DSB2018 mask (1024 x 1024, 114 nuclei) and its image (for the classic workflow).
- 3D: a BBBC050/QCANet embryo stack (51 x 120 x 122), and the same stack tiled 4 x 4 in Y and X
  (51 x 480 x 488) to see how an edit scales with the stack.

Each edit kind is timed ``--repeats`` times on objects drawn with a fixed seed, each followed by an undo
(timed as ``undo``) so every edit meets the original labels; ``redo`` is timed on the same edits. A time
includes the :class:`~nbseg.labels.edit.Change` and its bounding box, which is what a viewer needs to redraw.
Prints JSON: median and max milliseconds per edit kind. Run with one thread, as the notebook's kernel would:

    OMP_NUM_THREADS=1 python bench/edit_latency.py [--data ../shared/data] [--repeats 20] [--json out.json]
    python bench/edit_latency.py --quick      # 3 repeats: a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from nbseg.io.images import read_image, read_mask  # noqa: E402
from nbseg.labels.classic import classic_segment  # noqa: E402
from nbseg.labels.edit import LabelEditor  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("NBSEG_SHARED_DATA") or HERE.parent.parent / "shared" / "data")
DSB_1024 = "c395870ad9f5a3ae651b50efab9b20c3e6b9aea15d4c731eb34c0cf9e3800a72"  # 1024 x 1024, 114 nuclei
STACK = "16_cell_stage"
V = 65535


def objects(labels):
    """For each object: its value, (z, y, x) of a pixel on the middle row of its largest slice, and that row's
    first and last column."""
    from scipy import ndimage

    stack = labels if labels.ndim == 3 else labels[None]
    found = []
    for value, box in enumerate(ndimage.find_objects(stack), start=1):
        if box is None:
            continue
        crop = stack[box] == value
        z = int(np.argmax(crop.sum(axis=(1, 2))))
        rows = np.flatnonzero(crop[z].any(axis=1))
        y = int(rows[len(rows) // 2])  # the middle row: a cut along it splits the object in two
        xs = np.flatnonzero(crop[z, y])
        found.append((value, box[0].start + z, box[1].start + y, box[2].start + int(xs[len(xs) // 2]),
                      box[2].start + int(xs[0]), box[2].start + int(xs[-1])))
    return found


def edits(editor, obj, other, is3d):
    """The edit kinds, each a call on one object (``other`` is a second object, for merge)."""
    value, z, y, x, x0, x1 = obj
    zz = z if is3d else None
    stroke = [(y + 8 * np.sin(t), x + 3 * t) for t in np.linspace(-5, 5, 20)]  # a 20-point stroke, ~30 px
    square = [(y - 10, x - 10), (y - 10, x + 10), (y + 10, x + 10), (y + 10, x - 10)]
    return {
        "delete_click": lambda: editor.delete((y, x), z=zz),
        "delete_slice": lambda: editor.delete((y, x), z=zz, whole=False),
        "paint_stroke_r5": lambda: editor.paint(stroke, 5, value, z=zz),
        "erase_stroke_r5": lambda: editor.erase(stroke, 5, z=zz),
        "add_polygon": lambda: editor.add_polygon(square, z=zz),
        "add_stroke_r3": lambda: editor.add_stroke(stroke, 3, z=zz),
        "merge": lambda: editor.merge(value, other[0]),
        "split": lambda: editor.split((y, x0 - 2), (y, x1 + 2), z=zz),
        "class_change": lambda: editor.set_class((y, x), 2, z=zz),
        "not_labelled_stroke_r5": lambda: editor.mark_unlabelled(stroke=stroke, radius=5, z=zz),
    }


def ms(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def time_edits(labels, repeats: int, seed: int = 0) -> dict:
    """Median and max ms of each edit kind, of undo and of redo on ``labels`` (restored after each)."""
    editor = LabelEditor(labels, unlabelled=V)
    found = objects(labels)
    rng = np.random.default_rng(seed)
    times: dict[str, list] = {}
    for _ in range(repeats):
        first, second = rng.choice(len(found), 2, replace=False)
        for kind, call in edits(editor, found[first], found[second], labels.ndim == 3).items():
            if kind == "delete_slice" and labels.ndim == 2:
                continue
            try:
                times.setdefault(kind, []).append(ms(call))
            except ValueError as err:  # e.g. a cut that leaves a ring-shaped object whole: counted, not timed
                times.setdefault(f"{kind}_refused", []).append(0.0)
                print(f"{kind}: {err}", file=sys.stderr)
                continue
            times.setdefault("undo", []).append(ms(editor.undo))
            times.setdefault("redo", []).append(ms(editor.redo))
            editor.undo()
    return {kind: {"median_ms": round(float(np.median(t)), 2), "max_ms": round(float(np.max(t)), 2), "n": len(t)}
            for kind, t in times.items()}


def time_classic(image, repeats: int) -> dict:
    runs = [ms(lambda: classic_segment(image, dark_objects=True)) for _ in range(repeats)]
    return {"median_ms": round(float(np.median(runs)), 1), "max_ms": round(float(np.max(runs)), 1), "n": repeats}


def time_redraw(image, labels, repeats: int, seed: int = 0) -> dict:
    """An edit and the correction panel's redraw of a 1024x1024 image (overlay, encoding: what the user waits
    for), as ms: a delete click and a paint stroke, each undone."""
    from nbseg.ui.viewers import Viewer2D

    editor, viewer = LabelEditor(labels.copy(), unlabelled=V), Viewer2D()
    viewer.set_data(image, editor.labels)
    found, rng, times = objects(labels), np.random.default_rng(seed), []
    for _ in range(repeats):
        value, _, y, x, _, _ = found[rng.integers(len(found))]
        stroke = [(y + 8 * np.sin(t), x + 3 * t) for t in np.linspace(-5, 5, 20)]
        for edit in (lambda: editor.delete((y, x)), lambda: editor.paint(stroke, 5, value)):
            times.append(ms(lambda: (edit(), viewer.set_data(image, editor.labels))))
            editor.undo()
    return {"median_ms": round(float(np.median(times)), 1), "max_ms": round(float(np.max(times)), 1),
            "n": len(times), "format": viewer.image_widget.format}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="3 repeats (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
    mask2d = read_mask(args.data / "dsb2018" / "masks" / f"{DSB_1024}.tif").astype(np.uint16)
    image2d = read_image(args.data / "dsb2018" / "images" / f"{DSB_1024}.tif").data[0]
    stack = read_mask(args.data / "bbbc050-qcanet" / "masks" / f"{STACK}.tif", dims=3).astype(np.uint16)
    tiled = np.concatenate([np.concatenate([stack + 20 * (i * 4 + j) * (stack > 0) for j in range(4)], axis=2)
                            for i in range(4)], axis=1)  # 16 copies, each with its own ids
    result = {
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "2d_1024x1024": time_edits(mask2d, args.repeats),
        f"3d_{'x'.join(map(str, stack.shape))}": time_edits(stack, args.repeats),
        f"3d_{'x'.join(map(str, tiled.shape))}": time_edits(tiled, args.repeats),
        "classic_1024x1024_ms": time_classic(image2d, max(3, args.repeats // 4)),
        "edit_and_redraw_1024x1024_ms": time_redraw(image2d, mask2d, args.repeats),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return result


if __name__ == "__main__":
    main()
