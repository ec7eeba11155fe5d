"""Incremental re-solve: apply the edit log by re-solving only the frames the edits touch.

:func:`resolve` turns every active edit into pins (:mod:`trackdb.stages.pins`; pins persist
across re-solves), takes the frames of the not-yet-applied edits (``run_id`` NULL) — plus those
of applied edits the current solution violates, e.g. after a fresh solve of another chain —
widened by ``margin`` and merged into windows, and re-solves each window with
:func:`solvers.joint.solve_joint` (``window=``, ``warm_start=`` the current solution: frames
outside are fixed to it, anchored seams). When the window's new solution differs from the old one
in a border frame of the window (or in a link across it), the fixed frames may have held it back:
the window is widened (by the margin, doubling each time) and solved again, up to the whole
movie, so that the re-solve ends where a full solve with the same pins would. The new solution
is a new ``solve`` run whose ``parent_run_id`` is the run of the previous current solution; it
becomes current and the applied edits get its run id, in one transaction. An infeasible pin set
fails the run and leaves the current solution as it was.

Costs: exactly the chain's full solve's final cost model, as stored
(:mod:`trackdb.stages.cost_model`), on the current candidates and links (those edits added
included). Solves stored before revision 0006 have none; then the motion and scales are
re-estimated from the full solve's stored solution.

Concurrency: the whole re-solve holds the movie's re-solve lock
(:func:`trackdb.store.locks.movie_lock`), so overlapping re-solves of one movie run one after
the other, each on the solution the previous one wrote; the final write re-checks in the movie's
write transaction that the solution it started from is still current (a ``trackdb solve``
finishing meanwhile is refused with :class:`~trackdb.errors.ConflictError`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.assignment import solve_fixed_or_joint
from solvers.costs import CostModel, CostParams
from solvers.joint import BACKENDS, solve_joint, solve_window
from solvers.model import objective
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus
from trackdb.errors import ConflictError, InputError, SolveFailed, TrackdbError
from trackdb.stages import cost_model as costs
from trackdb.stages import pins as pin_rules
from trackdb.stages import resolve_delta as delta_rows
from trackdb.stages.solve import node_costs, solver_used
from trackdb.store import cost_models, deltas, ingest, runs, solutions
from trackdb.store import edits as log
from trackdb.store.core import Connection, Movie, Store
from trackdb.store.graph import load_candidates, load_edges, positions
from trackdb.store.locks import movie_lock, movie_transaction
from trackdb.store.runs import LinkParams, ResolveParams, RunKind, SolveChain, SolveParams

RESOLVABLE = ("joint", "lap")  # solve methods whose graph holds every candidate and link


@dataclass(frozen=True)
class ResolveResult:
    run_id: int
    parent_run_id: int
    solution_id: int
    status: str
    objective: float
    windows: list[tuple[int, int]]  # inclusive frame ranges re-solved (after any widening)
    applied: list[int]  # pending edits applied by this run
    violated: list[int]  # applied edits the previous solution broke, re-applied
    stale: list[int]  # edits whose cells/links are not in the graph (skipped)
    n_selected: int
    n_links: int
    n_tracks: int
    nodes_changed: int
    links_changed: int
    build_seconds: float
    solve_seconds: float
    costs: str = "stored"  # "stored": the solve's own cost model; "re-estimated": from its solution
    widened: int = 0  # how many times a window was widened because its border was binding
    changed_frames: list[int] = field(default_factory=list)  # frames whose cells or links changed
    uncertainty_run_id: int | None = None  # probabilities refreshed for the windows (trackdb.stages.refresh)
    uncertainty_error: str | None = None  # why that refresh failed (the re-solve itself stands)
    solver: dict[str, str] = field(default_factory=dict)  # which solver re-solved (trackdb.stages.solve.solver_used)
    write_seconds: float = 0.0  # the new solution's rows (a delta of the base) and the current pointer


@dataclass(frozen=True)
class ChainModel:
    """The chain's candidate graph priced by its full solve's cost model."""

    graph: CandidateGraph
    model: CostModel
    node_ids: np.ndarray
    edge_ids: np.ndarray
    costs: str  # "stored" or "re-estimated"


def load_chain_model(store: Store, movie: Movie, chain: SolveChain) -> ChainModel:
    """Candidates + links of the chain (edit-made ones included) priced by its full solve's
    stored cost model, or by costs re-estimated from its solution when none is stored."""
    cands, node_ids = load_candidates(store, chain.candidate_run, movie.ndim, with_masks=True)
    edges, edge_ids = load_edges(store, chain.link_run, node_ids)
    cells = costs.features(cands, movie)
    assert chain.root is not None
    stored = cost_models.read(store, chain.root.id)
    if stored is not None:
        model = costs.stored_model(stored, cells, node_ids, edges, cands.hier_parent)
        how = "stored" if costs.priced_as_saved(stored) else costs.CHANGED_CODE
    else:
        root_sid = solutions.rank0_solution_of_run(store, chain.root.id)
        nc = node_costs(cands, CostParams())
        model = costs.reestimated_model(store, root_sid, cells, node_ids, edge_ids, edges, nc, cands.hier_parent)
        how = "re-estimated"
    return ChainModel(model.graph(), model, node_ids, edge_ids, how)


def chain_model(store: Store, movie: Movie, chain: SolveChain) -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
    """(graph, node ids, edge ids) of :func:`load_chain_model`."""
    m = load_chain_model(store, movie, chain)
    return m.graph, m.node_ids, m.edge_ids


def selection_of(store: Store, sid: int, node_ids: np.ndarray, edge_ids: np.ndarray) -> Solution:
    """A stored solution as a selection of the graph's nodes and edges."""
    stored = solutions.selection(store, sid)
    ln, node_found = positions(node_ids, stored.node_ids)
    le, edge_found = positions(edge_ids, stored.edge_ids)
    if not node_found.all() or not edge_found.all():
        raise InputError(f"solution {sid} uses cells or links outside its solve's candidate graph")
    node_sel = np.zeros(len(node_ids), bool)
    edge_sel = np.zeros(len(edge_ids), bool)
    node_sel[ln] = True
    edge_sel[le] = True
    return Solution(node_sel, edge_sel, float("nan"), SolveStatus.OPTIMAL)


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


