"""Frame-pair linear assignment with division slots: the fast path for a fixed segmentation.

When every candidate is its own single-node tree (a label image) and every link spans one frame,
every node is selected and the joint model falls apart into independent frame pairs: what happens
between t and t+1 (who links to whom, who divides, disappears, appears) does not constrain any
other pair, because a node's incoming and outgoing choices are separate constraints. Each pair is
one linear assignment problem (the EmbedTrack / Jaqaman formulation with a second "division"
slot per mother). With ``A`` the nodes at t and ``B`` those at t+1 the square matrix is::

                  targets b ∈ B           disappear d_a        spare s_a
    slot 1 of a   c(a,b)                  disappear_cost[a]    ∞
    slot 2 of a   c(a,b) + division[a]    ∞                    0
                  (+ edge_division[a,b])
    appear of b   appear_cost[b] (b only) 0                    0

A mother with one child uses slot 1 (slot 2 takes its spare column), a dividing mother uses both
slots, a vanishing one sends slot 1 to its disappear column; an unused appear row fills one of
the dummy columns left free. The only encodings that do not mirror a real solution are "slot 1
disappears while slot 2 links", which costs ``disappear + division`` more than the same links
done properly; so the assignment optimum is the tracking optimum exactly when
``disappear_cost[a] + division_cost[a] >= 0`` for every mother with out-links (checked; no
two-slot assignment can encode the opposite preference), and, where the graph prices each edge
as a second daughter (``edge_division_cost``: division pairs as slots,
:func:`solvers.costs.division_slots`), the same with that edge's extra added.

A solution of one frame pair is the *parent map* ``p(b)`` (the edge that enters ``b`` or −1 for
"appears"): it fixes the links, divisions and disappearances of the pair, and it is what
:mod:`solvers.murty` partitions on to enumerate the K best.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from solvers.types import CandidateGraph, Pins, Solution, SolveStatus

APPEAR = -1  # value of the parent map for "no parent: the cell appears"


@dataclass(frozen=True)
class FramePair:
    """One assignment problem between the nodes at ``t`` (sources) and ``t+1`` (targets).

    ``edge_row``/``edge_col`` are the local source/target position of each edge in ``edges``.
    """

    t: int
    sources: np.ndarray  # (n_a,) node indices at t
    targets: np.ndarray  # (n_b,) node indices at t+1
    edges: np.ndarray  # (m,) edge indices between them, ascending
    edge_row: np.ndarray  # (m,) position of the edge's source in ``sources``
    edge_col: np.ndarray  # (m,) position of the edge's target in ``targets``


def check_lap_graph(graph: CandidateGraph, *, ignore_division_pairs: bool = False) -> None:
    """Raise ValueError when the frame-pair decomposition would not be exact for ``graph``."""
    competing = np.flatnonzero(graph.node_hier_parent >= 0)
    if len(competing):
        raise ValueError(
            f"the LAP needs a fixed segmentation (a forest of single-node trees), but node "
            f"{int(competing[0])} has hierarchy parent {int(graph.node_hier_parent[competing[0]])}"
            f" ({len(competing)} competing candidates); use the joint solver"
        )
    if graph.n_edges:
        dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
        long = np.flatnonzero(dt != 1)
        if len(long):
            e = int(long[0])
            raise ValueError(
                f"the LAP links consecutive frames only, but edge {e} spans dt={int(dt[e])} "
                f"({len(long)} such edges); drop them or use the joint solver"
            )
        key = graph.edge_source * graph.n_nodes + graph.edge_target
        if len(np.unique(key)) != len(key):
            raise ValueError("the LAP needs at most one edge per (source, target) pair")
        has_out = np.zeros(graph.n_nodes, bool)
        has_out[graph.edge_source] = True
        bad = np.flatnonzero(has_out & (graph.disappear_cost + graph.division_cost < 0))
        if graph.edge_division_cost is not None and not len(bad):
            low = graph.disappear_cost + graph.division_cost
            under = np.flatnonzero(low[graph.edge_source] + graph.edge_division_cost < -1e-9)
            if len(under):
                e = int(under[0])
                raise ValueError(
                    f"edge {e} as a second daughter costs {graph.edge_division_cost[e]:.3g}, less than "
                    f"its mother's disappear + division cost allows; an assignment with division slots "
                    "cannot price it (see solvers/lap.py)"
                )
        if len(bad):
            n = int(bad[0])
            raise ValueError(
                f"node {n} has disappear_cost + division_cost = "
                f"{graph.disappear_cost[n] + graph.division_cost[n]:.3g} < 0; an assignment "
                "with division slots cannot prefer dividing to vanishing (see solvers/lap.py)"
            )
    if getattr(graph, "division_pairs", None) is not None and not ignore_division_pairs:
        raise ValueError(
            "the LAP cannot restrict or price divisions per daughter pair (division_pairs is "
            "set); use the joint solver or pass ignore_division_pairs=True"
        )


def frame_pairs(graph: CandidateGraph) -> list[FramePair]:
    """Split ``graph`` into its consecutive frame pairs (empty frames give empty sides)."""
    if graph.n_nodes == 0:
        return []
    t_min, t_max = int(graph.node_t.min()), int(graph.node_t.max())
    order = np.argsort(graph.node_t, kind="stable")
    bounds = np.searchsorted(graph.node_t[order], np.arange(t_min, t_max + 2))
    by_t = [order[bounds[i] : bounds[i + 1]] for i in range(t_max - t_min + 1)]
    pos = np.empty(graph.n_nodes, np.int64)
    for nodes in by_t:
        pos[nodes] = np.arange(len(nodes))
    edge_t = graph.node_t[graph.edge_source]
    e_order = np.argsort(edge_t, kind="stable")
    e_bounds = np.searchsorted(edge_t[e_order], np.arange(t_min, t_max + 1))
    pairs = []
    for i in range(t_max - t_min):
        edges = e_order[e_bounds[i] : e_bounds[i + 1]]
        pairs.append(
            FramePair(
                t=t_min + i,
                sources=by_t[i],
                targets=by_t[i + 1],
                edges=edges,
                edge_row=pos[graph.edge_source[edges]],
                edge_col=pos[graph.edge_target[edges]],
            )
        )
    return pairs


def second_slot(graph: CandidateGraph, edges: np.ndarray) -> np.ndarray:
    """What each edge costs in its mother's second (division) slot: c + division, plus the
    edge's own extra where the graph prices daughters per edge (+inf: not a daughter)."""
    cost: np.ndarray = graph.edge_cost[edges] + graph.division_cost[graph.edge_source[edges]]
    if graph.edge_division_cost is not None:
        cost = cost + graph.edge_division_cost[edges]
    return cost


