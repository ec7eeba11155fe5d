"""Percentile intensity normalisation shared by training and prediction (EmbedSeg/EmbedTrack
normalise each image by its 1st and 99.8th percentiles, EmbedSeg ``normalize_min_max_percentile``)."""

from __future__ import annotations

import numpy as np

DEFAULT_PERCENTILES = (1.0, 99.8)


def normalise_percentile(
    img: np.ndarray, lo: float = DEFAULT_PERCENTILES[0], hi: float = DEFAULT_PERCENTILES[1], what: str = "frame"
) -> np.ndarray:
    """float32 image mapped so that percentile ``lo`` -> 0 and ``hi`` -> 1.

    Raises ValueError for a constant (or empty) image: there is no contrast to normalise and
    a model would only see noise.
    """
    a = np.asarray(img, dtype=np.float32)
    if a.size == 0:
        raise ValueError(f"{what} is empty")
    p_lo, p_hi = np.percentile(a, [lo, hi])
    if not np.isfinite(p_lo) or not np.isfinite(p_hi):
        raise ValueError(f"{what} contains non-finite values")
    if p_hi - p_lo <= 1e-12 * max(1.0, abs(float(p_hi))):
        if float(a.max()) == float(a.min()):
            raise ValueError(f"{what} is constant (all pixels {float(a.min())}); nothing to segment")
        p_lo, p_hi = float(a.min()), float(a.max())
    return (a - np.float32(p_lo)) / np.float32(p_hi - p_lo)