def changed_frames(graph: CandidateGraph, a: Solution, b: Solution) -> np.ndarray:
    """Frames of the cells whose selection differs and of both ends of links that differ."""
    dn = a.node_selected != b.node_selected
    de = a.edge_selected != b.edge_selected
    t = graph.node_t
    return np.unique(np.concatenate([t[dn], t[graph.edge_source[de]], t[graph.edge_target[de]]]))


def _binding(frames: np.ndarray, lo: int, hi: int, n_frames: int) -> bool:
    """Whether a window's changes reach one of its border frames (or a seam link beyond it)
    on a side where the movie goes on: then the fixed frames may have held the solution back."""
    near_lo = lo > 0 and bool(np.any(frames <= lo))
    near_hi = hi < n_frames - 1 and bool(np.any(frames >= hi))
    return near_lo or near_hi


class WindowGraphs:
    """Where a re-solve gets the candidate graph of a window: with a stored cost model only the
    window's frames ± the longest link are read and priced (costs are local: a link's cost reads
    its two cells, the stored motion of its source and its frame's division rate), so the work
    grows with the window, not the movie; without one, the whole re-estimated graph."""

    def __init__(
        self, store: Store, movie: Movie, chain: SolveChain, edits: list[dict[str, Any]] | None = None
    ) -> None:
        assert chain.root is not None
        self.store, self.movie, self.chain = store, movie, chain
        self.stored = cost_models.read(store, chain.root.id)
        self.seam = longest_link(store, chain, edits)
        self.whole = None if self.stored is not None else load_chain_model(store, movie, chain)
        if self.stored is None:
            self.costs = "re-estimated"
        else:
            self.costs = "stored" if costs.priced_as_saved(self.stored) else costs.CHANGED_CODE

    def part(self, lo: int, hi: int) -> ChainModel:
        if self.whole is not None:
            return self.whole
        assert self.stored is not None
        frames = (max(0, lo - self.seam), min(self.movie.n_frames - 1, hi + self.seam))
        run, ndim = self.chain.candidate_run, self.movie.ndim
        if "cell.cov" in self.stored.arrays:  # the solve stored its cells' covariances: no masks
            cands, node_ids = load_candidates(self.store, run, ndim, with_masks=False, frames=frames)
            cells = costs.window_features(
                cands,
                node_ids,
                self.movie,
                self.stored,
                lambda ids: load_candidates(self.store, run, ndim, node_ids=ids),
            )
        else:
            cands, node_ids = load_candidates(self.store, run, ndim, frames=frames)
            cells = costs.features(cands, self.movie)
        edges, edge_ids = load_edges(self.store, self.chain.link_run, node_ids, frames=frames)
        model = costs.stored_model(self.stored, cells, node_ids, edges, cands.hier_parent)
        return ChainModel(model.graph(), model, node_ids, edge_ids, self.costs)


