"""Benchmark data from ../shared/data: fixed, seeded splits, linked into bench/_work (never copied into git)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# NBSEG_SHARED_DATA: the same folders elsewhere (a GPU machine that gets a copy of some of them)
SHARED = Path(os.environ.get("NBSEG_SHARED_DATA") or ROOT.parent / "shared" / "data")
WORK = ROOT / "bench" / "_work"


def require_shared() -> Path:
    if not SHARED.is_dir():
        raise SystemExit(f"The benchmarks need the real data at {SHARED} (present on development and CI machines).")
    return SHARED


def link_file(src: Path, dst: Path) -> None:
    """``dst`` a link to ``src`` (its folder made), unless it exists."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src, dst)


def dsb_fluorescence_split(*, test_fraction: float = 0.2, seed: int = 0) -> dict[str, dict[str, Path]]:
    """DSB2018 fluorescence images split once into train (for training + validation) and held-back test.

    Returns ``{"train": {"images", "masks"}, "test": {"images", "masks"}}`` folders.
    """
    return dsb_split("fluorescence", "dsb", test_fraction=test_fraction, seed=seed)


def dsb_split(modality: str, name: str, *, test_fraction: float = 0.2, seed: int = 0) -> dict[str, dict[str, Path]]:
    """The DSB2018 images of one ``modality`` (metadata.csv's column) split once into train and held-back
    test, linked under ``bench/_work/<name>``; the same folders as :func:`dsb_fluorescence_split`."""
    data = require_shared() / "dsb2018"
    with open(data / "metadata.csv") as handle:
        names = sorted(r["name"] for r in csv.DictReader(handle) if r["modality"] == modality)
    order = np.random.default_rng(seed).permutation(names)
    n_test = round(len(order) * test_fraction)
    parts = {"test": order[:n_test], "train": order[n_test:]}
    out = {}
    for part, members in parts.items():
        folders = {kind: WORK / name / part / kind for kind in ("images", "masks")}
        for member in members:
            for kind, folder in folders.items():
                link_file(data / kind / f"{member}.tif", folder / f"{member}.tif")
        out[part] = folders
    return out


if __name__ == "__main__":
    split = dsb_fluorescence_split()
    for part, folders in split.items():
        print(part, len(list(folders["images"].iterdir())), folders["images"])
