"""The solve stage: select cells and links (joint MIP, frame-pair LAP, or H-EMD then LAP),
with the cost model's scales re-estimated from each solution, and store the result as the
movie's current solution.

A failed solve leaves its run marked ``failed`` with the reason and writes no solution.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.types import Candidates
from solvers.costs import CostModel, CostParams
from solvers.node_costs import forest_node_cost
from solvers.refine import refine_cost_model
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.stages import cost_model
from trackdb.stages import pins as pin_rules
from trackdb.store import edits as edit_log
from trackdb.store import ingest, runs
from trackdb.store.core import Connection, Movie, Store
from trackdb.store.graph import load_candidates, load_edges
from trackdb.store.runs import LinkParams, RunKind, SolveParams

if TYPE_CHECKING:
    from trackdb.stages.link import Linked


# run_solve's defaults (the CLI's), which solve_linked uses too
TIME_LIMIT = 300.0
GAP = 1e-4
ITERATIONS = 4


class Method(enum.Enum):
    JOINT = "joint"
    LAP = "lap"
    HEMD = "hemd"


@dataclass(frozen=True)
class SolveResult:
    run_id: int
    solution_id: int
    status: str
    objective: float
    n_selected: int
    n_links: int
    n_tracks: int
    seconds: float
    history: list[dict[str, Any]]
    applied_edits: list[int] = field(default_factory=list)  # pending edits this solve honoured
    stale_edits: list[int] = field(default_factory=list)  # edits whose cells/links its graph lacks
    warnings: list[str] = field(default_factory=list)  # what it delivered short of an optimum
    solver: dict[str, str] = field(default_factory=dict)  # which solver ran (solver_used)
    n_divisions: int = 0  # selected cells with two selected successors


def solve_warnings(sol: Solution, time_limit: float) -> list[str]:
    """A solve that stopped at its time limit before proving optimality says so."""
    if sol.status is not SolveStatus.FEASIBLE:
        return []
    gap = f", gap {sol.gap:.2g}" if np.isfinite(sol.gap) else ""
    return [
        f"the solve stopped at its time limit ({time_limit:g} s per solve) before proving optimality{gap}: "
        "the solution is feasible, not necessarily optimal (raise --time-limit)"
    ]


def node_costs(cands: Candidates, params: CostParams) -> np.ndarray | None:
    """Per-candidate costs for a forest (:mod:`solvers.node_costs`); None for label images,
    where every detection is selected at the default node cost."""
    if np.all(cands.hier_parent < 0) and np.allclose(cands.score, 1.0):
        return None
    return forest_node_cost(cands.area, cands.score, cands.hier_parent, params)


def _solver(
    method: Method, window: int | None, time_limit: float, gap: float, pins: Pins | None = None
) -> Callable[[CandidateGraph], Solution]:
    if method is Method.LAP:
        from solvers.costs import division_slots
        from solvers.lap import solve_lap

        return lambda g: solve_lap(division_slots(g), pins)  # daughter pairs as second-slot costs
    if window:
        from solvers.joint import solve_windowed

        return lambda g: solve_windowed(g, window=window, time_limit=time_limit, gap=gap, pins=pins)
    from solvers.assignment import solve_fixed_or_joint

    # a fixed segmentation is an assignment with divisions: solved exactly without the MIP
    return lambda g: solve_fixed_or_joint(g, pins, time_limit=time_limit, gap=gap)


def solver_used(sol: Solution) -> dict[str, str]:
    """Which solver produced ``sol`` (and why the joint program, where the assignment was not
    exact), for the run summary and the command's output."""
    from solvers.joint import BACKENDS

    name = sol.info.get("solver") or ("joint" if sol.backend in BACKENDS else sol.backend or "unknown")
    out = {"solver": "joint windowed" if "windows" in sol.info else str(name)}
    if "joint_reason" in sol.info:
        out["joint_reason"] = str(sol.info["joint_reason"])
    return out


ROUND_KEYS = ("iteration", "changed_links", "status", "seconds")  # of a round, not of the model


