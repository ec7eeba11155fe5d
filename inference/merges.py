"""Merge hypotheses: the union of two touching clusters as a competing candidate.

The clustering of a network that over-splits cuts one cell into two clusters; as plain
candidates the solver could then only keep both halves (a false division) or drop one. Adding
the union of touching pairs as the *parent* of the two clusters (a two-level candidate forest,
the same exclusion the H-EMD forest uses) lets the joint solver pick, per frame, whichever
reading the tracks before and after support.

Which pairs: clusters that touch once each is grown by ``gap`` px (clusters of one cell are
often parted by a thin unassigned seam), whose union is no larger than ``max_area_factor``
times the frame's ``area_quantile`` cluster area, and -- given the network's offsets -- whose
pixels vote for nearby centres (:func:`vote_ratio` < 0.8). On the bacteria training frames
0–39 (``benchmarks/merge_pairs.py``) that offers 22 of the 26 touching pairs that are one
true cell and 10 of the 642 that are two (without the vote test: 24 and 232). Each cluster joins
at most one pair (the forest is a tree), most convergent first.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.types import Candidates


def touching_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs (a < b) of labels that touch (face neighbours) and their contact length."""
    lab = np.asarray(labels, np.int64)
    found = []
    for axis in range(lab.ndim):
        lo = np.take(lab, np.arange(lab.shape[axis] - 1), axis=axis).ravel()
        hi = np.take(lab, np.arange(1, lab.shape[axis]), axis=axis).ravel()
        m = (lo > 0) & (hi > 0) & (lo != hi)
        found.append(np.stack([np.minimum(lo[m], hi[m]), np.maximum(lo[m], hi[m])], axis=1))
    both = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    if len(both) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    pairs, contact = np.unique(both, axis=0, return_counts=True)
    return pairs, contact


def boundary_length(labels: np.ndarray) -> np.ndarray:
    """Pixels of each label with a face neighbour of another value (indexed by label)."""
    lab = np.asarray(labels, np.int64)
    edge = np.zeros(lab.shape, bool)
    for axis in range(lab.ndim):
        d = np.diff(lab, axis=axis) != 0
        pad_lo = [(0, 0)] * lab.ndim
        pad_hi = [(0, 0)] * lab.ndim
        pad_lo[axis] = (1, 0)
        pad_hi[axis] = (0, 1)
        edge |= np.pad(d, pad_lo) | np.pad(d, pad_hi)
    return np.bincount(lab[edge], minlength=int(lab.max()) + 1)


def grow_labels(labels: np.ndarray, gap: float) -> np.ndarray:
    """Background within ``gap`` px of a label takes the nearest label (clusters of one cell are
    often separated by a thin unassigned seam)."""
    lab = np.asarray(labels, np.int64)
    if gap <= 0 or not (lab == 0).any() or not (lab > 0).any():
        return lab
    dist, idx = ndimage.distance_transform_edt(lab == 0, return_indices=True)
    grown = lab[tuple(idx)]
    return np.where(dist <= gap, grown, 0)


