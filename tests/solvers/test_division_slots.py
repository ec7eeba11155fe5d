"""Division pairs in the frame-pair LAP (solvers.costs.division_slots): a division costs its
pair's total, a continuation its own cost, and no target outside every pair is a daughter."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solvers.costs import division_slots, fold_pairs
from solvers.joint import solve_joint
from solvers.lap import assign_frame_pair, frame_pairs, parent_map_cost, solve_lap
from solvers.types import CandidateGraph

from .test_lap import brute_force_pair, make_graph


def with_pairs(graph: CandidateGraph, pairs: list[tuple[int, int, float]]) -> CandidateGraph:
    """``graph`` with division pairs (edge, edge, extra cost), no per-node division cost, and
    every node worth selecting (the joint program may leave nodes out, the LAP may not)."""
    return replace(
        graph,
        node_cost=np.full(graph.n_nodes, -100.0),
        division_cost=np.zeros(graph.n_nodes),
        division_pairs=np.array([p[:2] for p in pairs], np.int64),
        division_pair_cost=np.array([p[2] for p in pairs], np.float64),
    )


def test_a_continuation_beside_a_cheap_half_division_stays_a_continuation() -> None:
    # mother 0 continues to 1 (cost 2); 2 (its edge 10) is the pair's other daughter, the pair
    # totalling 2 + 10 + 4 = 16; 2 appearing costs 9, so the best is 0 → 1 and 2 appears (11)
    g = with_pairs(make_graph([0, 1, 1], [(0, 1, 2.0), (0, 2, 10.0)], appear=9.0, disappear=5.0), [(0, 1, 4.0)])
    best = solve_joint(g, gap=0.0)
    assert best.edge_selected.tolist() == [True, False]
    # the folded halves priced the division 2 + 16/2 = 10 < 11: a false division
    assert solve_lap(fold_pairs(g)).edge_selected.tolist() == [True, True]
    lap = solve_lap(division_slots(g))
    assert lap.edge_selected.tolist() == [True, False]
    assert lap.objective == pytest.approx(best.objective)


def test_a_true_division_is_found_at_its_pairs_cost() -> None:
    # daughters whose continuations are dear (half the mother's area) but whose pair is cheap
    g = with_pairs(make_graph([0, 1, 1], [(0, 1, 30.0), (0, 2, 30.0)], appear=9.0), [(0, 1, -48.0)])
    lap = solve_lap(division_slots(g))
    assert lap.edge_selected.all()
    assert lap.objective == pytest.approx(solve_joint(g, gap=0.0).objective)


def test_only_listed_pairs_divide() -> None:
    # three cheap out-edges, one pair (edges 0, 1): a division into 1 and 3 is not an option
    g = with_pairs(make_graph([0, 1, 1, 1], [(0, 1, 1.0), (0, 2, 1.0), (0, 3, 1.0)], appear=20.0), [(0, 1, 0.5)])
    slots = division_slots(g)
    assert slots.edge_division_cost is not None
    assert np.isinf(slots.edge_division_cost[2])
    sol = solve_lap(slots)
    assert sol.edge_selected.tolist() == [True, True, False]


def test_the_assignment_is_the_brute_force_optimum_of_slotted_graphs() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(40):
        n_a, n_b = int(rng.integers(1, 4)), int(rng.integers(2, 5))
        edges = [(a, n_a + b, float(rng.normal(3, 3))) for a in range(n_a) for b in range(n_b) if rng.random() < 0.7]
        g = make_graph([0] * n_a + [1] * n_b, edges, appear=rng.uniform(1, 6), disappear=rng.uniform(1, 6))
        pairs = [
            (i, j, float(rng.normal(0, 4)))
            for i in range(len(edges))
            for j in range(i + 1, len(edges))
            if edges[i][0] == edges[j][0] and rng.random() < 0.6
        ]
        if not pairs:
            continue
        slots = division_slots(with_pairs(g, pairs))
        (pair,) = frame_pairs(slots)
        assigned = assign_frame_pair(slots, pair)
        assert assigned is not None
        parent, cost = assigned
        best = brute_force_pair(slots, pair)[0][0]
        assert cost == pytest.approx(best)
        assert parent_map_cost(slots, pair, parent) == pytest.approx(best)
        checked += 1
    assert checked >= 20
