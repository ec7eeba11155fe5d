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
divisions, gaps, pinned links and events).

Pins, all exact (every pin only removes options or sides, so the optimum of what is left is
the joint program's with the pins):

* must-nodes: every node is selected anyway; forbidden nodes are left out with their links;
  forbidden links are no option.
* a pinned link ``u → v`` decides ``v``'s incoming side (no other option enters ``v``) and is
  selected whatever else happens; ``u``'s outgoing side keeps only the options that contain
  it: the link alone (the side's new baseline, cost 0) or a division with one more daughter
  ``w``, which becomes a continuation ``u → w`` costing the division's total minus the link.
  Two pinned links out of ``u`` are its division (one of the graph's pairs where it lists
  them): ``u``'s side is decided.
* a pinned ending decides ``u``'s outgoing side unused; a forbidden division removes ``u``'s
  division options; a pinned division removes ``u``'s continuations (and the dominance tests
  on its divisions, whose alternatives are pinned away) and makes ``u``'s side one that must
  be used: its component goes to the packing with that row an equality.

Pins that cannot all hold (two parents, three daughters, a pinned link into a forbidden cell,
a division with no two daughters left, ...) give an infeasible solution, as in the joint program.
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
    return None


@dataclass(frozen=True)
class _Sides:
    """What the pins leave of every node's two sides (module docstring, "Pins")."""

    usable: np.ndarray  # (E,) links any option may still use
    must_out: np.ndarray  # (N,) the one pinned link leaving the node, or -1
    fixed: np.ndarray  # pinned links: selected whatever else is chosen
    out_done: np.ndarray  # (N,) outgoing side decided (two pinned links, an ending, ...)
    in_done: np.ndarray  # (N,) incoming side decided (a pinned link enters)
    no_division: np.ndarray  # (N,) forbidden or impossible division
    forced: np.ndarray  # (N,) outgoing side must divide (pinned division, not yet decided)
    disappear: np.ndarray  # (N,) cost of leaving the outgoing side without an option


def _pin_sides(graph: CandidateGraph, pins: Pins | None, alive: np.ndarray, usable: np.ndarray) -> _Sides | None:
    """The sides left by the pins, or None when the pins cannot hold together (infeasible)."""
    n = graph.n_nodes
    src, dst = graph.edge_source, graph.edge_target
    must_out = np.full(n, -1, np.int64)
    empty = np.zeros(n, bool)
    if pins is None:
        return _Sides(usable, must_out, np.zeros(0, np.int64), empty, empty, empty, empty, graph.disappear_cost)
    usable = usable.copy()
    me = np.unique(pins.must_edges)
    divide, no_div, end = (np.zeros(n, bool) for _ in range(3))
    divide[pins.must_divide] = True
    no_div[pins.forbid_divide] = True
    end[pins.must_end] = True
    if np.any(divide & no_div):
        raise ValueError("pins both require and forbid the same node, edge or event")
    n_in = np.bincount(dst[me], minlength=n)
    n_out = np.bincount(src[me], minlength=n)
    if (
        not usable[me].all()
        or np.any(n_in > 1)
        or np.any(n_out > 2)
        or not alive[divide | end].all()
        or np.any(end & (divide | (n_out > 0)))
        or np.any(no_div & (n_out == 2))
    ):
        return None
    two = np.flatnonzero(n_out == 2)
    if len(two):  # the two pinned links of a node must make a division the graph allows
        pair_of = me[np.argsort(src[me], kind="stable")]
        first = pair_of[np.isin(src[pair_of], two)].reshape(-1, 2)
        if graph.division_pairs is not None:
            listed = {(int(a), int(b)) for a, b in graph.division_pairs} | {
                (int(b), int(a)) for a, b in graph.division_pairs
            }
            if any((int(a), int(b)) not in listed for a, b in first):
                return None
    in_done = n_in > 0
    one = n_out == 1
    must_out[src[me[one[src[me]]]]] = me[one[src[me]]]
    # another link into a cell with a pinned parent, or out of a cell that ends, is unusable
    pinned = np.zeros(graph.n_edges, bool)
    pinned[me] = True
    usable &= ~(in_done[dst] & ~pinned) & ~end[src] & ~((n_out == 2)[src] & ~pinned)
    out_done = end | (n_out == 2) | (one & no_div)
    if np.any(divide & out_done & (n_out != 2)):
        return None
    disappear = graph.disappear_cost.copy()
    disappear[one] = 0.0  # the pinned link alone is the side's baseline (its cost is paid anyway)
    return _Sides(usable, must_out, me, out_done, in_done, no_div | end, divide & ~out_done, disappear)


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
    gives a reason; pins that cannot hold together give an infeasible solution, as the joint
    program does.
    """
    reason = not_fixed_reason(graph, pins)
    if reason is not None:
        raise ValueError(f"the fixed-segmentation assignment does not apply: {reason}; use the joint solver")
    start = time.perf_counter()
    n = graph.n_nodes
    alive = _alive(graph, pins)
    usable = alive[graph.edge_source] & alive[graph.edge_target]
    if pins is not None:
        usable[np.asarray(pins.forbid_edges, np.int64)] = False
    sides = _pin_sides(graph, pins, alive, usable)
    opts = None if sides is None else _options(graph, sides)
    if sides is None or opts is None:
        return _failed(graph, SolveStatus.INFEASIBLE, start, {})
    # 2. components over the sides: u = node, v = n + node
    rows = np.concatenate([opts.cu, opts.du, opts.du])
    cols = n + np.concatenate([opts.cv, opts.dv, opts.dw])
    adj = sp.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(2 * n, 2 * n)).tocsr()
    n_comp, comp = connected_components(adj, directed=False)
    with_pairs = np.zeros(n_comp, bool)
    with_pairs[comp[opts.du]] = True
    with_pairs[comp[np.flatnonzero(sides.forced)]] = True  # a side that must be used: the packing
    edge_selected = np.zeros(graph.n_edges, bool)
    edge_selected[sides.fixed] = True
    # 3a. components without division options: one sparse assignment
    in_lap = ~with_pairs[comp[opts.cu]]
    lap = np.flatnonzero(in_lap)
    chosen_c = np.zeros(len(opts.cu), bool)
    chosen_c[
        lap[_sparse_assignment(opts.cu[lap], opts.cv[lap], opts.ccost[lap], sides.disappear, graph.appear_cost)]
    ] = True
    # 3b. components with division options: one small set-packing program
    status, sub_obj, sub_bound = SolveStatus.OPTIMAL, 0.0, 0.0
    mip: dict[str, float] = {}
    chosen_d = np.zeros(len(opts.du), bool)
    if with_pairs.any():
        sub = np.flatnonzero(~in_lap)
        pk = _packing_program(opts, sub, sides, graph.appear_cost, n, time_limit, gap)
        status, sub_obj, sub_bound = pk.status, pk.objective, pk.bound
        mip = {
            "packing_options": len(sub) + len(opts.du),
            "packing_sides": pk.n_sides,
            "packing_mip_options": pk.n_mip,
            "packing_seconds": pk.seconds,
        }
        if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return _failed(graph, status, start, mip)
        chosen_c[sub[pk.chosen[: len(sub)]]] = True
        chosen_d = pk.chosen[len(sub) :]
    edge_selected[opts.ce0[chosen_c]] = True
    e1 = opts.ce1[chosen_c]
    edge_selected[e1[e1 >= 0]] = True
    edge_selected[opts.de[chosen_d].ravel()] = True
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
            "links_kept": int(len(opts.cu)),
            "divisions_kept": int(len(opts.du)),
            "components_with_divisions": int(with_pairs.sum()),
            "pinned_links": int(len(sides.fixed)),
            **mip,
        },
    )


def _failed(graph: CandidateGraph, status: SolveStatus, start: float, mip: dict[str, float]) -> Solution:
    return Solution(
        np.zeros(graph.n_nodes, bool),
        np.zeros(graph.n_edges, bool),
        float("nan"),
        status,
        seconds=time.perf_counter() - start,
        backend="assignment",
        info={"solver": "assignment", **mip},
    )


@dataclass(frozen=True)
class _Options:
    """The undominated options. Continuations ``cu → cv`` (cost ``ccost``) select link ``ce0``
    and, for a daughter added to a pinned link, ``ce1`` too (else -1); divisions ``du → {dv, dw}``
    (cost ``dcost``) select the two links of ``de``."""

    cu: np.ndarray
    cv: np.ndarray
    ccost: np.ndarray
    ce0: np.ndarray
    ce1: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    dw: np.ndarray
    dcost: np.ndarray
    de: np.ndarray


def _options(graph: CandidateGraph, s: _Sides) -> _Options | None:
    """Module docstring, step 1, on the sides the pins leave; None when a side that must
    divide has no division left (infeasible)."""
    src, dst, cost = graph.edge_source, graph.edge_target, graph.edge_cost
    app, dis = graph.appear_cost, s.disappear
    special = (s.must_out >= 0) | s.forced
    free = s.usable & ~s.out_done[src] & ~special[src] & ~s.in_done[dst]
    cont = np.flatnonzero(free & (cost < dis[src] + app[dst]))
    # divisions: the graph's own rule for ordinary mothers, every allowed pair for pinned ones
    daughter = (
        s.usable & ~s.out_done[src] & ~s.no_division[src] & (~s.in_done[dst] | (s.must_out[src] == np.arange(len(src))))
    )
    pairs, total = division_options(graph, daughter & ~special[src])
    sp_pairs, sp_total = _pinned_mother_pairs(graph, daughter & special[src], s.must_out)
    pairs, total = np.concatenate([pairs, sp_pairs]), np.concatenate([total, sp_total])
    ok = (
        daughter[pairs[:, 0]] & daughter[pairs[:, 1]] & (dst[pairs[:, 0]] != dst[pairs[:, 1]])
        if len(pairs)
        else np.zeros(0, bool)
    )
    pairs, total = pairs[ok], total[ok]
    mother = src[pairs[:, 0]]
    pinned = s.must_out[mother]
    has_pin = pinned >= 0
    # a pinned mother divides only into its pinned link and one more: a continuation to the other
    has_pin &= (pairs[:, 0] == pinned) | (pairs[:, 1] == pinned)
    drop = (s.must_out[mother] >= 0) & ~has_pin
    other = np.where(pairs[:, 0] == pinned, pairs[:, 1], pairs[:, 0])
    pc_u, pc_v = mother[has_pin], dst[other[has_pin]]
    pc_cost = total[has_pin] - cost[pinned[has_pin]]
    keep_pc = s.forced[pc_u] | (pc_cost < app[pc_v])  # else the pinned link alone is no dearer
    plain = ~has_pin & ~drop
    pairs, total, mother = pairs[plain], total[plain], mother[plain]
    d0, d1 = dst[pairs[:, 0]], dst[pairs[:, 1]]
    alt = np.minimum(
        dis[mother] + app[d0] + app[d1],
        np.minimum(cost[pairs[:, 0]] + app[d1], cost[pairs[:, 1]] + app[d0]),
    )
    keep = s.forced[mother] | (total < alt)  # a division that must happen has no alternative
    pairs, total, mother = pairs[keep], total[keep], mother[keep]
    ce0 = np.concatenate([cont, pinned[has_pin][keep_pc]])
    ce1 = np.concatenate([np.full(len(cont), -1, np.int64), other[has_pin][keep_pc]])
    cu = np.concatenate([src[cont], pc_u[keep_pc]])
    cv = np.concatenate([dst[cont], pc_v[keep_pc]])
    ccost = np.concatenate([cost[cont], pc_cost[keep_pc]])
    first = _cheapest_per_pair(cu, cv, ccost)
    covered = np.zeros(graph.n_nodes, bool)
    covered[cu[first]] = True
    covered[mother] = True
    if np.any(s.forced & ~covered):
        return None
    return _Options(
        cu[first],
        cv[first],
        ccost[first],
        ce0[first],
        ce1[first],
        mother,
        dst[pairs[:, 0]],
        dst[pairs[:, 1]],
        total,
        pairs,
    )


def _pinned_mother_pairs(
    graph: CandidateGraph, daughter: np.ndarray, must_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Division pairs of mothers with a pinned link or a pinned division, without the pruning
    of :func:`division_options` (its alternatives, a continuation instead, may be pinned away)."""
    src, cost = graph.edge_source, graph.edge_cost
    if graph.division_pairs is not None and graph.division_pair_cost is not None:
        pl = graph.division_pairs
        ok = daughter[pl[:, 0]] & daughter[pl[:, 1]]
        pl = pl[ok]
        return pl, graph.division_pair_cost[ok] + cost[pl[:, 0]] + cost[pl[:, 1]] + graph.division_cost[src[pl[:, 0]]]
    parts = [np.zeros((0, 2), np.int64)]
    cand = np.flatnonzero(daughter)
    for m in np.unique(src[cand]):
        out = cand[src[cand] == m]
        if must_out[m] >= 0:
            parts.append(np.stack([np.full(len(out), must_out[m]), out], axis=1)[out != must_out[m]])
        else:
            iu, ju = np.triu_indices(len(out), k=1)
            parts.append(np.stack([out[iu], out[ju]], axis=1))
    pairs = np.concatenate(parts)
    return pairs, cost[pairs[:, 0]] + cost[pairs[:, 1]] + graph.division_cost[src[pairs[:, 0]]]


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


def _cheapest_per_pair(u: np.ndarray, v: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of one option per (u, v): the cheapest (parallel links would be summed by the
    sparse matrix, and a side takes one option anyway)."""
    if len(u) < 2:
        return np.arange(len(u))
    if np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (v[1:] > v[:-1]))):
        return np.arange(len(u))  # already by (u, v) without a repeat: the links' own order
    order = np.lexsort((cost, v, u))
    first = np.ones(len(order), bool)
    first[1:] = (u[order[1:]] != u[order[:-1]]) | (v[order[1:]] != v[order[:-1]])
    return np.sort(order[first])


def _sparse_assignment(
    u_nodes: np.ndarray, v_nodes: np.ndarray, cost: np.ndarray, disappear: np.ndarray, appear: np.ndarray
) -> np.ndarray:
    """Indices of the continuations (one per (u, v)) in the optimal assignment with unmatched
    costs ``disappear[u]`` / ``appear[v]`` (module docstring, step 3a); sides without an option
    are unused and need no row."""
    if len(u_nodes) == 0:
        return np.zeros(0, np.int64)
    u, u_idx = np.unique(u_nodes, return_inverse=True)
    v, v_idx = np.unique(v_nodes, return_inverse=True)
    nu, nv = len(u), len(v)
    # rows: u sides, then one dummy per v side; columns: v sides, then one dummy per u side
    r = np.concatenate([u_idx, np.arange(nu), nu + np.arange(nv), nu + v_idx])
    c = np.concatenate([v_idx, nv + np.arange(nu), np.arange(nv), nv + u_idx])
    w = np.concatenate([cost, disappear[u], appear[v], np.zeros(len(cost))])
    # every full matching has nu + nv entries, so a common shift keeps the optimum; LAPJVsp
    # takes stored entries as links and needs them non-zero
    w = w - w.min() + 1.0
    m = sp.csr_matrix((w, (r, c)), shape=(nu + nv, nu + nv))
    row, col = min_weight_full_bipartite_matching(m)
    linked = (row < nu) & (col < nv)
    key = u_idx * nv + v_idx
    order = np.argsort(key)
    want = row[linked] * nv + col[linked]
    return order[np.searchsorted(key[order], want)]


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
    opts: _Options,
    picked: np.ndarray,
    sides: _Sides,
    app: np.ndarray,
    n: int,
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
    dis = sides.disappear
    cu, cv = opts.cu[picked], opts.cv[picked]
    m0, v0, w0 = opts.du, opts.dv, opts.dw
    c = np.concatenate([opts.ccost[picked] - dis[cu] - app[cv], opts.dcost - dis[m0] - app[v0] - app[w0]])
    nc, npairs, n_opt = len(picked), len(m0), len(c)
    side = np.concatenate([cu, m0, n + cv, n + v0, n + w0])
    opt = np.concatenate([np.arange(nc), nc + np.arange(npairs), np.arange(nc), nc + np.arange(npairs)])
    opt = np.concatenate([opt, nc + np.arange(npairs)])
    sides_, row = np.unique(side, return_inverse=True)
    # a side that must divide takes exactly one option; every other side at most one
    lo = np.where((sides_ < n) & sides.forced[np.minimum(sides_, n - 1)], 1.0, -np.inf)
    # a pair whose daughters are one cell has a coefficient 2 in that row (summed): never chosen
    a = sp.csr_matrix((np.ones(len(row)), (row, opt)), shape=(len(sides_), n_opt))
    packing = LinearConstraint(a, lo, 1.0)
    lp = milp(c, constraints=packing, bounds=Bounds(0.0, 1.0), options={"presolve": False, "time_limit": time_limit})
    if lp.status != 0 or lp.x is None:  # time limit, infeasible pins, or HiGHS failed
        status = _status_of(lp.status)
        return _Packing(
            np.zeros(n_opt, bool), status, float("nan"), float("nan"), time.perf_counter() - start, len(sides_)
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
            constraints=LinearConstraint(a[rows][:, sub], lo[rows], 1.0),
            integrality=np.ones(len(sub), np.int64),
            bounds=Bounds(0.0, 1.0),
            options={"time_limit": float(time_limit), "mip_rel_gap": float(gap), "presolve": False},
        )
        if res.x is None:
            status = _status_of(res.status)
            return _Packing(
                chosen, status, float("nan"), float("nan"), time.perf_counter() - start, len(sides_), len(sub)
            )
        status = SolveStatus.OPTIMAL if res.status == 0 else SolveStatus.FEASIBLE
        chosen[sub] = res.x > 0.5
        sub_bound = float(getattr(res, "mip_dual_bound", np.nan) or np.nan)
        bound = bound - float(lp.x[sub] @ c[sub]) + sub_bound  # the LP's other components stay exact
        value = float(c @ chosen)
        return _Packing(chosen, status, value, bound, time.perf_counter() - start, len(sides_), len(sub))
    return _Packing(chosen, status, value, bound, time.perf_counter() - start, len(sides_))


def _status_of(code: int) -> SolveStatus:
    """A failed HiGHS result's status (scipy's milp codes: 1 limit, 2 infeasible)."""
    return {1: SolveStatus.TIMEOUT, 2: SolveStatus.INFEASIBLE}.get(int(code), SolveStatus.ERROR)