def longest_link(store: Store, chain: SolveChain, edits: list[dict[str, Any]] | None) -> int:
    """The longest frame gap of the chain's links: a link run's own bound (its ``dt``; the link
    stage and edit-made cells never exceed it) and the relinks that wrote a longer link, without
    reading every link (0.04 s of a one-link re-solve on a 110k-cell movie); other runs' links
    (an import's) by reading them."""
    run = runs.get_run(store, chain.link_run)
    if edits is None or run.kind is not RunKind.LINK or not isinstance(run.params, LinkParams):
        return log.longest_link(store, chain.link_run)
    made = [
        int(r["t_end"]) - int(r["t_start"])
        for r in edits
        if r["kind"] == "relink" and (r["payload"] or {}).get("created_link") and r["t_start"] is not None
    ]
    return max([int(run.params.dt), *made])


def local_selection(cur: solutions.SolutionArrays, part: ChainModel) -> Solution:
    """The current solution restricted to a window's graph."""
    return Solution(
        np.isin(part.node_ids, cur.node_ids), np.isin(part.edge_ids, cur.edge_ids), float("nan"), SolveStatus.OPTIMAL
    )


def merge_window(cur: solutions.SolutionArrays, part: ChainModel, new: Solution) -> solutions.SolutionArrays:
    """The current solution with the window's graph replaced by ``new``."""
    g = part.graph
    keep_n = ~np.isin(cur.node_ids, part.node_ids)
    keep_e = ~np.isin(cur.edge_ids, part.edge_ids)
    sel_e = new.edge_selected
    return solutions.SolutionArrays(
        np.concatenate([cur.node_ids[keep_n], part.node_ids[new.node_selected]]),
        np.concatenate([cur.node_t[keep_n], g.node_t[new.node_selected]]),
        np.concatenate([cur.edge_ids[keep_e], part.edge_ids[sel_e]]),
        np.concatenate([cur.source_ids[keep_e], part.node_ids[g.edge_source[sel_e]]]),
        np.concatenate([cur.target_ids[keep_e], part.node_ids[g.edge_target[sel_e]]]),
        cur.objective,
    )