def parent_map_cost(graph: CandidateGraph, pair: FramePair, parent: np.ndarray) -> float:
    """Cost of one frame pair's parent map (edge index per target, −1 = appears)."""
    linked = parent >= 0
    cost = float(graph.appear_cost[pair.targets[~linked]].sum())
    cost += float(graph.edge_cost[parent[linked]].sum())
    mothers, degree = np.unique(graph.edge_source[parent[linked]], return_counts=True)
    vanish = pair.sources[~np.isin(pair.sources, mothers)]
    cost += float(graph.disappear_cost[vanish].sum())
    cost += float(graph.division_cost[mothers[degree == 2]].sum())
    if graph.edge_division_cost is not None and np.any(degree == 2):
        # a dividing mother's cheaper daughter edge took the second slot
        e = parent[linked]
        two = np.isin(graph.edge_source[e], mothers[degree == 2])
        extra = np.full(graph.n_nodes, np.inf)
        np.minimum.at(extra, graph.edge_source[e[two]], graph.edge_division_cost[e[two]])
        cost += float(extra[mothers[degree == 2]].sum())
    return cost


def pair_cost_matrix(
    graph: CandidateGraph,
    pair: FramePair,
    forced: Mapping[int, int] | None = None,
    forbidden: Mapping[int, set[int] | frozenset[int]] | None = None,
) -> np.ndarray:
    """The square assignment matrix of the module docstring, ∞ where a pairing is not allowed.

    ``forced[j] = e`` makes target ``j`` (local position) take edge ``e`` (or −1: appear);
    ``forbidden[j]`` is a set of parents (edges or −1) target ``j`` may not take. These are the
    subproblems of Murty's partitioning (:mod:`solvers.murty`).
    """
    n_a, n_b = len(pair.sources), len(pair.targets)
    src, dst = pair.sources, pair.targets
    n = 2 * n_a + n_b
    cost = np.full((n, n), np.inf)
    rows, cols = pair.edge_row, pair.edge_col
    ec = graph.edge_cost[pair.edges]
    cost[rows, cols] = ec
    cost[n_a + rows, cols] = second_slot(graph, pair.edges)
    ar = np.arange(n_a)
    cost[ar, n_b + ar] = graph.disappear_cost[src]
    cost[n_a + ar, n_b + n_a + ar] = 0.0
    br = np.arange(n_b)
    cost[2 * n_a + br, br] = graph.appear_cost[dst]
    cost[2 * n_a :, n_b:] = 0.0
    if forced:
        # every forced column at once: only the rows of its parent stay
        keep = [(r, j) for j, e in forced.items() for r in parent_rows(pair, j, e)]
        keep_r, keep_c = np.array(keep, np.int64).reshape(-1, 2).T
        saved = cost[keep_r, keep_c]
        cost[:, np.fromiter(forced, np.int64, len(forced))] = np.inf
        cost[keep_r, keep_c] = saved
    for j, banned in (forbidden or {}).items():
        for e in banned:
            cost[parent_rows(pair, j, e), j] = np.inf
    return cost


