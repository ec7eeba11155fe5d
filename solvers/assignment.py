r"""Exact tracking of a fixed segmentation: an assignment with division pairs.

When every candidate is a detection of its own (no competing candidates) and leaving a cell out
never pays (:math:`c^x_n + c^a_n + c^d_n \le 0`: an isolated cell is no worse than none), some
optimum of the joint program (:mod:`solvers.model`) selects every node. With ``x = 1`` fixed,
a node's incoming side (one parent or "appears") and its outgoing side (one continuation, one
division pair or "disappears") share no constraint, so the program is a bipartite problem
between the outgoing sides ``u`` and the incoming sides ``v`` of all nodes, whatever the links'
``Δt``:

* an *option* of ``u`` is a continuation ``u → v`` (cost :math:`c^y_e`) or a division
  ``u → {v, w}`` (cost :math:`c^y_{e} + c^y_{f} + c^s_u + c^z_p`); every side takes at most one
  option, an unused ``u`` pays :math:`c^d_u`, an unused ``v`` pays :math:`c^a_v`.

Solved exactly in three steps:

1. **Dominated options out.** An option whose cost is at least that of dropping it (its sides
   left unused, or a division replaced by one of its continuations with the other daughter
   appearing) is in no strictly better solution: replacing it never raises the cost and frees
   the same sides, so the optimum of what is left is the optimum. Continuations beyond a few
   motion scales and almost every division pair go here.
2. **Components.** The remaining options link sides into small connected components (frame
   pairs split further into neighbourhoods); components never interact.
3. **Per component.** Without division options a component is a linear assignment with
   unmatched costs, solved for all such components at once by one sparse Jonker–Volgenant
   call (:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`) on the usual
   augmented matrix (a dummy column per ``u`` for "disappears", a dummy row per ``v`` for
   "appears", dummy–dummy entries on the transposed links so that any partial matching
   completes). Components with a division option are a set packing over their sides (every
   option priced by what it saves over leaving its sides unused, every side in at most one
   chosen option), solved all together: the LP relaxation by HiGHS' simplex, then a MIP only on
   the components the LP leaves fractional (the LP is nearly tight: 3 fractional variables of
   6,271 on the 26,827-cell ``benchmarks/track_speed.py`` movie).

The objective reported is the joint program's on the original graph, so the two compare
directly (``tests/solvers/test_assignment.py`` checks equality on random movies with
divisions, gaps and pins). Pins: must-nodes (every node is selected anyway), forbidden nodes
(left out with their links) and forbidden links; pinned links and events need the joint program.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from solvers.model import objective
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus


def not_fixed_reason(graph: CandidateGraph, pins: Pins | None = None) -> str | None:
    """Why :func:`solve_fixed` does not apply to ``graph`` (None: it does, exactly)."""
    if np.any(graph.node_hier_parent >= 0):
        return "candidates compete (a segmentation forest)"
    alive = _alive(graph, pins)
    isolated = graph.node_cost + graph.appear_cost + graph.disappear_cost
    if np.any(alive & (isolated > 0)):
        return "some cells are cheaper left out than kept (node + appear + disappear cost > 0)"
    if pins is not None and (len(pins.must_edges) or pins.has_events):
        return "pinned links or events"
    return None


def solve_fixed(
    graph: CandidateGraph,
    pins: Pins | None = None,
    *,
    time_limit: float = 300.0,
    gap: float = 0.0,
) -> Solution:
    """Optimal selection of the joint program for a fixed segmentation (module docstring).

    ``time_limit`` and ``gap`` apply to the joint program of the components with division
    options (default gap 0: proven optimal). Raises ValueError where :func:`not_fixed_reason`
    gives a reason.
    """
    reason = not_fixed_reason(graph, pins)
    if reason is not None:
        raise ValueError(f"the fixed-segmentation assignment does not apply: {reason}; use the joint solver")
    start = time.perf_counter()
    n = graph.n_nodes
    src, dst, cost = graph.edge_source, graph.edge_target, graph.edge_cost
    alive = _alive(graph, pins)
    usable = alive[src] & alive[dst]
    if pins is not None:
        usable[np.asarray(pins.forbid_edges, np.int64)] = False
    # 1. options cheaper than leaving their sides unused (continuations), or than the best
    #    way of using fewer sides (divisions)
    cont = np.flatnonzero(usable & (cost < graph.disappear_cost[src] + graph.appear_cost[dst]))
    cont = _cheapest_per_pair(cont, src, dst, cost)
    pairs, pair_total = division_options(graph, usable)
    e0, e1 = pairs[:, 0], pairs[:, 1]
    mother, d0, d1 = src[e0], dst[e0], dst[e1]
    alt = np.minimum(
        graph.disappear_cost[mother] + graph.appear_cost[d0] + graph.appear_cost[d1],
        np.minimum(cost[e0] + graph.appear_cost[d1], cost[e1] + graph.appear_cost[d0]),
    )
    keep = pair_total < alt
    pairs, pair_total = pairs[keep], pair_total[keep]
    # 2. components over the sides: u = node, v = n + node
    rows = np.concatenate([src[cont], src[pairs[:, 0]], src[pairs[:, 0]]])
    cols = n + np.concatenate([dst[cont], dst[pairs[:, 0]], dst[pairs[:, 1]]])
    adj = sp.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(2 * n, 2 * n)).tocsr()
    n_comp, comp = connected_components(adj, directed=False)
    with_pairs = np.zeros(n_comp, bool)
    with_pairs[comp[src[pairs[:, 0]]]] = True
    # 3a. components without division options: one sparse assignment
    edge_selected = np.zeros(graph.n_edges, bool)
    lap_edges = cont[~with_pairs[comp[src[cont]]]]
    edge_selected[_sparse_assignment(graph, lap_edges)] = True
    # 3b. components with division options: one small set-packing program
    status, sub_obj, sub_bound = SolveStatus.OPTIMAL, 0.0, 0.0
    mip: dict[str, float] = {}
    if len(pairs):
        sub_cont = cont[with_pairs[comp[src[cont]]]]
        pk = _packing_program(graph, sub_cont, pairs, pair_total, time_limit, gap)
        status, sub_obj, sub_bound = pk.status, pk.objective, pk.bound
        mip = {
            "packing_options": len(sub_cont) + len(pairs),
            "packing_sides": pk.n_sides,
            "packing_mip_options": pk.n_mip,
            "packing_seconds": pk.seconds,
        }
        if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return Solution(
                np.zeros(n, bool),
                np.zeros(graph.n_edges, bool),
                float("nan"),
                status,
                seconds=time.perf_counter() - start,
                backend="assignment",
                info={"solver": "assignment", **mip},
            )
        edge_selected[sub_cont[pk.chosen[: len(sub_cont)]]] = True
        edge_selected[pairs[pk.chosen[len(sub_cont) :]].ravel()] = True
    value = objective(graph, alive, edge_selected)
    # everything outside the joint program is exact, so its bound shifts by the same amount
    bound, rel_gap = value, 0.0
    if mip:
        bound = value - (sub_obj - sub_bound) if np.isfinite(sub_bound) else float("nan")
        rel_gap = abs(value - bound) / max(abs(value), 1e-9) if np.isfinite(bound) else float("nan")
    return Solution(
        node_selected=alive,
        edge_selected=edge_selected,
        objective=value,
        status=status,
        bound=bound,
        gap=rel_gap,
        seconds=time.perf_counter() - start,
        backend="assignment",
        info={
            "solver": "assignment",
            "components": int(n_comp),
            "links_kept": int(len(cont)),
            "divisions_kept": int(len(pairs)),
            "components_with_divisions": int(with_pairs.sum()),
            **mip,
        },
    )


def solve_fixed_or_joint(
    graph: CandidateGraph,
    pins: Pins | None = None,
    *,
    time_limit: float = 300.0,
    gap: float = 1e-4,
) -> Solution:
    """:func:`solve_fixed` where it applies, else the joint program (:func:`solvers.joint.solve_joint`);
    ``info["solver"]`` says which ran and ``info["joint_reason"]`` why the joint program did."""
    reason = not_fixed_reason(graph, pins)
    if reason is None:
        return solve_fixed(graph, pins, time_limit=time_limit, gap=gap)
    from solvers.joint import solve_joint

    sol = solve_joint(graph, time_limit=time_limit, gap=gap, pins=pins)
    return replace(sol, info={**sol.info, "solver": "joint", "joint_reason": reason})


def division_options(graph: CandidateGraph, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) daughter-link pairs a node may divide into and their whole cost (both links,
    ``division_cost`` and the pair's own cost).

    The graph's listed pairs when it has them; otherwise every two out-links of a node (the
    joint program's rule then), of which only links with :math:`c^y_e + c^s_u < c^a_v` can
    be in an undominated division (else the other daughter's continuation with this one
    appearing is no dearer), so only those are paired.
    """
    src, dst, cost = graph.edge_source, graph.edge_target, graph.edge_cost
    if graph.division_pairs is not None and graph.division_pair_cost is not None:
        pairs = graph.division_pairs
        ok = usable[pairs[:, 0]] & usable[pairs[:, 1]]
        pairs = pairs[ok]
        total = (
            graph.division_pair_cost[ok] + cost[pairs[:, 0]] + cost[pairs[:, 1]] + graph.division_cost[src[pairs[:, 0]]]
        )
        return pairs, total
    cand = np.flatnonzero(usable & (cost + graph.division_cost[src] < graph.appear_cost[dst]))
    cand = cand[np.argsort(src[cand], kind="stable")]
    _, start, degree = np.unique(src[cand], return_index=True, return_counts=True)
    parts = [np.zeros((0, 2), np.int64)]
    for m in np.unique(degree[degree >= 2]):
        iu, ju = np.triu_indices(int(m), k=1)
        base = start[degree == m][:, None]
        parts.append(np.stack([cand[(base + iu).ravel()], cand[(base + ju).ravel()]], axis=1))
    pairs = np.concatenate(parts)
    pairs = pairs[dst[pairs[:, 0]] != dst[pairs[:, 1]]]  # one target cannot be both daughters
    total = cost[pairs[:, 0]] + cost[pairs[:, 1]] + graph.division_cost[src[pairs[:, 0]]]
    return pairs, total


