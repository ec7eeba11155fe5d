r"""The joint selection + assignment integer program, built once for every backend.

Variables (all binary), in this column order::

    x_n  node n selected            (N)      a_n  n appears (no incoming edge)   (N)
    y_e  edge e selected            (E)      d_n  n disappears (no outgoing edge) (N)
    s_n  n divides                  (N)      z_p  division pair p chosen          (P)
    q_e  e is a continuation        (E, only when the graph lists division pairs)

Objective: :math:`\min \sum_n c^x_n x_n + \sum_e c^y_e y_e + \sum_n (c^a_n a_n + c^d_n d_n
+ c^s_n s_n) + \sum_p c^z_p z_p`.

Constraints (rows of one sparse matrix ``A``, ``lo <= A v <= hi``):

* exclusion, one row per leaf ℓ of the candidate forest: :math:`\sum_{n \in path(ℓ)} x_n \le 1`
  (a clique row per leaf-to-root path; singleton paths are plain bounds and get no row);
* incoming: :math:`\sum_{e \in in(n)} y_e + a_n - x_n = 0` (one parent, or the node appears);
* outgoing: :math:`\sum_{e \in out(n)} y_e + d_n - s_n - x_n = 0` and :math:`s_n + d_n - x_n \le 0`,
  so a selected node has one successor, two (then it divides) or none (then it disappears);
* with division pairs (when the graph lists them) the outgoing side is written with events
  instead, which is a much tighter LP (measured on the bacteria GT graph: the ``z <= y`` form
  left 9,246 of 68,422 variables fractional and HiGHS found no good solution in 120 s). A
  continuation variable :math:`q_e` per edge and one :math:`z_p` per pair:
  :math:`\sum_{e \in out(n)} q_e + d_n + s_n - x_n = 0` (a selected node does exactly one thing),
  :math:`s_n - \sum_{p \in pairs(n)} z_p = 0`, and every edge is used by its event:
  :math:`y_e - q_e - \sum_{p \ni e} z_p = 0`.

Pins are bounds: a must-node has :math:`x_n = 1`, a forbidden edge :math:`y_e = 0`, and so on;
node events too: a pinned division :math:`s_n = 1`, a forbidden one :math:`s_n = 0`, a pinned
ending :math:`d_n = 1` (with the rows above these imply a selected node with two / at most one /
no selected outgoing link).
Everything is built with numpy index arithmetic into one ``scipy.sparse.csr_matrix``; no Python
expression per node, so building is a few milliseconds per 10^4 candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from solvers.types import CandidateGraph, Pins


@dataclass(frozen=True)
class IntegerProgram:
    """``min c·v  s.t.  row_lo <= A v <= row_hi, lb <= v <= ub, v binary`` and its column map."""

    c: np.ndarray
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    n_nodes: int
    n_edges: int
    n_pairs: int

    @property
    def n_vars(self) -> int:
        return len(self.c)

    # column slices of each variable family
    @property
    def x(self) -> slice:
        return slice(0, self.n_nodes)

    @property
    def y(self) -> slice:
        return slice(self.n_nodes, self.n_nodes + self.n_edges)

    def family(self, k: int) -> slice:
        """Column slice of the k-th per-node family after x and y: 0 = a, 1 = d, 2 = s."""
        start = self.n_nodes + self.n_edges + k * self.n_nodes
        return slice(start, start + self.n_nodes)

    @property
    def z(self) -> slice:
        start = 4 * self.n_nodes + self.n_edges
        return slice(start, start + self.n_pairs)

    @property
    def q(self) -> slice:
        """Continuation variables (empty unless the graph lists division pairs)."""
        start = 4 * self.n_nodes + self.n_edges + self.n_pairs
        return slice(start, self.n_vars)


def leaf_paths(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, node) entries of the leaf-to-root paths with more than one node.

    Walks all leaves up one level at a time (vectorised over leaves), so the cost is the forest
    depth times the number of leaves, not one Python step per node.
    """
    parent = np.asarray(parent, np.int64)
    n = len(parent)
    has_child = np.zeros(n, bool)
    has_child[parent[parent >= 0]] = True
    leaves = np.flatnonzero(~has_child & (parent >= 0))  # leaves that are not lone roots
    rows, cols = [], []
    cur = leaves.copy()
    row = np.arange(len(leaves))
    while len(cur):
        rows.append(row)
        cols.append(cur)
        nxt = parent[cur]
        keep = nxt >= 0
        cur, row = nxt[keep], row[keep]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def cost_vector(graph: CandidateGraph) -> np.ndarray:
    """The objective's coefficients in the column order of the module docstring: c^x, c^y, c^a,
    c^d, c^s, then c^z and 0 for every q_e when the graph lists division pairs (a continuation
    costs its edge, already in c^y)."""
    pair_cost = graph.division_pair_cost  # given together with division_pairs (CandidateGraph)
    return np.concatenate(
        [
            graph.node_cost,
            graph.edge_cost,
            graph.appear_cost,
            graph.disappear_cost,
            graph.division_cost,
            np.zeros(0) if pair_cost is None else pair_cost,
            np.zeros(0) if pair_cost is None else np.zeros(graph.n_edges),
        ]
    )


