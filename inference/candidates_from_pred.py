"""Candidate cells and per-node features from one frame's predictions.

* clusters of :func:`inference.cluster.cluster_frame` become candidates (forest roots; the
  seediness forest of ``inference/forest.py`` adds the competing ones),
* ``embedding``: mean-mask embedding — each pixel's decoder feature vector is L2-normalised, the
  vectors are averaged over the mask and the mean is L2-normalised again (Trackastra-et-Ultra's
  ``mean_patches_exact`` with normalised embeddings, methods.md C6; per-pixel here, no patch grid),
* ``prev_centroid``: the mean over the mask of p + track_offset(p), i.e. where the cell's pixels
  say its centre was at t-1 (EmbedTrack's tracking offsets, Löffler & Mikut 2022 sec. 2.2).

Everything is vectorised with ``np.bincount`` over the label image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import ndimage

from inference.cluster import cluster_frame
from inference.merges import concat, merge_pairs, pair_mask
from inference.pred_store import child_array, open_pred
from inference.types import Candidates


def label_features(
    labels: np.ndarray, ids: np.ndarray, track_offsets: np.ndarray | None, embedding: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(embedding (N, C) float32, prev_centroid (N, D) float64) for ``ids`` of a label image."""
    lab = labels.ravel().astype(np.int64)
    n = int(max(int(lab.max()), int(ids.max()) if len(ids) else 0)) + 1
    counts = np.bincount(lab, minlength=n).astype(np.float64)
    denom = np.maximum(counts[ids], 1.0)
    prev = None
    if track_offsets is not None:
        coords = np.indices(labels.shape, dtype=np.float64).reshape(labels.ndim, -1)
        tov = np.asarray(track_offsets, dtype=np.float64).reshape(labels.ndim, -1)
        prev = np.stack(
            [np.bincount(lab, coords[d] + tov[d], minlength=n)[ids] / denom for d in range(labels.ndim)], axis=1
        )
    emb = None
    if embedding is not None:
        f = np.asarray(embedding, dtype=np.float32).reshape(embedding.shape[0], -1)
        f = f / np.maximum(np.linalg.norm(f, axis=0, keepdims=True), 1e-8)
        m = np.stack([np.bincount(lab, f[c], minlength=n)[ids] for c in range(f.shape[0])], axis=1)
        emb = (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-8)).astype(np.float32)
    return emb, prev


def candidates_from_labels(
    t: int,
    labels: np.ndarray,
    seediness: np.ndarray,
    track_offsets: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
) -> Candidates:
    """Candidates (all roots) for the objects of a label image of frame ``t``."""
    D = labels.ndim
    ids = np.unique(labels)
    ids = ids[ids > 0].astype(np.int64)
    N = len(ids)
    slices = ndimage.find_objects(labels.astype(np.int64)) if N else []
    bbox = np.zeros((N, 2 * D), np.int64)
    masks = []
    for i, k in enumerate(ids):
        sl = slices[k - 1]
        bbox[i] = [s.start for s in sl] + [s.stop for s in sl]
        masks.append(labels[sl] == k)
    lab = labels.ravel().astype(np.int64)
    n = int(lab.max()) + 1 if lab.size else 1
    area = np.bincount(lab, minlength=n)[ids].astype(np.int64)
    cent = (
        np.stack(ndimage.center_of_mass(np.ones_like(labels), labels, ids), axis=0).reshape(N, D)
        if N
        else np.zeros((0, D))
    )
    q = np.asarray(seediness, dtype=np.float64).ravel()
    score = np.bincount(lab, q, minlength=n)[ids] / np.maximum(area, 1)
    max_prob = np.asarray(ndimage.maximum(seediness, labels, ids), dtype=np.float64).reshape(N) if N else np.zeros(0)
    emb, prev = (
        label_features(labels, ids, track_offsets, embedding)
        if N
        else (
            None if embedding is None else np.zeros((0, embedding.shape[0]), np.float32),
            None if track_offsets is None else np.zeros((0, D)),
        )
    )
    return Candidates(
        t=np.full(N, t, np.int64),
        label=ids,
        centroid=cent.astype(np.float64),
        area=area,
        bbox=bbox,
        masks=masks,
        hier_parent=np.full(N, -1, np.int64),
        threshold=np.ones(N),
        score=score,
        max_prob=max_prob,
        embedding=emb,
        prev_centroid=prev,
    )


