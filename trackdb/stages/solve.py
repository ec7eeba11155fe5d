"""Pipeline stages on the store: candidates → link → solve, each a recorded, resumable run.

Each stage reads what the previous stage wrote (by run), calls the plain-array code of
``inference`` and ``solvers``, and writes its result in transactions. A failed stage leaves its
run marked ``failed`` with the reason; a solve writes its solution only when it succeeded.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from tqdm import tqdm

from inference.edges import link_candidates
from inference.forest import build_forest
from inference.hypotheses import prune_to_hypotheses
from inference.regions import candidates_from_labels, mask_covariance
from inference.types import Candidates
from solvers.costs import CellFeatures, CostModel, CostParams, refine_cost_model
from solvers.node_costs import forest_node_cost
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Solution, SolveStatus

from trackdb.store import ingest
from trackdb.store import schema
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.store.graph import load_candidates, load_edges
from trackdb.io.sources import check_movie_shape, check_probability, read_movie_array
from trackdb.store.core import Movie, Store


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


def latest_run(store: Store, movie: Movie, kinds: tuple[str, ...], status: str = "succeeded") -> dict[str, Any] | None:
    r = schema.run.c
    with store.engine.connect() as c:
        row = c.execute(sa.select(schema.run).where(r.movie_id == movie.id, r.kind.in_(kinds), r.status == status)
                        .order_by(r.id.desc())).mappings().first()
    return dict(row) if row else None


def candidate_run(store: Store, movie: Movie) -> int:
    """The movie's candidate set: the latest candidates run, else its imported detections."""
    n = schema.node.c
    for kinds in (("candidates",), ("import",)):
        run = latest_run(store, movie, kinds)
        if run is not None:
            with store.engine.connect() as c:
                if c.execute(sa.select(n.id).where(n.run_id == run["id"]).limit(1)).first():
                    return int(run["id"])
    raise NotFoundError(f"movie {movie.name!r} has no candidates: run `trackdb candidates` or import masks")


def ingest_frames(store: Store, movie: Movie, run_id: int, frame: Callable[[int], Candidates], source: str,
                  progress: bool = True) -> int:
    """Write ``frame(t)``'s candidates for every frame, one transaction per frame.

    A resumed run skips the frames it already wrote. Returns the run's candidate count.
    """
    with store.engine.connect() as c:
        done = ingest.frames_done(c, schema.node, run_id)
    total = len(done)
    for t in tqdm(range(movie.n_frames), desc="candidates", unit="frame", disable=not progress):
        if t in done:
            continue
        cands = frame(t)
        if len(cands):
            with store.engine.begin() as c:
                ingest.insert_nodes(c, movie.id, run_id, cands, source)
        total += len(cands)
    return total


def run_candidates(store: Store, movie_name: str, *, prob: Path | None = None, labels: Path | None = None,
                   tau: float = 0.5, min_area: int = 10, progress: bool = True) -> int:
    """Candidate forest from a probability map (or single-node trees from label images)."""
    movie = store.movie(movie_name)
    if (prob is None) == (labels is None):
        raise InputError("give exactly one of --prob or --labels")
    if not 0.0 < tau < 1.0:
        raise InputError(f"--tau must lie in (0, 1), got {tau}")
    path = Path(prob or labels)  # type: ignore[arg-type]
    params = {"source": str(path.resolve()), "kind": "prob" if prob else "labels", "tau": tau, "min_area": min_area}
    with store.run(movie.id, "candidates", params, resume=True) as run_id:
        data = read_movie_array(path, labels=labels is not None)
        check_movie_shape(data, movie.n_frames, movie.shape, path)
        if prob is not None:
            check_probability(data, path)
        def frame(t: int) -> Candidates:
            if prob is not None:
                return prune_to_hypotheses(build_forest(np.asarray(data[t], np.float32), t=t, tau=tau,
                                                        min_area=min_area))
            return candidates_from_labels(data[t : t + 1], t0=t)

        total = ingest_frames(store, movie, run_id, frame, "forest" if prob is not None else "labels", progress)
        if total == 0:
            raise InputError(f"{path}: no candidates in any frame (is the map empty or --tau too high?)")
    return run_id