@dataclass(frozen=True)
class Layout:
    """Where :func:`pair_cost_matrix` can be finite: the all-zero block ``[r0:, c0:]`` (appear
    rows × disappear and spare columns, most of the finite cells) and, outside it, the cells
    ``(rows[i], cols[i])`` (links, division slots, disappear, spare and appear diagonals);
    constraints only turn some of those to ∞ (they touch target columns only). ``by_row``
    lists the cells row by row (row r: ``by_row[row_start[r]:row_start[r + 1]]``)."""

    block: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    by_row: np.ndarray
    row_start: np.ndarray
    _row_cells: list[list[int]] | None = field(default=None, repr=False, compare=False)
    _cols_list: list[int] | None = field(default=None, repr=False, compare=False)
    _cell_owners: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.row_start) - 1

    def row_cells(self, r: int) -> list[int]:
        """Positions of row r's cells, as a Python list (read one by one)."""
        return self.rows_cells()[r]

    def rows_cells(self) -> list[list[int]]:
        """:meth:`row_cells` of every row (a search's inner loop indexes it directly)."""
        if self._row_cells is None:
            starts = self.row_start.tolist()
            order = self.by_row.tolist()
            object.__setattr__(self, "_row_cells", [order[a:b] for a, b in zip(starts[:-1], starts[1:])])
        assert self._row_cells is not None
        return self._row_cells

    def cell_owners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, target, col) of each cell: who its row stands for (mother a for both of her
        slots, n_a + b for b's appear row), whether its column is a target, and that target
        (0 elsewhere); what a constraint on a target's parent compares."""
        if self._cell_owners is None:
            n_a, n_b = self.block[0] // 2, self.block[1]
            owner = np.concatenate([np.arange(n_a), np.arange(n_a), n_a + np.arange(n_b)])[self.rows]
            target = self.cols < n_b
            object.__setattr__(self, "_cell_owners", (owner, target, np.where(target, self.cols, 0)))
        assert self._cell_owners is not None
        return self._cell_owners

    def cols_list(self) -> list[int]:
        if self._cols_list is None:
            object.__setattr__(self, "_cols_list", self.cols.tolist())
        assert self._cols_list is not None
        return self._cols_list


def pair_layout(pair: FramePair) -> Layout:
    """The :class:`Layout` of ``pair``'s assignment matrix."""
    n_a, n_b = len(pair.sources), len(pair.targets)
    ar, br = np.arange(n_a), np.arange(n_b)
    rows = np.concatenate([pair.edge_row, n_a + pair.edge_row, ar, n_a + ar, 2 * n_a + br]).astype(np.int64)
    cols = np.concatenate([pair.edge_col, pair.edge_col, n_b + ar, n_b + n_a + ar, br]).astype(np.int64)
    by_row = np.argsort(rows, kind="stable")
    row_start = np.searchsorted(rows[by_row], np.arange(2 * n_a + n_b + 1))
    return Layout((2 * n_a, n_b), rows, cols, by_row, row_start)


def layout_costs(
    graph: CandidateGraph,
    pair: FramePair,
    layout: Layout,
    forced: Mapping[int, int] | None = None,
    forbidden: Mapping[int, set[int] | frozenset[int]] | None = None,
) -> np.ndarray:
    """:func:`pair_cost_matrix` at the layout's cells only (the same values, bit for bit):
    what the duals and reduced costs of a constrained subproblem read, without its n × n
    matrix. A constraint on target j keeps (forced) or drops (forbidden) the rows of a parent,
    i.e. the cells of column j whose row stands for that parent."""
    n_a = len(pair.sources)
    src, dst = pair.sources, pair.targets
    ec = graph.edge_cost[pair.edges]
    cells = np.concatenate(
        [ec, second_slot(graph, pair.edges), graph.disappear_cost[src], np.zeros(n_a), graph.appear_cost[dst]]
    )
    return constrain_cells(pair, layout, cells, forced, forbidden)


def constrain_cells(
    pair: FramePair,
    layout: Layout,
    cells: np.ndarray,
    forced: Mapping[int, int] | None = None,
    forbidden: Mapping[int, set[int] | frozenset[int]] | None = None,
) -> np.ndarray:
    """``cells`` (the layout's unconstrained costs, changed in place and returned) with ∞ where
    a constraint drops a parent of a target; the parents' owners are looked up at once (a node
    deep in a Murty search constrains hundreds of targets)."""
    if not forced and not forbidden:
        return cells
    n_a, n_b = len(pair.sources), len(pair.targets)
    owner, target, col = layout.cell_owners()
    if forced:
        js = np.fromiter(forced.keys(), np.int64, len(forced))
        keep_owner = np.full(n_b, -1, np.int64)
        keep_owner[js] = parent_owners(pair, js, np.fromiter(forced.values(), np.int64, len(forced)))
        wanted = keep_owner[col]
        cells[target & (wanted >= 0) & (owner != wanted)] = np.inf
    if forbidden:
        je = [(j, e) for j, banned in forbidden.items() for e in banned]
        js = np.array([j for j, _ in je], np.int64)
        key = js * (n_a + n_b) + parent_owners(pair, js, np.array([e for _, e in je], np.int64))
        cells[target & np.isin(col * (n_a + n_b) + owner, key)] = np.inf
    return cells


def parent_owners(pair: FramePair, js: np.ndarray, es: np.ndarray) -> np.ndarray:
    """Who parent ``es[i]`` (edge index or −1) of target ``js[i]`` is, in the terms of
    :meth:`Layout.cell_owners`: its mother's index, or n_a + j where it appears."""
    linked = es != APPEAR
    e, j = es[linked], js[linked]
    at = np.searchsorted(pair.edges, e)
    ok = at < len(pair.edges)
    ok[ok] = (pair.edges[at[ok]] == e[ok]) & (pair.edge_col[at[ok]] == j[ok])
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"edge {int(e[bad])} does not enter target {int(j[bad])} of frame pair t={pair.t}")
    out = len(pair.sources) + js
    out[linked] = pair.edge_row[at]
    return out