def resolve(
    store: Store,
    movie_name: str | int,
    *,
    margin: int = 2,
    backend: str = "highs",
    time_limit: float = 300.0,
    gap: float = 1e-4,
    refresh: bool = True,
) -> ResolveResult | None:
    """Apply the movie's pending edits by re-solving their windows; None when there is nothing to do.

    ``refresh``: when the replaced solution had an uncertainty run, give the new one its
    probabilities and alternatives, recomputed for the re-solved windows only
    (:mod:`trackdb.stages.refresh`)."""
    if margin < 0:
        raise InputError(f"--margin must be >= 0, got {margin}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    movie = store.movie(movie_name)
    with movie_lock(store, movie.id):
        return _resolve_locked(store, store.movie(movie.id), margin, backend, time_limit, gap, refresh)


def _stale(store: Store, chain: SolveChain, cons: list[pin_rules.Constraint]) -> list[int]:
    """Edits naming cells or links that are not in the chain's candidate and link runs."""
    nodes = [c.target for c in cons if c.family in pin_rules.NODE_FAMILIES]
    links = [c.target for c in cons if c.family in pin_rules.EDGE_FAMILIES]
    have_n = log.present(store, chain.candidate_run, nodes, "node")
    have_e = log.present(store, chain.link_run, links, "edge")
    return sorted(
        {c.edit_id for c in cons if c.target not in (have_n if c.family in pin_rules.NODE_FAMILIES else have_e)}
    )


def _resolve_locked(
    store: Store, movie: Movie, margin: int, backend: str, time_limit: float, gap: float, refresh: bool
) -> ResolveResult | None:
    chain = runs.solve_chain(store, movie)
    if chain.current is None or chain.root is None:
        raise InputError(f"movie {movie.name!r} has no solved solution to re-solve: run `trackdb solve` first")
    root_params = chain.root.typed(SolveParams)
    if root_params.method not in RESOLVABLE:
        raise InputError(
            f"the current solution of movie {movie.name!r} comes from a {root_params.method!r} solve; "
            f"re-solving needs a {' or '.join(RESOLVABLE)} solve"
        )
    edits = log.all_edits(store, movie.id)
    pending = [r for r in edits if r["run_id"] is None]
    cons = pin_rules.constraints(edits)
    if not pending and not cons:
        return None
    t_build = time.perf_counter()
    assert movie.current_solution_id is not None  # chain.current is a solve of it
    sid = int(movie.current_solution_id)
    stale = _stale(store, chain, cons)
    stale_set = set(stale)
    live = [c for c in cons if c.edit_id not in stale_set]
    applied_before = {r["id"] for r in edits if r["run_id"] is not None}
    violated = sorted(_violated(store, sid, live) & applied_before)
    dirty = [r for r in pending if r["id"] not in stale_set] + [r for r in edits if r["id"] in violated]
    if not dirty:
        return None
    graphs = WindowGraphs(store, movie, chain, edits)
    seam = graphs.seam
    build_seconds = time.perf_counter() - t_build
    spans = windows([(r["t_start"], r["t_end"]) for r in dirty], margin, movie.n_frames, seam)
    applied = [r["id"] for r in pending if r["id"] not in stale_set]
    parent = chain.current.id
    undo = (
        f"see `trackdb edits --movie {movie.name}` and undo one with `trackdb edit --movie {movie.name} remove EDIT_ID`"
    )
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
    with runs.record(store, movie.id, RunKind.SOLVE, params, parent_run_id=parent) as run_id:
        clash = pin_rules.contradiction(live)
        if clash:
            raise SolveFailed(
                f"re-solve of movie {movie.name!r} is infeasible: edits {clash[0]} and {clash[1]}: {clash[2]}; {undo}"
            )
        ov, delta, solve_seconds, done, widened = delta_rows.Overlay(), 0.0, 0.0, [], 0
        status = SolveStatus.OPTIMAL
        changed: set[int] = set()
        parts: list[tuple[int, int, ChainModel]] = []
        used: list[dict[str, str]] = []
        for a, b in spans:
            lo, hi, step = a, b, max(margin, 2)
            while True:
                t0 = time.perf_counter()
                part = graphs.part(lo, hi)
                pin, _, _ = pin_rules.pins_for(live, part.node_ids, part.edge_ids, partial=True)
                with store.engine.connect() as c:
                    base = delta_rows.window_base(c, sid, part.graph, part.node_ids, part.edge_ids, ov)
                build_seconds += time.perf_counter() - t0
                new = _solve_window(part.graph, (lo, hi + 1), base, pin, backend, time_limit, gap)
                used.append(solver_used(new))
                solve_seconds += new.seconds
                if new.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                    why = (
                        " (raise --time-limit)"
                        if new.status is SolveStatus.TIMEOUT
                        else f": the pins conflict with each other or with the fixed frames around it; {undo}"
                    )
                    raise SolveFailed(
                        f"re-solve of movie {movie.name!r} frames {lo}-{hi} ended {new.status.value}{why}"
                    )
                frames = changed_frames(part.graph, base, new)
                if not _binding(frames, lo, hi, movie.n_frames):
                    break
                lo, hi, step, widened = max(0, lo - step), min(movie.n_frames - 1, hi + step), 2 * step, widened + 1
            if new.status is SolveStatus.FEASIBLE:
                status = SolveStatus.FEASIBLE
            changed |= {int(f) for f in frames}
            delta += objective(part.graph, new.node_selected, new.edge_selected) - objective(
                part.graph, base.node_selected, base.edge_selected
            )
            delta_rows.record(ov, part.node_ids, part.edge_ids, part.graph, base, new)
            done.append((lo, hi))
            parts.append((lo, hi, part))
        t0 = time.perf_counter()
        if graphs.whole is not None:
            w = graphs.whole
            with store.engine.connect() as c:
                sel = delta_rows.window_base(c, sid, w.graph, w.node_ids, w.edge_ids, ov)
            total = objective(w.graph, sel.node_selected, sel.edge_selected)
        else:
            obj0 = solutions.objective_of(store, sid)
            total = float("nan") if obj0 is None else obj0 + delta
        new_sid, n_sel, n_links, n_tracks = _write(store, movie, sid, run_id, ov, status, total, applied)
        write_seconds = time.perf_counter() - t0
        with store.begin() as c:
            solver = _solver_of(used)
            runs.set_summary(c, run_id, {"windows": done, "widened": widened, "costs": graphs.costs, **solver})
    unc_run, unc_error = None, None
    if refresh:
        from trackdb.stages.refresh import refresh_uncertainty

        try:
            unc_run = refresh_uncertainty(store, movie, sid, new_sid, run_id, root_params.method, parts, live)
        except (TrackdbError, ValueError) as exc:  # recorded on the failed run; the re-solve stands
            unc_error = str(exc)
    return ResolveResult(
        run_id,
        parent,
        new_sid,
        status.value,
        float(total),
        done,
        applied,
        violated,
        stale,
        n_sel,
        n_links,
        n_tracks,
        *ov.n_changed(),
        build_seconds,
        solve_seconds,
        graphs.costs,
        widened,
        sorted(changed),
        unc_run,
        unc_error,
        solver,
        write_seconds,
    )


def _violated(store: Store, sid: int, cons: list[pin_rules.Constraint]) -> set[int]:
    """Edits the stored solution breaks, read for the edits' own cells and links only."""
    nodes = {c.target for c in cons if c.family in pin_rules.NODE_FAMILIES}
    links = {c.target for c in cons if c.family in pin_rules.EDGE_FAMILIES}
    with store.engine.connect() as c:
        have_n = deltas.rows(c, sid, "node", nodes)
        have_e = deltas.rows(c, sid, "edge", links)
        out = [s for s, _ in deltas.links_touching(c, sid, nodes).values() if s in nodes]
    ids = np.array(sorted(have_n), np.int64)
    return pin_rules.violated(cons, ids, np.array(sorted(have_e), np.int64), np.array(out, np.int64))


def _solve_window(
    graph: CandidateGraph,
    window: tuple[int, int],
    base: Solution,
    pins: Pins,
    backend: str,
    time_limit: float,
    gap: float,
) -> Solution:
    """The window re-solved with the frames around it fixed to ``base``
    (:func:`solvers.joint.solve_window`): by the fixed-segmentation assignment where the
    window's sub-problem is one (exact, :mod:`solvers.assignment`), else by the joint program
    (``backend``)."""
    if backend != "highs":  # a backend asked for by name: the joint program on it
        return solve_joint(
            graph, backend=backend, time_limit=time_limit, gap=gap, pins=pins, window=window, warm_start=base
        )
    return solve_window(
        graph, window, base, lambda g, p: solve_fixed_or_joint(g, p, time_limit=time_limit, gap=gap), pins
    )


def _solver_of(used: list[dict[str, str]]) -> dict[str, str]:
    """One ``solver`` entry for the run: the windows' solver, or theirs joined when they differ."""
    names = sorted({u["solver"] for u in used})
    out = {"solver": " + ".join(names) if names else "none"}
    reasons = sorted({u["joint_reason"] for u in used if "joint_reason" in u})
    if reasons:
        out["joint_reason"] = "; ".join(reasons)
    return out


def _write(
    store: Store,
    movie: Movie,
    started_from: int,
    run_id: int,
    ov: delta_rows.Overlay,
    status: SolveStatus,
    total: float,
    applied: list[int],
) -> tuple[int, int, int, int]:
    """The new solution as a delta of the current one's base (its changed cells, links and
    tracks), the current pointer and the applied edits' run id, in one movie write transaction
    that first checks the solution the re-solve started from is still current."""
    with movie_transaction(store, movie.id) as (c, current):
        if current != started_from:
            raise ConflictError(
                f"re-solve of movie {movie.name!r} started from solution {started_from}, but solution {current} "
                "became current meanwhile (a `trackdb solve`?): run `trackdb resolve` again",
                current_solution_id=current,
            )
        d = delta_rows.new_delta(c, started_from, ov)
        n = deltas.counts(d, deltas.base_counts(c, d.base_id))
        new_sid = deltas.write_delta(
            c, d, run_id=run_id, movie_id=movie.id, status=status.value, name="resolve", objective=total
        )
        store.set_current_solution(c, movie.id, new_sid)
        log.mark_applied(c, applied, run_id)
    return new_sid, n["node"], n["edge"], n["track"]


@dataclass(frozen=True)
class SolutionRows:
    """A selection as the rows ``ingest.insert_solution`` writes: cells sorted by id with their
    frames and CTC track ids, links whose two cells are selected, and the track table."""

    node_ids: np.ndarray
    node_t: np.ndarray
    track_ids: np.ndarray
    edge_ids: np.ndarray
    source_ids: np.ndarray
    target_ids: np.ndarray
    tracks: np.ndarray


def solution_rows(sel: solutions.SolutionArrays) -> SolutionRows:
    order = np.argsort(sel.node_ids, kind="stable")
    node_ids, node_t = sel.node_ids[order], sel.node_t[order]
    src, ok_s = positions(node_ids, sel.source_ids)
    dst, ok_d = positions(node_ids, sel.target_ids)
    ok = ok_s & ok_d  # a link is kept only with both its cells (always, by the model's rows)
    n, e = len(node_ids), int(ok.sum())
    track_of, tracks = tracks_from_solution(node_t, src[ok], dst[ok], np.ones(n, bool), np.ones(e, bool))
    return SolutionRows(node_ids, node_t, track_of, sel.edge_ids[ok], sel.source_ids[ok], sel.target_ids[ok], tracks)


def insert_rows(conn: Connection, run_id: int, movie_id: int, rows: SolutionRows, **kw: Any) -> int:
    """Write a selection (``kw``: status, name, rank, objective, weight of ``insert_solution``)."""
    return ingest.insert_solution(
        conn,
        run_id=run_id,
        movie_id=movie_id,
        node_ids=rows.node_ids,
        node_t=rows.node_t,
        track_ids=rows.track_ids,
        edge_ids=rows.edge_ids,
        edge_source_ids=rows.source_ids,
        edge_target_ids=rows.target_ids,
        tracks=rows.tracks,
        **kw,
    )


def summary_of(r: ResolveResult) -> dict[str, Any]:
    """The re-solve's result as the CLI prints it (JSON)."""
    return {
        "run_id": r.run_id,
        "parent_run_id": r.parent_run_id,
        "solution_id": r.solution_id,
        "status": r.status,
        "objective": r.objective,
        "windows": r.windows,
        "widened": r.widened,
        "edits": r.applied,
        "violated": r.violated,
        "stale": r.stale,
        "cells": r.n_selected,
        "links": r.n_links,
        "tracks": r.n_tracks,
        "cells_changed": r.nodes_changed,
        "links_changed": r.links_changed,
        "changed_frames": r.changed_frames,
        "costs": r.costs,
        **r.solver,
        "uncertainty_run_id": r.uncertainty_run_id,
        **({"uncertainty_error": r.uncertainty_error} if r.uncertainty_error else {}),
        "build_seconds": round(r.build_seconds, 2),
        "solve_seconds": round(r.solve_seconds, 2),
    }
