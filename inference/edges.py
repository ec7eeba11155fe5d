"""Candidate links between candidates of nearby frames, with their link features.

For every frame pair (t, t+Δ), Δ = 1..dt_max, a KD-tree over the centroids of frame t+Δ answers,
for every candidate of frame t, its ``k`` nearest candidates within ``max_distance`` (one
vectorised ``cKDTree.query`` per frame pair). An optional per-candidate ``shift`` (expected
displacement per frame, e.g. from a motion estimate) moves the query point to
``centroid + Δ·shift`` so that fast cells still find their successor among the ``k``.

Features per edge i→j:

* ``distance``  = ‖c_j − c_i‖ (raw centroids, not shifted);
* ``iou``       = |M_i ∩ M_j| / |M_i ∪ M_j| with both masks at their true positions;
* ``offset_vote`` = ‖p_j − c_i‖ where p_j is the previous-frame centre voted by j's pixels
  (``Candidates.prev_centroid``), when present;
* ``embedding_distance`` = 1 − cos(e_i, e_j), when ``Candidates.embedding`` is present.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from inference.types import CandidateEdges, Candidates


def link_candidates(
    c: Candidates,
    max_distance: float,
    k: int = 10,
    dt_max: int = 1,
    shift: np.ndarray | None = None,
) -> CandidateEdges:
    """Candidate edges from each node at t to its ``k`` nearest nodes at t+1..t+dt_max."""
    if max_distance <= 0 or k < 1 or dt_max < 1:
        raise ValueError("max_distance must be > 0, k >= 1 and dt_max >= 1")
    n = len(c)
    cent = np.asarray(c.centroid, np.float64)
    if shift is not None:
        shift = np.asarray(shift, np.float64)
        if shift.shape != cent.shape:
            raise ValueError(f"shift has shape {shift.shape}, expected {cent.shape}")
    t = np.asarray(c.t, np.int64)
    order = np.argsort(t, kind="stable")
    frames, starts = np.unique(t[order], return_index=True)
    stops = np.append(starts[1:], n)
    by_frame = {int(f): order[a:b] for f, a, b in zip(frames, starts, stops)}
    src_parts: list[np.ndarray] = []
    dst_parts: list[np.ndarray] = []
    dt_parts: list[np.ndarray] = []
    for f, src_idx in by_frame.items():
        for dt in range(1, dt_max + 1):
            dst_idx = by_frame.get(f + dt)
            if dst_idx is None:
                continue
            tree = cKDTree(cent[dst_idx])
            q = cent[src_idx] if shift is None else cent[src_idx] + dt * shift[src_idx]
            kk = min(k, len(dst_idx))
            query_d, query_nb = tree.query(q, k=kk, distance_upper_bound=max_distance)
            dist = np.asarray(query_d).reshape(len(src_idx), kk)
            nb = np.asarray(query_nb).reshape(len(src_idx), kk)
            ok = np.isfinite(dist)
            rows = np.broadcast_to(src_idx[:, None], ok.shape)[ok]
            src_parts.append(rows)
            dst_parts.append(dst_idx[nb[ok]])
            dt_parts.append(np.full(int(ok.sum()), dt, np.int64))
    src = np.concatenate(src_parts) if src_parts else np.zeros(0, np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, np.int64)
    dts = np.concatenate(dt_parts) if dt_parts else np.zeros(0, np.int64)
    key = np.lexsort((dst, src))  # deterministic order: by source, then target
    src, dst, dts = src[key], dst[key], dts[key]
    distance = np.linalg.norm(cent[dst] - cent[src], axis=1)
    offset_vote = None
    if c.prev_centroid is not None:
        offset_vote = np.linalg.norm(np.asarray(c.prev_centroid)[dst] - cent[src], axis=1)
    emb_dist = None
    if c.embedding is not None:
        emb = np.asarray(c.embedding, np.float64)
        norm = np.linalg.norm(emb, axis=1)
        norm[norm == 0] = 1.0
        cos = np.einsum("ij,ij->i", emb[src], emb[dst]) / (norm[src] * norm[dst])
        emb_dist = 1.0 - cos
    return CandidateEdges(
        source=src,
        target=dst,
        dt=dts,
        distance=distance,
        iou=mask_iou(c.bbox, c.masks, c.area, src, dst, t=t),
        offset_vote=offset_vote,
        embedding_distance=emb_dist,
    )


def mask_iou(
    bbox: np.ndarray,
    masks: list[np.ndarray],
    area: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    offset: np.ndarray | None = None,
    t: np.ndarray | None = None,
) -> np.ndarray:
    """IoU of masks ``a[i]`` and ``b[i]``; mask ``a[i]`` is first translated by ``offset[i]``.

    ``offset`` (E, D) is rounded to whole pixels (motion-compensated overlap). Box overlap is
    tested for all pairs at once; only overlapping pairs touch pixels. ``t`` (the candidates'
    frames, no offset): the overlaps are counted frame by frame on a painted canvas instead of
    pair by pair (:func:`_painted_overlaps`: the same counts; 35,000 links of the
    ``benchmarks/track_speed.py`` movie in about 0.1 s of CPU instead of 0.2), where the masks
    allow it.
    """
    bbox = np.asarray(bbox, np.int64)
    area = np.asarray(area, np.float64)
    ndim = bbox.shape[1] // 2
    iou = np.zeros(len(a))
    if len(a) == 0:
        return iou
    sh = np.zeros((len(a), ndim), np.int64) if offset is None else np.rint(offset).astype(np.int64)
    lo_a = bbox[a, :ndim] + sh
    hi_a = bbox[a, ndim:] + sh
    lo = np.maximum(lo_a, bbox[b, :ndim])
    hi = np.minimum(hi_a, bbox[b, ndim:])
    hit = np.flatnonzero(np.all(hi > lo, axis=1))
    painted = None if offset is not None or t is None else _painted_overlaps(bbox, masks, t, a[hit], b[hit])
    if painted is not None:
        inter = painted
    else:
        inter = _pair_overlaps(
            masks,
            a[hit],
            b[hit],
            lo[hit] - lo_a[hit],
            hi[hit] - lo_a[hit],
            lo[hit] - bbox[b[hit], :ndim],
            hi[hit] - bbox[b[hit], :ndim],
        )
    iou[hit] = inter / (area[a[hit]] + area[b[hit]] - inter)
    return iou


def _pair_overlaps(
    masks: list[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    a0: np.ndarray,
    a1: np.ndarray,
    b0: np.ndarray,
    b1: np.ndarray,
) -> np.ndarray:
    """Pixels set in both ``masks[a[i]]`` and ``masks[b[i]]`` over their overlap, given as its
    corners in each mask's own coordinates (``a0:a1``, ``b0:b1``), pair by pair."""
    # the corners as Python ints (numpy scalars in slices cost a fifth of the loop)
    ra0, ra1, rb0, rb1 = a0.tolist(), a1.tolist(), b0.tolist(), b1.tolist()
    inter = np.zeros(len(a))
    for n, (i, j) in enumerate(zip(a.tolist(), b.tolist())):
        sa = tuple(map(slice, ra0[n], ra1[n]))
        sb = tuple(map(slice, rb0[n], rb1[n]))
        inter[n] = np.count_nonzero(masks[i][sa] & masks[j][sb])
    return inter


