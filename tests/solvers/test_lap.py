"""Frame-pair LAP with division slots: hand-made optima and a brute-force cross-check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvers.lap import APPEAR, FramePair, assign_frame_pair, frame_pairs, parent_map_cost, solve_lap
from solvers.types import CandidateGraph, Pins, SolveStatus


def make_graph(
    node_t: list[int],
    edges: list[tuple[int, int, float]],
    *,
    appear: float = 5.0,
    disappear: float = 5.0,
    division: float = 1.0,
    parent: np.ndarray | None = None,
) -> CandidateGraph:
    n = len(node_t)
    return CandidateGraph(
        node_t=np.asarray(node_t),
        node_cost=np.zeros(n),
        node_hier_parent=np.full(n, -1) if parent is None else parent,
        edge_source=np.array([e[0] for e in edges], np.int64),
        edge_target=np.array([e[1] for e in edges], np.int64),
        edge_cost=np.array([e[2] for e in edges], np.float64),
        appear_cost=np.full(n, appear),
        disappear_cost=np.full(n, disappear),
        division_cost=np.full(n, division),
    )


def brute_force_pair(graph: CandidateGraph, pair: FramePair) -> list[tuple[float, tuple[int, ...]]]:
    """All valid parent maps of one frame pair with their costs, cheapest first."""
    options = []
    for b in pair.targets:
        into = [int(e) for e in pair.edges if graph.edge_target[e] == b]
        options.append([APPEAR, *into])
    found = []
    for combo in itertools.product(*options):
        parent = np.array(combo, np.int64)
        mothers = graph.edge_source[parent[parent >= 0]]
        if len(mothers) and np.bincount(mothers).max() > 2:
            continue
        found.append((parent_map_cost(graph, pair, parent), combo))
    return sorted(found)


def test_continuation_division_appear_disappear() -> None:
    # frame 0: cells 0, 1, 2; frame 1: cells 3, 4, 5, 6
    # 0 → 3 (cheap), 1 divides into 4 and 5, 2 vanishes (its only link is dear), 6 appears
    g = make_graph(
        [0, 0, 0, 1, 1, 1, 1],
        [(0, 3, 1.0), (0, 4, 6.0), (1, 4, 1.0), (1, 5, 1.5), (2, 6, 20.0)],
        appear=5.0,
        disappear=5.0,
        division=1.0,
    )
    sol = solve_lap(g)
    assert sol.status is SolveStatus.OPTIMAL
    assert sol.edge_selected.tolist() == [True, False, True, True, False]
    assert sol.node_selected.all()
    # edges 1 + 1 + 1.5, division 1, node 2 vanishes 5, node 6 appears 5;
    # first-frame appear (3 × 5) and last-frame disappear (4 × 5) are paid by every solution
    assert sol.objective == pytest.approx(1 + 1 + 1.5 + 1 + 5 + 5 + 15 + 20)


def test_division_loses_when_dear() -> None:
    g = make_graph([0, 1, 1], [(0, 1, 1.0), (0, 2, 1.0)], appear=2.0, division=5.0)
    sol = solve_lap(g)
    assert sol.edge_selected.sum() == 1  # one daughter linked, the other appears (2 < 1 + 5)
    cheap = make_graph([0, 1, 1], [(0, 1, 1.0), (0, 2, 1.0)], appear=2.0, division=0.5)
    assert solve_lap(cheap).edge_selected.all()


def test_matches_brute_force_on_random_pairs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n_a, n_b = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        edges = [(a, n_a + b, float(rng.normal(0, 2))) for a in range(n_a) for b in range(n_b) if rng.random() < 0.7]
        g = make_graph(
            [0] * n_a + [1] * n_b,
            edges,
            appear=rng.uniform(0, 4),
            disappear=rng.uniform(0, 4),
            division=rng.uniform(-1, 3),
        )
        if np.any(g.disappear_cost + g.division_cost < 0):
            continue
        (pair,) = frame_pairs(g)
        assigned = assign_frame_pair(g, pair)
        assert assigned is not None
        parent, cost = assigned
        best = brute_force_pair(g, pair)[0][0]
        assert cost == pytest.approx(best)
        assert parent_map_cost(g, pair, parent) == pytest.approx(best)


def test_three_frames_and_empty_frame() -> None:
    g = make_graph([0, 1, 2, 4], [(0, 1, 1.0), (1, 2, 1.0)], appear=3.0, disappear=3.0)
    sol = solve_lap(g)
    assert sol.edge_selected.all()
    # node 2 vanishes at t=2 and node 3 appears at t=4 (frame 3 is empty); boundary 3 + 3
    assert sol.objective == pytest.approx(1 + 1 + 3 + 3 + 3 + 3)


def test_pins() -> None:
    g = make_graph([0, 1, 1], [(0, 1, 1.0), (0, 2, 2.0)], appear=3.0, division=5.0)
    assert solve_lap(g).edge_selected.tolist() == [True, False]
    forced = solve_lap(g, Pins(must_edges=np.array([1])))
    assert forced.edge_selected.tolist() == [False, True]
    both = solve_lap(g, Pins(must_edges=np.array([0, 1])))
    assert both.edge_selected.tolist() == [True, True]
    none = solve_lap(g, Pins(forbid_edges=np.array([0, 1])))
    assert not none.edge_selected.any()


def test_rejects_graphs_it_cannot_solve() -> None:
    with pytest.raises(ValueError, match="fixed segmentation"):
        solve_lap(make_graph([0, 0, 1], [(0, 2, 1.0)], parent=np.array([-1, 0, -1])))
    with pytest.raises(ValueError, match="dt=2"):
        solve_lap(make_graph([0, 2], [(0, 1, 1.0)]))
    with pytest.raises(ValueError, match="division_cost"):
        solve_lap(make_graph([0, 1], [(0, 1, 1.0)], disappear=0.0, division=-1.0))
