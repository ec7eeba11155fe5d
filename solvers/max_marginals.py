r"""Max-marginals of the frame-pair assignment: the best solution for every option of every cell.

For target j of a frame pair and each of its options o (a candidate mother, or "appears"),
``Δ_j(o) = min{cost(A) : A gives j the parent o} − min_A cost(A)``. The parental softmax (SM)
ignores that a mother can take at most two daughters, so a cell whose nearest mother is busy
with its own daughter gets a low probability for its true, assigned link; ``Δ`` sees the whole
assignment. ``exp(−Δ_j(o)/T)`` normalised over the options of j is the max-product analogue of
the posterior marginal, and is what local-enumeration error predictors compute (Betjes et al.
2024, cited by the paper as a promising alternative to global enumeration).

All ``Δ`` of a frame pair come from one optimal assignment: with reduced costs ``c̄ ≥ 0`` from its
duals, forcing row r (a row of option o) onto column j costs ``c̄[r, j]`` plus the shortest
alternating path from j's old row to r's old column (r's column is freed, j's row must move);
one Dijkstra per target from its column over the graph "column c → column c' at c̄[row(c), c']"
gives those paths for every option at once (scipy's C Dijkstra, all targets in one call).
None of it needs the n × n matrix: the optimum comes from a sparse matching
(:func:`solvers.lap.solve_pair`), the duals and reduced costs from the costs at the pair
layout's cells (:func:`solvers.murty.layout_potentials`), and the walk crosses the all-zero
block of appear rows × dummy columns through one hub node (:func:`_walk_graph`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from solvers.lap import FramePair, Layout, layout_costs, pair_layout, parent_map_from_assignment, solve_pair
from solvers.murty import layout_potentials
from solvers.types import CandidateGraph

_EPS = 1e-12  # keeps zero reduced costs as explicit arcs of the sparse graph


def option_deltas(graph: CandidateGraph, pair: FramePair) -> tuple[np.ndarray, np.ndarray]:
    """(Δ of each edge of ``pair``, Δ of "appears" for each target), both ≥ 0, inf if impossible."""
    edge_delta, appear_delta, _ = option_deltas_and_optimum(graph, pair)
    return edge_delta, appear_delta


def option_deltas_and_optimum(graph: CandidateGraph, pair: FramePair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`option_deltas` and the optimum they are measured from (parent map: edge or −1
    per target, :func:`solvers.lap.parent_map_from_assignment`)."""
    n_a, n_b = len(pair.sources), len(pair.targets)
    if n_b == 0:
        return np.zeros(len(pair.edges)), np.zeros(0), np.zeros(0, np.int64)
    if n_a == 0:
        return np.zeros(0), np.zeros(n_b), np.full(n_b, -1, np.int64)
    col_of_row = solve_pair(graph, pair)
    layout = pair_layout(pair)
    n, m = layout.n, len(pair.edges)
    cells = layout_costs(graph, pair, layout)
    pi, v = layout_potentials(cells, col_of_row, layout)
    red = np.maximum(cells + pi[layout.rows] - v[layout.cols], 0.0)  # at the layout's cells
    walk, into_hub = _walk_graph(red, n, col_of_row, layout, pi, v)
    # a shortest walk passes the hub at most once (weights ≥ 0): the targets' walks around it
    # stay in their small neighbourhoods, and one search from the hub covers the rest
    near = dijkstra(walk[:n, :n], directed=True, indices=np.arange(n_b))  # (n_b, n), no hub
    from_hub = dijkstra(walk, directed=True, indices=np.array([n]))[0, :n]
    entry, weight = into_hub
    to_hub = (near[:, entry] + weight).min(axis=1) if len(entry) else np.full(n_b, np.inf)

    def delta(at: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Δ of the options whose cells are the layout's cells ``at`` (rows into targets j)."""
        moved = col_of_row[layout.rows[at]]
        path = np.where(moved == j, 0.0, np.minimum(near[j, moved], to_hub[j] + from_hub[moved]))
        return np.where(moved == j, 0.0, red[at] + path)

    j = pair.edge_col
    edge_delta = np.minimum(delta(np.arange(m), j), delta(m + np.arange(m), j))
    targets = np.arange(n_b)
    appear_delta = delta(2 * m + 2 * n_a + targets, targets)  # pair_layout's order: appear cells last
    return edge_delta, appear_delta, parent_map_from_assignment(pair, col_of_row)


def _walk_graph(
    red: np.ndarray,
    n: int,
    col_of_row: np.ndarray,
    layout: Layout,
    pi: np.ndarray,
    v: np.ndarray,
) -> tuple[sp.csr_matrix, tuple[np.ndarray, np.ndarray]]:
    """The graph "column c → column c′ at c̄[row(c), c′]" as a sparse matrix, with one extra
    node (the hub, index n) for the all-zero block of appear rows × dummy columns
    (:class:`solvers.lap.Layout`): there c̄ = π[r] − v[c′] splits into ``c → hub`` at
    π[r] − M and ``hub → c′`` at M − v[c′], M the largest v of the block's columns (both ≥ 0
    since c̄ ≥ 0), so its ~n² arcs become ~n and the distances stay the same up to rounding.
    Also returns the arcs into the hub (their tails and weights)."""
    r0, c0 = layout.block
    keep = np.isfinite(red) & (col_of_row[layout.rows] != layout.cols)  # no arc from a column to itself
    rr, cc = layout.rows[keep], layout.cols[keep]
    src, dst, w = [col_of_row[rr]], [cc], [red[keep]]
    into: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0))
    if r0 < n and c0 < n:
        m = float(v[c0:].max())
        held = np.arange(r0, n)  # the block rows, through the hub from the columns they hold
        src += [col_of_row[held], np.full(n - c0, n)]
        dst += [np.full(len(held), n), np.arange(c0, n)]
        w += [np.maximum(pi[held] - m, 0.0), np.maximum(m - v[c0:], 0.0)]
        into = (col_of_row[held], w[1] + _EPS)
    weights = np.concatenate(w) + _EPS
    graph = sp.csr_matrix((weights, (np.concatenate(src), np.concatenate(dst))), shape=(n + 1, n + 1))
    return graph, into