def run_link(store: Store, movie_name: str, *, max_distance: float = 60.0, k: int = 10, dt: int = 1) -> int:
    """Candidate links from every node to its k nearest candidates in the next ``dt`` frames."""
    movie = store.movie(movie_name)
    cand_run = candidate_run(store, movie)
    params = {"candidate_run_id": cand_run, "max_distance": max_distance, "k": k, "dt": dt}
    with store.run(movie.id, "link", params, parent_run_id=cand_run) as run_id:
        cands, ids = load_candidates(store, cand_run, movie.ndim, with_masks=True)
        edges = link_candidates(cands, max_distance=max_distance, k=k, dt_max=dt)
        if len(edges.source) == 0:
            raise InputError(f"movie {movie.name!r}: no candidate pairs within {max_distance} px; raise --max-distance")
        with store.engine.begin() as c:
            ingest.insert_edges(c, movie.id, run_id, ids, cands.t, edges)
    return run_id


def node_costs(cands: Candidates, params: CostParams) -> np.ndarray | None:
    """Per-candidate costs for a forest (:mod:`solvers.node_costs`); None for label images,
    where every detection is selected at the default node cost."""
    if np.all(cands.hier_parent < 0) and np.allclose(cands.score, 1.0):
        return None
    return forest_node_cost(cands.area, cands.score, cands.hier_parent, params)


def _solver(method: Method, window: int | None, time_limit: float, gap: float):  # type: ignore[no-untyped-def]
    if method is Method.LAP:
        from solvers.costs import fold_pairs
        from solvers.lap import solve_lap

        return lambda g: solve_lap(fold_pairs(g))  # daughter-pair costs folded into the edges
    from solvers.joint import solve_joint, solve_windowed

    if window:
        return lambda g: solve_windowed(g, window=window, time_limit=time_limit, gap=gap)
    return lambda g: solve_joint(g, time_limit=time_limit, gap=gap)


def run_solve(store: Store, movie_name: str, *, method: str = "joint", window: int | None = None,
              time_limit: float = 300.0, gap: float = 1e-4, iterations: int = 4) -> SolveResult:
    """Select candidates and links, materialise tracks, write the solution and make it current."""
    try:
        m = Method(method)
    except ValueError:
        raise InputError(f"unknown method {method!r}; choose joint, lap or hemd") from None
    movie = store.movie(movie_name)
    link = latest_run(store, movie, ("link",))
    if link is None:
        raise NotFoundError(f"movie {movie.name!r} has no candidate links: run `trackdb link` first")
    cand_run = int(link["params"]["candidate_run_id"])
    params = {"method": m.value, "window": window, "time_limit": time_limit, "gap": gap,
              "iterations": iterations, "link_run_id": link["id"]}
    with store.run(movie.id, "solve", params, parent_run_id=link["id"]) as run_id:
        built = build_solve(store, movie, m, int(link["id"]), cand_run, window=window,
                            time_limit=time_limit, gap=gap, iterations=iterations)
        graph, sol, history = built.graph, built.solution, built.history
        if sol.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            raise SolveFailed(f"solve of movie {movie.name!r} ended {sol.status.value}"
                              f"{' (raise --time-limit)' if sol.status is SolveStatus.TIMEOUT else ''}")
        result = _write_solution(store, movie, run_id, graph, sol, built.node_ids, built.edge_ids, m.value)
    return SolveResult(run_id, result[0], sol.status.value, float(sol.objective), result[1], result[2],
                       result[3], float(sum(h.get("seconds", 0.0) for h in history)), history)


@dataclass(frozen=True)
class BuiltSolve:
    """The model a solve optimised and its solution, local indices mapped to database ids."""

    graph: CandidateGraph
    solution: Solution
    history: list[dict[str, Any]]
    node_ids: np.ndarray  # (graph.n_nodes,) node id of every graph node
    edge_ids: np.ndarray  # (graph.n_edges,) edge id of every graph edge
    cost_model: CostModel | None = None  # features + motion the last graph was costed from


