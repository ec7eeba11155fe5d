"""Joint selection + assignment: solve the integer program of :mod:`solvers.model`.

Backends (chosen by measurement, ``benchmarks/joint_scaling.py``, figures in
``benchmarks/README.md``: on 3 frames × 600 cells with 3-level forests HiGHS via scipy was
2–8× faster than OR-Tools HiGHS and SCIP and 10× or more faster than CP-SAT): the LP
relaxation of tracking programs is nearly tight, so LP-based branch-and-bound wins. CBC is not
offered: OR-Tools 9.15's model_builder does not ship it.

* ``"highs"`` (default): HiGHS through ``scipy.optimize.milp``; the matrix goes in as is
  (single-threaded; ``workers``, ``seed`` and warm starts are ignored by this backend).
* ``"ortools-highs"``, ``"scip"``, ``"cpsat"``: OR-Tools ``model_builder``, filled from the same
  sparse matrix in one call (``fill_model_from_sparse_data``); these take warm starts (hints),
  worker counts and seeds. CP-SAT is kept for top-K / no-good cuts, not for speed.

OR-Tools objects never leave this module: callers get a :class:`solvers.types.Solution`.

Windows: :func:`solve_windowed` cuts a long movie into windows of ``window`` frames that overlap
by ``overlap`` frames; each window fixes ("anchors") the frames the previous window committed
and commits all but its last ``overlap`` frames. ``solve_joint(..., window=(t0, t1),
warm_start=sol)`` re-solves frames ``[t0, t1)`` with everything outside fixed to ``sol``
(incremental re-solve after an edit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypedDict, Unpack

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from solvers.model import IntegerProgram, build_program, completion, objective
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus

BACKENDS = ("highs", "ortools-highs", "scip", "cpsat")


class BackendOptions(TypedDict, total=False):
    """Keyword options of :func:`solve_joint` that :func:`solve_windowed` passes to every window."""

    backend: str
    time_limit: float
    gap: float
    workers: int
    seed: int
    presolve: bool | None


def solve_joint(
    graph: CandidateGraph,
    *,
    backend: str = "highs",
    time_limit: float = 300.0,
    gap: float = 1e-4,
    workers: int = 1,
    seed: int = 0,
    pins: Pins | None = None,
    window: tuple[int, int] | None = None,
    warm_start: Solution | None = None,
    presolve: bool | None = None,
) -> Solution:
    """Minimum-cost consistent selection of nodes and links of ``graph``.

    ``presolve`` (HiGHS backends): None chooses by measurement: off when candidates compete
    (a forest with path rows: on the synthetic 5 frames × 1,000 cells 3-level forest, HiGHS
    presolve took 16 of 35 s, 12 s without it), on for label-image graphs (bacteria GT graph
    with division pairs: 10 s with, 17 s without).

    ``window=(t0, t1)`` solves frames ``t0 <= t < t1`` only; with ``warm_start`` the frames
    around it are fixed to that solution (anchored seams), without it they are left out.
    Infeasible or timed-out problems return a :class:`Solution` with that status (nothing
    selected) rather than raising, so the caller can mark its run failed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if window is not None:
        return _solve_region(
            graph,
            window[0],
            window[1],
            warm_start,
            backend=backend,
            time_limit=time_limit,
            gap=gap,
            workers=workers,
            seed=seed,
            pins=pins,
            presolve=presolve,
        )
    t_start = time.perf_counter()
    prog = build_program(graph, pins)
    t_built = time.perf_counter()
    hint = None
    if warm_start is not None:
        hint = completion(graph, warm_start.node_selected, warm_start.edge_selected)
    if presolve is None:
        presolve = not bool(np.any(graph.node_hier_parent >= 0))
    v, status, obj, bound, rgap = _run_backend(prog, backend, time_limit, gap, workers, seed, hint, presolve)
    t_done = time.perf_counter()
    if v is None:
        node_sel = np.zeros(graph.n_nodes, bool)
        edge_sel = np.zeros(graph.n_edges, bool)
    else:
        node_sel = v[prog.x] > 0.5
        edge_sel = v[prog.y] > 0.5
    return Solution(
        node_selected=node_sel,
        edge_selected=edge_sel,
        objective=obj,
        status=status,
        bound=bound,
        gap=rgap,
        seconds=t_done - t_start,
        backend=backend,
        info={
            "build_seconds": t_built - t_start,
            "solve_seconds": t_done - t_built,
            "n_vars": prog.n_vars,
            "n_rows": prog.A.shape[0],
            "n_nonzeros": prog.A.nnz,
        },
    )


