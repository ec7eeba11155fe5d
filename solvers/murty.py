"""Exact K best solutions of the frame-pair assignment model (Murty / Lawler partitioning).

A solution of the LAP model (:mod:`solvers.lap`) is the list of parent maps ``p(b)`` of all
targets of all frame pairs (edge into ``b`` or "appears"). Lawler's generalisation of Murty's
method partitions on those choices: with the targets in a fixed order and ``S`` the best solution
of a subspace, the children are "targets 1..i−1 keep their parent in ``S``, target i takes any
other" for every free i. The children are disjoint and together cover the subspace minus ``S``,
so popping subspaces from a heap by their optimum lists solutions best first without repeats.
Partitioning on parents rather than matrix cells matters: the two division slots of a mother
make several assignments encode one solution, which a cell-level Murty would list repeatedly.

Two observations keep this cheap on a whole movie:

* Frame pairs are independent, so a child differs from its parent solution in one frame pair
  only, and only that pair is re-solved. A child that branches in a later pair than its parent
  faces exactly a child problem of the unconstrained root there, so those are solved once.
* Children are pushed with a lower bound and solved only when popped (lazy Murty). The bound
  is Miller, Stone & Cox's (1997): with optimal duals of the parent's assignment every reduced
  cost is ≥ 0, and a child that takes target j away from its row r must pay at least the
  cheapest reduced cost of another row into j plus that of another column for r.
  Duals come from the optimal assignment by Bellman–Ford over rows (no negative cycles at an
  optimum), since scipy's solver does not return them.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.lap import (
    APPEAR,
    FramePair,
    boundary_cost,
    check_lap_graph,
    frame_pairs,
    pair_cost_matrix,
    parent_map_cost,
    parent_map_from_assignment,
    parent_rows,
    solve_pair_matrix,
    solution_from_parent_maps,
)
from solvers.types import CandidateGraph, Solution

Forced = dict[int, int]
Forbidden = dict[int, frozenset[int]]


@dataclass(frozen=True)
class RankedMaps:
    """One of the K best: per-frame-pair parent maps and the objective they achieve."""

    objective: float
    parent_maps: tuple[np.ndarray, ...]


@dataclass
class _Node:
    """A solved subspace: constrained only in frame pair ``q`` (targets before ``start`` fixed)."""

    total: float
    maps: tuple[np.ndarray, ...]
    q: int
    start: int
    forced: Forced = field(default_factory=dict)
    forbidden: Forbidden = field(default_factory=dict)


def reduced_costs(cost: np.ndarray, col_of_row: np.ndarray) -> np.ndarray:
    """Reduced costs ``c − u − v`` (≥ 0, 0 on the assignment) from duals of an optimum.

    Row potentials π are shortest distances in the graph "row r takes the column of row r′"
    with weight ``c[r, σ(r′)] − c[r′, σ(r′)]`` from a source joined to every row at 0; then
    ``u = −π`` and ``v[σ(r)] = c[r, σ(r)] + π[r]`` satisfy complementary slackness.
    """
    n = len(cost)
    if n == 0:
        return cost.copy()
    diag = cost[np.arange(n), col_of_row]
    weight = cost[:, col_of_row] - diag[None, :]
    pi = np.zeros(n)
    for _ in range(n + 1):
        new = np.minimum(pi, (pi[:, None] + weight).min(axis=0))
        if np.array_equal(new, pi):
            break
        pi = new
    v = np.empty(n)
    v[col_of_row] = diag + pi
    red = cost + pi[:, None] - v[None, :]
    return np.maximum(red, 0.0)


def child_bounds(
    pair: FramePair, cost: np.ndarray, col_of_row: np.ndarray, parent: np.ndarray
) -> np.ndarray:
    """Lower bound on the cost increase of "target j leaves its parent ``parent[j]``", per j.

    ``col_of_row`` is an optimal assignment of ``cost``; it may encode another optimum than
    ``parent`` (ties), in which case only the column term of the bound is used for that j.
    """
    n_b = len(pair.targets)
    if n_b == 0:
        return np.zeros(0)
    red = reduced_costs(cost, col_of_row)
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(len(col_of_row))
    out = np.empty(n_b)
    for j in range(n_b):
        banned = parent_rows(pair, j, int(parent[j]))
        column = red[:, j].copy()
        column[banned] = np.inf
        out[j] = column.min()
        r = int(row_of_col[j])
        if r in banned:  # that row must move to another column too
            row = red[r].copy()
            row[j] = np.inf
            out[j] += row.min()
    return out


class _PairCache:
    """Solved constrained frame pairs: parent map, cost, and the data for child bounds."""

    def __init__(self, graph: CandidateGraph, pairs: list[FramePair]) -> None:
        self.graph, self.pairs = graph, pairs
        self.root_child: dict[tuple[int, int], tuple[np.ndarray, float] | None] = {}
        self.solves = 0

    def solve(self, q: int, forced: Forced, forbidden: Forbidden) -> tuple[np.ndarray, float] | None:
        pair = self.pairs[q]
        self.solves += 1
        col_of_row = solve_pair_matrix(pair_cost_matrix(self.graph, pair, forced, forbidden))
        if col_of_row is None:
            return None
        parent = parent_map_from_assignment(pair, col_of_row)
        return parent, parent_map_cost(self.graph, pair, parent)

    def bounds(self, q: int, forced: Forced, forbidden: Forbidden, parent: np.ndarray) -> np.ndarray:
        pair = self.pairs[q]
        cost = pair_cost_matrix(self.graph, pair, forced, forbidden)
        col_of_row = solve_pair_matrix(cost)
        assert col_of_row is not None  # the subspace was solved feasible before
        return child_bounds(pair, cost, col_of_row, parent)


def kbest_parent_maps(
    graph: CandidateGraph, k: int, *, ignore_division_pairs: bool = False
) -> list[RankedMaps]:
    """The ``k`` best solutions of the frame-pair model of ``graph``, best first (exact).

    Fewer are returned when fewer exist. Ties are broken arbitrarily but consistently.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    check_lap_graph(graph, ignore_division_pairs=ignore_division_pairs)
    pairs = frame_pairs(graph)
    base = boundary_cost(graph)
    cache = _PairCache(graph, pairs)
    root_maps, root_costs = [], []
    for q in range(len(pairs)):
        best = cache.solve(q, {}, {})
        if best is None:  # cannot happen without pins: appear/disappear is always possible
            raise ValueError(f"frame pair t={pairs[q].t} has no feasible assignment")
        root_maps.append(best[0])
        root_costs.append(best[1])
    root = _Node(base + sum(root_costs), tuple(root_maps), q=0, start=0)
    if not pairs:
        return [RankedMaps(root.total, ())]
    # root bounds of every pair, reused by every node that branches in a later pair
    root_delta = [cache.bounds(q, {}, {}, root_maps[q]) for q in range(len(pairs))]
    later = sorted(
        (float(d), q, j) for q, deltas in enumerate(root_delta) for j, d in enumerate(deltas)
        if np.isfinite(d)
    )
    counter = itertools.count()
    heap: list[tuple[float, int, str, object]] = [(root.total, next(counter), "solved", root)]
    found: list[RankedMaps] = []
    while heap and len(found) < k:
        priority, _, kind, item = heapq.heappop(heap)
        if kind == "solved":
            node = item  # type: ignore[assignment]
            assert isinstance(node, _Node)
            found.append(RankedMaps(node.total, node.maps))
            if len(found) == k:
                break
            _push_children(node, cache, root_costs, later, heap, counter)
            continue
        node, q, j = item  # type: ignore[misc]
        child = _solve_child(node, q, j, cache, root_costs)
        if child is not None:
            heapq.heappush(heap, (child.total, next(counter), "solved", child))
    return found


