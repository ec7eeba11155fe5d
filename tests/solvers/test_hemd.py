"""H-EMD selection on hand-built forests whose right answer is known (split, merge, rules)."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.emd import emd_matching, hemd_matching
from solvers.hemd import HemdFrame, select_hemd

SHAPE = (10, 20)


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[y0:y1, x0:x1] = True
    return m


A = _box(2, 8, 2, 9)  # 42 px
B = _box(2, 8, 10, 17)  # 42 px
MERGED = _box(2, 8, 2, 17)  # 90 px: A, B and the column between them
A_CORE = _box(3, 8, 2, 9)  # 35 px, A seen at a higher threshold
B_CORE = _box(3, 8, 10, 17)


def _frame(masks: list[np.ndarray], parents: list[int]) -> HemdFrame:
    """Forest from full-size masks; parents must precede children (painted in order)."""
    pixel_node = np.full(SHAPE, -1, np.int64)
    bbox = []
    for i, m in enumerate(masks):
        pixel_node[m] = i
        ys, xs = np.nonzero(m)
        bbox.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
    return HemdFrame(
        hier_parent=np.array(parents),
        area=np.array([m.sum() for m in masks]),
        bbox=np.array(bbox),
        pixel_node=pixel_node,
    )


def _two_cells() -> HemdFrame:
    return _frame([A, B], [-1, -1])


def _one_cell() -> HemdFrame:
    return _frame([MERGED], [-1])


def _ambiguous() -> HemdFrame:
    """Root = the merged region; children = the two cells' cores."""
    return _frame([MERGED, A_CORE, B_CORE], [-1, 0, 0])


def test_split_is_chosen_when_the_neighbours_show_two_cells() -> None:
    res = select_hemd([_two_cells(), _ambiguous(), _two_cells()])
    np.testing.assert_array_equal(res.selected[1], [False, True, True])
    np.testing.assert_array_equal(res.phase[1], [0, 2, 2])  # both selected by matching
    assert res.selected[0].all()
    assert res.selected[2].all()
    assert res.info["n_mip"] >= 1  # two instances competing for one tree go to the MIP


def test_merge_is_chosen_when_the_neighbours_show_one_cell() -> None:
    res = select_hemd([_one_cell(), _ambiguous(), _one_cell()])
    np.testing.assert_array_equal(res.selected[1], [True, False, False])
    assert res.phase[1][0] == 2


def test_left_right_competing_rule_keeps_the_larger_summed_score() -> None:
    # left offers A -> A_CORE (IoU 35/42); right offers MERGED -> MERGED (IoU 1): right wins
    left_one = _frame([A], [-1])
    res = select_hemd([left_one, _ambiguous(), _one_cell()])
    np.testing.assert_array_equal(res.selected[1], [True, False, False])
    # left offers two cores (2 x 35/42 > 1): left wins
    res = select_hemd([_two_cells(), _ambiguous(), _one_cell()])
    np.testing.assert_array_equal(res.selected[1], [False, True, True])
    # the same with the sides swapped: the larger side wins again
    res = select_hemd([_one_cell(), _ambiguous(), _two_cells()])
    np.testing.assert_array_equal(res.selected[1], [False, True, True])


def test_size_change_limit_forbids_matching_a_half_to_the_whole() -> None:
    # a single cell A next to the ambiguous tree: MERGED is too large (|90-42|/42 > 0.35),
    # A_CORE is allowed; B_CORE stays unselected and is padded as the root of what remains
    res = select_hemd([_frame([A], [-1]), _ambiguous()])
    np.testing.assert_array_equal(res.selected[1], [False, True, True])
    np.testing.assert_array_equal(res.phase[1], [0, 2, 3])


def test_padding_selects_roots_when_nothing_can_be_matched() -> None:
    res = select_hemd([_ambiguous()])
    np.testing.assert_array_equal(res.selected[0], [True, False, False])
    np.testing.assert_array_equal(res.phase[0], [3, 0, 0])
    res = select_hemd([_two_cells()])
    np.testing.assert_array_equal(res.phase[0], [1, 1])  # single-path trees: initial state