def solve_windowed(
    graph: CandidateGraph,
    window: int = 20,
    overlap: int = 2,
    *,
    pins: Pins | None = None,
    **kwargs: Unpack[BackendOptions],
) -> Solution:
    """Solve a long movie window by window with anchored seams (see the module docstring).

    ``pins`` and ``kwargs`` (:class:`BackendOptions`) go to :func:`solve_joint` for every window. The
    result's status is the worst window status; objective is evaluated on the whole graph.
    """
    if window < 2 or not 0 <= overlap < window:
        raise ValueError("need window >= 2 and 0 <= overlap < window")
    if graph.n_nodes == 0:
        return solve_joint(graph, pins=pins, **kwargs)
    t_start = time.perf_counter()
    tmin, tmax = int(graph.node_t.min()), int(graph.node_t.max())
    node_sel = np.zeros(graph.n_nodes, bool)
    edge_sel = np.zeros(graph.n_edges, bool)
    committed = Solution(node_sel, edge_sel, 0.0, SolveStatus.OPTIMAL)
    statuses: list[SolveStatus] = []
    bound_sum, n_windows = 0.0, 0
    s = tmin
    while True:
        last = s + window > tmax
        sol = _solve_region(
            graph,
            s,
            s + window,
            committed if s > tmin else None,
            after=False,
            pins=pins,
            **kwargs,
        )
        statuses.append(sol.status)
        n_windows += 1
        bound_sum += sol.bound if np.isfinite(sol.bound) else 0.0
        if sol.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            break
        commit_end = tmax + 1 if last else s + window - overlap
        in_commit = (graph.node_t >= s) & (graph.node_t < commit_end)
        node_sel = np.where(in_commit, sol.node_selected, node_sel)
        e_commit = in_commit[graph.edge_target]
        edge_sel = np.where(e_commit, sol.edge_selected, edge_sel)
        committed = Solution(node_sel, edge_sel, 0.0, SolveStatus.OPTIMAL)
        if last:
            break
        s = commit_end
    worst = _worst(statuses)
    ok = worst in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    return Solution(
        node_selected=node_sel if ok else np.zeros(graph.n_nodes, bool),
        edge_selected=edge_sel if ok else np.zeros(graph.n_edges, bool),
        objective=objective(graph, node_sel, edge_sel) if ok else float("nan"),
        status=worst,
        seconds=time.perf_counter() - t_start,
        backend=str(kwargs.get("backend", "highs")),
        info={"windows": n_windows, "window": window, "overlap": overlap},
    )


def solve_window(
    graph: CandidateGraph,
    window: tuple[int, int],
    warm_start: Solution,
    solve: Callable[[CandidateGraph, Pins], Solution],
    pins: Pins | None = None,
) -> Solution:
    """``solve_joint(graph, window=window, warm_start=warm_start, pins=pins)`` with ``solve``
    for the window's sub-problem (the same graph and pins: the frames around the window fixed
    to ``warm_start`` as pins); e.g. :func:`solvers.assignment.solve_fixed_or_joint`, exact
    where the sub-problem is a fixed segmentation."""
    return _solve_region(graph, window[0], window[1], warm_start, pins=pins, inner=solve)


def _worst(statuses: list[SolveStatus]) -> SolveStatus:
    order = [SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIMEOUT, SolveStatus.INFEASIBLE, SolveStatus.ERROR]
    return max(statuses, key=order.index)


