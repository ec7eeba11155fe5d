"""K best frame-pair solutions (Murty/Lawler) against brute-force enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvers.lap import APPEAR, FramePair, boundary_cost, frame_pairs, parent_map_cost, solve_lap
from solvers.murty import kbest_frame_pair, kbest_lap, kbest_parent_maps, reduced_costs
from solvers.types import CandidateGraph


def random_graph(rng: np.random.Generator, sizes: list[int], density: float = 0.6) -> CandidateGraph:
    node_t = np.repeat(np.arange(len(sizes)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)])
    edges = []
    for t in range(len(sizes) - 1):
        for a in range(first[t], first[t + 1]):
            for b in range(first[t + 1], first[t + 2]):
                if rng.random() < density:
                    edges.append((a, b, float(rng.normal(0, 2))))
    n = len(node_t)
    disappear = rng.uniform(0, 3, n)
    return CandidateGraph(
        node_t=node_t,
        node_cost=rng.normal(0, 1, n),
        node_hier_parent=np.full(n, -1),
        edge_source=np.array([e[0] for e in edges], np.int64),
        edge_target=np.array([e[1] for e in edges], np.int64),
        edge_cost=np.array([e[2] for e in edges], np.float64),
        appear_cost=rng.uniform(0, 3, n),
        disappear_cost=disappear,
        division_cost=rng.uniform(-disappear, 3),  # keeps disappear + division >= 0
    )


Choice = tuple[int, ...]  # one parent (edge or APPEAR) per target of a frame pair


def brute_force(graph: CandidateGraph) -> list[tuple[float, tuple[Choice, ...]]]:
    """Every valid solution (parent per target of every pair) with its objective, sorted."""
    pairs = frame_pairs(graph)
    per_pair: list[list[tuple[float, Choice]]] = []
    for pair in pairs:
        options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]] for b in pair.targets]
        valid: list[tuple[float, Choice]] = []
        for combo in itertools.product(*options):
            parent = np.array(combo, np.int64)
            mothers = graph.edge_source[parent[parent >= 0]]
            if len(mothers) and np.bincount(mothers).max() > 2:
                continue
            valid.append((parent_map_cost(graph, pair, parent), combo))
        per_pair.append(valid)
    base = boundary_cost(graph)
    out = []
    for per_pair_choice in itertools.product(*per_pair):
        out.append((base + sum(c for c, _ in per_pair_choice), tuple(p for _, p in per_pair_choice)))
    return sorted(out, key=lambda x: x[0])


@pytest.mark.parametrize("seed", range(12))
def test_kbest_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.integers(1, 4, size=int(rng.integers(2, 4)))]
    graph = random_graph(rng, sizes)
    truth = brute_force(graph)
    k = min(len(truth), 15)
    ranked = kbest_parent_maps(graph, k)
    assert len(ranked) == k
    got = [r.objective for r in ranked]
    assert got == pytest.approx([c for c, _ in truth[:k]])
    # each reported objective is the true objective of the reported solution, no repeats
    keys = set()
    pairs = frame_pairs(graph)
    for r in ranked:
        cost = boundary_cost(graph) + sum(parent_map_cost(graph, p, m) for p, m in zip(pairs, r.parent_maps))
        assert cost == pytest.approx(r.objective)
        keys.add(tuple(tuple(m.tolist()) for m in r.parent_maps))
    assert len(keys) == k
    # the solutions strictly better than the k-th are exactly the brute-force ones
    kth = got[-1]
    strict_truth = {tuple(tuple(p) for p in s) for c, s in truth if c < kth - 1e-9}
    assert strict_truth <= keys


def test_asking_for_more_than_exist_returns_all() -> None:
    rng = np.random.default_rng(3)
    graph = random_graph(rng, [2, 2])
    truth = brute_force(graph)
    ranked = kbest_parent_maps(graph, len(truth) + 5)
    assert [r.objective for r in ranked] == pytest.approx([c for c, _ in truth])


def test_rank_zero_is_the_lap_optimum_and_solutions_are_consistent() -> None:
    rng = np.random.default_rng(7)
    graph = random_graph(rng, [4, 5, 4, 5], density=0.5)
    sols = kbest_lap(graph, 6)
    best = solve_lap(graph)
    assert sols[0].objective == pytest.approx(best.objective)
    assert np.array_equal(sols[0].edge_selected, best.edge_selected)
    objectives = [s.objective for s in sols]
    assert objectives == sorted(objectives)
    assert len({s.edge_selected.tobytes() for s in sols}) == len(sols)


def test_frame_pair_kbest() -> None:
    rng = np.random.default_rng(11)
    graph = random_graph(rng, [3, 3])
    (pair,) = frame_pairs(graph)
    truth = sorted(c for c, _ in brute_force(graph))
    base = boundary_cost(graph)
    got = kbest_frame_pair(graph, pair, 5)
    assert [c for c, _ in got] == pytest.approx([c - base for c in truth[:5]])
    for cost, parent in got:
        assert parent_map_cost(graph, pair, parent) == pytest.approx(cost)


def test_reduced_costs_are_dual_feasible() -> None:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    cost = rng.normal(size=(8, 8))
    cost[rng.random((8, 8)) < 0.3] = np.inf
    np.fill_diagonal(cost, rng.normal(size=8))
    _, col = linear_sum_assignment(cost)
    red = reduced_costs(cost, col)
    assert np.all(red >= 0)
    assert np.allclose(red[np.arange(8), col], 0)


def test_k_below_one_is_rejected() -> None:
    graph = random_graph(np.random.default_rng(0), [1, 1])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        kbest_lap(graph, 0)


def test_joint_kbest_nogood_agrees_with_murty() -> None:
    from solvers.kbest_joint import kbest_joint
    from solvers.types import Pins

    rng = np.random.default_rng(5)
    graph = random_graph(rng, [3, 3, 2])
    murty = [s.objective for s in kbest_joint(graph, 6).solutions]
    every_node = Pins(must_nodes=np.arange(graph.n_nodes))
    nogood = kbest_joint(graph, 6, method="nogood", pins=every_node).solutions
    assert [s.objective for s in nogood] == pytest.approx(murty)
    assert murty == pytest.approx([c for c, _ in brute_force(graph)[:6]])
    with pytest.raises(ValueError, match="k must be"):
        kbest_joint(graph, 0)


def _dense_child_bounds(pair: FramePair, red: np.ndarray, col_of_row: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Miller–Stone–Cox bounds over the whole reduced-cost matrix (the reference)."""
    from solvers.murty import _owners

    n_b = len(pair.targets)
    row_owner, col_owner = _owners(pair, parent)
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(len(col_of_row))
    banned = row_owner[:, None] == col_owner[None, :]
    column_term = np.where(banned, np.inf, red[:, :n_b]).min(axis=0)
    serving = row_of_col[:n_b]
    rows = red[serving].copy()
    rows[np.arange(n_b), np.arange(n_b)] = np.inf
    moves = row_owner[serving] == col_owner
    return column_term + np.where(moves, rows.min(axis=1), 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_layout_duals_and_bounds_equal_the_dense_ones(seed: int) -> None:
    """The layout holds every finite cell outside the all-zero block, with the matrix's costs;
    the sparse relaxation over it (the block through its smallest π) gives bit for bit the
    reduced costs and child bounds of the dense n × n computation, with and without Murty's
    constraints."""
    from solvers.lap import layout_costs, pair_cost_matrix, pair_layout, parent_map_from_assignment, solve_pair_matrix
    from solvers.murty import Reduced, child_bounds

    rng = np.random.default_rng(seed)
    graph = random_graph(rng, [int(rng.integers(3, 9)), int(rng.integers(3, 9))], density=0.4)
    (pair,) = frame_pairs(graph)
    base = solve_pair_matrix(pair_cost_matrix(graph, pair))
    assert base is not None
    base_parent = parent_map_from_assignment(pair, base)
    cut = int(rng.integers(0, len(pair.targets)))
    for forced, forbidden in [({}, {}), ({i: int(base_parent[i]) for i in range(cut)}, {cut: {int(base_parent[cut])}})]:
        cost = pair_cost_matrix(graph, pair, forced, forbidden)
        col = solve_pair_matrix(cost)
        if col is None:
            continue
        layout = pair_layout(pair)
        cells = layout_costs(graph, pair, layout, forced, forbidden)
        assert np.array_equal(cells, cost[layout.rows, layout.cols])
        elsewhere = np.isfinite(cost)
        elsewhere[layout.rows, layout.cols] = False
        r0, c0 = layout.block
        assert not elsewhere[:r0].any()
        assert not elsewhere[:, :c0].any()
        assert not cost[r0:, c0:].any()
        dense = reduced_costs(cost, col)
        assert np.array_equal(reduced_costs(cost, col, layout), dense)
        red = Reduced(cells, col, layout)
        assert all(np.array_equal(red.row(r), dense[r]) for r in range(len(cost)))
        parent = parent_map_from_assignment(pair, col)
        assert np.array_equal(child_bounds(pair, red, col, parent), _dense_child_bounds(pair, dense, col, parent))


@pytest.mark.parametrize("seed", range(8))
def test_sparse_pair_solve_is_an_optimal_assignment(seed: int) -> None:
    """solve_pair (sparse matching, no matrix) returns a permutation of the pair's assignment
    matrix as cheap as the dense solver's."""
    from solvers.lap import pair_cost_matrix, solve_pair, solve_pair_matrix

    rng = np.random.default_rng(100 + seed)
    graph = random_graph(rng, [int(rng.integers(0, 9)), int(rng.integers(0, 9))], density=0.4)
    pairs = frame_pairs(graph)
    if not pairs:
        return
    (pair,) = pairs
    cost = pair_cost_matrix(graph, pair)
    col = solve_pair(graph, pair)
    assert np.array_equal(np.sort(col), np.arange(len(cost)))
    dense = solve_pair_matrix(cost)
    assert dense is not None
    rows = np.arange(len(cost))
    assert cost[rows, col].sum() == pytest.approx(cost[rows, dense].sum(), abs=1e-9)


def _tied_graph(rng: np.random.Generator, sizes: list[int], density: float = 0.6) -> CandidateGraph:
    """random_graph with small integer costs: many equal labels, so tie-breaking shows."""
    from dataclasses import replace

    g = random_graph(rng, sizes, density)
    n = g.n_nodes
    disappear = rng.integers(0, 3, n).astype(np.float64)
    return replace(
        g,
        edge_cost=rng.integers(-2, 3, g.n_edges).astype(np.float64),
        appear_cost=rng.integers(0, 3, n).astype(np.float64),
        disappear_cost=disappear,
        division_cost=rng.integers(0, 3, n).astype(np.float64) - disappear,
    )


def _dense_augment(
    red: np.ndarray, col_of_row: np.ndarray, j: int, row_owner: np.ndarray, col_owner: np.ndarray, fixed: np.ndarray
) -> tuple[float, list[int]] | None:
    """Reference shortest augmenting path: dense labels, the next column by ``np.argmin``
    (smallest label, then smallest column), relaxing whole rows of the dense reduced costs."""
    n = len(col_of_row)
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(n)
    allowed = np.ones((n, n), bool)
    for c in fixed:
        allowed[row_owner != col_owner[c], c] = False
    allowed[row_owner == col_owner[j], j] = False
    cost = np.where(allowed, red, np.inf)
    dist = np.full(n, np.inf)
    pred = np.full(n, -1)
    done = np.zeros(n, bool)
    row, base = int(row_of_col[j]), 0.0
    while True:
        vals = base + cost[row]
        better = ~done & (vals < dist)
        dist[better], pred[better] = vals[better], row
        c = int(np.argmin(np.where(done, np.inf, dist)))
        if not np.isfinite(dist[c]) or done[c]:
            return None
        if c == j:
            break
        done[c] = True
        base, row = float(dist[c]), int(row_of_col[c])
    new = col_of_row.copy()
    c, r0 = j, int(row_of_col[j])
    while True:
        r = int(pred[c])
        previous = int(new[r])
        new[r] = c
        if r == r0:
            break
        c = previous
    return float(dist[j]), new.tolist()


@pytest.mark.parametrize("seed", range(10))
def test_heap_augmenter_equals_dense_argmin_search(seed: int) -> None:
    """The heap-based augmenting search picks columns as argmin over dense labels does (ties
    included), so it finds the same path; pausing it at caps does not change the path."""
    from solvers.lap import layout_costs, pair_cost_matrix, pair_layout, solve_pair
    from solvers.murty import Reduced, _Augmenter, _owners, _Search

    rng = np.random.default_rng(500 + seed)
    graph = _tied_graph(rng, [int(rng.integers(3, 10)), int(rng.integers(3, 10))], density=0.5)
    (pair,) = frame_pairs(graph)
    col = solve_pair(graph, pair)
    from solvers.lap import parent_map_from_assignment

    parent = parent_map_from_assignment(pair, col)
    layout = pair_layout(pair)
    red = Reduced(layout_costs(graph, pair, layout), col, layout)
    dense = reduced_costs(pair_cost_matrix(graph, pair), col)
    row_owner, col_owner = _owners(pair, parent)
    search = _Search(graph, [pair])
    for start in {0, len(pair.targets) // 2}:
        for j in range(start, len(pair.targets)):
            fixed = np.arange(start, j)
            want = _dense_augment(dense, col, j, row_owner, col_owner, fixed)
            for caps in ([np.inf], [0.0, 0.5, 1.0, 2.0, np.inf]):
                aug = _Augmenter(red, col, j, row_owner, col_owner, fixed, parent)
                status = ""
                for cap in caps:
                    status = aug.run(0.0, cap)
                    if status != "capped":
                        break
                if want is None:
                    assert status == "infeasible"
                else:
                    assert status == "found"
                    assert aug.result is not None
                    assert aug.result[0] == want[0]
                    assert aug.result[1].tolist() == want[1]
                    moved = search.moved_parents(0, parent, col, aug.result[1])
                    assert np.array_equal(moved, parent_map_from_assignment(pair, aug.result[1]))


@pytest.mark.parametrize("seed", range(6))
def test_constrained_cells_equal_layout_costs(seed: int) -> None:
    """_Search.constrained_cells (owners looked up at once) gives layout_costs bit for bit."""
    from solvers.lap import layout_costs
    from solvers.murty import _Search

    rng = np.random.default_rng(900 + seed)
    graph = random_graph(rng, [int(rng.integers(2, 9)), int(rng.integers(2, 9))], density=0.5)
    pairs = frame_pairs(graph)
    search = _Search(graph, pairs)
    search.root = [search.solve_root(0)]
    (pair,) = pairs
    options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]] for b in pair.targets]
    for _ in range(5):
        cut = int(rng.integers(0, len(pair.targets) + 1))
        forced = {i: int(rng.choice(options[i])) for i in range(cut)}
        forbidden = {
            i: frozenset(
                int(e) for e in rng.choice(options[i], size=int(rng.integers(1, len(options[i]) + 1)), replace=False)
            )
            for i in range(cut, len(pair.targets))
            if rng.random() < 0.5
        }
        got = search.constrained_cells(0, forced, forbidden)
        assert np.array_equal(got, layout_costs(graph, pair, search.layouts[0], forced, forbidden))