def vote_ratio(labels: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """|mean vote of a − mean vote of b| / |centroid of a − centroid of b| for each pair.

    A pixel p votes for its cell's centre at p + offset(p). Two clusters of one cell have
    votes that converge (ratio well below 1); two cells have votes as far apart as their
    centres (ratio ≈ 1).
    """
    lab = np.asarray(labels, np.int64).ravel()
    n = int(lab.max()) + 1
    count = np.maximum(np.bincount(lab, minlength=n), 1).astype(np.float64)
    coords = np.indices(labels.shape, dtype=np.float64).reshape(labels.ndim, -1)
    off = np.asarray(offsets, np.float64).reshape(labels.ndim, -1)
    cen = np.stack([np.bincount(lab, coords[d], minlength=n) / count for d in range(labels.ndim)], axis=1)
    vote = np.stack([np.bincount(lab, coords[d] + off[d], minlength=n) / count for d in range(labels.ndim)], axis=1)
    a, b = pairs[:, 0], pairs[:, 1]
    apart = np.linalg.norm(cen[a] - cen[b], axis=1)
    ratio: np.ndarray = np.linalg.norm(vote[a] - vote[b], axis=1) / np.maximum(apart, 1e-6)
    return ratio


def merge_pairs(
    labels: np.ndarray,
    offsets: np.ndarray | None = None,
    *,
    max_vote_ratio: float = 0.8,
    max_area_factor: float = 2.0,
    area_quantile: float = 0.95,
    min_contact: int = 3,
    gap: float = 2.0,
) -> np.ndarray:
    """(M, 2) label pairs to offer as merged candidates; every label in at most one pair.

    With the network's ``offsets`` only pairs whose votes converge (:func:`vote_ratio` below
    ``max_vote_ratio``) are offered, most convergent first; without them (plain label images)
    every touching pair is, most shared boundary first.
    """
    lab = np.asarray(labels, np.int64)
    grown = grow_labels(lab, gap)
    pairs, contact = touching_pairs(grown)
    if len(pairs) == 0:
        return pairs
    area = np.bincount(lab.ravel(), minlength=int(grown.max()) + 1)
    present = area[1:][area[1:] > 0]
    cap = max_area_factor * float(np.quantile(present, area_quantile))
    ok = (contact >= min_contact) & (area[pairs[:, 0]] + area[pairs[:, 1]] <= cap)
    if offsets is not None:
        ratio = vote_ratio(lab, offsets, pairs)
        ok &= ratio < max_vote_ratio
        order = np.argsort(ratio[ok], kind="stable")
    else:
        border = boundary_length(grown)
        share = contact / np.maximum(np.minimum(border[pairs[:, 0]], border[pairs[:, 1]]), 1)
        order = np.argsort(-share[ok], kind="stable")
    used: set[int] = set()
    chosen = []
    for i in np.flatnonzero(ok)[order]:
        a, b = int(pairs[i, 0]), int(pairs[i, 1])
        if a in used or b in used:
            continue
        used.update((a, b))
        chosen.append((a, b))
    return np.array(chosen, np.int64).reshape(-1, 2)


def pair_mask(labels: np.ndarray, a: int, b: int, gap: float) -> np.ndarray:
    """Pixels of ``a`` and ``b`` plus the unlabelled seam between them (background filled by a
    closing of radius ``gap``), so that the merged cell has no hole where the clusters parted."""
    both: np.ndarray = (labels == a) | (labels == b)
    r = int(np.ceil(gap))
    if r <= 0:
        return both
    where = np.nonzero(both)
    lo = np.maximum(np.min(where, axis=1) - 2 * r, 0)
    hi = np.minimum(np.max(where, axis=1) + 2 * r + 1, labels.shape)
    sl = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))
    crop = labels[sl]
    closed = ndimage.binary_closing(
        both[sl], structure=ndimage.generate_binary_structure(labels.ndim, labels.ndim), iterations=r
    )
    both[sl] |= closed & (crop == 0)
    return both


def concat(a: Candidates, b: Candidates) -> Candidates:
    """``a`` then ``b`` (``b``'s parent indices are shifted by ``len(a)``)."""

    def cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate([x, y])

    shift = np.where(b.hier_parent >= 0, b.hier_parent + len(a), -1)
    return Candidates(
        t=np.concatenate([a.t, b.t]),
        label=np.concatenate([a.label, b.label]),
        centroid=np.concatenate([a.centroid, b.centroid]),
        area=np.concatenate([a.area, b.area]),
        bbox=np.concatenate([a.bbox, b.bbox]),
        masks=list(a.masks) + list(b.masks),
        hier_parent=np.concatenate([a.hier_parent, shift]),
        threshold=np.concatenate([a.threshold, b.threshold]),
        score=np.concatenate([a.score, b.score]),
        max_prob=np.concatenate([a.max_prob, b.max_prob]),
        embedding=cat(a.embedding, b.embedding),
        prev_centroid=cat(a.prev_centroid, b.prev_centroid),
    )