def test_input_order_does_not_matter() -> None:
    # children listed before their parent: the solver renumbers internally
    pixel_node = np.full(SHAPE, -1, np.int64)
    pixel_node[MERGED] = 2
    pixel_node[A_CORE] = 0
    pixel_node[B_CORE] = 1
    f = HemdFrame(
        hier_parent=np.array([2, 2, -1]),
        area=np.array([35, 35, 90]),
        bbox=np.array([[3, 2, 8, 9], [3, 10, 8, 17], [2, 2, 8, 17]]),
        pixel_node=pixel_node,
    )
    res = select_hemd([_two_cells(), f, _two_cells()])
    np.testing.assert_array_equal(res.selected[1], [True, True, False])


def test_emd_matching_is_an_optimal_assignment() -> None:
    # (0,0)=0.9 alone loses to (0,1)+(1,0)=1.3
    chosen = emd_matching(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.5, 0.8]))
    np.testing.assert_array_equal(chosen, [1, 2])


def test_hemd_matching_allows_one_flow_per_path() -> None:
    # node 0 is the parent of node 1: one path; instances 7 and 8 both want it
    rows = lambda nodes: [np.array([n for n in (1, 0) if n in set(nodes.tolist())])]  # noqa: E731
    chosen, n_mip = hemd_matching(np.array([7, 8]), np.array([0, 1]), np.array([0.6, 0.7]), np.array([0, 0]), rows)
    np.testing.assert_array_equal(chosen, [1])
    assert n_mip == 1


def test_selection_is_an_antichain_on_a_synthetic_movie() -> None:
    from inference.forest import build_forest_index
    from inference.synthetic import disk_movie, movie_prob_from_labels

    labels = disk_movie(n_frames=4, shape=(48, 48), seed=3)
    probs = movie_prob_from_labels(labels, seed=5)
    frames, forests = [], []
    for t, p in enumerate(probs):
        c, index = build_forest_index(p, t=t)
        forests.append(c)
        frames.append(HemdFrame(c.hier_parent, c.area, c.bbox, index.pixel_node))
    res = select_hemd(frames)
    for c, sel in zip(forests, res.selected):
        cover = np.zeros(labels.shape[1:], int)
        for i in np.flatnonzero(sel):
            y0, x0, y1, x1 = c.bbox[i]
            cover[y0:y1, x0:x1] += c.masks[i]
        assert cover.max() <= 1  # selected regions never overlap
        assert sel.sum() >= 1


def test_an_empty_frame_breaks_nothing() -> None:
    empty = HemdFrame(
        hier_parent=np.zeros(0, np.int64),
        area=np.zeros(0, np.int64),
        bbox=np.zeros((0, 2 * len(SHAPE)), np.int64),
        pixel_node=np.full(SHAPE, -1),
    )
    res = select_hemd([_two_cells(), empty, _ambiguous()])
    assert res.selected[1].shape == (0,)
    np.testing.assert_array_equal(res.selected[2], [True, False, False])  # padded root


def test_bad_frames_are_rejected() -> None:
    with pytest.raises(ValueError, match="hier_parent"):
        HemdFrame(np.array([5]), np.array([3]), np.zeros((1, 4)), np.zeros(SHAPE, int))
    with pytest.raises(ValueError, match="bbox"):
        HemdFrame(np.array([-1]), np.array([3]), np.zeros((1, 3)), np.zeros(SHAPE, int))
    with pytest.raises(ValueError, match="share one image shape"):
        other = HemdFrame(np.array([-1]), np.array([1]), np.array([[0, 0, 1, 1]]), np.zeros((3, 3), int))
        select_hemd([_two_cells(), other])


def test_3d_split_is_chosen_like_in_2d() -> None:
    def lift(f: HemdFrame) -> HemdFrame:  # the same forest on a 2-slice volume
        bbox = np.concatenate(
            [np.zeros((len(f.area), 1), int), f.bbox[:, :2], np.full((len(f.area), 1), 2), f.bbox[:, 2:]], axis=1
        )
        return HemdFrame(f.hier_parent, 2 * f.area, bbox, np.stack([f.pixel_node] * 2))

    res = select_hemd([lift(_two_cells()), lift(_ambiguous()), lift(_two_cells())])
    np.testing.assert_array_equal(res.selected[1], [False, True, True])