def parent_rows(pair: FramePair, j: int, e: int) -> list[int]:
    """Matrix rows that stand for parent ``e`` (edge index or −1) of target ``j``."""
    n_a = len(pair.sources)
    if e == APPEAR:
        return [2 * n_a + j]
    k = int(np.searchsorted(pair.edges, e))
    if k >= len(pair.edges) or pair.edges[k] != e or pair.edge_col[k] != j:
        raise ValueError(f"edge {e} does not enter target {j} of frame pair t={pair.t}")
    r = int(pair.edge_row[k])
    return [r, n_a + r]


def parent_map_from_assignment(pair: FramePair, col_of_row: np.ndarray) -> np.ndarray:
    """Read the parent map (edge or −1 per target) off a solved assignment matrix."""
    n_a, n_b = len(pair.sources), len(pair.targets)
    parent = np.full(n_b, APPEAR, np.int64)
    slot_cols = col_of_row[: 2 * n_a]
    linked = slot_cols < n_b
    if linked.any():
        edge_at = np.full((max(n_a, 1), max(n_b, 1)), -1, np.int64)
        edge_at[pair.edge_row, pair.edge_col] = pair.edges
        r = np.flatnonzero(linked) % n_a
        c = slot_cols[linked]
        parent[c] = edge_at[r, c]
    return parent