def build_solve(store: Store, movie: Movie, m: Method, link_run_id: int, cand_run: int, *,
                window: int | None, time_limit: float, gap: float, iterations: int) -> BuiltSolve:
    """Candidates + links → costs (motion refined over solves) → solution, without writing.

    Shared by ``run_solve`` and by ``trackdb uncertainty``, which rebuilds the current
    solution's model from its solve run's parameters so its probabilities describe that model.
    """
    cands, node_ids = load_candidates(store, cand_run, movie.ndim, with_masks=True)
    edges, edge_ids = load_edges(store, link_run_id, node_ids)
    cells = CellFeatures(t=cands.t, centroid=cands.centroid, area=cands.area.astype(float),
                         cov=mask_covariance(cands), bbox=cands.bbox, image_shape=movie.shape)
    cost_params = CostParams()
    node_cost = node_costs(cands, cost_params)
    keep = np.ones(len(cands), bool)
    if m is Method.HEMD:
        keep = hemd_selection(cands, movie)
    elif m is Method.LAP and not np.all(cands.hier_parent < 0):
        raise InputError("--method lap needs a fixed segmentation (label images, or candidates-from-predictions "
                         "--no-merges); use joint or hemd for competing candidates")
    sub_nodes, sub_edges = _restrict(keep, edges.source, edges.target)
    solver = _solver(Method.LAP if m is Method.HEMD else m, window, time_limit, gap)
    sub_cells = CellFeatures(t=cells.t[keep], centroid=cells.centroid[keep], area=cells.area[keep],
                             cov=cells.cov[keep], bbox=cells.bbox[keep], image_shape=cells.image_shape)
    refined = refine_cost_model(
        sub_cells, sub_nodes[edges.source[sub_edges]], sub_nodes[edges.target[sub_edges]], solver,
        n_iter=iterations, params=cost_params,
        node_cost=None if node_cost is None or m is Method.HEMD else node_cost[keep],
        node_hier_parent=None if m is Method.HEMD else _reindex_parent(cands.hier_parent, keep))
    return BuiltSolve(refined.graph, refined.solution, refined.history, node_ids[keep],
                      edge_ids[sub_edges], refined.model)


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
        frames.append(HemdFrame(hier_parent=frame.hier_parent, area=frame.area, bbox=frame.bbox,
                                pixel_node=paint_pixel_node(frame, movie.shape)))
        index.append(np.flatnonzero(here))
    res = select_hemd(frames)
    keep = np.zeros(len(cands), bool)
    for idx, sel in zip(index, res.selected):
        keep[idx[np.asarray(sel, bool)]] = True
    return keep


def write_current_solution(store: Store, conn: sa.Connection, movie: Movie, run_id: int, graph: CandidateGraph,
                           sol: Solution, node_ids: np.ndarray, edge_ids: np.ndarray,
                           name: str) -> tuple[int, int, int, int]:
    """Write ``sol`` of ``graph`` (local indices → store ids) with its CTC tracks and make it the
    movie's current solution, in the caller's transaction; returns (solution id, cells, links, tracks)."""
    track_of, tracks = tracks_from_solution(graph.node_t, graph.edge_source, graph.edge_target,
                                            sol.node_selected, sol.edge_selected)
    sel = sol.node_selected
    esel = sol.edge_selected & sel[graph.edge_source] & sel[graph.edge_target]
    sid = ingest.insert_solution(
        conn, run_id=run_id, movie_id=movie.id, node_ids=node_ids[sel], node_t=graph.node_t[sel],
        track_ids=track_of[sel], edge_ids=edge_ids[esel],
        edge_source_ids=node_ids[graph.edge_source[esel]], edge_target_ids=node_ids[graph.edge_target[esel]],
        tracks=tracks, status=sol.status.value, name=name,
        objective=sol.objective, bound=sol.bound, gap=sol.gap)
    store.set_current_solution(conn, movie.id, sid)
    return sid, int(sel.sum()), int(esel.sum()), len(tracks)


def _write_solution(store: Store, movie: Movie, run_id: int, graph: CandidateGraph, sol: Solution,
                    node_ids: np.ndarray, edge_ids: np.ndarray, name: str) -> tuple[int, int, int, int]:
    with store.engine.begin() as c:
        return write_current_solution(store, c, movie, run_id, graph, sol, node_ids, edge_ids, name)
