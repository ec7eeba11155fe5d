"""Joint ILP: hand-built cases with known optima, model shapes, pins, windows, every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solvers.joint import BACKENDS, solve_joint, solve_windowed
from solvers.model import build_program, completion, cost_vector, is_feasible, leaf_paths, objective
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Pins, SolveStatus


def graph(
    t: list[int],
    edges: list[tuple[int, int]],
    edge_cost: list[float],
    *,
    node_cost: np.ndarray | None = None,
    parent: list[int] | None = None,
    appear: float = 5.0,
    disappear: float = 5.0,
    division: float = 0.0,
    pairs: np.ndarray | None = None,
    pair_cost: np.ndarray | None = None,
) -> CandidateGraph:
    n = len(t)
    return CandidateGraph(
        node_t=np.asarray(t),
        node_cost=np.full(n, -20.0) if node_cost is None else node_cost,
        node_hier_parent=np.full(n, -1) if parent is None else np.asarray(parent),
        edge_source=np.array([a for a, _ in edges], np.int64),
        edge_target=np.array([b for _, b in edges], np.int64),
        edge_cost=np.asarray(edge_cost, np.float64),
        appear_cost=np.full(n, appear),
        disappear_cost=np.full(n, disappear),
        division_cost=np.full(n, division),
        division_pairs=pairs,
        division_pair_cost=pair_cost,
    )


def division_graph(**kw: Any) -> CandidateGraph:
    # 0 (t0) -> 1, 2 (t1) and a decoy continuation 0 -> 3 far away; 3 could also appear
    return graph([0, 1, 1, 1], [(0, 1), (0, 2), (0, 3)], [1.0, 1.0, 4.0], **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_division_is_chosen_by_every_backend(backend: str) -> None:
    sol = solve_joint(division_graph(), backend=backend, time_limit=20)
    assert sol.status is SolveStatus.OPTIMAL
    assert sol.edge_selected.tolist() == [True, True, False]
    assert sol.node_selected.all()
    # nodes -80, edges 2, node 0 appears free? no: appear 5 for 0, 3 appears 5; 1,2,3 disappear 15
    assert sol.objective == pytest.approx(-80 + 2 + 5 + 5 + 15)
    assert sol.objective == pytest.approx(objective(division_graph(), sol.node_selected, sol.edge_selected))


def test_division_cost_can_forbid_division() -> None:
    sol = solve_joint(division_graph(division=100.0))
    assert sol.edge_selected.sum() == 1


def test_at_most_two_children() -> None:
    g = graph([0, 1, 1, 1], [(0, 1), (0, 2), (0, 3)], [-10.0, -10.0, -10.0])
    sol = solve_joint(g)
    assert sol.edge_selected.sum() == 2


def test_division_pairs_restrict_divisions_and_pay_pair_cost() -> None:
    # pairs: (e0, e2) only; e0+e1 is not a listed pair
    g = graph(
        [0, 1, 1, 1], [(0, 1), (0, 2), (0, 3)], [1.0, 0.0, 1.0], pairs=np.array([[0, 2]]), pair_cost=np.array([-3.0])
    )
    sol = solve_joint(g)
    assert sol.edge_selected.tolist() == [True, False, True]
    g2 = graph(
        [0, 1, 1, 1], [(0, 1), (0, 2), (0, 3)], [1.0, 0.0, 1.0], pairs=np.array([[0, 2]]), pair_cost=np.array([30.0])
    )
    sol2 = solve_joint(g2)
    assert sol2.edge_selected.sum() == 1
    assert sol2.edge_selected[1]
    v = completion(g2, sol2.node_selected, sol2.edge_selected)
    assert is_feasible(build_program(g2), v)


def test_gap_closing_over_two_frames() -> None:
    # 0 at t0, 1 at t2 (missing at t1), decoy 2 at t1 far away (expensive link)
    g = graph([0, 2, 1], [(0, 1), (0, 2)], [2.0, 50.0])
    sol = solve_joint(g)
    assert sol.edge_selected.tolist() == [True, False]
    tid, tracks = tracks_from_solution(g.node_t, g.edge_source, g.edge_target, sol.node_selected, sol.edge_selected)
    # CTC: the part after the gap is a new track whose parent is the part before it
    assert tid[0] != tid[1]
    assert tracks[tid[1] - 1, 3] == tid[0]


def test_appear_and_disappear_when_links_are_expensive() -> None:
    g = graph([0, 1], [(0, 1)], [30.0])
    sol = solve_joint(g)
    assert sol.node_selected.all()
    assert not sol.edge_selected.any()
    # dearer ends: linking (30 + one appear + one disappear) beats two appears + two disappears
    dear = graph([0, 1], [(0, 1)], [30.0], appear=20.0, disappear=20.0, node_cost=np.full(2, -50.0))
    assert solve_joint(dear).edge_selected.all()


def forest_graph() -> CandidateGraph:
    """t0: cells 0, 1. t1: merged candidate 2 with children 3, 4. t2: cells 5, 6."""
    t = [0, 0, 1, 1, 1, 2, 2]
    parent = [-1, -1, -1, 2, 2, -1, -1]
    edges = [(0, 2), (1, 2), (0, 3), (1, 4), (2, 5), (2, 6), (3, 5), (4, 6)]
    cost = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    node_cost = np.array([-20, -20, -25, -20, -20, -20, -20.0])
    return graph(t, edges, cost, node_cost=node_cost, parent=parent)


def test_forest_prefers_the_split_children_over_the_merged_parent() -> None:
    g = forest_graph()
    sol = solve_joint(g)
    assert sol.node_selected.tolist() == [True, True, False, True, True, True, True]
    assert sol.edge_selected.tolist() == [False, False, True, True, False, False, True, True]


def test_forest_path_rows_and_model_shapes() -> None:
    g = forest_graph()
    rows, cols = leaf_paths(g.node_hier_parent)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 2), (0, 3), (1, 2), (1, 4)]
    prog = build_program(g)
    n, e = g.n_nodes, g.n_edges
    assert prog.A.shape == (2 + 3 * n, 4 * n + e)  # 2 paths, in, out, s + d <= x
    assert prog.c.shape == (4 * n + e,)
    gp = graph([0, 1, 1], [(0, 1), (0, 2)], [0.0, 0.0], pairs=np.array([[0, 1]]), pair_cost=np.array([0.0]))
    prog2 = build_program(gp)
    n, e, p = 3, 2, 1
    assert prog2.A.shape == (3 * n + e, 4 * n + e + p + e)


def test_cost_vector_prices_each_column_family() -> None:
    """The program and objective() share one cost vector: each family's costs in its columns,
    continuations free (their edge is priced in y), and the objective of a division by hand."""
    g = division_graph(division=0.5, pairs=np.array([[0, 1]]), pair_cost=np.array([-3.0]))
    prog = build_program(g)
    c = cost_vector(g)
    assert c.tobytes() == prog.c.tobytes()
    np.testing.assert_array_equal(c[prog.x], g.node_cost)
    np.testing.assert_array_equal(c[prog.y], g.edge_cost)
    for k, family_cost in enumerate((g.appear_cost, g.disappear_cost, g.division_cost)):
        np.testing.assert_array_equal(c[prog.family(k)], family_cost)
    np.testing.assert_array_equal(c[prog.z], [-3.0])
    np.testing.assert_array_equal(c[prog.q], np.zeros(g.n_edges))
    node_sel = np.ones(4, bool)
    edge_sel = np.array([True, True, False])
    # 4 nodes, edges 0->1 and 0->2, 0 divides (0.5) into pair 0 (-3), 0 and 3 appear, 1-3 disappear
    assert objective(g, node_sel, edge_sel) == pytest.approx(-80 + 2 + 0.5 - 3 + 10 + 15)
    assert objective(g, node_sel, edge_sel) == float(c @ completion(g, node_sel, edge_sel))
    assert cost_vector(division_graph()).shape == (4 * 4 + 3,)  # no pairs: no z, no q columns


def test_pins_force_a_different_answer() -> None:
    g = forest_graph()
    sol = solve_joint(g, pins=Pins(must_nodes=np.array([2])))
    assert sol.node_selected[2]
    assert not sol.node_selected[3]
    assert not sol.node_selected[4]
    sol2 = solve_joint(division_graph(), pins=Pins(forbid_edges=np.array([1])))
    assert not sol2.edge_selected[1]
    sol3 = solve_joint(division_graph(), pins=Pins(must_edges=np.array([2])))
    assert sol3.edge_selected[2]


def test_conflicting_pins_give_infeasible_status() -> None:
    sol = solve_joint(forest_graph(), pins=Pins(must_nodes=np.array([2, 3])))
    assert sol.status is SolveStatus.INFEASIBLE
    assert not sol.node_selected.any()
    with pytest.raises(ValueError):
        solve_joint(forest_graph(), pins=Pins(must_nodes=np.array([1]), forbid_nodes=np.array([1])))


def chain_movie(n_frames: int = 9, n_cells: int = 4, seed: int = 0) -> CandidateGraph:
    """Cells on a line; links to every cell of the next frame, the true one cheapest."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_frames), n_cells)
    idx = np.arange(n_frames * n_cells).reshape(n_frames, n_cells)
    src, dst, cost = [], [], []
    for f in range(n_frames - 1):
        for i in range(n_cells):
            for j in range(n_cells):
                src.append(idx[f, i])
                dst.append(idx[f + 1, j])
                cost.append(abs(i - j) * 3.0 + rng.uniform(0, 0.5))
    n = len(t)
    return CandidateGraph(
        node_t=t,
        node_cost=np.full(n, -20.0),
        node_hier_parent=np.full(n, -1),
        edge_source=np.asarray(src),
        edge_target=np.asarray(dst),
        edge_cost=np.asarray(cost),
        appear_cost=np.where(t == 0, 0.0, 8.0),
        disappear_cost=np.where(t == n_frames - 1, 0.0, 8.0),
        division_cost=np.full(n, 20.0),
    )