def _child_constraints(node: _Node, q: int, j: int) -> tuple[Forced, Forbidden]:
    """Constraints in pair ``q`` of the child "targets < j keep their parent, j changes"."""
    parent = node.maps[q]
    if q == node.q:
        forced = dict(node.forced)
        forced.update({i: int(parent[i]) for i in range(node.start, j)})
        forbidden = dict(node.forbidden)
    else:
        forced = {i: int(parent[i]) for i in range(j)}
        forbidden = {}
    forbidden[j] = frozenset(forbidden.get(j, frozenset()) | {int(parent[j])})
    return forced, forbidden


def _solve_child(
    node: _Node, q: int, j: int, cache: _PairCache, root_costs: list[float]
) -> _Node | None:
    forced, forbidden = _child_constraints(node, q, j)
    if q != node.q:  # pair q is untouched in ``node``: the same problem as the root's child
        key = (q, j)
        if key not in cache.root_child:
            cache.root_child[key] = cache.solve(q, forced, forbidden)
        best = cache.root_child[key]
        old = root_costs[q]
    else:
        best = cache.solve(q, forced, forbidden)
        old = parent_map_cost(cache.graph, cache.pairs[q], node.maps[q])
    if best is None:
        return None
    maps = node.maps[:q] + (best[0],) + node.maps[q + 1 :]
    return _Node(node.total - old + best[1], maps, q=q, start=j, forced=forced, forbidden=forbidden)


