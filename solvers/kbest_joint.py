"""K best global solutions of the joint selection + assignment model.

Two exact schemes, picked by what the graph allows:

* **Fixed segmentation, one-frame links, no division pairs** (label images): the joint model is
  the frame-pair assignment model, and :func:`solvers.murty.kbest_lap` enumerates it exactly by
  Lawler–Murty partitioning, re-solving one frame pair per subspace. Frame pairs are independent
  there (a node's incoming and outgoing choices are separate constraints), so the K best of the
  movie are exactly the K best combinations of frame-pair alternatives. As in
  :func:`solvers.lap.solve_lap`, a fixed segmentation means every node is selected: this equals
  the joint model with every node pinned (tested against the no-good scheme with such pins).
* **Anything else** (competing candidates, gap-closing links, division pairs): the integer
  program of :mod:`solvers.model` is solved K times, each time with a no-good cut that removes
  every solution found so far. Node and edge variables fix all others (appear, disappear,
  division and pair variables follow from them, see :func:`solvers.model.completion`), so the
  cut ``Σ_{v∈S}(1−v) + Σ_{v∉S} v ≥ 1`` over node and edge columns removes exactly solution S.
  Each re-solve is run to optimality (relative gap 0), so the k-th solve returns the k-th best.
  HiGHS is the backend: issue 3's measurements show LP-based branch-and-bound far ahead of
  CP-SAT on tracking programs, and the cuts keep the LP relaxation intact.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from solvers.model import build_program
from solvers.murty import kbest_lap
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus


def lap_applies(graph: CandidateGraph) -> bool:
    """Whether the graph is a fixed segmentation with one-frame links (Murty is exact)."""
    if np.any(graph.node_hier_parent >= 0) or getattr(graph, "division_pairs", None) is not None:
        return False
    if graph.n_edges == 0:
        return True
    dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
    if np.any(dt != 1):
        return False
    has_out = np.zeros(graph.n_nodes, bool)
    has_out[graph.edge_source] = True
    return not np.any(has_out & (graph.disappear_cost + graph.division_cost < 0))


def kbest_joint(
    graph: CandidateGraph,
    k: int,
    *,
    pins: Pins | None = None,
    method: str = "auto",
    time_limit: float = 300.0,
) -> list[Solution]:
    """The ``k`` best solutions of the joint model, best first, each with its objective.

    ``method``: ``"auto"`` (Murty when :func:`lap_applies` and no pins, else no-good cuts),
    ``"murty"`` or ``"nogood"``. ``time_limit`` is per re-solve of the no-good scheme; a
    re-solve that stops early ends the list (its status is kept on the last solution).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if method not in ("auto", "murty", "nogood"):
        raise ValueError(f"unknown method {method!r}; choose auto, murty or nogood")
    use_murty = method == "murty" or (method == "auto" and pins is None and lap_applies(graph))
    if use_murty:
        if pins is not None:
            raise ValueError("the Murty scheme takes no pins; use method='nogood'")
        return kbest_lap(graph, k)
    return _kbest_nogood(graph, k, pins, time_limit)


def _kbest_nogood(graph: CandidateGraph, k: int, pins: Pins | None, time_limit: float) -> list[Solution]:
    start = time.perf_counter()
    prog = build_program(graph, pins)
    n_key = graph.n_nodes + graph.n_edges  # x and y columns come first
    cuts: list[np.ndarray] = []
    out: list[Solution] = []
    for rank in range(k):
        A, lo, hi = prog.A, prog.row_lo, prog.row_hi
        if cuts:
            key = np.array(cuts)  # (r, n_key) 0/1
            rows = sp.csr_matrix(np.hstack([1.0 - 2.0 * key, np.zeros((len(cuts), prog.n_vars - n_key))]))
            A = sp.vstack([A, rows], format="csr")
            lo = np.concatenate([lo, 1.0 - key.sum(axis=1)])
            hi = np.concatenate([hi, np.full(len(cuts), np.inf)])
        t0 = time.perf_counter()
        res = milp(
            prog.c,
            constraints=LinearConstraint(A, lo, hi),
            integrality=np.ones(prog.n_vars, np.int64),
            bounds=Bounds(prog.lb, prog.ub),
            options={"time_limit": float(time_limit), "mip_rel_gap": 0.0, "presolve": True},
        )
        if res.x is None:
            break
        v = np.rint(res.x)
        status = SolveStatus.OPTIMAL if res.status == 0 else SolveStatus.FEASIBLE
        out.append(
            Solution(
                node_selected=v[prog.x] > 0.5,
                edge_selected=v[prog.y] > 0.5,
                objective=float(res.fun),
                status=status,
                bound=float(getattr(res, "mip_dual_bound", np.nan) or np.nan),
                gap=float(getattr(res, "mip_gap", np.nan) or 0.0),
                seconds=time.perf_counter() - t0,
                backend="highs-nogood",
                info={"rank": rank, "total_seconds": time.perf_counter() - start},
            )
        )
        if status is not SolveStatus.OPTIMAL:
            break
        cuts.append(v[:n_key])
    return out