def build_program(graph: CandidateGraph, pins: Pins | None = None) -> IntegerProgram:
    """The integer program of ``graph`` (see the module docstring) with ``pins`` as bounds."""
    n, e = graph.n_nodes, graph.n_edges
    pairs = graph.division_pairs
    p = 0 if pairs is None else len(pairs)
    ia, id_, is_ = n + e, 2 * n + e, 3 * n + e  # first column of a, d, s
    iz = 4 * n + e
    nodes = np.arange(n)
    edges = np.arange(e)
    blocks_r: list[np.ndarray] = []
    blocks_c: list[np.ndarray] = []
    blocks_v: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    r0 = 0

    def add(rows: np.ndarray, cols: np.ndarray, vals: float | np.ndarray) -> None:
        blocks_r.append(rows + r0)
        blocks_c.append(np.asarray(cols, np.int64))
        blocks_v.append(np.broadcast_to(np.asarray(vals, np.float64), rows.shape))

    # exclusion along leaf-to-root paths
    prow, pcol = leaf_paths(graph.node_hier_parent)
    n_paths = int(prow.max()) + 1 if len(prow) else 0
    add(prow, pcol, 1.0)
    lo.append(np.full(n_paths, -np.inf))
    hi.append(np.ones(n_paths))
    r0 += n_paths
    # incoming: sum_in y + a - x = 0
    add(graph.edge_target, edges + n, 1.0)
    add(nodes, ia + nodes, 1.0)
    add(nodes, nodes, -1.0)
    lo.append(np.zeros(n))
    hi.append(np.zeros(n))
    r0 += n
    if pairs is None:
        # outgoing: sum_out y + d - s - x = 0
        add(graph.edge_source, edges + n, 1.0)
        add(nodes, id_ + nodes, 1.0)
        add(nodes, is_ + nodes, -1.0)
        add(nodes, nodes, -1.0)
        lo.append(np.zeros(n))
        hi.append(np.zeros(n))
        r0 += n
        # s + d - x <= 0
        add(nodes, is_ + nodes, 1.0)
        add(nodes, id_ + nodes, 1.0)
        add(nodes, nodes, -1.0)
        lo.append(np.full(n, -np.inf))
        hi.append(np.zeros(n))
        r0 += n
        n_vars = iz
    else:
        pid = np.arange(p)
        iq = iz + p
        # outgoing events: sum_out q + d + s - x = 0
        add(graph.edge_source, iq + edges, 1.0)
        add(nodes, id_ + nodes, 1.0)
        add(nodes, is_ + nodes, 1.0)
        add(nodes, nodes, -1.0)
        lo.append(np.zeros(n))
        hi.append(np.zeros(n))
        r0 += n
        # s_n - sum_{pairs of n} z = 0
        add(nodes, is_ + nodes, 1.0)
        add(graph.edge_source[pairs[:, 0]], iz + pid, -1.0)
        lo.append(np.zeros(n))
        hi.append(np.zeros(n))
        r0 += n
        # y_e - q_e - sum_{p containing e} z_p = 0
        add(edges, n + edges, 1.0)
        add(edges, iq + edges, -1.0)
        add(pairs[:, 0], iz + pid, -1.0)
        add(pairs[:, 1], iz + pid, -1.0)
        lo.append(np.zeros(e))
        hi.append(np.zeros(e))
        r0 += e
        n_vars = iq + e
    A = sp.csr_matrix(
        (np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
        shape=(r0, n_vars),
    )
    c = cost_vector(graph)
    lb = np.zeros(n_vars)
    ub = np.ones(n_vars)
    if pins is not None:
        _apply_pins(pins, n, e, lb, ub)
    return IntegerProgram(
        c=c,
        A=A,
        row_lo=np.concatenate(lo),
        row_hi=np.concatenate(hi),
        lb=lb,
        ub=ub,
        n_nodes=n,
        n_edges=e,
        n_pairs=p,
    )


def _apply_pins(pins: Pins, n: int, e: int, lb: np.ndarray, ub: np.ndarray) -> None:
    for arr, size, name in (
        (pins.must_nodes, n, "must_nodes"),
        (pins.forbid_nodes, n, "forbid_nodes"),
        (pins.must_edges, e, "must_edges"),
        (pins.forbid_edges, e, "forbid_edges"),
    ):
        a = np.asarray(arr, np.int64)
        if len(a) and (a.min() < 0 or a.max() >= size):
            raise ValueError(f"pins.{name} holds indices outside [0, {size})")
    events = ((pins.must_divide, "must_divide"), (pins.forbid_divide, "forbid_divide"), (pins.must_end, "must_end"))
    for arr, name in events:
        a = np.asarray(arr, np.int64)
        if len(a) and (a.min() < 0 or a.max() >= n):
            raise ValueError(f"pins.{name} holds indices outside [0, {n})")
    lb[np.asarray(pins.must_nodes, np.int64)] = 1.0
    ub[np.asarray(pins.forbid_nodes, np.int64)] = 0.0
    lb[n + np.asarray(pins.must_edges, np.int64)] = 1.0
    ub[n + np.asarray(pins.forbid_edges, np.int64)] = 0.0
    id_, is_ = 2 * n + e, 3 * n + e  # first column of d and s (module docstring)
    lb[is_ + np.asarray(pins.must_divide, np.int64)] = 1.0
    ub[is_ + np.asarray(pins.forbid_divide, np.int64)] = 0.0
    lb[id_ + np.asarray(pins.must_end, np.int64)] = 1.0
    if np.any(lb > ub):
        raise ValueError("pins both require and forbid the same node, edge or event")


def completion(graph: CandidateGraph, node_sel: np.ndarray, edge_sel: np.ndarray) -> np.ndarray:
    """The full variable vector implied by a node and edge selection (a, d, s, z derived).

    Used for warm starts, window stitching and to evaluate the objective of a selection.
    """
    n = graph.n_nodes
    x = np.asarray(node_sel, bool)
    y = np.asarray(edge_sel, bool)
    n_in = np.bincount(graph.edge_target[y], minlength=n)
    n_out = np.bincount(graph.edge_source[y], minlength=n)
    a = x & (n_in == 0)
    d = x & (n_out == 0)
    s = x & (n_out == 2)
    parts = [x, y, a, d, s]
    if graph.division_pairs is not None:
        pairs = graph.division_pairs
        z = y[pairs[:, 0]] & y[pairs[:, 1]] & s[graph.edge_source[pairs[:, 0]]]
        q = y & ~s[graph.edge_source]
        parts += [z, q]
    return np.concatenate(parts).astype(np.float64)


def objective(graph: CandidateGraph, node_sel: np.ndarray, edge_sel: np.ndarray) -> float:
    """Objective value of a selection (same cost terms as the integer program)."""
    return float(cost_vector(graph) @ completion(graph, node_sel, edge_sel))


def is_feasible(prog: IntegerProgram, v: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether ``v`` satisfies every row and bound of ``prog``."""
    act = prog.A @ v
    return bool(
        np.all(act >= prog.row_lo - tol)
        and np.all(act <= prog.row_hi + tol)
        and np.all(v >= prog.lb - tol)
        and np.all(v <= prog.ub + tol)
    )
