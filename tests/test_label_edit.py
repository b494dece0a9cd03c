"""The correction notebook's label edits on real nuclei crops, in 2D and 3D: each edit, undo / redo, the
'not labelled' brush, the edit count, and the edit counter that compares two label images."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nbseg.data import sample
from nbseg.labels.edit import LabelEditor
from nbseg.metrics.edits import count_edits

V = 65535


@pytest.fixture(params=["2d", "3d"])
def labels(request):
    """A real instance-label crop: DSB2018 nuclei (2D) or a BBBC050 embryo stack (3D), uint16."""
    if request.param == "2d":
        return tifffile.imread(sample("nuclei2d")["masks"] / "dsb_00_003cee89.tif")[:128, :128].astype(np.uint16)
    return tifffile.imread(sample("nuclei3d")["masks"] / "8_cell_stage.tif")[5:35, 40:110, 30:110].astype(np.uint16)


def biggest(labels):
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    return int(ids[np.argmax(sizes)])


def inside(labels, value):
    """(z, (y, x)) of a pixel of ``value`` deepest inside it on its largest slice (z None in 2D)."""
    from scipy.ndimage import distance_transform_edt

    stack = labels if labels.ndim == 3 else labels[None]
    z = int(np.argmax((stack == value).sum(axis=(1, 2))))
    depth = distance_transform_edt(stack[z] == value)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return (z if labels.ndim == 3 else None), (int(y), int(x))


def changed_box(a, b):
    diff = np.argwhere(a != b)
    return tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(diff.min(0), diff.max(0)))


def check_undo_redo(editor, before):
    after = editor.labels.copy()
    editor.undo()
    np.testing.assert_array_equal(editor.labels, before)
    editor.redo()
    np.testing.assert_array_equal(editor.labels, after)


def test_delete_by_click_changes_only_that_object(labels):
    before, target = labels.copy(), biggest(labels)
    z, point = inside(labels, target)
    editor = LabelEditor(labels)
    change = editor.delete(point, z=z)
    assert (labels[before == target] == 0).all()
    np.testing.assert_array_equal(labels[before != target], before[before != target])
    assert change.box == changed_box(before, labels) and change.ids == (target,)
    check_undo_redo(editor, before)


def test_delete_by_id_and_one_slice_in_3d(labels):
    before, target = labels.copy(), biggest(labels)
    z, point = inside(labels, target)
    editor = LabelEditor(labels)
    if labels.ndim == 3:
        editor.delete(point, z=z, whole=False)
        assert not (labels[z] == target).any() and (labels == target).sum() == (before == target).sum() - (
            before[z] == target).sum()
        editor.undo()
    editor.delete(target)
    assert not (labels == target).any()


def test_add_polygon_and_stroke_take_fresh_ids_skipping_not_labelled(labels):
    free = int(labels.max()) + 1
    editor = LabelEditor(labels, unlabelled=free)  # the next free id is V: it must be skipped
    z = 3 if labels.ndim == 3 else None
    poly = editor.add_polygon([(10, 10), (10, 30), (30, 30), (30, 10)], z=z)
    stroke = editor.add_stroke([(50, 5), (50, 25)], 2, z=z)
    assert poly.ids == (free + 1,) and stroke.ids == (free + 2,)
    plane = labels if labels.ndim == 2 else labels[3]
    assert (plane[10:31, 10:31] == free + 1).all() and (plane[48:53, 5:26] == free + 2).all()
    assert not (plane[:, 28:] == free + 2).any()
    assert editor.counts["added"] == 2


def test_paint_and_erase_with_round_brush(labels):
    before = labels.copy()
    editor = LabelEditor(labels)
    z = 10 if labels.ndim == 3 else None
    plane = labels if labels.ndim == 2 else labels[10]
    editor.paint([(40, 40)], 5, 7, z=z)
    yy, xx = np.mgrid[:plane.shape[0], :plane.shape[1]]
    distance = np.hypot(yy - 40, xx - 40)
    assert (plane[distance <= 5] == 7).all()
    np.testing.assert_array_equal(plane[distance > 6], (before if labels.ndim == 2 else before[10])[distance > 6])
    editor.erase([(40, 30), (40, 50)], 2, z=z)  # a stroke: the segment between the points is erased too
    assert (plane[38:43, 30:51] == 0).all()
    assert editor.counts["painted"] == 1 and editor.counts["erased"] == 1
    background = tuple(np.argwhere(plane == 0)[0])
    nothing = editor.erase([background], 0, z=z)  # erasing background changes nothing: not an edit
    assert nothing.box is None and editor.counts["erased"] == 1
    check_undo_redo(editor, _undone_copy(editor))


def _undone_copy(editor):
    """The labels one edit ago, read by undoing and redoing."""
    editor.undo()
    state = editor.labels.copy()
    editor.redo()
    return state


def test_merge_gives_second_the_first_id(labels):
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    first, second = (int(i) for i in ids[np.argsort(-sizes)[:2]])
    before = labels.copy()
    editor = LabelEditor(labels)
    (z1, p1), (z2, p2) = inside(labels, first), inside(labels, second)
    if labels.ndim == 3:
        editor.merge(first, second)  # by id: clicks would need one slice holding both
    else:
        editor.merge(p1, p2)
    assert not (labels == second).any()
    assert (labels == first).sum() == (before == first).sum() + (before == second).sum()
    assert editor.counts["merged"] == 1
    with pytest.raises(ValueError, match="two different objects"):
        editor.merge(first, first)
    check_undo_redo(editor, before)


def test_split_along_a_cut_line(labels):
    target = biggest(labels)
    z, (y, x) = inside(labels, target)
    before = labels.copy()
    editor = LabelEditor(labels)
    plane = before if labels.ndim == 2 else before[z]
    cols = np.flatnonzero((plane == target).any(axis=0))
    change = editor.split((y, cols[0] - 2), (y, cols[-1] + 2), z=z)
    new = change.ids[1:]
    assert change.kind == "split" and change.ids[0] == target and len(new) >= 1
    after = labels if labels.ndim == 2 else labels[z]
    assert (after[y, cols[0]:cols[-1] + 1] == 0).all()  # the cut line is background
    assert all((labels == i).any() for i in new) and max(new) > before.max()
    pixels_kept = sum((labels == i).sum() for i in change.ids)
    # only the line's pixels are lost (in 3D on every slice of the object: a cut plane)
    assert (before == target).sum() - pixels_kept == (before[..., y, cols[0] - 2:cols[-1] + 3] == target).sum()
    background = tuple(np.argwhere(after == 0)[0])
    with pytest.raises(ValueError, match="crosses no object"):
        editor.split(background, background, z=z)
    check_undo_redo(editor, before)


def test_split_one_slice_in_3d_keeps_other_slices():
    stack = tifffile.imread(sample("nuclei3d")["masks"] / "8_cell_stage.tif").astype(np.uint16)
    target = biggest(stack)
    z, (y, x) = inside(stack, target)
    before = stack.copy()
    cols = np.flatnonzero((stack[z] == target).any(axis=0))
    change = LabelEditor(stack).split((y, cols[0] - 2), (y, cols[-1] + 2), z=z, whole=False)
    np.testing.assert_array_equal(np.delete(stack, z, axis=0), np.delete(before, z, axis=0))
    assert change.box[0] == slice(z, z + 1) and len(np.unique(stack[z][before[z] == target])) >= 3


def test_class_change_takes_the_clicked_region_only():
    instances = tifffile.imread(sample("nuclei2d")["masks"] / "dsb_00_003cee89.tif")[:128, :128]
    classes = (instances > 0).astype(np.uint8)  # binary labels: each nucleus a region of class 1
    target = biggest(instances)
    _, point = inside(instances, target)
    editor = LabelEditor(classes, objects="classes")
    editor.set_class(point, 2)
    np.testing.assert_array_equal(classes == 2, instances == target)
    assert editor.counts["class_changed"] == 1


def test_mark_not_labelled(labels):
    z = 2 if labels.ndim == 3 else None
    with pytest.raises(ValueError, match="data.unlabelled"):
        LabelEditor(labels.copy()).mark_unlabelled(polygon=[(0, 0), (0, 20), (20, 20)], z=z)
    before = labels.copy()
    editor = LabelEditor(labels, unlabelled=V)
    editor.mark_unlabelled(polygon=[(0, 0), (0, 20), (20, 20), (20, 0)], z=z)
    plane = labels if labels.ndim == 2 else labels[2]
    assert (plane[:21, :21] == V).all() and (plane[21:] != V).all()
    with pytest.raises(ValueError, match="not-labelled region"):
        editor.delete((5, 5), z=z)
    editor.mark_unlabelled(stroke=[(60, 10), (60, 40)], radius=1, z=z)
    assert (plane[59:62, 10:41] == V).all() and editor.counts["unlabelled"] == 2
    while editor.undo():
        pass
    np.testing.assert_array_equal(labels, before)


def test_undo_redo_round_trip_and_new_edit_clears_redo(labels):
    original = labels.copy()
    editor = LabelEditor(labels, unlabelled=V)
    target = biggest(labels)
    z, point = inside(labels, target)
    zz = z if labels.ndim == 3 else None
    editor.paint([(5, 5), (25, 60)], 3, 3, z=zz)
    editor.add_polygon([(60, 60), (60, 70), (70, 65)], z=zz)
    editor.erase([point], 2, z=zz)
    editor.mark_unlabelled(stroke=[(2, 2)], radius=2, z=zz)
    editor.delete(target)
    edited, counts = labels.copy(), editor.counts
    assert sum(counts.values()) == 5
    while editor.undo():
        pass
    np.testing.assert_array_equal(labels, original)
    assert sum(editor.counts.values()) == 0 and editor.undo() is None
    while editor.redo():
        pass
    np.testing.assert_array_equal(labels, edited)
    assert editor.counts == counts
    editor.undo()
    editor.paint([(50, 10)], 1, 9999, z=zz)
    assert editor.redo() is None  # the new edit cleared what could be redone
    # each step keeps only its box: far less than a copy of the labels per edit
    assert sum(step.before.size for step in editor._done) < labels.size


def test_errors_say_what_was_given_and_the_fix(labels):
    editor = LabelEditor(labels)
    background = tuple(int(v) for v in np.argwhere((labels if labels.ndim == 2 else labels[4]) == 0)[0])
    z = 4 if labels.ndim == 3 else None
    where = f"y={background[0]}, x={background[1]}"
    with pytest.raises(ValueError, match=rf"no object at \({where}\)" + (" on slice 4" if z else "")):
        editor.delete(background, z=z)
    with pytest.raises(ValueError, match="outside the image"):
        editor.delete((5000, 3), z=z)
    if labels.ndim == 3:
        with pytest.raises(ValueError, match="say on which slice"):
            editor.paint([(3, 3)], 2, 1)
    else:
        with pytest.raises(ValueError, match="leave z out"):
            editor.paint([(3, 3)], 2, 1, z=2)


def test_count_edits_on_a_known_pair(labels):
    """The counter finds the edits made with the editor (delete 2, add 1, merge 1, split 1)."""
    original = labels.copy()
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    order = [int(i) for i in ids[np.argsort(-sizes)]]
    editor = LabelEditor(labels)
    z, (y, x) = inside(labels, order[0])
    plane = labels if labels.ndim == 2 else labels[z]
    cols = np.flatnonzero((plane == order[0]).any(axis=0))
    editor.split((y, cols[0] - 2), (y, cols[-1] + 2), z=z)
    editor.merge(order[1], order[2])
    editor.delete(order[3])
    editor.delete(order[4])
    zz = z if labels.ndim == 3 else None
    free = np.argwhere(plane == 0)
    editor.add_stroke([tuple(free[len(free) // 2])], 0, z=zz)
    found = count_edits(original, labels)
    assert {k: found[k] for k in ("added", "deleted", "split", "merged")} == {
        k: editor.counts[k] for k in ("added", "deleted", "split", "merged")}
    assert found["kept"] == len(ids) - 5 and count_edits(original, original)["edits"] == 0
    assert count_edits(original, labels)["edits"] == 5
    reverse = count_edits(labels, original)  # the way back: merges become splits, adds become deletes
    assert (reverse["split"], reverse["merged"], reverse["added"], reverse["deleted"]) == (1, 1, 2, 1)


def test_count_edits_a_partly_swallowed_object_is_deleted_not_merged():
    """An object with less than half of it inside another is not part of a merge with it."""
    before = tifffile.imread(sample("nuclei2d")["masks"] / "dsb_00_003cee89.tif").astype(np.int32)
    ids, sizes = np.unique(before[before > 0], return_counts=True)
    first, second = (int(i) for i in ids[np.argsort(-sizes)[:2]])
    after = before.copy()
    after[after == second] = 0
    pixels = np.argwhere(before == second)
    swallowed = pixels[: int(0.3 * len(pixels))]  # 30 % of the second object joins the first
    after[swallowed[:, 0], swallowed[:, 1]] = first
    found = count_edits(before, after)
    assert (found["deleted"], found["merged"], found["edits"]) == (1, 0, 1)
