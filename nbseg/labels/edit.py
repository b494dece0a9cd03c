"""The edits of the correction notebook on one label image, with undo and redo.

One code path for 2D ``(Y, X)`` and 3D ``(Z, Y, X)``: a 2D image is edited as a stack of one slice.
Drawn shapes (polygons, brush strokes, cut lines) are (y, x) positions on slice ``z``. Edits of an
object act on the whole object, or in 3D with ``whole=False`` on slice ``z`` only. Each edit keeps only
the bounding box it changed (before and after), so undo on large stacks costs little memory, and
returns a :class:`Change` whose box is all a viewer needs to redraw.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .brush import as_points, line_pixels, mask_box, polygon_pixels, stroke_pixels

KINDS = ("added", "deleted", "painted", "erased", "merged", "split", "class_changed", "unlabelled")


@dataclass(frozen=True)
class Change:
    """What an edit (or its undo / redo) changed.

    kind : one of :data:`KINDS`
    box : tuple of slice, one per axis of the label image (``(Y, X)`` or ``(Z, Y, X)``), or None
        when nothing changed (nothing is recorded then).
    ids : the labels the edit wrote or removed (e.g. a new object's id, the pieces of a split).
    """

    kind: str
    box: tuple | None
    ids: tuple = ()


@dataclass
class _Step:
    kind: str
    box: tuple  # (slice z, slice y, slice x) into the stack
    before: np.ndarray
    after: np.ndarray
    ids: tuple


class LabelEditor:
    """Edit a label image in place: delete, add, paint, erase, merge, split, change class, mark not labelled.

    Parameters
    ----------
    labels : ([Z,] Y, X) ndarray of int
        Edited in place (pass a copy to keep the original).
    unlabelled : int, optional
        The "not labelled" value (``data.unlabelled``); :meth:`mark_unlabelled` refuses without it.
    objects : {"instances", "classes"}
        ``"instances"``: an object is every pixel of one id. ``"classes"`` (binary or multi-class
        labels): an object is a connected region of one value.
    """

    def __init__(self, labels, *, unlabelled: int | None = None, objects: str = "instances"):
        if not isinstance(labels, np.ndarray) or labels.ndim not in (2, 3) or labels.dtype.kind not in "iu":
            given = f"{type(labels).__name__} {getattr(labels, 'shape', '')} {getattr(labels, 'dtype', '')}"
            raise ValueError(f"labels is {given}; give a 2D (Y, X) or 3D (Z, Y, X) integer numpy array.")
        if objects not in ("instances", "classes"):
            raise ValueError(f"objects={objects!r}; give 'instances' (one id per object) or 'classes'.")
        self.labels, self.unlabelled, self.objects = labels, unlabelled, objects
        self._stack = labels if labels.ndim == 3 else labels[None]  # a view: edits reach ``labels``
        self._done: list[_Step] = []
        self._undone: list[_Step] = []
        self._next_id = self._first_free_id()

    # ------------------------------------------------------------------ object edits

    def delete(self, target, *, z: int | None = None, whole: bool = True) -> Change:
        """Set an object to background 0. ``target``: a (y, x) click on slice ``z``, or an object id."""
        value, region, mask = self._object(target, z, whole)
        return self._write("deleted", region, mask, 0, (value,))

    def merge(self, first, second, *, z: int | None = None, whole: bool = True) -> Change:
        """The second object takes the first's id (click or id each)."""
        keep = self._object(first, z, whole)[0]
        value, region, mask = self._object(second, z, whole)
        if value == keep and self.objects == "instances":
            raise ValueError(f"Both clicks ({first}, {second}) are on object {keep}; click two different objects.")
        return self._write("merged", region, mask, keep, (keep, value))

    def set_class(self, target, value: int, *, z: int | None = None, whole: bool = True) -> Change:
        """The object's pixels take the class ``value`` (multi-class labels)."""
        old, region, mask = self._object(target, z, whole)
        return self._write("class_changed", region, mask, self._check_value(value), (old, int(value)))

    def split(self, start, end, *, z: int | None = None, whole: bool = True) -> Change:
        """Cut the object the line from ``start`` to ``end`` (y, x on slice ``z``) crosses into pieces.

        The line's pixels become background (in 3D with ``whole=True``, on every slice of the object:
        a cut plane). The largest piece keeps the id; every other piece gets a new id.
        """
        from scipy.ndimage import generate_binary_structure, label  # scipy: imports and first call stay quick

        z = self._slice(z, "split")
        (ys, xs), cut = line_pixels(start, end, self._stack.shape[1:])
        crossed = self._stack[z, ys, xs][cut]
        crossed = crossed[(crossed != 0) & (crossed != self._unlabelled_or_none())]
        if crossed.size == 0:
            where = f" on slice {z}" if self.labels.ndim == 3 else ""
            raise ValueError(f"The cut line from {tuple(start)} to {tuple(end)}{where} crosses no object; "
                             "draw it across the object to split.")
        value = int(np.bincount(crossed).argmax())  # the object most of the line runs through
        point = np.argwhere(cut & (self._stack[z, ys, xs] == value))[0] + (ys.start, xs.start)
        _, region, mask = self._object(tuple(point), z, whole)
        plane_cut = np.zeros(self._stack.shape[1:], bool)
        plane_cut[ys, xs] = cut
        # on every slice of the object's scope: slice z alone, or in 3D with whole=True a cut plane
        kept = mask & ~plane_cut[region[1], region[2]]
        pieces, n = label(kept, generate_binary_structure(3, 3))
        if n < 2:
            raise ValueError(f"The cut line from {tuple(start)} to {tuple(end)} does not cut object {value} in "
                             "two; draw it across the whole object, from background to background.")
        new = np.where(mask, 0, self._stack[region]).astype(self._stack.dtype)
        ids = []
        for piece in np.argsort(-np.bincount(pieces.ravel())[1:]) + 1:
            ids.append(value if not ids else self._take_id())  # the largest piece keeps the id
            new[pieces == piece] = ids[-1]
        return self._commit("split", region, new, tuple(ids))

    # ------------------------------------------------------------------ drawing edits

    def add_polygon(self, vertices, *, z: int | None = None, value: int | None = None) -> Change:
        """A new object (a new id, or class ``value``) filling the polygon of (y, x) vertices."""
        box, inside = polygon_pixels(vertices, self._stack.shape[1:])
        return self._draw("added", z, box, inside, self._new_value(value))

    def add_stroke(self, points, radius: float, *, z: int | None = None, value: int | None = None) -> Change:
        """A new object (a new id, or class ``value``) painted with a round brush along the stroke."""
        box, covered = stroke_pixels(points, radius, self._stack.shape[1:])
        return self._draw("added", z, box, covered, self._new_value(value))

    def paint(self, points, radius: float, value: int, *, z: int | None = None) -> Change:
        """Paint ``value`` (an object id or class) with a round brush of ``radius`` pixels along the stroke."""
        box, covered = stroke_pixels(points, radius, self._stack.shape[1:])
        return self._draw("painted", z, box, covered, self._check_value(value))

    def erase(self, points, radius: float, *, z: int | None = None) -> Change:
        """Set the pixels under a round brush along the stroke to background 0."""
        box, covered = stroke_pixels(points, radius, self._stack.shape[1:])
        return self._draw("erased", z, box, covered, 0)

    def mark_unlabelled(self, *, polygon=None, stroke=None, radius: float = 0, z: int | None = None) -> Change:
        """Mark a region (a polygon, or a brush stroke of ``radius``) "not labelled": it takes the value V."""
        if self.unlabelled is None:
            raise ValueError("No 'not labelled' value is set, so a region cannot be marked not labelled. Set it "
                             "(data.unlabelled in config.yaml, --unlabelled V, notebook 01) and open the editor "
                             "with unlabelled=V.")
        if (polygon is None) == (stroke is None):
            raise ValueError("Give the region to mark as one of polygon=[(y, x), ...] or stroke=[(y, x), ...].")
        plane = self._stack.shape[1:]
        box, inside = polygon_pixels(polygon, plane) if stroke is None else stroke_pixels(stroke, radius, plane)
        return self._draw("unlabelled", z, box, inside, self._check_value(self.unlabelled))

    # ------------------------------------------------------------------ history

    def undo(self) -> Change | None:
        """Take back the last edit; None when there is none."""
        return self._replay(self._done, self._undone, "before")

    def redo(self) -> Change | None:
        """Do again the last undone edit; None when there is none (a new edit clears what can be redone)."""
        return self._replay(self._undone, self._done, "after")

    @property
    def counts(self) -> dict:
        """Edits in effect (undone ones not counted), by kind: added, deleted, split, merged, painted, ..."""
        done = Counter(step.kind for step in self._done)
        return {kind: done.get(kind, 0) for kind in KINDS}

    def object_at(self, point, *, z: int | None = None) -> int:
        """The value under the (y, x) ``point`` on slice ``z`` (0 is background)."""
        z = self._slice(z, "look up")
        y, x = self._pixel(point, z)
        return int(self._stack[z, y, x])

    # ------------------------------------------------------------------ internals

    def _object(self, target, z, whole):
        """(value, box, mask over box) of the object ``target`` (a click or an id), in the scope asked."""
        from scipy.ndimage import label

        if np.isscalar(target) and not isinstance(target, str):
            value, scope = int(target), (slice(None) if whole else self._zslice(z, "edit"))
            if value in (0, self.unlabelled):
                raise ValueError(f"{value} is {'background' if value == 0 else 'the not-labelled value'}, not an "
                                 "object id; give the id of an object (or click inside one).")
            mask_full = self._stack[scope] == value
            offset = scope.start or 0
        else:
            zz = self._slice(z, "edit")
            y, x = self._pixel(target, zz)
            value = int(self._stack[zz, y, x])
            if value == 0 or value == self.unlabelled:
                what = "no object" if value == 0 else f"a not-labelled region (value {value})"
                where = f" on slice {zz}" if self.labels.ndim == 3 else ""
                raise ValueError(f"There is {what} at (y={y}, x={x}){where}: click inside an object.")
            scope = slice(None) if whole else slice(zz, zz + 1)
            offset = scope.start or 0
            mask_full = self._stack[scope] == value
            if self.objects == "classes":  # the connected region clicked, not every pixel of the class
                regions = label(mask_full)[0]
                mask_full = regions == regions[zz - offset, y, x]
        if not mask_full.any():
            raise ValueError(f"There is no object {value}" + (f" on slice {z}" if z is not None else "")
                             + "; give an id present in the labels (click inside an object).")
        box = mask_box(mask_full, offset)
        local = tuple(slice(b.start - (offset if i == 0 else 0), b.stop - (offset if i == 0 else 0))
                      for i, b in enumerate(box))
        return value, box, mask_full[local]

    def _draw(self, kind, z, box, covered, value) -> Change:
        z = self._slice(z, "draw")
        region = (slice(z, z + 1),) + box
        return self._write(kind, region, covered[None], value, (value,))

    def _write(self, kind, region, mask, value, ids) -> Change:
        new = self._stack[region].copy()
        new[mask] = value
        return self._commit(kind, region, new, ids)

    def _commit(self, kind, region, new, ids) -> Change:
        before = self._stack[region]
        if np.array_equal(before, new):
            return Change(kind, None, ids)
        step = _Step(kind, region, before.copy(), new, tuple(int(i) for i in ids))
        self._stack[region] = new
        self._done.append(step)
        self._undone.clear()
        return self._change(step)

    def _replay(self, source: list, target: list, state: str) -> Change | None:
        """Move the last step of ``source`` onto ``target``, writing its ``before`` or ``after`` crop back."""
        if not source:
            return None
        step = source.pop()
        self._stack[step.box] = getattr(step, state)
        target.append(step)
        return self._change(step)

    def _change(self, step: _Step) -> Change:
        box = step.box if self.labels.ndim == 3 else step.box[1:]
        return Change(step.kind, box, step.ids)

    def _slice(self, z, action) -> int:
        if self.labels.ndim == 2:
            if z not in (None, 0):
                raise ValueError(f"z={z} was given but the labels are 2D {self.labels.shape}; leave z out.")
            return 0
        if z is None or not 0 <= int(z) < len(self._stack):
            raise ValueError(f"To {action} in a 3D stack {self.labels.shape}, say on which slice: z=0..."
                             f"{len(self._stack) - 1} (given z={z}).")
        return int(z)

    def _zslice(self, z, action) -> slice:
        zz = self._slice(z, action)
        return slice(zz, zz + 1)

    def _pixel(self, point, z) -> tuple[int, int]:
        (y, x), = np.round(as_points(point, "click", 1)).astype(int)
        plane = self._stack.shape[1:]
        if not (0 <= y < plane[0] and 0 <= x < plane[1]):
            where = f" on slice {z}" if self.labels.ndim == 3 else ""
            raise ValueError(f"The click (y={y}, x={x}){where} is outside the image ({plane[0]} x {plane[1]} "
                             "pixels); click on the image, as (y, x).")
        return int(y), int(x)

    def _unlabelled_or_none(self):
        return -1 if self.unlabelled is None else self.unlabelled

    def _first_free_id(self) -> int:
        return int(np.max(self._stack, where=self._stack != self._unlabelled_or_none(), initial=0)) + 1

    def _take_id(self) -> int:
        value = self._next_id
        if value == self.unlabelled:
            value += 1  # never hand out the not-labelled value as an object id
        self._next_id = value + 1
        return self._check_value(value)

    def _new_value(self, value):
        return self._take_id() if value is None else self._check_value(value)

    def _check_value(self, value) -> int:
        value = int(value)
        info = np.iinfo(self._stack.dtype)
        if not info.min <= value <= info.max:
            raise ValueError(f"Value {value} does not fit the labels' type {self._stack.dtype} "
                             f"({info.min}..{info.max}); save the labels as a wider integer type (e.g. uint32).")
        return value


__all__ = ["KINDS", "Change", "LabelEditor"]