def solve_pair_matrix(cost: np.ndarray) -> np.ndarray | None:
    """Column of each row in the optimal assignment of ``cost``, or None when infeasible."""
    if cost.shape[0] == 0:
        return np.zeros(0, np.int64)
    try:
        row_ind, col_ind = linear_sum_assignment(cost)
    except ValueError:  # scipy: "cost matrix is infeasible"
        return None
    if not np.all(np.isfinite(cost[row_ind, col_ind])):
        return None
    return col_ind.astype(np.int64)


def solve_pair(graph: CandidateGraph, pair: FramePair) -> np.ndarray:
    """An optimal assignment of :func:`pair_cost_matrix` (column of each row, as
    :func:`solve_pair_matrix`), without the matrix: every target takes one of its mothers'
    slots or its own appear row, a sparse rectangular matching (scipy's LAPJVsp) of
    ``targets × (slots + appear rows)`` priced ``c − disappear`` (slot 1), ``c + division``
    (slot 2) and ``appear``, the unmatched slots paying their disappear / spare column. The
    appear rows of linked targets then fill the free dummy columns (all cost 0 there). ~1 ms
    per frame pair of 370 cells against ~30 ms for the dense n × n matrix (n = 2·sources +
    targets)."""
    n_a, n_b = len(pair.sources), len(pair.targets)
    n = 2 * n_a + n_b
    col_of_row = np.empty(n, np.int64)
    ar = np.arange(n_a)
    if n_b == 0:
        col_of_row[:n_a], col_of_row[n_a:] = ar, n_a + ar
        return col_of_row
    br = np.arange(n_b)
    src = pair.sources[pair.edge_row]
    ec = graph.edge_cost[pair.edges]
    rows = np.concatenate([pair.edge_col, pair.edge_col, br])
    cols = np.concatenate([pair.edge_row, n_a + pair.edge_row, 2 * n_a + br])
    slot1, slot2 = ec - graph.disappear_cost[src], second_slot(graph, pair.edges)
    weight = np.concatenate([slot1, slot2, graph.appear_cost[pair.targets]])
    finite = np.isfinite(weight)  # a second slot an edge cannot take is no entry
    rows, cols, weight = rows[finite], cols[finite], weight[finite]
    # each target is matched once: shifting a target's weights leaves its choice; > 0 keeps
    # every weight an explicit entry of the sparse matrix
    low = np.full(n_b, np.inf)
    np.minimum.at(low, rows, weight)
    weight = weight - low[rows] + 1.0
    matrix = sp.csr_matrix((weight, (rows, cols)), shape=(n_b, n))
    target, taken = min_weight_full_bipartite_matching(matrix)
    row_of_target = np.empty(n_b, np.int64)
    row_of_target[target] = taken
    col_of_row[:n_a] = n_b + ar  # unmatched slot 1: disappears
    col_of_row[n_a : 2 * n_a] = n_b + n_a + ar  # unmatched slot 2: spare
    free = np.zeros(n, bool)
    slot = row_of_target < 2 * n_a
    free[col_of_row[row_of_target[slot]]] = True  # the dummy column a linked slot leaves
    col_of_row[row_of_target] = br
    linked = np.flatnonzero(slot)
    col_of_row[2 * n_a + linked] = np.flatnonzero(free)
    return col_of_row


def assign_frame_pair(
    graph: CandidateGraph,
    pair: FramePair,
    forced: Mapping[int, int] | None = None,
    forbidden: Mapping[int, set[int] | frozenset[int]] | None = None,
) -> tuple[np.ndarray, float] | None:
    """Best parent map of one frame pair and its cost, or None when nothing is feasible.

    Constraints as in :func:`pair_cost_matrix`; the cost is :func:`parent_map_cost`.
    """
    col_of_row = solve_pair_matrix(pair_cost_matrix(graph, pair, forced, forbidden))
    if col_of_row is None:
        return None
    parent = parent_map_from_assignment(pair, col_of_row)
    return parent, parent_map_cost(graph, pair, parent)