# the largest frame canvas (pixels or voxels, int32) painted by _painted_overlaps: 256 MiB
_CANVAS_LIMIT = 1 << 26


def _painted_overlaps(
    bbox: np.ndarray, masks: list[np.ndarray], t: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray | None:
    """The overlap counts of :func:`_pair_overlaps` (masks at their true positions), by target
    frame: the target cells of a frame are painted on one canvas with their rank, the pixels
    of their sources read back, and each pixel counted for its (source, target) pair.

    None where this does not apply and the caller counts pair by pair: masks that are not
    bool or not of their box's shape, a box below 0, a canvas over :data:`_CANVAS_LIMIT`, or
    two target cells of a frame that share a pixel (competing candidates).
    """
    ndim = bbox.shape[1] // 2
    n = len(bbox)
    if len(a) == 0:
        return np.zeros(0)
    cells = np.unique(np.concatenate([a, b]))
    lo, hi = bbox[cells, :ndim], bbox[cells, ndim:]
    extent = hi - lo
    sizes = np.prod(extent, axis=1)
    picked = [masks[i] for i in cells.tolist()]
    if (
        np.any(lo < 0)
        or np.any(extent < 0)
        or any(m.dtype != bool or m.ndim != ndim for m in picked)
        or not np.array_equal(np.fromiter((m.size for m in picked), np.int64, len(picked)), sizes)
    ):
        return None
    canvas_shape = hi.max(axis=0)
    if int(np.prod(canvas_shape)) > _CANVAS_LIMIT:
        return None
    # every set pixel of the picked cells: its cell (position in ``cells``) and canvas index
    flat = np.concatenate([m.ravel() for m in picked]) if picked else np.zeros(0, bool)
    starts = np.cumsum(sizes) - sizes
    on = np.flatnonzero(flat)
    cell_of = np.repeat(np.arange(len(cells)), sizes)[on]
    count = np.bincount(cell_of, minlength=len(cells))
    local = on - starts[cell_of]
    key = np.zeros(len(on), np.int64)
    stride = 1
    for ax in range(ndim - 1, -1, -1):  # unravel in the box, offset by its corner, ravel in the canvas
        local, along = np.divmod(local, extent[cell_of, ax])
        key += (along + lo[cell_of, ax]) * stride
        stride *= int(canvas_shape[ax])
    first = np.cumsum(count) - count  # each cell's pixels: key[first : first + count]
    rank = np.full(n, -1, np.int64)
    rank[cells] = np.arange(len(cells))
    canvas = np.full(int(np.prod(canvas_shape)), -1, np.int32)
    tb = np.asarray(t, np.int64)[b]
    order = np.argsort(tb, kind="stable")
    inter = np.zeros(len(a), np.int64)
    for group in np.split(order, np.flatnonzero(np.diff(tb[order])) + 1):
        targets, tpos = np.unique(rank[b[group]], return_inverse=True)
        sources, spos = np.unique(rank[a[group]], return_inverse=True)
        tkey = key[_ranges(first[targets], count[targets])]
        painted = np.repeat(np.arange(len(targets), dtype=np.int32), count[targets])
        canvas[tkey] = painted
        clean = np.array_equal(canvas[tkey], painted)
        small = len(sources) * len(targets) <= _CANVAS_LIMIT // 8
        if clean and small:
            # (source, target) -> one position in the group per distinct pair; a count per pixel
            slot = np.full((len(sources), len(targets)), -1, np.int64)
            slot[spos, tpos] = np.arange(len(group))
            owner = canvas[key[_ranges(first[sources], count[sources])]]
            src = np.repeat(np.arange(len(sources)), count[sources])
            on = slot[src[owner >= 0], owner[owner >= 0]]
            inter[group] = np.bincount(on[on >= 0], minlength=len(group))[slot[spos, tpos]]
        canvas[tkey] = -1
        if not (clean and small):
            return None
    return inter.astype(np.float64)


def _ranges(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + l) for s, l in zip(start, length)])`` without the loop."""
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.cumsum(length) - length
    return np.asarray(np.arange(total) - np.repeat(offsets - start, length))
