"""Incremental re-solve: apply the edit log's pins by re-solving only the frames they touch.

:func:`resolve` turns every active edit into a pin (pins persist across re-solves), takes the
frames of the not-yet-applied edits (``run_id`` NULL) — plus those of applied edits the current
solution violates, e.g. after a fresh ``trackdb solve`` — widened by ``margin`` and merged into
windows, and re-solves each window with :func:`solvers.joint.solve_joint` (``window=``,
``warm_start=`` the current solution: frames outside are fixed to it, anchored seams). The new
solution is a new ``solve`` run whose ``parent_run_id`` is the run of the previous current
solution; it becomes current and the applied edits get its run id, in one transaction. An
infeasible pin set fails the run and leaves the current solution as it was.

Costs: the model is the one of the chain's first full solve (the solve run that is not itself a
re-solve): same candidates and links, costs from :func:`solvers.costs.tracking_costs` with the
motion and noise scales re-estimated from that solve's stored solution (two rounds of
``estimate_motion``, the step ``trackdb solve`` alternates with solving). The solve's last-round
motion model is not stored, so this is its fixed point rather than a replay of the solve (which
would cost as much as the solve itself); every re-solve of a chain uses the same costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.regions import mask_covariance
from solvers.costs import CostParams, tracking_costs
from solvers.features import CellFeatures
from solvers.joint import BACKENDS, solve_joint
from solvers.motion import estimate_motion, initial_motion
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus
from trackdb.errors import InputError, SolveFailed
from trackdb.stages.edits import PIN_KINDS
from trackdb.stages.solve import node_costs, write_current_solution
from trackdb.store import edits as log
from trackdb.store import runs, solutions
from trackdb.store.core import Movie, Store
from trackdb.store.graph import load_candidates, load_edges, positions
from trackdb.store.runs import ResolveParams, RunKind, SolveChain, SolveParams

RESOLVABLE = ("joint", "lap")  # solve methods whose graph holds every candidate and link


@dataclass(frozen=True)
class ResolveResult:
    run_id: int
    parent_run_id: int
    solution_id: int
    status: str
    objective: float
    windows: list[tuple[int, int]]  # inclusive frame ranges re-solved
    applied: list[int]  # pending edits applied by this run
    violated: list[int]  # applied edits the previous solution broke, re-applied
    stale: list[int]  # edits whose node/link is not in the graph (skipped)
    n_selected: int
    n_links: int
    n_tracks: int
    nodes_changed: int
    links_changed: int
    build_seconds: float
    solve_seconds: float


def _selection(store: Store, sid: int, node_ids: np.ndarray, edge_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stored = solutions.selection(store, sid)
    ln, node_found = positions(node_ids, stored.node_ids)
    le, edge_found = positions(edge_ids, stored.edge_ids)
    if not node_found.all() or not edge_found.all():
        raise InputError(f"solution {sid} uses cells or links outside its solve's candidate graph")
    node_sel = np.zeros(len(node_ids), bool)
    edge_sel = np.zeros(len(edge_ids), bool)
    node_sel[ln] = True
    edge_sel[le] = True
    return node_sel, edge_sel


def chain_model(store: Store, movie: Movie, chain: SolveChain) -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
    """The chain's candidate graph with costs re-estimated from its full solve's solution."""
    cands, node_ids = load_candidates(store, chain.candidate_run, movie.ndim, with_masks=True)
    edges, edge_ids = load_edges(store, chain.link_run, node_ids)
    cells = CellFeatures(
        t=cands.t,
        centroid=cands.centroid,
        area=cands.area.astype(float),
        cov=mask_covariance(cands),
        bbox=cands.bbox,
        image_shape=movie.shape,
    )
    params = CostParams()
    assert chain.root is not None
    root_sid = solutions.rank0_solution_of_run(store, chain.root.id)
    node_sel, edge_sel = _selection(store, root_sid, node_ids, edge_ids)
    root = Solution(node_sel, edge_sel, float("nan"), SolveStatus.OPTIMAL)
    motion = initial_motion(cells, edges.source, edges.target)
    for _ in range(2):
        motion = estimate_motion(cells, edges.source, edges.target, root, motion, params.div_rate_bounds)
    graph = tracking_costs(
        cells,
        edges.source,
        edges.target,
        motion,
        params,
        node_cost=node_costs(cands, params),
        node_hier_parent=cands.hier_parent,
    )
    return graph, node_ids, edge_ids


def _pins(
    edits: list[dict[str, Any]], node_ids: np.ndarray, edge_ids: np.ndarray
) -> tuple[dict[int, tuple[str, int]], list[int]]:
    """edit id → (kind, local index) for every edit whose node/link is in the graph; stale ids."""
    out: dict[int, tuple[str, int]] = {}
    stale = []
    for r in edits:
        p = r["payload"]
        key, ids = ("node_id", node_ids) if r["kind"].endswith("node") else ("edge_id", edge_ids)
        pos, found = positions(ids, np.array([p[key]]))
        if not found[0]:
            stale.append(r["id"])
        else:
            out[r["id"]] = (r["kind"], int(pos[0]))
    return out, stale


def _contradictions(pins: dict[int, tuple[str, int]]) -> tuple[int, int] | None:
    """The first two edits that pin and forbid the same node or link, if any."""
    seen: dict[tuple[str, int], int] = {}
    for edit_id, (kind, i) in pins.items():
        verb, what = kind.split("_")
        opposite = ("forbid_" if verb == "pin" else "pin_") + what
        if (opposite, i) in seen:
            return seen[(opposite, i)], edit_id
        seen.setdefault((kind, i), edit_id)
    return None


def _holds(kind: str, i: int, sol: Solution) -> bool:
    sel = sol.node_selected if kind.endswith("node") else sol.edge_selected
    return bool(sel[i]) == kind.startswith("pin")


def windows(ranges: list[tuple[int, int]], margin: int, n_frames: int, seam: int) -> list[tuple[int, int]]:
    """Inclusive frame ranges widened by ``margin``, clipped to the movie, merged when closer
    than ``seam`` frames (a window's fixed context must not reach the next window's pins)."""
    spans = sorted((max(0, a - margin), min(n_frames - 1, b + margin)) for a, b in ranges)
    out: list[list[int]] = []
    for a, b in spans:
        if out and a <= out[-1][1] + seam + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def resolve(
    store: Store,
    movie_name: str,
    *,
    margin: int = 2,
    backend: str = "highs",
    time_limit: float = 300.0,
    gap: float = 1e-4,
) -> ResolveResult | None:
    """Apply the movie's pending edits by re-solving their windows; None when there is nothing to do."""
    if margin < 0:
        raise InputError(f"--margin must be >= 0, got {margin}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    if chain.current is None or chain.root is None:
        raise InputError(f"movie {movie.name!r} has no solved solution to re-solve: run `trackdb solve` first")
    root_params = chain.root.typed(SolveParams)
    method = root_params.method
    if method not in RESOLVABLE:
        raise InputError(
            f"the current solution of movie {movie.name!r} comes from a {method!r} solve; "
            f"re-solving needs a {' or '.join(RESOLVABLE)} solve"
        )
    edits = log.all_edits(store, movie.id)
    removed = log.removed(store, movie.id)
    active = [r for r in edits if r["kind"] in PIN_KINDS and r["id"] not in removed]
    pending = [r for r in edits if r["run_id"] is None]
    if not pending and not active:
        return None
    t_build = time.perf_counter()
    graph, node_ids, edge_ids = chain_model(store, movie, chain)
    assert movie.current_solution_id is not None  # chain.current is a solve of it
    sid = int(movie.current_solution_id)
    cur = Solution(*_selection(store, sid, node_ids, edge_ids), float("nan"), SolveStatus.OPTIMAL)
    pins, stale = _pins(active, node_ids, edge_ids)
    violated = [
        r["id"] for r in active if r["run_id"] is not None and r["id"] in pins and not _holds(*pins[r["id"]], cur)
    ]
    dirty = [r for r in pending if r["id"] not in stale] + [r for r in active if r["id"] in violated]
    build_seconds = time.perf_counter() - t_build
    if not dirty:
        return None
    dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
    spans = windows(
        [(r["t_start"], r["t_end"]) for r in dirty], margin, movie.n_frames, int(dt.max()) if len(dt) else 1
    )
    pin = Pins(*(np.array(sorted({i for k, i in pins.values() if k == kind}), np.int64) for kind in PIN_KINDS))
    applied = [r["id"] for r in pending if r["id"] not in stale]
    params = SolveParams(
        method=root_params.method,
        link_run_id=root_params.link_run_id,
        window=root_params.window,
        time_limit=root_params.time_limit,
        gap=root_params.gap,
        iterations=root_params.iterations,
        resolve=ResolveParams(
            margin=margin,
            backend=backend,
            time_limit=time_limit,
            gap=gap,
            windows=spans,
            edits=applied,
            violated=violated,
            stale=stale,
            root_run_id=chain.root.id,
            previous_solution_id=sid,
        ),
    )
    parent = chain.current.id
    undo = (
        f"see `trackdb edits --movie {movie.name}` and undo one with `trackdb edit --movie {movie.name} remove EDIT_ID`"
    )
    with runs.record(store, movie.id, RunKind.SOLVE, params, parent_run_id=parent) as run_id:
        clash = _contradictions(pins)
        if clash:
            raise SolveFailed(
                f"re-solve of movie {movie.name!r} is infeasible: edits {clash[0]} and {clash[1]} "
                f"pin and forbid the same {'cell' if pins[clash[0]][0].endswith('node') else 'link'}; {undo}"
            )
        sol, solve_seconds = cur, 0.0
        for a, b in spans:
            sol = solve_joint(
                graph, backend=backend, time_limit=time_limit, gap=gap, pins=pin, window=(a, b + 1), warm_start=sol
            )
            solve_seconds += sol.seconds
            if sol.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                why = (
                    " (raise --time-limit)"
                    if sol.status is SolveStatus.TIMEOUT
                    else f": the pins conflict with each other or with the fixed frames around it; {undo}"
                )
                raise SolveFailed(f"re-solve of movie {movie.name!r} frames {a}-{b} ended {sol.status.value}{why}")
        new_sid, n_sel, n_links, n_tracks = _write(store, movie, run_id, graph, sol, node_ids, edge_ids, applied)
    return ResolveResult(
        run_id,
        parent,
        new_sid,
        sol.status.value,
        float(sol.objective),
        spans,
        applied,
        violated,
        stale,
        n_sel,
        n_links,
        n_tracks,
        int(np.sum(sol.node_selected != cur.node_selected)),
        int(np.sum(sol.edge_selected != cur.edge_selected)),
        build_seconds,
        solve_seconds,
    )


def _write(
    store: Store,
    movie: Movie,
    run_id: int,
    graph: CandidateGraph,
    sol: Solution,
    node_ids: np.ndarray,
    edge_ids: np.ndarray,
    applied: list[int],
) -> tuple[int, int, int, int]:
    """Solution, tracks, the current pointer and the applied edits' run id, in one transaction."""
    with store.begin() as c:
        written = write_current_solution(store, c, movie, run_id, graph, sol, node_ids, edge_ids, "resolve")
        log.mark_applied(c, applied, run_id)
    return written