def boundary_cost(graph: CandidateGraph) -> float:
    """Costs every solution pays: node costs, appearing first frame, vanishing last frame."""
    if graph.n_nodes == 0:
        return 0.0
    first = graph.node_t == graph.node_t.min()
    last = graph.node_t == graph.node_t.max()
    return float(graph.node_cost.sum() + graph.appear_cost[first].sum() + graph.disappear_cost[last].sum())


def solution_from_parent_maps(
    graph: CandidateGraph,
    parents: list[np.ndarray],
    objective: float,
    *,
    seconds: float = 0.0,
    backend: str = "lap",
    info: dict[str, Any] | None = None,
) -> Solution:
    """Turn one parent map per frame pair into a :class:`Solution` (all nodes selected)."""
    edge_selected = np.zeros(graph.n_edges, bool)
    for parent in parents:
        edge_selected[parent[parent >= 0]] = True
    return Solution(
        node_selected=np.ones(graph.n_nodes, bool),
        edge_selected=edge_selected,
        objective=objective,
        status=SolveStatus.OPTIMAL,
        bound=objective,
        gap=0.0,
        seconds=seconds,
        backend=backend,
        info=dict(info or {}),
    )


def pins_to_constraints(
    graph: CandidateGraph, pairs: list[FramePair], pins: Pins | None
) -> list[tuple[dict[int, int], dict[int, set[int]]]]:
    """Translate edge pins into per-pair forced/forbidden parents; node pins are rejected."""
    out: list[tuple[dict[int, int], dict[int, set[int]]]] = [({}, {}) for _ in pairs]
    if pins is None:
        return out
    if len(pins.forbid_nodes):
        raise ValueError("the LAP selects every node of a fixed segmentation; cannot forbid nodes")
    if pins.has_events:
        raise ValueError("the frame-pair LAP has no division or ending variables to pin; use the joint solver")
    if not len(pins.must_edges) and not len(pins.forbid_edges):
        return out
    t_min = int(graph.node_t.min())
    for e in np.asarray(pins.must_edges, np.int64):
        k = int(graph.node_t[graph.edge_source[e]]) - t_min
        j = int(np.flatnonzero(pairs[k].targets == graph.edge_target[e])[0])
        if j in out[k][0] and out[k][0][j] != e:
            raise ValueError(f"pins force two edges into node {int(graph.edge_target[e])}")
        out[k][0][j] = int(e)
    for e in np.asarray(pins.forbid_edges, np.int64):
        k = int(graph.node_t[graph.edge_source[e]]) - t_min
        j = int(np.flatnonzero(pairs[k].targets == graph.edge_target[e])[0])
        out[k][1].setdefault(j, set()).add(int(e))
    return out


def solve_lap(graph: CandidateGraph, pins: Pins | None = None, *, ignore_division_pairs: bool = False) -> Solution:
    """Optimal tracking of a fixed segmentation by one assignment per frame pair.

    The objective is the joint model's (node costs + edges + appear/disappear + divisions), so
    it can be compared with :mod:`solvers.joint`. Edge pins are honoured; a pin set that leaves
    a frame pair infeasible gives status INFEASIBLE. Raises ValueError for graphs the
    decomposition does not cover (competing candidates, dt > 1 links, see module docstring).
    """
    start = time.perf_counter()
    check_lap_graph(graph, ignore_division_pairs=ignore_division_pairs)
    pairs = frame_pairs(graph)
    constraints = pins_to_constraints(graph, pairs, pins)
    parents, total = [], boundary_cost(graph)
    for pair, (forced, forbidden) in zip(pairs, constraints):
        best = assign_frame_pair(graph, pair, forced, forbidden)
        if best is None:
            return Solution(
                node_selected=np.zeros(graph.n_nodes, bool),
                edge_selected=np.zeros(graph.n_edges, bool),
                objective=float("nan"),
                status=SolveStatus.INFEASIBLE,
                seconds=time.perf_counter() - start,
                backend="lap",
                info={"infeasible_frame": pair.t},
            )
        parents.append(best[0])
        total += best[1]
    return solution_from_parent_maps(
        graph, parents, total, seconds=time.perf_counter() - start, info={"pairs": len(pairs)}
    )
