"""Clustering, EmbedTrack linking and candidate features on hand-made predictions."""

from __future__ import annotations

import numpy as np

from inference.candidates_from_pred import (
    attach_prediction_features,
    candidates_from_labels,
    candidates_from_prediction,
)
from inference.cluster import cluster_frame
from inference.embedtrack_link import embedtrack_link, vote_predecessors


def perfect_prediction(
    inst: np.ndarray, prev_centres: dict[int, tuple[float, float]] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seediness, offsets, sigma and track offsets that a perfect network would output."""
    grid = np.indices(inst.shape, dtype=np.float32)
    yy, xx = grid[0], grid[1]
    seed = (inst > 0).astype(np.float32)
    off = np.zeros((2, *inst.shape), np.float32)
    trk = np.zeros((2, *inst.shape), np.float32)
    for k in np.unique(inst)[1:]:
        m = inst == k
        cy, cx = yy[m].mean(), xx[m].mean()
        off[0, m], off[1, m] = cy - yy[m], cx - xx[m]
        if prev_centres and k in prev_centres:
            py, px = prev_centres[k]
            trk[0, m], trk[1, m] = py - yy[m], px - xx[m]
    sig = np.full((2, *inst.shape), 3.0, np.float32)
    return seed, off, sig, trk


def two_touching(shift: int = 0) -> np.ndarray:
    inst = np.zeros((40, 60), np.int32)
    inst[10:30, 10 + shift : 25 + shift] = 1
    inst[10:30, 25 + shift : 40 + shift] = 2
    return inst


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


def test_cluster_separates_touching_objects() -> None:
    inst = two_touching()
    seed, off, sig, _ = perfect_prediction(inst)
    labels = cluster_frame(seed, off, sig, min_object_size=10)
    assert labels.max() == 2
    assert _same_partition(labels, inst)
    assert cluster_frame(np.zeros_like(seed), off, sig).max() == 0


def test_cluster_min_object_size() -> None:
    inst = two_touching()
    seed, off, sig, _ = perfect_prediction(inst)
    assert cluster_frame(seed, off, sig, min_object_size=400).max() == 0


def test_embedtrack_link_division_and_continuation() -> None:
    mother = np.zeros((40, 60), np.int32)
    mother[10:30, 10:40] = 5
    d1 = two_touching()
    d2 = two_touching(shift=2)
    mc = (19.5, 24.5)
    _, _, _, trk1 = perfect_prediction(d1, {1: mc, 2: mc})  # daughters vote for the mother
    _, _, _, trk2 = perfect_prediction(d2, {1: (19.5, 17.0), 2: (19.5, 32.0)})
    assert vote_predecessors(d1, mother, trk1) == {1: 5, 2: 5}
    labels, table = embedtrack_link([mother, d1, d2], [np.zeros_like(trk1), trk1, trk2])
    assert table.tolist() == [[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]
    assert set(np.unique(labels[2])) == {0, 2, 3}
    assert np.array_equal(labels[1] > 0, d1 > 0)


def test_candidate_features() -> None:
    inst = two_touching()
    seed, off, sig, trk = perfect_prediction(inst, {1: (5.0, 7.0), 2: (21.0, 31.0)})
    emb = np.zeros((3, *inst.shape), np.float32)
    emb[0][inst == 1] = 2.0
    emb[1][inst == 2] = 5.0
    emb[2] = 0.1
    cands, labels = candidates_from_prediction(3, seed, off, sig, trk, emb)
    assert len(cands) == 2
    assert set(cands.t.tolist()) == {3}
    order = np.argsort(cands.centroid[:, 1])
    assert cands.prev_centroid is not None
    assert cands.embedding is not None
    np.testing.assert_allclose(cands.prev_centroid[order], [[5.0, 7.0], [21.0, 31.0]], atol=1e-4)
    assert np.all(cands.area == 300)
    assert np.all(cands.hier_parent == -1)
    np.testing.assert_allclose(np.linalg.norm(cands.embedding, axis=1), 1.0, rtol=1e-5)
    assert cands.embedding[order[0]][0] > 0.99
    assert cands.embedding[order[1]][1] > 0.99
    again = attach_prediction_features(candidates_from_labels(3, labels, seed), trk, emb, t=3)
    assert again.prev_centroid is not None
    assert again.embedding is not None
    np.testing.assert_allclose(again.prev_centroid, cands.prev_centroid, atol=1e-4)
    np.testing.assert_allclose(again.embedding, cands.embedding, atol=1e-5)
    y0, x0, y1, x1 = cands.bbox[order[0]]
    assert (y0, x0, y1, x1) == (10, 10, 30, 25)
    assert cands.masks[order[0]].all()