def _solve_region(
    graph: CandidateGraph,
    t0: int,
    t1: int,
    reference: Solution | None,
    after: bool = True,
    pins: Pins | None = None,
    inner: Callable[[CandidateGraph, Pins], Solution] | None = None,
    **kwargs: Unpack[BackendOptions],
) -> Solution:
    """Solve frames [t0, t1); neighbouring frames (within the longest edge) fixed to ``reference``
    (the sub-problem by ``inner``, else :func:`solve_joint` with ``kwargs``).

    Context nodes before t0 keep their committed incoming side (appear cost 0), context nodes
    after t1 their outgoing side (disappear/division cost 0); seam links are free and pay
    normal costs. Without context after the window, nodes of its last frame may end freely.
    """
    t = graph.node_t
    dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
    margin = int(dt.max()) if len(dt) else 1
    inside = (t >= t0) & (t < t1)
    before = (t >= t0 - margin) & (t < t0) & (reference is not None)
    later = (t >= t1) & (t < t1 + margin) & (reference is not None) & after
    keep = inside | before | later
    idx = np.flatnonzero(keep)
    local = np.full(graph.n_nodes, -1, np.int64)
    local[idx] = np.arange(len(idx))
    ekeep = keep[graph.edge_source] & keep[graph.edge_target]
    eidx = np.flatnonzero(ekeep)
    appear = graph.appear_cost[idx].copy()
    disappear = graph.disappear_cost[idx].copy()
    division = graph.division_cost[idx].copy()
    appear[before[idx]] = 0.0
    disappear[later[idx]] = 0.0
    division[later[idx]] = 0.0
    if not later.any() and t1 <= int(t.max()):
        disappear[t[idx] == t1 - 1] = 0.0
    pairs = pcost = None
    if graph.division_pairs is not None and graph.division_pair_cost is not None:  # given together
        emap = np.full(graph.n_edges, -1, np.int64)
        emap[eidx] = np.arange(len(eidx))
        pk = ekeep[graph.division_pairs].all(axis=1)
        pairs = emap[graph.division_pairs[pk]]
        pcost = graph.division_pair_cost[pk]
    sub = CandidateGraph(
        node_t=t[idx],
        node_cost=graph.node_cost[idx],
        node_hier_parent=np.where(
            graph.node_hier_parent[idx] >= 0, local[np.maximum(graph.node_hier_parent[idx], 0)], -1
        ),
        edge_source=local[graph.edge_source[eidx]],
        edge_target=local[graph.edge_target[eidx]],
        edge_cost=graph.edge_cost[eidx],
        appear_cost=appear,
        disappear_cost=disappear,
        division_cost=division,
        division_pairs=pairs,
        division_pair_cost=pcost,
    )
    fixed = before | later
    must_n: list[np.ndarray] = []
    forbid_n: list[np.ndarray] = []
    must_e: list[np.ndarray] = []
    forbid_e: list[np.ndarray] = []
    events: list[list[np.ndarray]] = [[], [], []]  # must_divide, forbid_divide, must_end
    if reference is not None:
        fn = fixed[idx]
        must_n.append(np.flatnonzero(fn & reference.node_selected[idx]))
        forbid_n.append(np.flatnonzero(fn & ~reference.node_selected[idx]))
        fe = fixed[graph.edge_source[eidx]] & fixed[graph.edge_target[eidx]]
        must_e.append(np.flatnonzero(fe & reference.edge_selected[eidx]))
        forbid_e.append(np.flatnonzero(fe & ~reference.edge_selected[eidx]))
    if pins is not None:
        for arr, out, loc in (
            (pins.must_nodes, must_n, local),
            (pins.forbid_nodes, forbid_n, local),
        ):
            m = loc[np.asarray(arr, np.int64)]
            out.append(m[m >= 0])
        # events only where the sub-problem holds every outgoing link: not on later context
        # nodes, whose successors lie outside it
        decided = (inside | before)[idx]
        for arr, out in zip((pins.must_divide, pins.forbid_divide, pins.must_end), events):
            m = local[np.asarray(arr, np.int64)]
            m = m[m >= 0]
            out.append(m[decided[m]])
        emap2 = np.full(graph.n_edges, -1, np.int64)
        emap2[eidx] = np.arange(len(eidx))
        for arr, out in ((pins.must_edges, must_e), (pins.forbid_edges, forbid_e)):
            m = emap2[np.asarray(arr, np.int64)]
            out.append(m[m >= 0])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    sub_pins = Pins(cat(must_n), cat(forbid_n), cat(must_e), cat(forbid_e), *(cat(x) for x in events))
    sol = solve_joint(sub, pins=sub_pins, **kwargs) if inner is None else inner(sub, sub_pins)
    node_sel = np.zeros(graph.n_nodes, bool) if reference is None else reference.node_selected.copy()
    edge_sel = np.zeros(graph.n_edges, bool) if reference is None else reference.edge_selected.copy()
    touched_e = ekeep & ~(fixed[graph.edge_source] & fixed[graph.edge_target])
    node_sel[inside] = sol.node_selected[local[inside]]
    emap3 = np.full(graph.n_edges, -1, np.int64)
    emap3[eidx] = np.arange(len(eidx))
    edge_sel[touched_e] = sol.edge_selected[emap3[touched_e]]
    # edges leaving the sub-problem that touch the window are dropped (their end was not solved)
    edge_sel[(inside[graph.edge_source] | inside[graph.edge_target]) & ~ekeep] = False
    ok = sol.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    return replace(
        sol,
        node_selected=node_sel,
        edge_selected=edge_sel,
        objective=objective(graph, node_sel, edge_sel) if ok else float("nan"),
        info={**sol.info, "window": (t0, t1), "window_objective": sol.objective},
    )


