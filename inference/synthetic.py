"""Reproducible probability maps derived from ground-truth label images, and tiny movies for tests.

Why: until the segmentation model of the inference issue exists, the candidate forest, H-EMD and
the joint solver need probability maps whose errors we control. A semantic-segmentation network
typically (a) under-separates touching cells (a weak valley between them, so a 0.5 threshold
merges them), (b) shows a dip inside a long cell (so high thresholds split it), and (c) is noisy.
:func:`prob_from_labels` reproduces these three error kinds, each drawn *independently per frame*
from a seeded generator, so a cell that is merged in one frame is usually clean in its neighbours
— the temporal consistency H-EMD exploits.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.merges import touching_pairs


def prob_from_labels(
    labels: np.ndarray,
    seed: int = 0,
    merge_fraction: float = 0.25,
    split_fraction: float = 0.15,
    noise: float = 0.05,
    sigma: float = 1.0,
    ramp: float = 3.0,
    peak: float = 1.0,
    noise_scale: float = 2.0,
) -> np.ndarray:
    """A float32 probability map in [0, 1] shaped like ``labels`` (2D or 3D).

    Inside each cell the value rises from ~0.35 at its border to ``peak`` at ``ramp`` px depth
    (distance to the nearest other label or background). ``merge_fraction`` of the touching
    pairs get their shared border raised to 0.6–0.9 (merged at 0.5, separable above);
    ``split_fraction`` of the cells get a valley of 0.55–0.8 across their middle (whole at 0.5,
    split above). Gaussian noise smoothed over ``noise_scale`` px, of standard deviation
    ``noise``, is added last, scaled by 4p(1-p): like a sigmoid output it is noisy where it is
    unsure and saturated where it is sure (noise on a saturated plateau would give every cell
    dozens of spurious maxima, something real maps rarely show).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    lab = labels.astype(np.int64)
    # boundaries between different cells count as background for the depth
    border = np.zeros(lab.shape, bool)
    for ax in range(lab.ndim):
        a = np.moveaxis(lab, ax, 0)
        b = np.moveaxis(border, ax, 0)
        d = (a[:-1] != a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
        b[:-1] |= d
        b[1:] |= d
    inside = (lab > 0) & ~border
    depth = ndi.distance_transform_edt(inside)
    prob = np.where(lab > 0, 0.35 + (peak - 0.35) * np.clip(depth / ramp, 0.0, 1.0), 0.0)

    # (a) weakened boundaries between touching cells -> merges at low thresholds
    pairs, _ = touching_pairs(lab)
    a, b = pairs[:, 0], pairs[:, 1]
    if len(a) and merge_fraction > 0:
        pick = rng.random(len(a)) < merge_fraction
        pair_level = rng.uniform(0.6, 0.9, len(a))
        n1 = int(lab.max()) + 1
        keys = a[pick] * n1 + b[pick]  # sorted, since (a, b) came from np.unique
        vals = pair_level[pick]
        flat_lab, flat_prob = lab.ravel(), prob.ravel()
        index = np.arange(lab.size).reshape(lab.shape)
        for ax in range(lab.ndim):
            lo = np.moveaxis(index, ax, 0)[:-1].ravel()
            hi = np.moveaxis(index, ax, 0)[1:].ravel()
            la, lb = flat_lab[lo], flat_lab[hi]
            m = (la != lb) & (la > 0) & (lb > 0)
            lo, hi = lo[m], hi[m]
            k = np.minimum(la[m], lb[m]) * n1 + np.maximum(la[m], lb[m])
            pos = np.clip(np.searchsorted(keys, k), 0, max(len(keys) - 1, 0))
            hit = (keys[pos] == k) if len(keys) else np.zeros(len(k), bool)
            for px in (lo[hit], hi[hit]):
                flat_prob[px] = np.maximum(flat_prob[px], vals[pos[hit]])
        prob = flat_prob.reshape(lab.shape)

    # (b) a valley across the middle of some cells -> splits at high thresholds
    n = int(lab.max())
    if n and split_fraction > 0:
        objs = ndi.find_objects(lab)
        for lbl in np.nonzero(rng.random(n) < split_fraction)[0] + 1:
            sl = objs[lbl - 1]
            if sl is None:
                continue
            m = lab[sl] == lbl
            coords = np.argwhere(m).astype(float)
            if len(coords) < 20:
                continue
            c = coords.mean(0)
            # principal axis; the valley is the band orthogonal to it through the centre
            u, s, vt = np.linalg.svd(coords - c, full_matrices=False)
            proj = (coords - c) @ vt[0]
            band = np.abs(proj) < 1.5
            v = rng.uniform(0.55, 0.8)
            sub = prob[sl]
            pts = tuple(coords[band].astype(int).T)
            sub[pts] = np.minimum(sub[pts], v)

    if sigma > 0:
        prob = ndi.gaussian_filter(prob, sigma)
    if noise > 0:
        nz = ndi.gaussian_filter(rng.standard_normal(lab.shape), noise_scale)
        nz *= noise / max(float(nz.std()), 1e-12)
        # a network's sigmoid output is noisy where it is unsure and saturated where it is sure
        prob = prob + nz * 4.0 * prob * (1.0 - prob)
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def movie_prob_from_labels(labels: np.ndarray, seed: int = 0, **kw: float) -> np.ndarray:
    """Per-frame :func:`prob_from_labels` of a (T, [Z,] Y, X) label movie, seeds seed+t."""
    return np.stack([prob_from_labels(f, seed=seed + t, **kw) for t, f in enumerate(labels)])


def disk_movie(n_frames: int = 3, shape: tuple[int, int] = (64, 64), radius: float = 6.0, seed: int = 0) -> np.ndarray:
    """A (T, Y, X) uint16 label movie of a few disks drifting slowly (for fast tests)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    n = 4
    centres = rng.uniform(radius + 2, np.array(shape) - radius - 2, (n, 2))
    out = np.zeros((n_frames, *shape), np.uint16)
    for t in range(n_frames):
        for i, (cy, cx) in enumerate(centres + t * rng.normal(0, 0.5, (n, 2))):
            out[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i + 1
    return out