def _alive(graph: CandidateGraph, pins: Pins | None) -> np.ndarray:
    """Nodes not forbidden; refuses pins the joint program would refuse (same messages)."""
    alive = np.ones(graph.n_nodes, bool)
    if pins is None:
        return alive
    for arr, size, name in (
        (pins.must_nodes, graph.n_nodes, "must_nodes"),
        (pins.forbid_nodes, graph.n_nodes, "forbid_nodes"),
        (pins.must_edges, graph.n_edges, "must_edges"),
        (pins.forbid_edges, graph.n_edges, "forbid_edges"),
        (pins.must_divide, graph.n_nodes, "must_divide"),
        (pins.forbid_divide, graph.n_nodes, "forbid_divide"),
        (pins.must_end, graph.n_nodes, "must_end"),
    ):
        if len(arr) and (arr.min() < 0 or arr.max() >= size):
            raise ValueError(f"pins.{name} holds indices outside [0, {size})")
    alive[pins.forbid_nodes] = False
    if not alive[pins.must_nodes].all() or np.intersect1d(pins.must_edges, pins.forbid_edges).size:
        raise ValueError("pins both require and forbid the same node, edge or event")
    return alive


def _cheapest_per_pair(edges: np.ndarray, src: np.ndarray, dst: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """One link per (source, target): the cheapest (parallel links would be summed by the
    sparse matrix, and a target takes one parent anyway)."""
    order = edges[np.lexsort((cost[edges], dst[edges], src[edges]))]
    if len(order) < 2:
        return order
    first = np.ones(len(order), bool)
    first[1:] = (src[order[1:]] != src[order[:-1]]) | (dst[order[1:]] != dst[order[:-1]])
    return np.sort(order[first])


def _sparse_assignment(graph: CandidateGraph, edges: np.ndarray) -> np.ndarray:
    """The links of the optimal assignment with unmatched costs over ``edges`` (module
    docstring, step 3a); sides without a link are unused and need no row."""
    if len(edges) == 0:
        return edges
    src, dst = graph.edge_source[edges], graph.edge_target[edges]
    u, u_idx = np.unique(src, return_inverse=True)
    v, v_idx = np.unique(dst, return_inverse=True)
    nu, nv = len(u), len(v)
    # rows: u sides, then one dummy per v side; columns: v sides, then one dummy per u side
    r = np.concatenate([u_idx, np.arange(nu), nu + np.arange(nv), nu + v_idx])
    c = np.concatenate([v_idx, nv + np.arange(nu), np.arange(nv), nv + u_idx])
    w = np.concatenate([graph.edge_cost[edges], graph.disappear_cost[u], graph.appear_cost[v], np.zeros(len(edges))])
    # every full matching has nu + nv entries, so a common shift keeps the optimum; LAPJVsp
    # takes stored entries as links and needs them non-zero
    w = w - w.min() + 1.0
    m = sp.csr_matrix((w, (r, c)), shape=(nu + nv, nu + nv))
    row, col = min_weight_full_bipartite_matching(m)
    linked = (row < nu) & (col < nv)
    key = u_idx * nv + v_idx
    order = np.argsort(key)
    want = row[linked] * nv + col[linked]
    return edges[order[np.searchsorted(key[order], want)]]


@dataclass(frozen=True)
class _Packing:
    chosen: np.ndarray  # (options,) bool: continuations first, then division pairs
    status: SolveStatus
    objective: float
    bound: float
    seconds: float
    n_sides: int
    n_mip: int = 0  # options of the components the LP left fractional (solved by the MIP)


def _packing_program(
    graph: CandidateGraph,
    cont: np.ndarray,
    pairs: np.ndarray,
    pair_total: np.ndarray,
    time_limit: float,
    gap: float,
) -> _Packing:
    """The components with division options as a set packing over their sides (module
    docstring, step 3b): one binary per option, priced by what it saves over leaving its sides
    unused (continuation :math:`c^y_e - c^d_u - c^a_v`, division its total minus
    :math:`c^d_u + c^a_v + c^a_w`), every side in at most one chosen option. With ``x = 1``
    this is the joint program restricted to these options, in a tenth of its variables.

    The LP relaxation first: its optimum splits over the components, so a component whose LP
    solution is integral is solved; only the components left fractional (14 options of 6,271
    on the ``track_speed`` movie) go to the MIP. HiGHS without presolve, which cost more than it
    saved here (measured on that movie: the whole packing as one MIP 0.38 s with presolve,
    0.16 s without; LP + MIP on the fractional part 0.07 s; the joint program on these
    components 0.5 s)."""
    start = time.perf_counter()
    src, dst = graph.edge_source, graph.edge_target
    n = graph.n_nodes
    app, dis = graph.appear_cost, graph.disappear_cost
    m0, v0, w0 = src[pairs[:, 0]], dst[pairs[:, 0]], dst[pairs[:, 1]]
    c = np.concatenate(
        [graph.edge_cost[cont] - dis[src[cont]] - app[dst[cont]], pair_total - dis[m0] - app[v0] - app[w0]]
    )
    nc, npairs, n_opt = len(cont), len(pairs), len(c)
    side = np.concatenate([src[cont], m0, n + dst[cont], n + v0, n + w0])
    opt = np.concatenate([np.arange(nc), nc + np.arange(npairs), np.arange(nc), nc + np.arange(npairs)])
    opt = np.concatenate([opt, nc + np.arange(npairs)])
    sides, row = np.unique(side, return_inverse=True)
    # a pair whose daughters are one cell has a coefficient 2 in that row (summed): never chosen
    a = sp.csr_matrix((np.ones(len(row)), (row, opt)), shape=(len(sides), n_opt))
    packing = LinearConstraint(a, -np.inf, 1.0)
    lp = milp(c, constraints=packing, bounds=Bounds(0.0, 1.0), options={"presolve": False, "time_limit": time_limit})
    if lp.status != 0 or lp.x is None:  # time limit, or HiGHS failed: no solution to build on
        status = SolveStatus.TIMEOUT if lp.status == 1 else SolveStatus.ERROR
        return _Packing(
            np.zeros(n_opt, bool), status, float("nan"), float("nan"), time.perf_counter() - start, len(sides)
        )
    x = np.asarray(lp.x)
    frac = (x > 1e-6) & (x < 1 - 1e-6)
    chosen = x > 0.5
    status, value, bound = SolveStatus.OPTIMAL, float(c @ chosen), float(lp.fun)
    if frac.any():
        # the components (options linked through a shared side) that hold a fractional option
        _, opt_comp = connected_components(a.T @ a, directed=False)
        sub = np.flatnonzero(np.isin(opt_comp, opt_comp[frac]))
        rows = np.unique(a[:, sub].nonzero()[0])
        res = milp(
            c[sub],
            constraints=LinearConstraint(a[rows][:, sub], -np.inf, 1.0),
            integrality=np.ones(len(sub), np.int64),
            bounds=Bounds(0.0, 1.0),
            options={"time_limit": float(time_limit), "mip_rel_gap": float(gap), "presolve": False},
        )
        if res.x is None:
            status = SolveStatus.TIMEOUT if res.status == 1 else SolveStatus.ERROR
            return _Packing(
                chosen, status, float("nan"), float("nan"), time.perf_counter() - start, len(sides), len(sub)
            )
        status = SolveStatus.OPTIMAL if res.status == 0 else SolveStatus.FEASIBLE
        chosen[sub] = res.x > 0.5
        sub_bound = float(getattr(res, "mip_dual_bound", np.nan) or np.nan)
        bound = bound - float(lp.x[sub] @ c[sub]) + sub_bound  # the LP's other components stay exact
        value = float(c @ chosen)
        return _Packing(chosen, status, value, bound, time.perf_counter() - start, len(sides), len(sub))
    return _Packing(chosen, status, value, bound, time.perf_counter() - start, len(sides))
