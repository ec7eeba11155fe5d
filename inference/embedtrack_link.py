"""EmbedTrack's own linking: backward majority vote of shifted pixels (methods.md A7).

For frames t = T-1 … 1, every pixel p of a mask m at t is moved to p + track_offset(p) (the
predicted position at t-1, see :mod:`inference.predict`); the mask's predecessor is the most
frequent non-background label under its shifted pixels (Löffler & Mikut 2022, sec. 2.4). Then,
per mask n at t-1 with successors: none → its track ends; one → the successor continues n's track;
two → division (both successors start tracks whose parent is n's track); more → the successors
start parentless tracks. Output: label images relabelled by track id and the CTC track table
``[label, start, end, parent]`` (``res_track.txt`` rows).

This is the ``solve --method embedtrack`` baseline; the joint solver of ``solvers/`` is compared to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from inference.cluster import cluster_frame
from inference.pred_store import child_array, open_pred


def vote_predecessors(labels_t: np.ndarray, labels_prev: np.ndarray, track_offsets: np.ndarray) -> dict[int, int]:
    """{label at t: majority label at t-1} for masks whose shifted pixels hit some object."""
    coords = np.nonzero(labels_t)
    if len(coords[0]) == 0:
        return {}
    shape = labels_t.shape
    shifted = [np.rint(c + track_offsets[d][coords]).astype(np.int64) for d, c in enumerate(coords)]
    ok = np.ones(len(coords[0]), bool)
    for d, s in enumerate(shifted):
        ok &= (s >= 0) & (s < shape[d])
    child = labels_t[coords][ok].astype(np.int64)
    prev = labels_prev[tuple(s[ok] for s in shifted)].astype(np.int64)
    hit = prev > 0
    child, prev = child[hit], prev[hit]
    if len(child) == 0:
        return {}
    key = child * (int(prev.max()) + 1) + prev
    uniq, counts = np.unique(key, return_counts=True)
    c, p = uniq // (int(prev.max()) + 1), uniq % (int(prev.max()) + 1)
    order = np.lexsort((-counts, c))  # per child, the largest count first (ties: smaller label)
    c, p = c[order], p[order]
    firsts = np.r_[True, c[1:] != c[:-1]]
    return dict(zip(c[firsts].tolist(), p[firsts].tolist()))


def link_tracks(
    labels: Sequence[np.ndarray] | np.ndarray, predecessors: Sequence[dict[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Track ids from per-frame predecessor maps (``predecessors[t]`` maps labels at t to t-1).

    Returns (relabelled (T, …) uint32, track table (N, 4) int64 [label, start, end, parent])."""
    T = len(labels)
    out = np.zeros((T, *np.shape(labels[0])), np.uint32)
    tracks: dict[int, list[int]] = {}
    prev_track: dict[int, int] = {}
    next_id = 1
    for t in range(T):
        lab = np.asarray(labels[t])
        ids = np.unique(lab)
        ids = ids[ids > 0].tolist()
        succ: dict[int, list[int]] = {}
        if t > 0:
            for c in ids:
                p = predecessors[t].get(c)
                if p is not None and p in prev_track:
                    succ.setdefault(p, []).append(c)
        cur: dict[int, int] = {}
        for p, cs in succ.items():
            if len(cs) == 1:
                cur[cs[0]] = prev_track[p]
                tracks[prev_track[p]][1] = t
            else:
                parent = prev_track[p] if len(cs) == 2 else 0
                for c in cs:
                    cur[c] = next_id
                    tracks[next_id] = [t, t, parent]
                    next_id += 1
        for c in ids:
            if c not in cur:
                cur[c] = next_id
                tracks[next_id] = [t, t, 0]
                next_id += 1
        if ids:
            lut = np.zeros(int(max(ids)) + 1, np.uint32)
            for c, tid in cur.items():
                lut[c] = tid
            out[t] = lut[lab]
        prev_track = cur
    table = np.array([[k, *v] for k, v in sorted(tracks.items())], np.int64).reshape(-1, 4)
    return out, table


def embedtrack_link(
    labels: Sequence[np.ndarray] | np.ndarray,
    track_offsets: Sequence[np.ndarray] | np.ndarray | Callable[[int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Link per-frame instance labels with the tracking offsets (t -> t-1, pixels, (T, D, …)).

    Returns (track-id label images (T, …) uint32, CTC table (N, 4) [label, start, end, parent])."""
    get = track_offsets if callable(track_offsets) else (lambda t: np.asarray(track_offsets[t]))
    preds: list[dict[int, int]] = [{}]
    for t in range(len(labels) - 1, 0, -1):  # backwards in time, as EmbedTrack
        preds.insert(
            1, vote_predecessors(np.asarray(labels[t]), np.asarray(labels[t - 1]), np.asarray(get(t), dtype=np.float32))
        )
    return link_tracks(labels, preds)


def embedtrack_solve(
    zarr_group_path: str, *, min_object_size: int = 10, fg_thresh: float = 0.5, frames: range | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The whole EmbedTrack baseline from ``pred/*``: cluster every frame, then link.

    Frames without a completion marker raise ValueError (predict them first)."""
    g = open_pred(zarr_group_path)
    seediness, offsets, sigma, track = (child_array(g, n) for n in ("seediness", "offsets", "sigma", "track_offsets"))
    T = seediness.shape[0]
    rng = frames if frames is not None else range(T)
    done = np.asarray(child_array(g, "done")[:], bool)
    missing = [t for t in rng if not done[t]]
    if missing:
        raise ValueError(f"{zarr_group_path}/pred has no finished prediction for frames {missing[:10]}")
    labels = [
        cluster_frame(
            np.asarray(seediness[t]),
            np.asarray(offsets[t]),
            np.asarray(sigma[t]),
            fg_thresh=fg_thresh,
            min_object_size=min_object_size,
        )
        for t in rng
    ]
    return embedtrack_link(labels, lambda i: np.asarray(track[rng[i]]))
