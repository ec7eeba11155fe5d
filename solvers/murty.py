"""Exact K best solutions of the frame-pair assignment model (Murty / Lawler partitioning).

A solution of the LAP model (:mod:`solvers.lap`) is the list of parent maps ``p(b)`` of all
targets of all frame pairs (edge into ``b`` or "appears"). Lawler's generalisation of Murty's
method partitions on those choices: with the targets in a fixed order and ``S`` the best solution
of a subspace, the children are "targets 1..i−1 keep their parent in ``S``, target i takes any
other" for every free i. The children are disjoint and together cover the subspace minus ``S``,
so popping subspaces from a heap by their optimum lists solutions best first without repeats.
Partitioning on parents rather than matrix cells matters: the two division slots of a mother
make several assignments encode one solution, which a cell-level Murty would list repeatedly.

Three things keep this cheap on a whole movie (bacteria every 4th frame, 1,042 cells: top-10
in ~1.4 s against ~0.5 s for the best alone; full re-solves per child took 62 s):

* Frame pairs are independent, so a child differs from its parent solution in one frame pair
  only, and only that pair is re-solved. A child that branches in a later pair than its parent
  faces exactly a child problem of the unconstrained root there, so those are solved once.
* Children are pushed with a lower bound and solved only when popped (lazy Murty). The bound
  is Miller, Stone & Cox's (1997): with optimal duals of the parent's assignment every reduced
  cost is ≥ 0, and a child that takes target j away from its row r must pay at least the
  cheapest reduced cost of another row into j plus that of another column for r.
  Duals come from the optimal assignment by Bellman–Ford over rows (no negative cycles at an
  optimum), since scipy's solver does not return them.
* A popped child is not re-solved: one shortest augmenting path on the parent's reduced costs
  re-optimises it (:class:`_Augmenter`), and that Dijkstra search pauses as soon as its
  frontier passes the next heap entry, its frontier label becoming the child's new bound.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.lap import (
    APPEAR,
    FramePair,
    Layout,
    boundary_cost,
    check_lap_graph,
    constrain_cells,
    frame_pairs,
    layout_costs,
    pair_layout,
    parent_map_cost,
    parent_map_from_assignment,
    solution_from_parent_maps,
    solve_pair,
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
class _Solved:
    """An optimal assignment of one frame pair under a node's constraints."""

    parent: np.ndarray  # parent map (edge or −1 per target)
    cost: float  # parent_map_cost of ``parent``
    col_of_row: np.ndarray  # the assignment itself (needed to warm-start the children)
    red: Reduced | None = None  # reduced costs, filled when children are generated


@dataclass
class _Node:
    """A solved subspace: constrained only in frame pair ``q`` (targets before ``start`` fixed)."""

    total: float
    maps: tuple[np.ndarray, ...]
    q: int
    start: int
    solved: _Solved
    forced: Forced = field(default_factory=dict)
    forbidden: Forbidden = field(default_factory=dict)


def reduced_costs(cost: np.ndarray, col_of_row: np.ndarray, layout: Layout | None = None) -> np.ndarray:
    """Reduced costs ``c − u − v`` (≥ 0, 0 on the assignment) from duals of an optimum
    (:func:`dual_potentials`)."""
    if len(cost) == 0:
        return cost.copy()
    pi, v = dual_potentials(cost, col_of_row, layout)
    red: np.ndarray = cost + pi[:, None]
    red -= v[None, :]
    np.maximum(red, 0.0, out=red)
    return red


