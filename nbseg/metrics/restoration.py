"""How close a restored image (denoised) is to a clean one: PSNR and SSIM (scikit-image's), per image and
over a folder of ``<name>.denoised.ome.tif`` results paired with clean ``<name>.tif`` images by name.

Both are computed on the clean image's own range: ``data_range`` is the clean image's max minus min unless
given, so a 16-bit image and its 8-bit copy score alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

DENOISED = ".denoised"  # the stem suffix of `nbseg denoise predict`'s results: <name>.denoised.ome.tif


def _pair(restored, clean, data_range):
    restored, clean = np.asarray(restored, np.float64), np.asarray(clean, np.float64)
    if restored.shape != clean.shape:
        raise ValueError(f"the restored image has shape {restored.shape} but the clean one {clean.shape}; they must "
                         "cover the same pixels (the same axes and size).")
    if data_range is None:
        data_range = float(clean.max() - clean.min()) or 1.0
    return restored, clean, float(data_range)


def psnr(restored, clean, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of ``restored`` against ``clean`` (same shape, any dimensions)."""
    from skimage.metrics import peak_signal_noise_ratio

    restored, clean, data_range = _pair(restored, clean, data_range)
    return float(peak_signal_noise_ratio(clean, restored, data_range=data_range))


def ssim(restored, clean, *, data_range: float | None = None) -> float:
    """Structural similarity (mean SSIM, 7-pixel windows) of ``restored`` against ``clean``.

    Parameters
    ----------
    restored, clean : ([C,] [Z,] Y, X) array-like
        2D images or 3D stacks, the same shape; a leading channel axis of length one is dropped.
    """
    from skimage.metrics import structural_similarity

    restored, clean, data_range = _pair(np.squeeze(restored), np.squeeze(clean), data_range)
    return float(structural_similarity(clean, restored, data_range=data_range,
                                       win_size=min(7, *[n - 1 + n % 2 for n in clean.shape])))


@dataclass
class RestorationEvaluation:
    """Per-image PSNR and SSIM, and their means."""

    table: "pandas.DataFrame"

    @property
    def summary(self) -> dict:
        return {"images": len(self.table), "psnr": float(self.table["psnr"].mean()),
                "ssim": float(self.table["ssim"].mean())}

    def report(self) -> str:
        s = self.summary
        return "\n".join([f"Evaluated {s['images']} restored image(s) against clean ones.",
                          f"  PSNR (mean over images)        {s['psnr']:.2f} dB",
                          f"  SSIM (mean over images)        {s['ssim']:.3f}"])

    def to_csv(self, path) -> None:
        import pandas as pd

        frame = pd.concat([self.table, pd.DataFrame([{"image": "(mean)", **self.summary}]).drop(columns="images")],
                          ignore_index=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)


def evaluate_restoration(restored_dir, clean_dir, *, progress=None) -> RestorationEvaluation:
    """PSNR and SSIM of each restored image in ``restored_dir`` against its clean image in ``clean_dir``.

    A result ``<name>.denoised.ome.tif`` (or a plain ``<name>.tif``) pairs with ``<name>.<any image suffix>``.

    Raises
    ------
    ValueError
        Naming the images found on one side only, or pairs of different shapes.
    """
    import pandas as pd

    from ..io.images import files_by_stem, read_image

    found = files_by_stem(restored_dir, "restored")
    restored = {stem[: -len(DENOISED)] if stem.endswith(DENOISED) else stem: path for stem, path in found.items()}
    clean = files_by_stem(clean_dir, "clean")
    alone = sorted(set(restored) ^ set(clean))
    if alone:
        raise ValueError(f"Restored images in {restored_dir} and clean images in {clean_dir} do not pair up by name: "
                         f"{', '.join(alone[:20])} {'is' if len(alone) == 1 else 'are'} on one side only. A result "
                         "<name>.denoised.ome.tif pairs with <name>.tif; point to folders of the same images.")
    rows = []
    for i, name in enumerate(sorted(restored)):
        ours = read_image(restored[name])
        truth = read_image(clean[name], dims=ours.spatial_dims).data
        rows.append({"image": name, "psnr": psnr(ours.data, truth), "ssim": ssim(ours.data, truth)})
        if progress:
            progress(i + 1, len(restored), name)
    return RestorationEvaluation(pd.DataFrame(rows))


__all__ = ["DENOISED", "RestorationEvaluation", "evaluate_restoration", "psnr", "ssim"]
