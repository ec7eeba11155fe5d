"""Merge hypotheses: touching clusters offered as one competing candidate."""

from __future__ import annotations

import numpy as np

from inference.candidates_from_pred import (
    candidates_from_labels,
    candidates_from_prediction,
    with_merges,
)
from inference.merges import merge_pairs, touching_pairs, vote_ratio


def three_cells() -> np.ndarray:
    """Labels 1 and 2: two halves of a rod (touching along 6 px); 3: a separate cell; 4 touches 3
    along one pixel only."""
    lab = np.zeros((20, 30), np.int64)
    lab[2:8, 2:10] = 1
    lab[2:8, 10:18] = 2
    lab[12:18, 2:10] = 3
    lab[17:19, 10:14] = 4
    return lab


def test_touching_pairs_counts_contact_along_faces() -> None:
    pairs, contact = touching_pairs(three_cells())
    got = {tuple(p): int(c) for p, c in zip(pairs.tolist(), contact)}
    assert got == {(1, 2): 6, (3, 4): 1}


def test_merge_pairs_needs_contact_and_a_cell_sized_union() -> None:
    lab = three_cells()
    # (3, 4) touch on 1 px < min_contact
    assert merge_pairs(lab, gap=0).tolist() == [[1, 2]]
    # a union larger than max_area_factor × the frame's quantile cluster area is not offered
    assert merge_pairs(lab, gap=0, max_area_factor=1.5).tolist() == []  # 96 px > 1.5 × 48


def test_a_thin_seam_between_clusters_is_bridged() -> None:
    lab = np.zeros((10, 24), np.int64)
    lab[2:8, 2:10] = 1
    lab[2:8, 11:19] = 2  # one unlabelled column between the halves
    assert merge_pairs(lab, gap=0).tolist() == []
    assert merge_pairs(lab, gap=2).tolist() == [[1, 2]]
    base = candidates_from_labels(0, lab, np.ones(lab.shape))
    c = with_merges(base, lab, np.array([[1, 2]]), np.ones(lab.shape), gap=2)
    merged = c.masks[2]
    assert merged.shape == (6, 17)  # the seam column is part of the merged cell
    assert merged[:, 8].all()
    assert c.area[2] == 96 + 6


def test_every_label_joins_at_most_one_pair() -> None:
    # a row of four touching halves: 1-2, 2-3, 3-4 touch; the tree allows two disjoint pairs
    lab = np.zeros((6, 40), np.int64)
    for i in range(4):
        lab[1:5, 2 + 8 * i : 10 + 8 * i] = i + 1
    pairs = merge_pairs(lab, gap=0)
    flat = pairs.ravel().tolist()
    assert len(flat) == len(set(flat))
    assert len(pairs) == 2


def test_with_merges_adds_the_union_as_parent() -> None:
    lab = three_cells()
    seed = np.where(lab > 0, 0.8, 0.0)
    seed[lab == 2] = 0.6
    track = np.ones((2, *lab.shape))  # every pixel votes one pixel down-right
    emb = np.zeros((3, *lab.shape))
    emb[0][lab == 1] = 1.0
    emb[1][lab == 2] = 1.0
    emb[2][lab >= 3] = 1.0
    base = candidates_from_labels(5, lab, seed, track, emb)
    c = with_merges(base, lab, np.array([[1, 2]]), seed, track, emb, gap=0)
    assert len(c) == len(base) + 1
    parent = len(base)
    assert c.hier_parent.tolist() == [parent, parent, -1, -1, -1]
    assert c.t.tolist() == [5] * 5
    assert c.label[parent] > lab.max()
    assert c.area[parent] == 96
    np.testing.assert_allclose(c.centroid[parent], [4.5, 9.5])
    np.testing.assert_allclose(c.score[parent], 0.7)
    assert c.masks[parent].shape == (6, 16)
    assert c.masks[parent].all()
    np.testing.assert_array_equal(c.bbox[parent], [2, 2, 8, 18])
    assert c.prev_centroid is not None
    assert c.embedding is not None
    np.testing.assert_allclose(c.prev_centroid[parent], [5.5, 10.5])
    np.testing.assert_allclose(c.embedding[parent], np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0]), atol=1e-6)


def test_with_merges_without_pairs_is_identity() -> None:
    lab = three_cells()
    base = candidates_from_labels(0, lab, np.ones(lab.shape))
    assert with_merges(base, lab, np.zeros((0, 2), np.int64), np.ones(lab.shape)) is base


def rods_prediction() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seediness, offsets, sigma for two touching rods: rod A (rows 5–14) is over-split, its left
    and right halves voting 3 px either side of its centre (two vote peaks, one cell); rod B
    (rows 15–24) votes for its own centre."""
    shape = (30, 50)
    yy, xx = np.indices(shape, dtype=np.float32)
    seed = np.zeros(shape, np.float32)
    off = np.zeros((2, *shape), np.float32)
    a = (yy >= 5) & (yy < 15) & (xx >= 5) & (xx < 45)
    b = (yy >= 15) & (yy < 25) & (xx >= 5) & (xx < 45)
    seed[a | b] = 0.9
    for m, (cy, cx) in ((a & (xx < 25), (9.5, 22.0)), (a & (xx >= 25), (9.5, 28.0)), (b, (19.5, 25.0))):
        off[0][m], off[1][m] = cy - yy[m], cx - xx[m]
    sig = np.full((2, *shape), 1.5, np.float32)
    return seed, off, sig, np.zeros((2, *shape), np.float32)


def test_vote_ratio_tells_an_over_split_cell_from_two_cells() -> None:
    seed, off, _sig, _ = rods_prediction()
    lab = np.zeros(seed.shape, np.int64)
    lab[5:15, 5:25], lab[5:15, 25:45], lab[15:25, 5:45] = 1, 2, 3
    np.testing.assert_allclose(vote_ratio(lab, off, np.array([[1, 2]])), [6.0 / 20.0], rtol=1e-5)
    # the halves pair first (most convergent), so neither joins rod B
    assert merge_pairs(lab, off).tolist() == [[1, 2]]
    whole = np.where(lab == 2, 1, lab)  # rod A as one cluster: two cells, votes 10 px apart
    np.testing.assert_allclose(vote_ratio(whole, off, np.array([[1, 3]])), [1.0], rtol=1e-5)
    assert merge_pairs(whole, off).tolist() == []


def test_prediction_candidates_offer_the_over_split_cell_whole() -> None:
    seed, off, sig, trk = rods_prediction()
    plain, _labels = candidates_from_prediction(0, seed, off, sig, trk, min_object_size=5)
    assert len(plain) == 3
    assert np.all(plain.hier_parent == -1)
    cands, _ = candidates_from_prediction(0, seed, off, sig, trk, min_object_size=5, merges=True)
    assert len(cands) == 4
    parent = int(np.flatnonzero(cands.hier_parent == -1)[-1])
    assert parent == 3
    assert np.sum(cands.hier_parent == parent) == 2
    assert cands.area[parent] == 400  # rod A, halves and seam
    np.testing.assert_allclose(cands.centroid[parent], [9.5, 24.5])