def _run_backend(
    prog: IntegerProgram,
    backend: str,
    time_limit: float,
    gap: float,
    workers: int,
    seed: int,
    hint: np.ndarray | None,
    presolve: bool = True,
) -> tuple[np.ndarray | None, SolveStatus, float, float, float]:
    """(values or None, status, objective, bound, relative gap) from one backend."""
    if prog.n_vars == 0:
        return np.zeros(0), SolveStatus.OPTIMAL, 0.0, 0.0, 0.0
    if backend == "highs":
        return _scipy_highs(prog, time_limit, gap, presolve)
    return _model_builder(prog, backend, time_limit, gap, workers, seed, hint, presolve)


def _scipy_highs(
    prog: IntegerProgram, time_limit: float, gap: float, presolve: bool = True
) -> tuple[np.ndarray | None, SolveStatus, float, float, float]:
    res = milp(
        prog.c,
        constraints=LinearConstraint(prog.A, prog.row_lo, prog.row_hi),
        integrality=np.ones(prog.n_vars, np.int64),
        bounds=Bounds(prog.lb, prog.ub),
        options={"time_limit": float(time_limit), "mip_rel_gap": float(gap), "presolve": presolve},
    )
    bound = float(getattr(res, "mip_dual_bound", np.nan) or np.nan)
    rgap = float(getattr(res, "mip_gap", np.nan) or 0.0)
    if res.status == 0:
        return np.rint(res.x), SolveStatus.OPTIMAL, float(res.fun), bound, rgap
    if res.status == 1:
        if res.x is not None:
            return np.rint(res.x), SolveStatus.FEASIBLE, float(res.fun), bound, rgap
        return None, SolveStatus.TIMEOUT, float("nan"), bound, float("nan")
    if res.status == 2:
        return None, SolveStatus.INFEASIBLE, float("nan"), float("nan"), float("nan")
    return None, SolveStatus.ERROR, float("nan"), float("nan"), float("nan")


def _model_builder(
    prog: IntegerProgram,
    backend: str,
    time_limit: float,
    gap: float,
    workers: int,
    seed: int,
    hint: np.ndarray | None,
    presolve: bool = True,
) -> tuple[np.ndarray | None, SolveStatus, float, float, float]:
    from ortools.linear_solver.python import model_builder as mb

    model = mb.Model()  # type: ignore[no-untyped-call]  # ortools' Model.__init__ is not annotated
    helper = model.helper
    # ortools' generated stub types these arrays as ndarray[float64[m, 1]], which no array matches
    fill: Any = helper.fill_model_from_sparse_data
    fill(
        prog.lb,
        prog.ub,
        prog.c,
        _finite(prog.row_lo),
        _finite(prog.row_hi),
        sp.csr_matrix(prog.A, dtype=np.float64),
    )
    for i in range(prog.n_vars):
        helper.set_var_integrality(i, True)
    if hint is not None:
        for i, val in enumerate(hint):
            helper.add_hint(i, float(val))
    name = {"ortools-highs": "highs", "scip": "scip", "cpsat": "sat"}[backend]
    solver = mb.Solver(name)
    solver.set_time_limit_in_seconds(float(time_limit))
    if name == "sat":
        solver.set_solver_specific_parameters(
            f"num_workers: {max(1, workers)}, random_seed: {seed}, relative_gap_limit: {gap}"
        )
    elif name == "highs":
        solver.set_solver_specific_parameters(
            f"mip_rel_gap={gap}\nrandom_seed={seed}\nthreads={max(1, workers)}\noutput_flag=false"
            + ("" if presolve else "\npresolve=off")
        )
    elif name == "scip":
        solver.set_solver_specific_parameters(f"limits/gap = {gap}\nrandomization/randomseedshift = {seed}")
    status = solver.solve(model)
    S = mb.SolveStatus
    if status in (S.OPTIMAL, S.FEASIBLE):
        values = np.rint(np.asarray(solver.values(model.get_variables()), np.float64))
        obj = float(solver.objective_value)
        bound = float(solver.best_objective_bound)
        rgap = abs(obj - bound) / max(abs(obj), 1e-9) if np.isfinite(bound) else float("nan")
        st = SolveStatus.OPTIMAL if status == S.OPTIMAL else SolveStatus.FEASIBLE
        return values, st, obj, bound, rgap
    if status == S.INFEASIBLE:
        return None, SolveStatus.INFEASIBLE, float("nan"), float("nan"), float("nan")
    if status == S.NOT_SOLVED:
        return None, SolveStatus.TIMEOUT, float("nan"), float("nan"), float("nan")
    return None, SolveStatus.ERROR, float("nan"), float("nan"), float("nan")


def _finite(a: np.ndarray) -> np.ndarray:
    # model_builder takes ±inf, but keep the arrays float64 contiguous
    return np.ascontiguousarray(a, np.float64)