def final_scales(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The scales the stored solution was costed with (the last round's: motion σ, growth,
    division geometry, rates, persistence) and the number of rounds, for the run summary;
    what is not a finite number is null (JSON has no NaN)."""
    if not history:
        return {}
    last = history[-1]
    scales = {
        k: (float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None)
        for k, v in last.items()
        if k not in ROUND_KEYS
    }
    return {"rounds": len(history), "scales": scales}


def check_solve(method: str, window: int | None, time_limit: float, gap: float, iterations: int) -> Method:
    """The solve parameters' rules (the CLI's and an experiment manifest's); returns the method."""
    try:
        m = Method(method)
    except ValueError:
        raise InputError(f"unknown method {method!r}; choose joint, lap or hemd") from None
    if window is not None and (not _is_int(window) or window < 2):
        raise InputError(f"--window must be an integer >= 2 (frames), got {window!r}")
    if not _is_number(time_limit) or not np.isfinite(time_limit) or time_limit <= 0:
        raise InputError(f"--time-limit must be a finite number of seconds > 0, got {time_limit!r}")
    if not _is_number(gap) or not 0 <= gap < 1:
        raise InputError(f"--gap must be a number in [0, 1), got {gap!r}")
    if not _is_int(iterations) or iterations < 1:
        raise InputError(f"--iterations must be an integer >= 1, got {iterations!r}")
    return m


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def run_solve(
    store: Store,
    movie_name: str,
    *,
    method: str = "joint",
    window: int | None = None,
    time_limit: float = TIME_LIMIT,
    gap: float = GAP,
    iterations: int = ITERATIONS,
    link_run_id: int | None = None,
    resume: bool = False,
) -> SolveResult:
    """Select candidates and links, materialise tracks, write the solution and make it current.

    ``link_run_id``: the link run to solve (default: the movie's latest). ``resume`` continues
    an unfinished solve run with the same parameters instead of adding a run row (a re-run of an
    interrupted experiment)."""
    return _run_solve(store, movie_name, method, window, time_limit, gap, iterations, link_run_id, resume, None)


def solve_linked(store: Store, movie_name: str, linked: Linked, *, method: str = "joint") -> SolveResult:
    """:func:`run_solve` of the link run ``linked`` with the defaults, from its rows as the link
    stage returned them in this process (:func:`trackdb.stages.link.link_movie`) instead of
    reading them back: ``trackdb track``. The same run row, solution and costs."""
    return _run_solve(store, movie_name, method, None, TIME_LIMIT, GAP, ITERATIONS, linked.run_id, False, linked)


def _run_solve(
    store: Store,
    movie_name: str,
    method: str,
    window: int | None,
    time_limit: float,
    gap: float,
    iterations: int,
    link_run_id: int | None,
    resume: bool,
    linked: Linked | None,
) -> SolveResult:
    m = check_solve(method, window, time_limit, gap, iterations)
    movie = store.movie(movie_name)
    link = runs.latest_run(store, movie.id, RunKind.LINK) if link_run_id is None else runs.get_run(store, link_run_id)
    if link is None:
        raise NotFoundError(f"movie {movie.name!r} has no candidate links: run `trackdb link` first")
    if link.kind is not RunKind.LINK or link.movie_id != movie.id:
        raise InputError(f"run {link.id} is not a link run of movie {movie.name!r}")
    cand_run = link.typed(LinkParams).candidate_run_id
    params = SolveParams(
        method=m.value, window=window, time_limit=time_limit, gap=gap, iterations=iterations, link_run_id=link.id
    )
    edits = edit_log.all_edits(store, movie.id)
    with runs.record(store, movie.id, RunKind.SOLVE, params, parent_run_id=link.id, resume=resume) as run_id:
        built = build_solve(
            store,
            movie,
            m,
            link.id,
            cand_run,
            window=window,
            time_limit=time_limit,
            gap=gap,
            iterations=iterations,
            edits=pin_rules.constraints(edits),
            linked=linked,
        )
        graph, sol, history = built.graph, built.solution, built.history
        if sol.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            raise SolveFailed(
                f"solve of movie {movie.name!r} ended {sol.status.value}"
                f"{' (raise --time-limit)' if sol.status is SolveStatus.TIMEOUT else ''}"
            )
        stale = set(built.stale_edits)
        applied = [r["id"] for r in edits if r["run_id"] is None and r["id"] not in stale]
        with store.begin() as c:
            result = write_current_solution(
                store, c, movie, run_id, graph, sol, built.node_ids, built.edge_ids, m.value
            )
            if built.cost_model is not None:
                cost_model.save(c, run_id, built.node_ids, built.cost_model)
            edit_log.mark_applied(c, applied, run_id)
            warnings = solve_warnings(sol, time_limit)
            gap_value = float(sol.gap) if np.isfinite(sol.gap) else None
            n_out = np.bincount(graph.edge_source[np.asarray(sol.edge_selected, bool)], minlength=graph.n_nodes)
            n_divisions = int((n_out >= 2).sum())
            runs.set_summary(
                c,
                run_id,
                {
                    "status": sol.status.value,
                    "objective": sol.objective,
                    "gap": gap_value,
                    "divisions": n_divisions,
                    "warnings": warnings,
                    **solver_used(sol),
                    **final_scales(history),
                },
            )
    return SolveResult(
        run_id,
        result[0],
        sol.status.value,
        float(sol.objective),
        result[1],
        result[2],
        result[3],
        float(sum(h.get("seconds", 0.0) for h in history)),
        history,
        applied,
        sorted(stale),
        warnings,
        solver_used(sol),
        n_divisions,
    )


@dataclass(frozen=True)
class BuiltSolve:
    """The model a solve optimised and its solution, local indices mapped to database ids."""

    graph: CandidateGraph
    solution: Solution
    history: list[dict[str, Any]]
    node_ids: np.ndarray  # (graph.n_nodes,) node id of every graph node
    edge_ids: np.ndarray  # (graph.n_edges,) edge id of every graph edge
    cost_model: CostModel | None = None  # features + motion the last graph was costed from
    stale_edits: list[int] = field(default_factory=list)  # edits whose cells/links the graph lacks


def build_solve(
    store: Store,
    movie: Movie,
    m: Method,
    link_run_id: int,
    cand_run: int,
    *,
    window: int | None,
    time_limit: float,
    gap: float,
    iterations: int,
    edits: Sequence[pin_rules.Constraint] = (),
    linked: Linked | None = None,
) -> BuiltSolve:
    """Candidates + links → costs (motion refined over solves) → solution, without writing.

    ``edits``: the edit log's constraints (:func:`trackdb.stages.pins.constraints`), pinned in
    every cost round; those the graph lacks cells or links for are reported stale.

    Shared by ``run_solve`` and by ``trackdb uncertainty``, which rebuilds the current
    solution's model from its solve run's parameters so its probabilities describe that model.
    ``linked``: the link run's rows already in memory (:func:`trackdb.stages.link.link_movie`).
    """
    if linked is not None and _usable(linked, link_run_id, cand_run):
        cands, node_ids, edges, edge_ids = linked.cands, linked.node_ids, linked.edges, linked.edge_ids
    else:
        cands, node_ids = load_candidates(store, cand_run, movie.ndim, with_masks=True)
        edges, edge_ids = load_edges(store, link_run_id, node_ids)
    cells = cost_model.features(cands, movie)
    cost_params = CostParams()
    node_cost = node_costs(cands, cost_params)
    keep = np.ones(len(cands), bool)
    if m is Method.HEMD:
        keep = hemd_selection(cands, movie)
    elif m is Method.LAP and not np.all(cands.hier_parent < 0):
        raise InputError(
            "--method lap needs a fixed segmentation (label images, or candidates-from-predictions "
            "--no-merges); use joint or hemd for competing candidates"
        )
    sub_nodes, sub_edges = _restrict(keep, edges.source, edges.target)
    pins: Pins | None = None
    stale: list[int] = []
    if edits:
        pins, stale, _ = pin_rules.pins_for(edits, node_ids[keep], edge_ids[sub_edges])
        if m is not Method.JOINT and (len(pins.forbid_nodes) or pins.has_events):
            raise InputError(
                f"movie {movie.name!r} has edits that delete cells or pin divisions or track ends, which "
                f"--method {m.value} cannot honour: solve with --method joint"
            )
    solver = _solver(Method.LAP if m is Method.HEMD else m, window, time_limit, gap, pins)
    sub_cells = cells.subset(keep)
    refined = refine_cost_model(
        sub_cells,
        sub_nodes[edges.source[sub_edges]],
        sub_nodes[edges.target[sub_edges]],
        solver,
        n_iter=iterations,
        params=cost_params,
        node_cost=None if node_cost is None or m is Method.HEMD else node_cost[keep],
        node_hier_parent=None if m is Method.HEMD else _reindex_parent(cands.hier_parent, keep),
    )
    return BuiltSolve(
        refined.graph, refined.solution, refined.history, node_ids[keep], edge_ids[sub_edges], refined.model, stale
    )


def _usable(linked: Linked, link_run_id: int, cand_run: int) -> bool:
    """Whether ``linked`` holds every row of that link run (a run that skipped frames written
    before has edge ids -1 there, and is read back instead)."""
    return (
        linked.run_id == link_run_id
        and linked.params.candidate_run_id == cand_run
        and len(linked.cands.masks) == len(linked.cands)
        and not np.any(linked.edge_ids < 0)
    )


def _restrict(keep: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    new = np.full(len(keep), -1, np.int64)
    new[keep] = np.arange(int(keep.sum()))
    return new, np.flatnonzero(keep[src] & keep[dst])


def _reindex_parent(parent: np.ndarray, keep: np.ndarray) -> np.ndarray:
    new = np.full(len(keep), -1, np.int64)
    new[keep] = np.arange(int(keep.sum()))
    p = parent[keep]
    return np.where(p >= 0, new[np.maximum(p, 0)], -1)


def hemd_selection(cands: Candidates, movie: Movie) -> np.ndarray:
    """H-EMD (seed paper, Section III) picks one segmentation per frame; linking follows."""
    from inference.forest import paint_pixel_node
    from inference.hypotheses import subset
    from solvers.hemd import HemdFrame, select_hemd

    frames, index = [], []
    for t in range(movie.n_frames):
        here = cands.t == t
        frame = subset(cands, here)  # parents re-pointed to frame-local indices
        frames.append(
            HemdFrame(
                hier_parent=frame.hier_parent,
                area=frame.area,
                bbox=frame.bbox,
                pixel_node=paint_pixel_node(frame, movie.shape),
            )
        )
        index.append(np.flatnonzero(here))
    res = select_hemd(frames)
    keep = np.zeros(len(cands), bool)
    for idx, sel in zip(index, res.selected):
        keep[idx[np.asarray(sel, bool)]] = True
    return keep


def write_current_solution(
    store: Store,
    conn: Connection,
    movie: Movie,
    run_id: int,
    graph: CandidateGraph,
    sol: Solution,
    node_ids: np.ndarray,
    edge_ids: np.ndarray,
    name: str,
) -> tuple[int, int, int, int]:
    """Write ``sol`` of ``graph`` (local indices → store ids) with its CTC tracks and make it the
    movie's current solution, in the caller's transaction; returns (solution id, cells, links, tracks)."""
    track_of, tracks = tracks_from_solution(
        graph.node_t, graph.edge_source, graph.edge_target, sol.node_selected, sol.edge_selected
    )
    sel = sol.node_selected
    esel = sol.edge_selected & sel[graph.edge_source] & sel[graph.edge_target]
    sid = ingest.insert_solution(
        conn,
        run_id=run_id,
        movie_id=movie.id,
        node_ids=node_ids[sel],
        node_t=graph.node_t[sel],
        track_ids=track_of[sel],
        edge_ids=edge_ids[esel],
        edge_source_ids=node_ids[graph.edge_source[esel]],
        edge_target_ids=node_ids[graph.edge_target[esel]],
        tracks=tracks,
        status=sol.status.value,
        name=name,
        objective=sol.objective,
        bound=sol.bound,
        gap=sol.gap,
    )
    store.set_current_solution(conn, movie.id, sid)
    return sid, int(sel.sum()), int(esel.sum()), len(tracks)


def _write_solution(
    store: Store,
    movie: Movie,
    run_id: int,
    graph: CandidateGraph,
    sol: Solution,
    node_ids: np.ndarray,
    edge_ids: np.ndarray,
    name: str,
) -> tuple[int, int, int, int]:
    with store.begin() as c:
        return write_current_solution(store, c, movie, run_id, graph, sol, node_ids, edge_ids, name)
