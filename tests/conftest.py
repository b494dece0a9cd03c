"""Shared fixtures. Tests needing ../shared/data skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

# ../shared/data beside the checkout; NBSEG_SHARED_DATA names another place (the Makefile's check reads it too)
SHARED_DATA = Path(os.environ.get("NBSEG_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
MISSING_DATA = "real data not found at"  # the start of every skip reason below; the summary counts them


def need_shared(*parts) -> Path:
    """``../shared/data/<parts>``, or a skip that says where it was looked for.

    In CI (environment CI=true) a missing file fails the test instead: there the real-data tests are
    part of what CI checks, and a silent skip would let them go unrun.
    """
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = f"{MISSING_DATA} {path} (it exists on development and CI machines only)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs the real-data tests: put the data at {SHARED_DATA}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (development and CI machines only)."""
    return need_shared()


def pytest_terminal_summary(terminalreporter):
    """Say how many tests skipped for want of ../shared/data, so a green run without it is not read as
    a full one."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and MISSING_DATA in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_sep("=", f"{len(skipped)} tests skipped: no real data at {SHARED_DATA}",
                                   yellow=True, bold=True)
        for report in skipped:
            terminalreporter.write_line(f"  {report.nodeid}")
        terminalreporter.write_line("They run where ../shared/data sits beside the checkout (or NBSEG_SHARED_DATA names it).")


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: two threads on two shared cores thrash (OpenMP spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def panel_env(monkeypatch):
    """The panels as the notebooks run them in quick mode, with nothing pressed for the test."""
    for name, value in (("NBSEG_QUICK", "1"), ("NBSEG_AUTORUN", "0"), ("MPLBACKEND", "Agg")):
        monkeypatch.setenv(name, value)


def nuclei_pool(folder: Path, n: int, *, micrometres: float | None = None) -> Path:
    """``n`` 128x128 crops of the bundled 2D nuclei written into ``folder`` (with that pixel size, if given):
    a pool of images without masks, as the correction loop starts from."""
    import tifffile

    from nbseg.data import sample

    folder.mkdir()
    calibration = {} if micrometres is None else {"imagej": True, "resolution": (1 / micrometres, 1 / micrometres)}
    for path in sorted(sample("nuclei2d")["images"].glob("*.tif"))[:n]:
        tifffile.imwrite(folder / path.name, tifffile.imread(path)[:128, :128], **calibration,
                         metadata={"axes": "YX", **({"unit": "um"} if micrometres else {})})
    return folder


def assert_scale_bar(viewer, pixel_size: float, label: str) -> None:
    """Assert that a :class:`~nbseg.ui.viewers.Viewer2D` drew on its XY image a scale bar as long as ``label``
    says (e.g. "10 µm") in image pixels of ``pixel_size`` µm, with ``label`` written above it.

    The bar is the longest run of white pixels holding some that drawing it changed (the view is drawn
    again without it to compare); the label is compared with the text annotate writes."""
    import numpy as np

    from nbseg.ui import annotate

    factor = viewer._factor  # noqa: SLF001 - the display's enlargement
    height, width = (n * factor for n in viewer._xy_shape)  # noqa: SLF001 - the XY image, enlarged
    shown = viewer.rgb[:height, :width]
    size, viewer.pixel_size = viewer.pixel_size, None
    viewer.render()
    bare = viewer.rgb[:height, :width]
    viewer.pixel_size = size
    viewer.render()
    white, changed = (shown == 255).all(axis=-1), (shown != bare).any(axis=-1)
    length, y0, x0 = 0, 0, 0
    for y, (white_row, changed_row) in enumerate(zip(white, changed)):
        edges = np.diff(np.concatenate([[0], white_row.astype(np.int8), [0]]))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if changed_row[start:end].any() and end - start > length:
                length, y0, x0 = end - start, y, start
    assert length, "no scale bar drawn"
    value, unit = label.split()
    assert unit == "µm" and length / factor * pixel_size == pytest.approx(float(value)), \
        f"the bar is {length / factor * pixel_size:g} µm long, not {label}"
    text = annotate.text_mask(label)
    top = max(0, y0 - annotate.TEXT_HEIGHT - 2)  # where annotate writes it
    box = (slice(top, top + text.shape[0]), slice(x0, x0 + text.shape[1]))
    assert white[box][text].all() and not ((white & changed)[box] & ~text).any(), f"the bar's label is not {label!r}"