def with_merges(
    cands: Candidates,
    labels: np.ndarray,
    pairs: np.ndarray,
    seediness: np.ndarray,
    track_offsets: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    gap: float = 2.0,
) -> Candidates:
    """``cands`` (all roots, one per label of ``labels``, one frame) plus one parent per pair.

    The merged candidates (the pair and its seam, :func:`pair_mask`) get the features of their
    union (centroid, area, mean seediness, embedding, voted previous centre) and labels above
    the frame's largest.
    """
    if len(pairs) == 0:
        return cands
    if np.any(cands.hier_parent >= 0):
        raise ValueError("with_merges expects single-level candidates (all roots)")
    t = int(cands.t[0])
    top = int(labels.max())
    union = np.zeros(labels.shape, np.int64)
    lab = np.asarray(labels, np.int64)
    for i, (a, b) in enumerate(pairs):
        union[pair_mask(lab, int(a), int(b), gap)] = top + 1 + i
    merged = candidates_from_labels(t, union, seediness, track_offsets, embedding)
    n = len(cands)
    parent = np.full(n, -1, np.int64)
    pos = {int(k): i for i, k in enumerate(cands.label)}
    for i, (a, b) in enumerate(pairs):
        parent[pos[int(a)]] = parent[pos[int(b)]] = n + i
    return concat(dataclasses.replace(cands, hier_parent=parent), merged)


def candidates_from_prediction(
    t: int,
    seediness: np.ndarray,
    offsets: np.ndarray,
    sigma: np.ndarray,
    track_offsets: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    *,
    min_object_size: int = 10,
    fg_thresh: float = 0.5,
    merges: bool = False,
) -> tuple[Candidates, np.ndarray]:
    """Cluster one frame's predictions; return its candidates and the cluster label image.

    ``merges`` adds the union of touching cluster pairs as competing parents
    (:mod:`inference.merges`), so that the solver can undo an over-split.
    """
    labels = cluster_frame(seediness, offsets, sigma, fg_thresh=fg_thresh, min_object_size=min_object_size)
    cands = candidates_from_labels(t, labels, seediness, track_offsets, embedding)
    if merges and len(cands):
        cands = with_merges(cands, labels, merge_pairs(labels, offsets), seediness, track_offsets, embedding)
    return cands, labels


def attach_prediction_features(
    cands: Candidates, track_offsets: np.ndarray | None, embedding: np.ndarray | None, t: int | None = None
) -> Candidates:
    """Fill ``embedding`` / ``prev_centroid`` of existing candidates (e.g. the seediness forest)
    from the predictions of their frame (all candidates of ``cands`` with ``cands.t == t``; others
    keep NaN / zero rows). Masks may overlap (forest nodes), so each node is handled by its bbox."""
    N, D = len(cands), cands.ndim
    emb = None if embedding is None else np.zeros((N, embedding.shape[0]), np.float32)
    prev = None if track_offsets is None else np.full((N, D), np.nan)
    for i in range(N):
        if t is not None and int(cands.t[i]) != t:
            continue
        sl = tuple(slice(int(a), int(b)) for a, b in zip(cands.bbox[i, :D], cands.bbox[i, D:]))
        m = cands.masks[i]
        coords = np.nonzero(m)
        if prev is not None and track_offsets is not None:
            to = track_offsets[(slice(None), *sl)]
            prev[i] = [(coords[d] + sl[d].start + to[d][coords]).mean() for d in range(D)]
        if emb is not None and embedding is not None:
            pixels: tuple[Any, ...] = (slice(None), *coords)
            f = np.asarray(embedding[(slice(None), *sl)], np.float32)[pixels]
            f = f / np.maximum(np.linalg.norm(f, axis=0, keepdims=True), 1e-8)
            v = f.mean(axis=1)
            emb[i] = v / max(float(np.linalg.norm(v)), 1e-8)
    if cands.embedding is not None and emb is not None and t is not None:
        keep = cands.t != t
        emb[keep] = cands.embedding[keep]
    if cands.prev_centroid is not None and prev is not None and t is not None:
        keep = cands.t != t
        prev[keep] = cands.prev_centroid[keep]
    return dataclasses.replace(cands, embedding=emb, prev_centroid=prev)


def candidates_from_zarr(
    zarr_group_path: str, t: int, *, min_object_size: int = 10, fg_thresh: float = 0.5, merges: bool = False
) -> tuple[Candidates, np.ndarray]:
    """:func:`candidates_from_prediction` for frame ``t`` of a store written by ``predict_movie``."""
    g = open_pred(zarr_group_path)
    if not bool(np.asarray(child_array(g, "done")[t])):
        raise ValueError(f"{zarr_group_path}/pred has no finished prediction for frame {t}")
    emb = np.asarray(child_array(g, "embedding")[t]) if "embedding" in g else None
    seediness, offsets, sigma, track = (
        np.asarray(child_array(g, n)[t]) for n in ("seediness", "offsets", "sigma", "track_offsets")
    )
    return candidates_from_prediction(
        t,
        seediness,
        offsets,
        sigma,
        track,
        emb,
        min_object_size=min_object_size,
        fg_thresh=fg_thresh,
        merges=merges,
    )
