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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from solvers.lap import FramePair, pair_cost_matrix, parent_map_from_assignment, solve_pair_matrix
from solvers.murty import reduced_costs
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
    cost = pair_cost_matrix(graph, pair)
    col_of_row = solve_pair_matrix(cost)
    assert col_of_row is not None  # appear/disappear always feasible without constraints
    red = reduced_costs(cost, col_of_row)
    n = len(cost)
    row_of_col = np.empty_like(col_of_row)
    row_of_col[col_of_row] = np.arange(n)
    walk = red[row_of_col]  # walk[c, c'] = c̄[row(c), c']
    np.fill_diagonal(walk, np.inf)
    rr, cc = np.nonzero(np.isfinite(walk))
    csr = sp.csr_matrix((walk[rr, cc] + _EPS, (rr, cc)), shape=(n, n))
    dist = dijkstra(csr, directed=True, indices=np.arange(n_b))  # (n_b, n)

    def delta(rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        moved = col_of_row[rows]
        path = np.where(moved == j, 0.0, dist[j, moved])
        return np.where(moved == j, 0.0, red[rows, j] + path)

    j = pair.edge_col
    edge_delta = np.minimum(delta(pair.edge_row, j), delta(n_a + pair.edge_row, j))
    targets = np.arange(n_b)
    appear_delta = delta(2 * n_a + targets, targets)
    return edge_delta, appear_delta, parent_map_from_assignment(pair, col_of_row)
