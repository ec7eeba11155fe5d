"""Track confidence on a hand-built lineage with known probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.confidence import track_confidence
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph

# 0 (t0) divides into 1, 2 (t1), which continue to 3, 4 (t2); 5 appears at t1 and continues to 6;
# 7 is a candidate left unselected, with links 0 -> 7 and 7 -> 6 that the solution does not take.
NODE_T = np.array([0, 1, 1, 2, 2, 1, 2, 1])
EDGES = np.array([[0, 1], [0, 2], [1, 3], [2, 4], [5, 6], [0, 7], [7, 6]])
NODE_SEL = np.array([True] * 7 + [False])
EDGE_SEL = np.array([True] * 5 + [False, False])


def lineage() -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
    n, e = len(NODE_T), len(EDGES)
    graph = CandidateGraph(
        node_t=NODE_T,
        node_cost=np.zeros(n),
        node_hier_parent=np.full(n, -1),
        edge_source=EDGES[:, 0],
        edge_target=EDGES[:, 1],
        edge_cost=np.zeros(e),
        appear_cost=np.zeros(n),
        disappear_cost=np.zeros(n),
        division_cost=np.zeros(n),
    )
    track_of, tracks = tracks_from_solution(NODE_T, EDGES[:, 0], EDGES[:, 1], NODE_SEL, EDGE_SEL)
    return graph, track_of, tracks


def test_min_and_product_over_each_tracks_options() -> None:
    graph, track_of, tracks = lineage()
    assert tracks.tolist() == [[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1], [4, 1, 2, 0]]
    edge_p = np.array([0.9, 0.8, 0.95, 0.5, 0.7, 0.1, 0.05])
    appear_p = np.array([1.0, 0.2, 0.2, 0.2, 0.2, 0.6, 0.2, 0.3])
    conf = track_confidence(graph, track_of, tracks, EDGE_SEL, edge_p, appear_p)
    assert conf.shape == (4, 2)
    # track 1: node 0 appears (1.0); 2: links 0->1, 1->3; 3: links 0->2, 2->4; 4: 5 appears, 5->6
    np.testing.assert_allclose(conf[:, 0], [1.0, 0.9, 0.5, 0.6])
    np.testing.assert_allclose(conf[:, 1], [1.0, 0.9 * 0.95, 0.8 * 0.5, 0.6 * 0.7])


def test_probabilities_are_clipped_and_a_zero_gives_zero() -> None:
    graph, track_of, tracks = lineage()
    edge_p = np.array([1.2, 0.8, 1.0, -0.1, 0.7, 0.1, 0.05])
    appear_p = np.array([1.0, 0.2, 0.2, 0.2, 0.2, 0.0, 0.2, 0.3])
    conf = track_confidence(graph, track_of, tracks, EDGE_SEL, edge_p, appear_p)
    np.testing.assert_allclose(conf[:, 0], [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(conf[:, 1], [1.0, 1.0, 0.0, 0.0])


def test_unselected_links_do_not_count() -> None:
    graph, track_of, tracks = lineage()
    base = np.array([0.9, 0.8, 0.95, 0.5, 0.7, 0.1, 0.05])
    appear_p = np.full(len(NODE_T), 1.0)
    other = base.copy()
    other[5:] = 0.0  # the links the solution did not take
    a = track_confidence(graph, track_of, tracks, EDGE_SEL, base, appear_p)
    b = track_confidence(graph, track_of, tracks, EDGE_SEL, other, appear_p)
    assert a.tobytes() == b.tobytes()
    assert a[3, 1] == pytest.approx(0.7)