def dual_potentials(
    cost: np.ndarray, col_of_row: np.ndarray, layout: Layout | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Duals of an optimal assignment: row potentials π and column potentials v, with
    reduced costs ``c[r, c] + π[r] − v[c] ≥ 0`` and 0 on the assignment.

    π are shortest distances in the graph "row r takes the column of row r′" with weight
    ``c[r, σ(r′)] − c[r′, σ(r′)]`` from a source joined to every row at 0 (Bellman–Ford, no
    negative cycles at an optimum); then ``v[σ(r)] = c[r, σ(r)] + π[r]`` satisfies
    complementary slackness. With the matrix's ``layout`` (:func:`solvers.lap.pair_layout`)
    each round relaxes the few finite cells outside the all-zero block one by one and the
    block through its smallest π: O(cells) instead of O(n²), the same rounds and bit for bit
    the same sums and minima as the dense relaxation.
    """
    n = len(cost)
    if layout is not None:
        return layout_potentials(cost[layout.rows, layout.cols], col_of_row, layout)
    diag = cost[np.arange(n), col_of_row]
    pi = np.zeros(n)
    weight = cost[:, col_of_row] - diag[None, :]
    for _ in range(n + 1):
        new = np.minimum(pi, (pi[:, None] + weight).min(axis=0))
        if np.array_equal(new, pi):
            break
        pi = new
    v = np.empty(n)
    v[col_of_row] = diag + pi
    return pi, v


def layout_potentials(cells: np.ndarray, col_of_row: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dual_potentials` from the costs at the layout's cells (the rest of the matrix is
    the all-zero block or ∞), bit for bit what the dense relaxation gives."""
    n = layout.n
    r0, c0 = layout.block
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(n)
    diag = np.zeros(n)  # rows assigned inside the block pay its 0
    on = col_of_row[layout.rows] == layout.cols
    diag[layout.rows[on]] = cells[on]
    keep = np.isfinite(cells)
    rows, cols, cell = layout.rows[keep], layout.cols[keep], cells[keep]
    to = row_of_col[cols]  # arc rows[i] → to[i]
    order = np.argsort(to, kind="stable")
    rows, to = rows[order], to[order]
    weight = cell[order] - diag[to]
    heads = np.flatnonzero(np.r_[True, to[1:] != to[:-1]]) if len(to) else np.zeros(0, np.int64)
    reached = to[heads]
    block_to = row_of_col[c0:]  # rows holding a block column (one each)
    block_weight = 0.0 - diag[block_to]
    pi = np.zeros(n)
    for _ in range(n + 1):
        relaxed = np.full(n, np.inf)
        if len(heads):
            relaxed[reached] = np.minimum.reduceat(pi[rows] + weight, heads)
        if r0 < n and len(block_to):
            # min over block rows of π[r] + w = (min π) + w: rounding is monotone
            relaxed[block_to] = np.minimum(relaxed[block_to], pi[r0:].min() + block_weight)
        new = np.minimum(pi, relaxed)
        if np.array_equal(new, pi):
            break
        pi = new
    v = np.empty(n)
    v[col_of_row] = diag + pi
    return pi, v


class Reduced:
    """Reduced costs of one solved assignment matrix, computed where they are read: rows for
    the augmenting searches (kept, the root's are read by every child of its pair), the
    layout's cells for the bounds. Built from the costs at the layout's cells
    (:func:`solvers.lap.layout_costs`), bit for bit the values of :func:`reduced_costs`
    without an n × n array."""

    def __init__(self, cells: np.ndarray, col_of_row: np.ndarray, layout: Layout) -> None:
        self.cells, self.layout = cells, layout
        self.pi, self.v = layout_potentials(cells, col_of_row, layout)
        self._rows: dict[int, np.ndarray] = {}
        self._at_cells: np.ndarray | None = None
        self._cells_list: list[float] | None = None
        self._pi_list: list[float] | None = None

    def __len__(self) -> int:
        return self.layout.n

    def row(self, r: int) -> np.ndarray:
        got = self._rows.get(r)
        if got is None:
            lay = self.layout
            got = np.full(lay.n, np.inf)
            if r >= lay.block[0]:
                got[lay.block[1] :] = 0.0
            at = lay.by_row[lay.row_start[r] : lay.row_start[r + 1]]
            got[lay.cols[at]] = self.cells[at]
            got += self.pi[r]
            got -= self.v
            np.maximum(got, 0.0, out=got)
            self._rows[r] = got
        return got

    def at_cells(self) -> np.ndarray:
        """The reduced cost of every layout cell (∞ where a constraint removed it)."""
        if self._at_cells is None:
            lay = self.layout
            self._at_cells = np.maximum(self.cells + self.pi[lay.rows] - self.v[lay.cols], 0.0)
        return self._at_cells

    def cells_list(self) -> list[float]:
        """:meth:`at_cells` as Python floats (the augmenting searches read them one by one)."""
        if self._cells_list is None:
            self._cells_list = self.at_cells().tolist()
        return self._cells_list

    def pi_list(self) -> list[float]:
        """π as Python floats (the augmenting searches read them one by one)."""
        if self._pi_list is None:
            self._pi_list = self.pi.tolist()
        return self._pi_list

    def block_row_min(self, rows: np.ndarray) -> np.ndarray:
        """Cheapest reduced cost of these block rows over the block's columns (largest v)."""
        c0 = self.layout.block[1]
        out: np.ndarray = np.maximum(0.0 + self.pi[rows] - self.v[c0:].max(), 0.0)
        return out


def _owners(pair: FramePair, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Who each matrix row stands for (mother a, or n_a + b for b's appear row), and the
    owner of each target's parent in ``parent`` (same code), to express parent constraints."""
    n_a, n_b = len(pair.sources), len(pair.targets)
    row_owner = np.concatenate([np.arange(n_a), np.arange(n_a), n_a + np.arange(n_b)])
    col_owner = n_a + np.arange(n_b)
    linked = parent >= 0
    col_owner[linked] = pair.edge_row[np.searchsorted(pair.edges, parent[linked])]
    return row_owner, col_owner


def child_bounds(pair: FramePair, red: Reduced, col_of_row: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Lower bound on the cost increase of "target j leaves its parent ``parent[j]``", per j.

    Miller, Stone & Cox: with reduced costs ≥ 0, column j needs a row of another parent and
    the row that served j needs another column, two distinct cells of the matrix. Only the
    layout's cells can be finite outside the all-zero block (:class:`solvers.lap.Layout`), and
    a block row's cheapest block column is the one of largest v, so both minima are taken over
    those cells (the same values as over the whole matrix).
    """
    n_b = len(pair.targets)
    if n_b == 0:
        return np.zeros(0)
    row_owner, col_owner = _owners(pair, parent)
    n = len(col_of_row)
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(n)
    rows, cols = red.layout.rows, red.layout.cols
    value = red.at_cells()
    into = (cols < n_b) & (row_owner[rows] != col_owner[np.minimum(cols, n_b - 1)])
    column_term = np.full(n_b, np.inf)
    np.minimum.at(column_term, cols[into], value[into])
    serving = row_of_col[:n_b]
    who = np.full(n, -1, np.int64)  # the target a row serves, or -1
    who[serving] = np.arange(n_b)
    mine = who[rows]
    other = (mine >= 0) & (cols != np.maximum(mine, 0))
    row_term = np.full(n_b, np.inf)
    np.minimum.at(row_term, mine[other], value[other])
    r0, c0 = red.layout.block
    if r0 < n and c0 < n:
        in_block = serving >= r0
        row_term[in_block] = np.minimum(row_term[in_block], red.block_row_min(serving[in_block]))
    # the serving row must move only if it belongs to the banned parent (ties: it may not)
    moves = row_owner[serving] == col_owner
    bound: np.ndarray = column_term + np.where(moves, row_term, 0.0)
    return bound


class _Augmenter:
    """Re-optimise after "column j loses its parent, columns ``fixed`` keep theirs".

    The parent's assignment without the cell serving j is optimal for its size under the
    parent's duals (reduced costs ≥ 0, 0 on every kept pair), and the new constraints only
    remove cells, so one shortest augmenting path (Dijkstra on reduced costs) from the freed
    row to column j gives the child's optimum: the successive-shortest-path step of Jonker &
    Volgenant instead of a full re-solve. The search is resumable: :meth:`run` stops once
    every open label exceeds ``cap``, and that label is a lower bound on the child's increase,
    so children whose alternatives are dear are explored only as far as the ranking needs.

    The open labels sit in a binary heap of ``(label, column)`` with lazy deletion (an entry
    is stale once its column has a smaller label: relabelled, or settled and popped), so the next pick is the smallest
    label and among equal labels the smallest column: exactly what ``argmin`` over a dense
    label array picks, without an O(n) scan per step.
    """

    def __init__(
        self,
        red: Reduced,
        col_of_row: np.ndarray,
        j: int,
        row_owner: np.ndarray,
        col_owner: np.ndarray,
        fixed: np.ndarray,
        base_parent: np.ndarray,
    ) -> None:
        self.red, self.col_of_row, self.j = red, col_of_row, j
        self.base_parent = base_parent  # the parent map of ``col_of_row``
        row_of_col = np.empty_like(col_of_row)
        row_of_col[col_of_row] = np.arange(len(col_of_row))
        self.row_of_col = row_of_col.tolist()
        self.r0 = self.row_of_col[j]
        n = len(red)
        self.dist: list[float] = [np.inf] * n
        self.pred: list[int] = [-1] * n
        self.heap: list[tuple[float, int]] = []
        is_fixed = bytearray(n)
        for f in fixed.tolist():
            is_fixed[f] = 1
        self.is_fixed = is_fixed
        self.block_pi = np.inf  # smallest π of the block rows scanned so far
        self.row_owner_list, self.col_owner_list = row_owner.tolist(), col_owner.tolist()
        self.row: int | None = self.r0
        self.base = 0.0
        self.bound = 0.0  # lower bound on the cost increase
        self.result: tuple[float, np.ndarray] | None = None
        self.infeasible = False
        self.steps = 0

    def run(self, offset: float, cap: float) -> str:
        """Advance until found ("found"), ``offset`` + every label exceeds ``cap`` ("capped"),
        or "infeasible". Comparing ``offset + label`` with the heap's priorities directly (not
        ``label`` with ``cap − offset``) guarantees progress despite rounding.

        Each step relaxes the columns of the row just reached from its label ``base``: its few
        layout cells one by one, and for a row of the all-zero block the block's columns at
        once, unless a block row scanned before has a π no larger (its labels there, from a
        base no larger, are then no larger column by column, rounding being monotone: nothing
        can improve). The same labels and predecessors as relaxing the whole row."""
        if self.result is not None:
            return "found"
        if self.infeasible:
            return "infeasible"
        red, lay = self.red, self.red.layout
        r0, c0 = lay.block
        j = self.j
        dist, pred, heap = self.dist, self.pred, self.heap
        row_of_col, is_fixed = self.row_of_col, self.is_fixed
        col_owner, row_owner = self.col_owner_list, self.row_owner_list
        owner_j = col_owner[j]
        n_cols = len(col_owner)
        cells, cols, pi = red.cells_list(), lay.cols_list(), red.pi_list()
        row_cells = lay.rows_cells()  # indexed directly: no call per step
        push, pop = heapq.heappush, heapq.heappop
        inf = np.inf
        row, base, block_pi, steps = self.row, self.base, self.block_pi, self.steps
        while True:
            if row is not None:
                if row >= r0 and pi[row] < block_pi:
                    block_pi = pi[row]
                    for c, val in enumerate((base + red.row(row)[c0:]).tolist(), c0):
                        if val < dist[c]:
                            dist[c] = val
                            pred[c] = row
                            push(heap, (val, c))
                owner = row_owner[row]
                ban_j = owner == owner_j
                for at in row_cells[row]:
                    c = cols[at]
                    if c < n_cols and ((is_fixed[c] and col_owner[c] != owner) or (ban_j and c == j)):
                        continue
                    val = base + cells[at]
                    if val < dist[c]:
                        dist[c] = val
                        pred[c] = row
                        push(heap, (val, c))
                steps += 1
            # the smallest label, dropping stale entries (a column settled or relabelled since
            # has a label below the entry's: every relaxation adds a reduced cost ≥ 0 to a base
            # no smaller than any settled label, so settled columns never improve and need no
            # flag)
            while heap:
                label, c = heap[0]
                if label > dist[c]:
                    pop(heap)
                else:
                    break
            else:
                label = inf
            if not label < inf or offset + label > cap:
                self.row, self.base, self.block_pi, self.steps = None, base, block_pi, steps
                if label < inf:
                    self.bound = label
                    return "capped"
                self.infeasible = True
                return "infeasible"
            if c == j:
                self.bound, self.steps = label, steps
                break
            pop(heap)
            base = label
            row = row_of_col[c]
        new = self.col_of_row.copy()
        c = j
        while True:
            r = pred[c]
            previous = int(new[r])
            new[r] = c
            if r == self.r0:
                break
            c = previous
        self.result = (dist[j], new)
        # the labels are not needed once the result is known: free them
        self.dist, self.pred, self.heap, self.is_fixed = [], [], [], bytearray()
        return "found"


# heap entries (priority, tie-break counter, kind, item): a "solved" _Node, or a "child" still to
# solve: (parent node, frame pair q, target j leaving its parent, augmenter or None if not started)
_Child = tuple[_Node, int, int, _Augmenter | None]
_Entry = tuple[float, int, str, _Node | _Child]


class _Search:
    """State of one enumeration: the frame pairs, the root's solutions and solved children."""

    def __init__(self, graph: CandidateGraph, pairs: list[FramePair]) -> None:
        self.graph, self.pairs = graph, pairs
        self.layouts = [pair_layout(pair) for pair in pairs]
        self.root: list[_Solved] = []
        self.root_child: dict[tuple[int, int], _Augmenter] = {}
        self.edge_of: dict[int, dict[int, int]] = {}  # per pair: slot row's mother * n_b + target → edge
        self.solves = 0
        self.augments = 0

    def solve_root(self, q: int) -> _Solved:
        pair, layout = self.pairs[q], self.layouts[q]
        self.solves += 1
        col_of_row = solve_pair(self.graph, pair)  # appear/disappear: always feasible
        parent = parent_map_from_assignment(pair, col_of_row)
        return _Solved(
            parent,
            parent_map_cost(self.graph, pair, parent),
            col_of_row,
            red=Reduced(layout_costs(self.graph, pair, layout), col_of_row, layout),
        )

    def ensure_red(self, node: _Node) -> Reduced:
        if node.solved.red is None:
            cells = self.constrained_cells(node.q, node.forced, node.forbidden)
            node.solved.red = Reduced(cells, node.solved.col_of_row, self.layouts[node.q])
        return node.solved.red

    def constrained_cells(self, q: int, forced: Forced, forbidden: Forbidden) -> np.ndarray:
        """:func:`solvers.lap.layout_costs` of pair ``q`` under these constraints, bit for bit,
        from the root's unconstrained cells instead of rebuilding them."""
        red = self.root[q].red
        assert red is not None  # solve_root fills it
        return constrain_cells(self.pairs[q], self.layouts[q], red.cells.copy(), forced, forbidden)

    def augmenter(self, base: _Solved, q: int, start: int, j: int) -> _Augmenter:
        """Search for ``base`` with targets start..j−1 fixed and target j given another parent."""
        assert base.red is not None
        row_owner, col_owner = _owners(self.pairs[q], base.parent)
        self.augments += 1
        return _Augmenter(base.red, base.col_of_row, j, row_owner, col_owner, np.arange(start, j), base.parent)

    def solved(self, q: int, aug: _Augmenter) -> _Solved:
        assert aug.result is not None
        new = aug.result[1]
        parent = self.moved_parents(q, aug.base_parent, aug.col_of_row, new)
        return _Solved(parent, parent_map_cost(self.graph, self.pairs[q], parent), new)

    def moved_parents(self, q: int, parent: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """:func:`solvers.lap.parent_map_from_assignment` of ``new`` from that of ``old``
        (``parent``): an augmenting path moves a few rows, and only the targets they now
        serve change parent (a mother slot's edge, or appears)."""
        pair = self.pairs[q]
        n_a, n_b = len(pair.sources), len(pair.targets)
        edge_of = self.edge_of.get(q)
        if edge_of is None:
            keys = (pair.edge_row * max(n_b, 1) + pair.edge_col).tolist()
            edge_of = self.edge_of[q] = dict(zip(keys, pair.edges.tolist()))
        out = parent.copy()
        for r in np.flatnonzero(new != old).tolist():
            c = int(new[r])
            if c < n_b:
                out[c] = edge_of[(r % n_a) * max(n_b, 1) + c] if r < 2 * n_a else APPEAR
        return out


def kbest_parent_maps(graph: CandidateGraph, k: int, *, ignore_division_pairs: bool = False) -> list[RankedMaps]:
    """The ``k`` best solutions of the frame-pair model of ``graph``, best first (exact).

    Fewer are returned when fewer exist. Ties are broken arbitrarily but consistently.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    check_lap_graph(graph, ignore_division_pairs=ignore_division_pairs)
    pairs = frame_pairs(graph)
    base = boundary_cost(graph)
    search = _Search(graph, pairs)
    search.root = [search.solve_root(q) for q in range(len(pairs))]
    maps = tuple(s.parent for s in search.root)
    total = base + sum(s.cost for s in search.root)
    if not pairs:
        return [RankedMaps(total, ())]
    root = _Node(total, maps, q=0, start=0, solved=search.root[0])
    # root bounds of every pair, reused by every node that branches in a later pair
    later = _root_bounds(search)
    counter = itertools.count()
    heap: list[_Entry] = [(root.total, next(counter), "solved", root)]
    found: list[RankedMaps] = []
    while heap and len(found) < k:
        _, _, kind, item = heapq.heappop(heap)
        if kind == "solved":
            assert isinstance(item, _Node)
            found.append(RankedMaps(item.total, item.maps))
            if len(found) < k:
                _push_children(item, item is root, search, later, heap, counter)
            continue
        assert isinstance(item, tuple)
        node, q, j, aug = item
        if aug is None:
            aug = _augmenter_for(node, q, j, search)
        status = aug.run(node.total, heap[0][0] if heap else np.inf)
        if status == "capped":
            heapq.heappush(heap, (node.total + aug.bound, next(counter), "child", (node, q, j, aug)))
        elif status == "found":
            child = _child_node(node, q, j, search.solved(q, aug), search)
            heapq.heappush(heap, (child.total, next(counter), "solved", child))
    return found


def _root_bounds(search: _Search) -> list[tuple[float, int, int]]:
    """(bound, q, j) of every root child with a finite bound, cheapest first."""
    bounds = []
    for q, s in enumerate(search.root):
        assert s.red is not None  # solve_root fills it
        for j, d in enumerate(child_bounds(search.pairs[q], s.red, s.col_of_row, s.parent)):
            if np.isfinite(d):
                bounds.append((float(d), q, j))
    return sorted(bounds)


def _augmenter_for(node: _Node, q: int, j: int, search: _Search) -> _Augmenter:
    if q != node.q:  # pair q is untouched in ``node``: the same problem as the root's child
        key = (q, j)
        if key not in search.root_child:
            search.root_child[key] = search.augmenter(search.root[q], q, 0, j)
        return search.root_child[key]
    search.ensure_red(node)
    return search.augmenter(node.solved, q, node.start, j)


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


def _child_node(node: _Node, q: int, j: int, best: _Solved, search: _Search) -> _Node:
    old = search.root[q].cost if q != node.q else node.solved.cost
    forced, forbidden = _child_constraints(node, q, j)
    maps = node.maps[:q] + (best.parent,) + node.maps[q + 1 :]
    return _Node(node.total - old + best.cost, maps, q=q, start=j, solved=best, forced=forced, forbidden=forbidden)


def _push_children(
    node: _Node,
    is_root: bool,
    search: _Search,
    later: list[tuple[float, int, int]],
    heap: list[_Entry],
    counter: itertools.count[int],
) -> None:
    """Push the unsolved children of ``node`` with their Miller–Stone–Cox lower bounds."""
    if not is_root:
        red = search.ensure_red(node)
        deltas = child_bounds(search.pairs[node.q], red, node.solved.col_of_row, node.solved.parent)
        for j, d in enumerate(deltas[node.start :].tolist(), node.start):  # Python floats: no scalar boxing
            if math.isfinite(d):
                heapq.heappush(heap, (node.total + d, next(counter), "child", (node, node.q, j, None)))
    first_later = node.q if is_root else node.q + 1
    if first_later >= len(search.pairs):  # no later pair (always so for one frame pair)
        return
    for delta, q, j in later:
        if q >= first_later:
            heapq.heappush(heap, (node.total + delta, next(counter), "child", (node, q, j, None)))


def kbest_lap(graph: CandidateGraph, k: int, *, ignore_division_pairs: bool = False) -> list[Solution]:
    """The ``k`` best solutions of a fixed-segmentation graph as :class:`Solution`, best first.

    ``info["rank"]`` is 0 for the optimum; ``seconds`` is the time of the whole enumeration.
    """
    start = time.perf_counter()
    ranked = kbest_parent_maps(graph, k, ignore_division_pairs=ignore_division_pairs)
    seconds = time.perf_counter() - start
    return [
        solution_from_parent_maps(
            graph,
            list(r.parent_maps),
            r.objective,
            seconds=seconds,
            backend="lap-murty",
            info={"rank": rank},
        )
        for rank, r in enumerate(ranked)
    ]


def kbest_frame_pair(graph: CandidateGraph, pair: FramePair, k: int) -> list[tuple[float, np.ndarray]]:
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
        edge_division_cost=None if graph.edge_division_cost is None else graph.edge_division_cost[pair.edges],
    )
