"""Edits and incremental re-solve: user pins on the candidate graph, then a re-solve of only the
frames they touch.

An edit is one appended row of ``edit``: pin or forbid a candidate node or link of the movie's
current candidate graph (``pin_node``, ``forbid_node``, ``pin_edge``, ``forbid_edge``), or
``remove`` an earlier edit (the log stays append-only; the removed edit's pin stops applying).
``t_start``/``t_end`` are the frames the edit touches.

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
:func:`solvers.costs.estimate_motion`, the step ``trackdb solve`` alternates with solving).
The solve's last-round motion model is not stored, so this is its fixed point rather than a
replay of the solve (which would cost as much as the solve itself); every re-solve of a chain
uses the same costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from inference.regions import mask_covariance
from solvers.costs import (
    CellFeatures,
    CostParams,
    estimate_motion,
    initial_motion,
    tracking_costs,
)
from solvers.joint import BACKENDS, solve_joint
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus

from trackdb.store import schema
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.store.graph import load_candidates, load_edges
from trackdb.stages.solve import latest_run, node_costs, write_current_solution
from trackdb.store.core import Movie, Store

PIN_KINDS = ("pin_node", "forbid_node", "pin_edge", "forbid_edge")
KINDS = PIN_KINDS + ("remove",)
RESOLVABLE = ("joint", "lap")  # solve methods whose graph holds every candidate and link


@dataclass(frozen=True)
class GraphRuns:
    """Which candidates and links make the movie's current graph, and the solve it came from."""

    candidate_run: int
    link_run: int
    root: dict[str, Any] | None  # the chain's full solve run (None: no solve yet)
    current_run: dict[str, Any] | None  # the run of the current solution, if a solve


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


def _kind(kind: str) -> str:
    k = kind.replace("-", "_")
    if k not in KINDS:
        raise InputError(f"unknown edit kind {kind!r}; choose {', '.join(x.replace('_', '-') for x in KINDS)}")
    return k


def _run(c: Connection, run_id: int) -> dict[str, Any]:
    return dict(c.execute(sa.select(schema.run).where(schema.run.c.id == run_id)).mappings().one())


def is_resolve(run: dict[str, Any]) -> bool:
    return run["kind"] == "solve" and "resolve" in (run["params"] or {})


def graph_runs(store: Store, movie: Movie) -> GraphRuns:
    """The graph edits refer to: that of the current solution's solve chain, else the latest links."""
    root = current = None
    with store.engine.connect() as c:
        if movie.current_solution_id is not None:
            rid = c.execute(sa.select(schema.solution.c.run_id)
                            .where(schema.solution.c.id == movie.current_solution_id)).scalar_one()
            run = _run(c, rid)
            if run["kind"] == "solve":
                current = root = run
                while is_resolve(root) and root["parent_run_id"] is not None:
                    root = _run(c, root["parent_run_id"])
        if root is not None and "link_run_id" in (root["params"] or {}):
            link_run = int(root["params"]["link_run_id"])
            link_params = _run(c, link_run)["params"]
            return GraphRuns(int(link_params["candidate_run_id"]), link_run, root, current)
    link = latest_run(store, movie, ("link",))
    if link is None:
        raise NotFoundError(f"movie {movie.name!r} has no candidate links: run `trackdb link` first")
    return GraphRuns(int(link["params"]["candidate_run_id"]), int(link["id"]), None, None)


# --- the edit log -----------------------------------------------------------------------------
def add_edit(store: Store, movie_name: str, kind: str, target: int, author: str | None = None) -> int:
    """Append one edit after checking that ``target`` is a node/link (or edit) of the movie."""
    movie = store.movie(movie_name)
    k = _kind(kind)
    target = int(target)
    n, e, ed = schema.node.c, schema.edge.c, schema.edit.c
    with store.engine.connect() as c:
        if k == "remove":
            row = c.execute(sa.select(ed.kind, ed.t_start, ed.t_end)
                            .where(ed.id == target, ed.movie_id == movie.id)).mappings().first()
            if row is None:
                raise NotFoundError(f"no edit {target} in movie {movie.name!r} (see `trackdb edits`)")
            if row["kind"] == "remove":
                raise InputError(f"edit {target} is itself a removal; pin again instead of undoing it")
            if target in _removed(c, movie.id):
                raise InputError(f"edit {target} of movie {movie.name!r} is already removed")
            payload: dict[str, Any] = {"edit_id": target}
            t0, t1 = row["t_start"], row["t_end"]
        else:
            runs = graph_runs(store, movie)
            if k.endswith("node"):
                row = c.execute(sa.select(n.t, n.run_id).where(n.id == target, n.movie_id == movie.id)).mappings().first()
                what, run_id = "node", runs.candidate_run
            else:
                row = c.execute(sa.select(e.t, e.dt, e.run_id, e.source_id, e.target_id)
                                .where(e.id == target, e.movie_id == movie.id)).mappings().first()
                what, run_id = "link", runs.link_run
            if row is None:
                raise NotFoundError(f"no {what} {target} in movie {movie.name!r}")
            if row["run_id"] != run_id:
                raise InputError(f"{what} {target} is not in movie {movie.name!r}'s current candidate graph "
                                 f"({'candidates' if what == 'node' else 'link'} run {run_id}; it belongs to run {row['run_id']})")
            if what == "node":
                payload, t0, t1 = {"node_id": target}, row["t"], row["t"]
            else:
                payload = {"edge_id": target, "source_id": row["source_id"], "target_id": row["target_id"]}
                t0, t1 = row["t"], row["t"] + row["dt"]
    with store.engine.begin() as c:
        return int(c.execute(schema.edit.insert().values(
            movie_id=movie.id, created_at=sa.func.now(), author=author, kind=k, payload=payload,
            t_start=t0, t_end=t1).returning(ed.id)).scalar_one())


