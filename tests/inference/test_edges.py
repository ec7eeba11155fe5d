"""Candidate edges: k nearest within a radius, IoU at true positions, optional features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from inference.edges import link_candidates, mask_iou
from inference.regions import candidates_from_labels
from inference.types import Candidates


def two_frames() -> np.ndarray:
    lab = np.zeros((3, 40, 60), np.uint16)
    lab[0, 10:20, 10:20] = 1
    lab[0, 10:20, 40:50] = 2
    lab[1, 10:20, 15:25] = 1  # cell 1 moved 5 px right: IoU 50/150
    lab[1, 10:20, 44:54] = 2
    lab[1, 30:35, 0:5] = 3  # far away
    lab[2, 10:20, 16:26] = 1
    return lab


def test_edges_link_nearest_within_radius_and_forward_only() -> None:
    c = candidates_from_labels(two_frames())
    e = link_candidates(c, max_distance=20.0, k=5)
    pairs = {(int(c.label[a]), int(c.t[a]), int(c.label[b]), int(c.t[b])) for a, b in zip(e.source, e.target)}
    assert (1, 0, 1, 1) in pairs
    assert (2, 0, 2, 1) in pairs
    assert (1, 1, 1, 2) in pairs
    assert not any(lb == 3 for _, _, lb, _ in pairs)  # beyond the radius
    assert np.all(c.t[e.target] - c.t[e.source] == e.dt)
    assert np.all(e.dt == 1)
    assert np.allclose(e.distance, np.linalg.norm(c.centroid[e.target] - c.centroid[e.source], axis=1))
    k1 = link_candidates(c, max_distance=100.0, k=1)
    assert np.all(np.bincount(k1.source, minlength=len(c)) <= 1)


def test_iou_at_true_positions_and_after_shift() -> None:
    c = candidates_from_labels(two_frames())
    e = link_candidates(c, max_distance=20.0, k=5)
    i = np.flatnonzero((c.label[e.source] == 1) & (c.t[e.source] == 0) & (c.label[e.target] == 1))
    assert e.iou[i[0]] == pytest.approx(50 / 150)
    j = np.flatnonzero((c.label[e.source] == 1) & (c.t[e.source] == 0) & (c.label[e.target] == 2))
    assert len(j) == 0 or e.iou[j[0]] == 0.0
    a, b = e.source[i[:1]], e.target[i[:1]]
    assert mask_iou(c.bbox, c.masks, c.area, a, b, offset=np.array([[0.0, 5.0]]))[0] == 1.0


def test_dt_max_adds_gap_edges_and_shift_finds_fast_cells() -> None:
    c = candidates_from_labels(two_frames())
    e = link_candidates(c, max_distance=20.0, k=5, dt_max=2)
    assert set(e.dt.tolist()) == {1, 2}
    # a query shift of 30 px moves cell 1 of frame 0 next to cell 2 of frame 1
    shift = np.zeros_like(c.centroid)
    shift[:, 1] = 30.0
    s = link_candidates(c, max_distance=8.0, k=1, shift=shift)
    got = {(int(c.label[a]), int(c.label[b])) for a, b in zip(s.source, s.target) if c.t[a] == 0}
    assert got == {(1, 2)}


def test_offset_vote_and_embedding_distance() -> None:
    c = candidates_from_labels(two_frames())
    prev = c.centroid.copy()
    prev[c.t == 1] -= [0.0, 5.0]  # every cell votes 5 px to the left
    emb = np.zeros((len(c), 3))
    emb[:, 0] = 1.0
    emb[c.label == 2] = [0.0, 1.0, 0.0]
    c2 = replace(c, prev_centroid=prev, embedding=emb)
    e = link_candidates(c2, max_distance=20.0, k=5)
    assert e.offset_vote is not None
    assert e.embedding_distance is not None
    i = np.flatnonzero((c.label[e.source] == 1) & (c.t[e.source] == 0) & (c.label[e.target] == 1))
    assert e.offset_vote[i[0]] == pytest.approx(0.0)
    assert e.embedding_distance[i[0]] == pytest.approx(0.0)
    cross = np.flatnonzero(c.label[e.source] != c.label[e.target])
    assert np.allclose(e.embedding_distance[cross], 1.0)


def test_bad_arguments() -> None:
    c = candidates_from_labels(two_frames())
    with pytest.raises(ValueError):
        link_candidates(c, max_distance=0.0)
    with pytest.raises(ValueError):
        link_candidates(c, max_distance=5.0, shift=np.zeros((1, 2)))


def _random_candidates(rng: np.random.Generator, shape: tuple[int, ...], n_frames: int, overlap: bool) -> Candidates:
    """Random boxes with random bool masks (cells of a frame share pixels when ``overlap``)."""
    t, bbox, masks = [], [], []
    nd = len(shape)
    for f in range(n_frames):
        taken = np.zeros(shape, bool)
        for _ in range(int(rng.integers(3, 12))):
            lo = np.array([int(rng.integers(0, s - 1)) for s in shape])
            hi = np.minimum(lo + rng.integers(1, 7, nd), shape)
            region = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            m = rng.random(tuple(hi - lo)) < 0.7
            if not overlap:
                m &= ~taken[region]
                taken[region] |= m
            t.append(f)
            bbox.append(np.concatenate([lo, hi]))
            masks.append(m)
    bb = np.array(bbox, np.int64)
    n = len(t)
    return Candidates(
        t=np.array(t, np.int64),
        label=np.arange(1, n + 1),
        centroid=(bb[:, :nd] + bb[:, nd:]) / 2.0,
        area=np.array([m.sum() for m in masks], np.int64),
        bbox=bb,
        masks=masks,
        hier_parent=np.full(n, -1, np.int64),
        threshold=np.full(n, np.nan),
        score=np.full(n, np.nan),
        max_prob=np.full(n, np.nan),
    )


def _iou_on_canvas(
    c: Candidates, a: np.ndarray, b: np.ndarray, shift: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """The IoUs painted on a padded canvas, pair by pair: the reference for mask_iou."""
    nd = len(shape)
    pad = 8
    out = np.zeros(len(a))
    for n, (i, j) in enumerate(zip(a, b)):
        canvas = np.zeros((2,) + tuple(s + 2 * pad for s in shape), bool)
        for layer, cell, d in ((0, i, shift[n]), (1, j, np.zeros(nd, np.int64))):
            lo = c.bbox[cell, :nd] + d + pad
            canvas[(layer,) + tuple(slice(int(x), int(x) + e) for x, e in zip(lo, c.masks[cell].shape))] = c.masks[cell]
        inter = np.count_nonzero(canvas[0] & canvas[1])
        if inter:
            out[n] = inter / (c.area[i] + c.area[j] - inter)
    return out


@pytest.mark.parametrize("shape", [(20, 30), (4, 12, 16)])
@pytest.mark.parametrize("overlap", [False, True])
def test_iou_equals_the_masks_painted_on_a_canvas(shape: tuple[int, ...], overlap: bool) -> None:
    rng = np.random.default_rng(len(shape) + 2 * overlap)
    for _ in range(5):
        c = _random_candidates(rng, shape, 4, overlap)
        e = link_candidates(c, max_distance=40.0, k=6, dt_max=2)
        assert len(e.source)
        zero = np.zeros((len(e.source), len(shape)), np.int64)
        assert np.allclose(e.iou, _iou_on_canvas(c, e.source, e.target, zero, shape), rtol=0, atol=1e-12)
        shift = rng.integers(-3, 4, (len(e.source), len(shape)))
        got = mask_iou(c.bbox, c.masks, c.area, e.source, e.target, offset=shift.astype(float))
        assert np.allclose(got, _iou_on_canvas(c, e.source, e.target, shift, shape), rtol=0, atol=1e-12)
