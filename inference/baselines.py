"""Single-frame post-processing baselines that H-EMD is compared with (paper Sec. IV, Table IV).

- :func:`threshold_components`: connected components of ``prob >= 0.5`` (what most pipelines do).
- :func:`watershed_segmentation`: marker-controlled watershed on the inverted probability map,
  markers = regional maxima of height ``h`` of the Gaussian-smoothed map
  (``skimage.morphology.h_maxima``) so that noise bumps do not each start a cell; flooding is
  limited to ``prob >= 0.5``. Defaults (h = 0.2, sigma = 2) were fixed on frame 52 of the
  synthetic bacteria maps before H-EMD was run; ``benchmarks/selection.py`` also reports a sweep.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def threshold_components(prob: np.ndarray, threshold: float = 0.5, min_area: int = 10) -> np.ndarray:
    """Label image (int32) of the connected components of ``prob >= threshold`` of ≥ min_area px."""
    lab, _ = ndi.label(np.asarray(prob) >= threshold)
    return _drop_small(lab, min_area)


def watershed_segmentation(
    prob: np.ndarray, h: float = 0.2, sigma: float = 2.0, threshold: float = 0.5, min_area: int = 10
) -> np.ndarray:
    """Label image (int32): watershed of ``-smooth(prob)`` inside ``prob >= threshold``.

    ``sigma`` smooths before finding the h-maxima markers (without it every noise bump on a
    saturated plateau becomes a marker).
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    prob = np.asarray(prob, dtype=np.float64)
    mask = prob >= threshold
    smooth = ndi.gaussian_filter(prob, sigma) if sigma > 0 else prob
    # scikit-image does not annotate these two functions
    markers, _ = ndi.label(h_maxima(smooth, h).astype(bool) & mask)  # type: ignore[no-untyped-call]
    lab = watershed(-smooth, markers, mask=mask)  # type: ignore[no-untyped-call]
    return _drop_small(lab.astype(np.int32), min_area)


def _drop_small(lab: np.ndarray, min_area: int) -> np.ndarray:
    area = np.bincount(lab.ravel())
    small = area < min_area
    small[0] = False
    if small.any():
        lab = np.where(small[lab], 0, lab)
    # relabel consecutively
    ids, inv = np.unique(lab, return_inverse=True)
    inv = inv.reshape(lab.shape)
    if ids[0] != 0:
        inv = inv + 1
    return inv.astype(np.int32)
