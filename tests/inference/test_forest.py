"""Candidate forest: hand-built maps with known forests, and agreement with brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.forest import build_forest, build_forest_index, paint_pixel_node
from inference.types import Candidates


def _full_mask(c: Candidates, i: int, shape: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape, bool)
    d = len(shape)
    m[tuple(slice(c.bbox[i, k], c.bbox[i, k + d]) for k in range(d))] = c.masks[i]
    return m


def _by_threshold_area(c: Candidates) -> list[tuple[float, int]]:
    return sorted(zip(np.round(c.threshold, 2).tolist(), c.area.tolist()))


def test_two_touching_blobs_split_at_higher_threshold() -> None:
    p = np.array([[0.55, 0.8, 0.9, 0.8, 0.6, 0.8, 0.9, 0.8, 0.55]])
    c = build_forest(p, t=3, min_area=1)
    # 0.55: all 9 px; 0.6: 7 px; 0.8: two blobs of 3; 0.9: two single pixels
    assert _by_threshold_area(c) == [(0.55, 9), (0.6, 7), (0.8, 3), (0.8, 3), (0.9, 1), (0.9, 1)]
    assert np.all(c.t == 3)
    root = int(np.flatnonzero(c.hier_parent < 0)[0])
    assert (c.hier_parent < 0).sum() == 1
    assert c.area[root] == 9
    mid = int(np.flatnonzero(c.hier_parent == root)[0])
    assert c.area[mid] == 7
    blobs = np.flatnonzero(c.hier_parent == mid)
    assert sorted(c.area[blobs].tolist()) == [3, 3]
    # each blob contains exactly one single-pixel peak and its mask lies inside the parent's
    for b in blobs.tolist():
        kids = np.flatnonzero(c.hier_parent == b)
        assert len(kids) == 1
        assert c.area[kids[0]] == 1
        assert not (_full_mask(c, int(kids[0]), p.shape) & ~_full_mask(c, b, p.shape)).any()
    left = blobs[np.argmin(c.centroid[blobs, 1])]
    np.testing.assert_allclose(c.centroid[left], [0.0, 2.0])
    np.testing.assert_array_equal(c.bbox[left], [0, 1, 1, 4])
    np.testing.assert_allclose(c.score[left], (0.8 + 0.9 + 0.8) / 3)
    np.testing.assert_allclose(c.max_prob[left], 0.9)
    # preorder: parents come before children, labels are per-frame ids
    assert np.all(c.hier_parent < np.arange(len(c)))
    assert sorted(c.label.tolist()) == list(range(1, len(c) + 1))


def test_identical_components_over_thresholds_appear_once() -> None:
    p = np.zeros((5, 9))
    p[1:4, 1:4] = 0.6  # blob 1: present at 0.6 only
    p[1:4, 5:8] = 0.8  # blob 2: the same 9 pixels at every threshold 0.5..0.8
    c = build_forest(p, min_area=1)
    assert len(c) == 2
    assert np.all(c.hier_parent == -1)
    assert _by_threshold_area(c) == [(0.6, 9), (0.8, 9)]


def test_min_area_drops_small_components_and_keeps_their_pixels_in_the_parent() -> None:
    p = np.zeros((6, 10))
    p[1:5, 1:5] = 0.7
    p[2, 2] = 0.9  # a one-pixel peak inside the big blob
    p[1, 7:9] = 0.8  # an isolated 2-pixel component
    c = build_forest(p, min_area=3)
    assert len(c) == 1
    assert c.area[0] == 16
    assert c.hier_parent[0] == -1
    np.testing.assert_allclose(c.max_prob[0], 0.9)
    c1 = build_forest(p, min_area=1)
    assert _by_threshold_area(c1) == [(0.7, 16), (0.8, 2), (0.9, 1)]


def test_3d_blobs_split_in_depth() -> None:
    p = np.zeros((5, 4, 4))
    p[0:5, 1:3, 1:3] = 0.6  # a column of 20 voxels
    p[0:2, 1:3, 1:3] = 0.9  # two separate cores at the ends
    p[3:5, 1:3, 1:3] = 0.9
    c = build_forest(p, min_area=1)
    assert c.ndim == 3
    assert c.bbox.shape == (3, 6)
    root = int(np.flatnonzero(c.hier_parent < 0)[0])
    assert c.area[root] == 20
    kids = np.flatnonzero(c.hier_parent == root)
    assert sorted(c.area[kids].tolist()) == [8, 8]
    np.testing.assert_allclose(sorted(c.centroid[kids, 0].tolist()), [0.5, 3.5])
    for k in kids:
        assert c.masks[k].shape == tuple(c.bbox[k, 3:] - c.bbox[k, :3])


def test_forest_equals_brute_force_labelling_of_every_level() -> None:
    rng = np.random.default_rng(7)
    for trial in range(8):
        shape = (4, 6, 7) if trial % 4 == 0 else (int(rng.integers(5, 16)), int(rng.integers(5, 16)))
        p = ndi.gaussian_filter(rng.random(shape), 1.0)
        p = (p - p.min()) / (p.max() - p.min())
        c, index = build_forest_index(p, min_area=2)
        expected = set()
        q = np.rint(p * 100)
        for k in np.unique(q[q >= 50]):
            lab, n = ndi.label(q >= k)
            for i in range(1, n + 1):
                if (lab == i).sum() >= 2:
                    expected.add((lab == i).tobytes())
        got = {_full_mask(c, i, shape).tobytes() for i in range(len(c))}
        assert got == expected
        for i in range(len(c)):
            m = _full_mask(c, i, shape)
            assert m.sum() == c.area[i]
            np.testing.assert_allclose(p[m].mean(), c.score[i])
            # the pixel index agrees with the masks: subtree id range
            inside = (index.pixel_node >= i) & (index.pixel_node < i + index.subtree_size[i])
            np.testing.assert_array_equal(inside, m)


def test_empty_frame_gives_no_candidates() -> None:
    c = build_forest(np.full((8, 8), 0.2))
    assert len(c) == 0
    assert c.centroid.shape == (0, 2)
    assert c.masks == []


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.array([[0.2, np.nan]]), "NaN"),
        (np.array([[0.2, 1.5]]), r"\[0, 1\]"),
        (np.array([[-0.1, 0.5]]), r"\[0, 1\]"),
        (np.zeros(5), "2D"),
        (np.zeros((2, 2, 2, 2)), "2D"),
        (np.zeros((3, 3), np.uint8), "floating"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(bad: np.ndarray, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        build_forest(bad)


def test_pixel_node_can_be_rebuilt_from_the_masks() -> None:
    rng = np.random.default_rng(3)
    p = ndi.gaussian_filter(rng.random((30, 40)), 1.5)
    p = (p - p.min()) / (p.max() - p.min())
    c, index = build_forest_index(p, min_area=3)
    np.testing.assert_array_equal(paint_pixel_node(c, p.shape), index.pixel_node)