def _push_children(
    node: _Node,
    cache: _PairCache,
    root_costs: list[float],
    later: list[tuple[float, int, int]],
    heap: list,
    counter: itertools.count,
) -> None:
    """Push the unsolved children of ``node`` with their Miller–Stone–Cox lower bounds."""
    is_root = node.q == 0 and node.start == 0 and not node.forced and not node.forbidden
    if not is_root:
        deltas = cache.bounds(node.q, node.forced, node.forbidden, node.maps[node.q])
        for j in range(node.start, len(deltas)):
            if np.isfinite(deltas[j]):
                heapq.heappush(heap, (node.total + deltas[j], next(counter), "child", (node, node.q, j)))
    first_later = node.q if is_root else node.q + 1
    for delta, q, j in later:
        if q >= first_later:
            heapq.heappush(heap, (node.total + delta, next(counter), "child", (node, q, j)))


def kbest_lap(
    graph: CandidateGraph, k: int, *, ignore_division_pairs: bool = False
) -> list[Solution]:
    """The ``k`` best solutions of a fixed-segmentation graph as :class:`Solution`, best first.

    ``info["rank"]`` is 0 for the optimum; ``seconds`` is the time of the whole enumeration.
    """
    start = time.perf_counter()
    ranked = kbest_parent_maps(graph, k, ignore_division_pairs=ignore_division_pairs)
    seconds = time.perf_counter() - start
    return [
        solution_from_parent_maps(
            graph, list(r.parent_maps), r.objective, seconds=seconds, backend="lap-murty",
            info={"rank": rank},
        )
        for rank, r in enumerate(ranked)
    ]


def kbest_frame_pair(
    graph: CandidateGraph, pair: FramePair, k: int
) -> list[tuple[float, np.ndarray]]:
    """The ``k`` best parent maps of one frame pair with their pair costs, best first."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if len(pair.sources) == 0 or len(pair.targets) == 0:  # everyone appears / vanishes
        only = np.full(len(pair.targets), APPEAR, np.int64)
        return [(parent_map_cost(graph, pair, only), only)]
    sub = _pair_graph(graph, pair)
    ranked = kbest_parent_maps(sub, k, ignore_division_pairs=True)
    edges = pair.edges
    base = boundary_cost(sub)
    out = []
    for r in ranked:
        local = r.parent_maps[0]
        parent = np.where(local >= 0, edges[np.maximum(local, 0)], APPEAR)
        out.append((r.objective - base, parent))
    return out


def _pair_graph(graph: CandidateGraph, pair: FramePair) -> CandidateGraph:
    """The two frames of ``pair`` as a graph of their own (edges renumbered 0..m−1)."""
    nodes = np.concatenate([pair.sources, pair.targets])
    local = {int(n): i for i, n in enumerate(nodes)}
    src = np.array([local[int(n)] for n in graph.edge_source[pair.edges]], np.int64)
    dst = np.array([local[int(n)] for n in graph.edge_target[pair.edges]], np.int64)
    return CandidateGraph(
        node_t=graph.node_t[nodes],
        node_cost=np.zeros(len(nodes)),
        node_hier_parent=np.full(len(nodes), -1),
        edge_source=src,
        edge_target=dst,
        edge_cost=graph.edge_cost[pair.edges],
        appear_cost=graph.appear_cost[nodes],
        disappear_cost=graph.disappear_cost[nodes],
        division_cost=graph.division_cost[nodes],
    )