def _removed(c: Connection, movie_id: int) -> set[int]:
    ed = schema.edit.c
    rows = c.execute(sa.select(ed.payload).where(ed.movie_id == movie_id, ed.kind == "remove")).scalars()
    return {int(p["edit_id"]) for p in rows}


def _edits(c: Connection, movie_id: int) -> list[dict[str, Any]]:
    ed = schema.edit.c
    return [dict(r) for r in c.execute(sa.select(schema.edit).where(ed.movie_id == movie_id)
                                       .order_by(ed.id)).mappings()]


def list_edits(store: Store, movie_name: str) -> pd.DataFrame:
    """The movie's edits, oldest first, with what they touch and whether a re-solve applied them."""
    movie = store.movie(movie_name)
    with store.engine.connect() as c:
        rows = _edits(c, movie.id)
        removed = _removed(c, movie.id)
    out = []
    for r in rows:
        p = r["payload"] or {}
        target = p.get("node_id", p.get("edge_id", p.get("edit_id")))
        state = "removed" if r["id"] in removed else ("pending" if r["run_id"] is None else "applied")
        out.append({"edit_id": r["id"], "kind": r["kind"].replace("_", "-"), "target": target,
                    "t_start": r["t_start"], "t_end": r["t_end"], "author": r["author"],
                    "created_at": None if r["created_at"] is None else str(r["created_at"])[:19],
                    "run_id": r["run_id"], "state": state})
    cols = ["edit_id", "kind", "target", "t_start", "t_end", "author", "created_at", "run_id", "state"]
    return pd.DataFrame(out, columns=cols)