def test_windowed_matches_the_full_solve() -> None:
    g = chain_movie()
    full = solve_joint(g)
    win = solve_windowed(g, window=3, overlap=1)
    assert win.status is SolveStatus.OPTIMAL
    assert win.info["windows"] >= 3
    assert np.array_equal(win.edge_selected, full.edge_selected)
    assert win.objective == pytest.approx(full.objective)


def test_window_resolve_keeps_the_outside_fixed() -> None:
    g = chain_movie()
    full = solve_joint(g)
    # force a different (worse) answer outside the window, then re-solve frames 3..5 only
    pinned = solve_joint(g, pins=Pins(forbid_edges=np.flatnonzero(full.edge_selected)[:2]))
    re = solve_joint(g, window=(3, 6), warm_start=pinned)
    outside = (g.node_t[g.edge_target] < 3) | (g.node_t[g.edge_source] >= 6)
    assert np.array_equal(re.edge_selected[outside], pinned.edge_selected[outside])
    assert re.objective <= pinned.objective + 1e-9 or np.isnan(re.objective)


def test_empty_graph() -> None:
    g = graph([], [], [])
    sol = solve_joint(g)
    assert sol.status is SolveStatus.OPTIMAL
    assert sol.node_selected.shape == (0,)


def test_tracks_split_at_divisions() -> None:
    g = division_graph()
    sol = solve_joint(g)
    tid, tracks = tracks_from_solution(g.node_t, g.edge_source, g.edge_target, sol.node_selected, sol.edge_selected)
    assert tracks.tolist()[0] == [1, 0, 0, 0]
    assert sorted(tracks[:, 3].tolist()) == [0, 0, 1, 1]  # 3 appears, 1 and 2 are daughters


def test_windowed_with_division_pairs_matches_the_full_solve() -> None:
    from solvers.costs import tracking_costs
    from solvers.motion import initial_motion
    from tests.solvers.test_costs import colony

    cells, src, dst, truth = colony(n_frames=5)
    g = tracking_costs(cells, src, dst, initial_motion(cells, src, dst))
    assert g.division_pairs is not None
    assert len(g.division_pairs)
    full = solve_joint(g)
    win = solve_windowed(g, window=3, overlap=1)
    assert win.status is SolveStatus.OPTIMAL
    assert np.array_equal(win.edge_selected, full.edge_selected)


def test_three_level_forest_has_one_row_per_leaf() -> None:
    # root 0 > {1, 2}; 1 > {3, 4}; 2 is a leaf; lone root 5
    parent = np.array([-1, 0, 0, 1, 1, -1])
    rows, cols = leaf_paths(parent)
    paths: dict[int, set[int]] = {}
    for r, c in zip(rows.tolist(), cols.tolist()):
        paths.setdefault(r, set()).add(c)
    assert sorted(map(sorted, paths.values())) == [[0, 1, 3], [0, 1, 4], [0, 2]]
