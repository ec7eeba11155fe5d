"""The link stage: candidate links from every candidate to its k nearest candidates of the
next ``dt`` frames within a radius."""

from __future__ import annotations

from inference.edges import link_candidates
from trackdb.errors import InputError
from trackdb.store import ingest, runs
from trackdb.store.core import Store
from trackdb.store.graph import load_candidates
from trackdb.store.runs import LinkParams, RunKind


def run_link(store: Store, movie_name: str, *, max_distance: float = 60.0, k: int = 10, dt: int = 1) -> int:
    """Candidate links from every node to its k nearest candidates in the next ``dt`` frames."""
    movie = store.movie(movie_name)
    cand_run = runs.candidate_run(store, movie)
    params = LinkParams(candidate_run_id=cand_run, max_distance=max_distance, k=k, dt=dt)
    with runs.record(store, movie.id, RunKind.LINK, params, parent_run_id=cand_run) as run_id:
        cands, ids = load_candidates(store, cand_run, movie.ndim, with_masks=True)
        edges = link_candidates(cands, max_distance=max_distance, k=k, dt_max=dt)
        if len(edges.source) == 0:
            raise InputError(f"movie {movie.name!r}: no candidate pairs within {max_distance} px; raise --max-distance")
        with store.begin() as c:
            ingest.insert_edges(c, movie.id, run_id, ids, cands.t, edges)
    return run_id