# --- the re-solve -----------------------------------------------------------------------------
def _local(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``sorted_ids``; −1 where absent."""
    ids = np.asarray(ids, np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def _selection(c: Connection, sid: int, node_ids: np.ndarray, edge_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sn, se = schema.solution_node.c, schema.solution_edge.c
    nodes = np.array(c.execute(sa.select(sn.node_id).where(sn.solution_id == sid)).scalars().all(), np.int64)
    links = np.array(c.execute(sa.select(se.edge_id).where(se.solution_id == sid)).scalars().all(), np.int64)
    ln, le = _local(nodes, node_ids), _local(links, edge_ids)
    if (ln < 0).any() or (le < 0).any():
        raise InputError(f"solution {sid} uses cells or links outside its solve's candidate graph")
    node_sel = np.zeros(len(node_ids), bool)
    edge_sel = np.zeros(len(edge_ids), bool)
    node_sel[ln] = True
    edge_sel[le] = True
    return node_sel, edge_sel


def chain_model(store: Store, movie: Movie, runs: GraphRuns) -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
    """The chain's candidate graph with costs re-estimated from its full solve's solution."""
    cands, node_ids = load_candidates(store, runs.candidate_run, movie.ndim, with_masks=True)
    edges, edge_ids = load_edges(store, runs.link_run, node_ids)
    cells = CellFeatures(t=cands.t, centroid=cands.centroid, area=cands.area.astype(float),
                         cov=mask_covariance(cands), bbox=cands.bbox, image_shape=movie.shape)
    params = CostParams()
    assert runs.root is not None
    with store.engine.connect() as c:
        root_sid = c.execute(sa.select(schema.solution.c.id).where(
            schema.solution.c.run_id == runs.root["id"], schema.solution.c.rank == 0)).scalar_one()
        node_sel, edge_sel = _selection(c, root_sid, node_ids, edge_ids)
    root = Solution(node_sel, edge_sel, float("nan"), SolveStatus.OPTIMAL)
    motion = initial_motion(cells, edges.source, edges.target)
    for _ in range(2):
        motion = estimate_motion(cells, edges.source, edges.target, root, motion, params.div_rate_bounds)
    graph = tracking_costs(cells, edges.source, edges.target, motion, params,
                           node_cost=node_costs(cands, params), node_hier_parent=cands.hier_parent)
    return graph, node_ids, edge_ids


def _pins(edits: list[dict[str, Any]], node_ids: np.ndarray, edge_ids: np.ndarray
          ) -> tuple[dict[int, tuple[str, int]], list[int]]:
    """edit id → (kind, local index) for every edit whose node/link is in the graph; stale ids."""
    out: dict[int, tuple[str, int]] = {}
    stale = []
    for r in edits:
        p = r["payload"]
        key, ids = ("node_id", node_ids) if r["kind"].endswith("node") else ("edge_id", edge_ids)
        i = int(_local(np.array([p[key]]), ids)[0])
        if i < 0:
            stale.append(r["id"])
        else:
            out[r["id"]] = (r["kind"], i)
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


def resolve(store: Store, movie_name: str, *, margin: int = 2, backend: str = "highs",
            time_limit: float = 300.0, gap: float = 1e-4) -> ResolveResult | None:
    """Apply the movie's pending edits by re-solving their windows; None when there is nothing to do."""
    if margin < 0:
        raise InputError(f"--margin must be >= 0, got {margin}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    movie = store.movie(movie_name)
    runs = graph_runs(store, movie)
    if runs.current_run is None or runs.root is None:
        raise InputError(f"movie {movie.name!r} has no solved solution to re-solve: run `trackdb solve` first")
    method = runs.root["params"].get("method")
    if method not in RESOLVABLE:
        raise InputError(f"the current solution of movie {movie.name!r} comes from a {method!r} solve; "
                         f"re-solving needs a {' or '.join(RESOLVABLE)} solve")
    with store.engine.connect() as c:
        edits = _edits(c, movie.id)
        removed = _removed(c, movie.id)
    active = [r for r in edits if r["kind"] in PIN_KINDS and r["id"] not in removed]
    pending = [r for r in edits if r["run_id"] is None]
    if not pending and not active:
        return None
    t_build = time.perf_counter()
    graph, node_ids, edge_ids = chain_model(store, movie, runs)
    sid = int(movie.current_solution_id)  # type: ignore[arg-type]
    with store.engine.connect() as c:
        cur = Solution(*_selection(c, sid, node_ids, edge_ids), float("nan"), SolveStatus.OPTIMAL)
    pins, stale = _pins(active, node_ids, edge_ids)
    violated = [r["id"] for r in active
                if r["run_id"] is not None and r["id"] in pins and not _holds(*pins[r["id"]], cur)]
    dirty = [r for r in pending if r["id"] not in stale] + [r for r in active if r["id"] in violated]
    build_seconds = time.perf_counter() - t_build
    if not dirty:
        return None
    dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
    spans = windows([(r["t_start"], r["t_end"]) for r in dirty], margin, movie.n_frames,
                    int(dt.max()) if len(dt) else 1)
    pin = Pins(*(np.array(sorted({i for k, i in pins.values() if k == kind}), np.int64) for kind in PIN_KINDS))
    applied = [r["id"] for r in pending if r["id"] not in stale]
    params = {**{k: runs.root["params"].get(k) for k in ("method", "link_run_id", "window", "time_limit", "gap",
                                                         "iterations")},
              "resolve": {"margin": margin, "backend": backend, "time_limit": time_limit, "gap": gap,
                          "windows": spans, "edits": applied, "violated": violated, "stale": stale,
                          "root_run_id": runs.root["id"], "previous_solution_id": sid}}
    parent = int(runs.current_run["id"])
    undo = (f"see `trackdb edits --movie {movie.name}` and undo one with "
            f"`trackdb edit --movie {movie.name} remove EDIT_ID`")
    with store.run(movie.id, "solve", params, parent_run_id=parent) as run_id:
        clash = _contradictions(pins)
        if clash:
            raise SolveFailed(f"re-solve of movie {movie.name!r} is infeasible: edits {clash[0]} and {clash[1]} "
                              f"pin and forbid the same {'cell' if pins[clash[0]][0].endswith('node') else 'link'}; {undo}")
        sol, solve_seconds = cur, 0.0
        for a, b in spans:
            sol = solve_joint(graph, backend=backend, time_limit=time_limit, gap=gap, pins=pin,
                              window=(a, b + 1), warm_start=sol)
            solve_seconds += sol.seconds
            if sol.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                why = (" (raise --time-limit)" if sol.status is SolveStatus.TIMEOUT
                       else f": the pins conflict with each other or with the fixed frames around it; {undo}")
                raise SolveFailed(f"re-solve of movie {movie.name!r} frames {a}-{b} ended {sol.status.value}{why}")
        new_sid, n_sel, n_links, n_tracks = _write(store, movie, run_id, graph, sol, node_ids, edge_ids, applied)
    return ResolveResult(run_id, parent, new_sid, sol.status.value, float(sol.objective), spans, applied,
                         violated, stale, n_sel, n_links, n_tracks,
                         int(np.sum(sol.node_selected != cur.node_selected)),
                         int(np.sum(sol.edge_selected != cur.edge_selected)), build_seconds, solve_seconds)


def _write(store: Store, movie: Movie, run_id: int, graph: CandidateGraph, sol: Solution, node_ids: np.ndarray,
           edge_ids: np.ndarray, applied: list[int]) -> tuple[int, int, int, int]:
    """Solution, tracks, the current pointer and the applied edits' run id, in one transaction."""
    with store.engine.begin() as c:
        written = write_current_solution(store, c, movie, run_id, graph, sol, node_ids, edge_ids, "resolve")
        if applied:
            c.execute(schema.edit.update().where(schema.edit.c.id.in_(applied)).values(run_id=run_id))
    return written
