"""Low-light noise added to clean images, for benchmarks and tests of denoising (the issue's noise model)."""
from __future__ import annotations

import numpy as np

PEAK = 20.0  # photons at the brightest pixel
SIGMA = 0.05  # read noise, in units of the [0, 1] range


def scale_to_unit(image) -> np.ndarray:
    """``image`` scaled so its minimum is 0 and its maximum 1 (float32)."""
    image = np.asarray(image, np.float32)
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low if high > low else 1.0)


def low_light(clean, *, peak: float = PEAK, sigma: float = SIGMA, rng=None) -> np.ndarray:
    """Poisson noise at ``peak`` photons plus Gaussian noise of ``sigma`` on ``clean`` scaled to [0, 1].

    Parameters
    ----------
    clean : ndarray
        Any shape and dtype; it is scaled to [0, 1] first (:func:`scale_to_unit`).
    peak, sigma : float
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    ndarray of float32
        Of the shape of ``clean``; the clean image in [0, 1] is ``scale_to_unit(clean)``.
    """
    rng = np.random.default_rng(rng)
    unit = scale_to_unit(clean)
    return (rng.poisson(unit * peak) / peak + rng.normal(0.0, sigma, unit.shape)).astype(np.float32)


__all__ = ["PEAK", "SIGMA", "low_light", "scale_to_unit"]
