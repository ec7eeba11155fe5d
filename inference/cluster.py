"""EmbedTrack clustering of predicted embeddings into instance masks (methods.md A4).

Inputs are the ``pred/*`` arrays of one frame in pixel units (see :mod:`inference.predict`):
seediness q, offsets o (a pixel p votes for the centre e = p + o) and per-axis bandwidths σ.

Algorithm (EmbedTrack ``Cluster.cluster_pixels``, Löffler & Mikut 2022):

1. foreground = q > ``fg_thresh``; σ is smoothed by a 3^D mean filter (in 1/σ², i.e. in S).
2. seed candidates are pixels where many votes land: the vote histogram of foreground pixels,
   box-summed over 3^D, ≥ ``density_thresh``, and q > ``seed_thresh``.
3. candidates in descending vote density (deviation: EmbedTrack uses seediness and c = e(candidate));
   centre c = the candidate location (where the votes pile up), bandwidth σ(candidate);
   φ(i) = exp(-Σ_d (e_i,d - c_d)² / (2 σ_d²)); proposal = foreground ∧ φ > 0.5 ∧ φ > best φ so far
   (a later cluster may take pixels it explains better); accepted if fewer than half of the
   φ > 0.5 pixels are already labelled and the proposal has ≥ ``min_object_size`` pixels. Candidates
   inside an accepted proposal are retired.
4. objects that lost pixels below ``min_object_size`` are removed; labels are renumbered 1..N.

Speed: φ > 0.5 needs |e - c|_d < sqrt(2 ln 2)·σ_d, so each candidate only looks at pixels whose
vote lies in that band (pixels are pre-sorted by their vote's first coordinate).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PHI_RADIUS = float(np.sqrt(2.0 * np.log(2.0)))  # φ = 0.5 at this many σ


def cluster_frame(
    seediness: np.ndarray,
    offsets: np.ndarray,
    sigma: np.ndarray,
    *,
    fg_thresh: float = 0.5,
    seed_thresh: float = 0.1,
    density_thresh: float = 4.5,
    min_object_size: int = 10,
) -> np.ndarray:
    """Instance label image (int32, 0 = background) of one frame."""
    q = np.asarray(seediness, dtype=np.float32)
    shape = q.shape
    D = q.ndim
    off = np.asarray(offsets, dtype=np.float32)
    sig = np.asarray(sigma, dtype=np.float32)
    if off.shape != (D, *shape) or sig.shape != (D, *shape):
        raise ValueError(f"offsets {off.shape} / sigma {sig.shape} do not match seediness {shape}")
    labels = np.zeros(shape, np.int32)
    fg = q > fg_thresh
    if not fg.any():
        return labels
    inv_var = np.stack([ndimage.uniform_filter(1.0 / np.maximum(s, 1e-3) ** 2, 3, mode="reflect") for s in sig])
    sig_s = 1.0 / np.sqrt(inv_var)
    coords = np.nonzero(fg)
    pix = np.stack(coords, axis=1).astype(np.float32)  # (N, D)
    emb = pix + np.stack([o[coords] for o in off], axis=1)  # (N, D) votes
    vote = np.rint(emb).astype(np.int64)
    inside = np.all((vote >= 0) & (vote < np.array(shape)), axis=1)
    hist = np.zeros(shape, np.float32)
    np.add.at(hist, tuple(vote[inside].T), 1.0)
    density = ndimage.uniform_filter(hist, 3, mode="constant") * 3**D
    cand = (density >= density_thresh) & (q > seed_thresh)
    cand_idx = np.flatnonzero(cand)
    # deviation: densest vote locations first (EmbedTrack sorts by seediness); with imperfect
    # offsets this starts from the best-supported centres and avoids fragment-first clusters
    cand_idx = cand_idx[np.lexsort((-q.ravel()[cand_idx], -density.ravel()[cand_idx]))]
    retired = np.zeros(q.size, bool)

    order = np.argsort(emb[:, 0], kind="stable")
    emb_sorted, first = emb[order], emb[order, 0]
    lin = np.ravel_multi_index(coords, shape)[order]  # pixel id of each sorted vote
    best = np.zeros(len(order), np.float32)
    lab_sorted = np.zeros(len(order), np.int32)
    next_label = 1
    for ci in cand_idx:
        if retired[ci]:
            continue
        retired[ci] = True
        pos = np.unravel_index(ci, shape)
        c_sig = np.array([sig_s[(d, *pos)] for d in range(D)], np.float32)
        c = np.array(pos, np.float32)  # the vote-density peak itself is the centre estimate
        r = PHI_RADIUS * c_sig
        lo, hi = np.searchsorted(first, [c[0] - r[0], c[0] + r[0]])
        if hi <= lo:
            continue
        e = emb_sorted[lo:hi]
        phi = np.exp(-0.5 * (((e - c) / c_sig) ** 2).sum(axis=1))
        hit = phi > 0.5
        proposal = hit & (phi > best[lo:hi])
        n_prop = int(proposal.sum())
        if n_prop < max(min_object_size, 1):
            continue
        colliding = int((hit & (lab_sorted[lo:hi] > 0)).sum())
        if colliding / n_prop >= 0.5:
            continue
        sel = np.flatnonzero(proposal) + lo
        lab_sorted[sel] = next_label
        best[sel] = phi[proposal]
        retired[lin[sel]] = True
        next_label += 1
    labels.ravel()[lin] = lab_sorted
    return remove_small(labels, min_object_size)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects below ``min_size`` pixels and renumber 1..N (int32)."""
    counts = np.bincount(labels.ravel())
    keep = counts >= max(min_size, 1)
    keep[0] = False
    remap = np.zeros(len(counts), np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    renumbered: np.ndarray = remap[labels]
    return renumbered
