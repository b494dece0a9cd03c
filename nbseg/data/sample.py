"""The sample data shipped inside the package (CC0 / MIT), for the demo, notebooks and tests."""
from __future__ import annotations

from pathlib import Path

SAMPLES = {
    "nuclei2d": "24 fluorescence nuclei images (DSB2018, CC0), 256x256, instance masks",
    "nuclei3d": "2 mouse-embryo nuclei stacks (BBBC050/QCANet, MIT), 51x120x122, instance masks",
}


def sample(name: str = "nuclei2d") -> dict[str, Path]:
    """Folders of a bundled sample: ``{"images": Path, "masks": Path}``.

    Parameters
    ----------
    name : {"nuclei2d", "nuclei3d"}
    """
    if name not in SAMPLES:
        raise ValueError(f"No sample named {name!r}; choose one of: "
                         + "; ".join(f"{k} ({v})" for k, v in SAMPLES.items()))
    root = Path(__file__).resolve().parent.parent / "samples" / name
    return {"images": root / "images", "masks": root / "masks"}
