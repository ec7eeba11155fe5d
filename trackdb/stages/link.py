"""The link stage: candidate links from every candidate to its k nearest candidates of the
next ``dt`` frames within a radius.

The links of a source frame depend only on that frame and the ``dt`` frames after it, so a run
can be written in frame chunks (:func:`link_frames`, the experiment engine's tasks) and gives
the same links as one pass over the movie.
"""

from __future__ import annotations

import math

import numpy as np

from inference.edges import link_candidates
from inference.types import CandidateEdges
from trackdb.errors import InputError
from trackdb.store import ingest, runs
from trackdb.store.core import Movie, Store
from trackdb.store.graph import load_candidates
from trackdb.store.runs import LinkParams, RunKind


def check_link(max_distance: float, k: int, dt: int) -> None:
    """The link parameters' rules (the CLI's and an experiment manifest's)."""
    number = isinstance(max_distance, (int, float, np.integer, np.floating)) and not isinstance(max_distance, bool)
    if not number or not math.isfinite(max_distance) or max_distance <= 0:
        raise InputError(f"--max-distance must be a finite number of pixels > 0, got {max_distance!r}")
    for name, v in (("k", k), ("dt", dt)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"--{name} must be an integer >= 1, got {v!r}")


def link_params(store: Store, movie: Movie, *, max_distance: float, k: int, dt: int) -> LinkParams:
    """What a link run of ``movie`` records: its candidate set and the checked parameters."""
    check_link(max_distance, k, dt)
    return LinkParams(candidate_run_id=runs.candidate_run(store, movie), max_distance=max_distance, k=k, dt=dt)


def link_frames(store: Store, movie: Movie, run_id: int, params: LinkParams, frames: range | None = None) -> int:
    """Write the links whose source lies in ``frames`` (default: every frame) under ``run_id``.

    Frames the run already wrote are skipped (idempotent). Returns the number of links of those
    source frames, written now or before.
    """
    frames = range(movie.n_frames) if frames is None else frames
    if len(frames) == 0:
        return 0
    last = min(frames[-1] + params.dt, movie.n_frames - 1)
    cands, ids = load_candidates(store, params.candidate_run_id, movie.ndim, with_masks=True, frames=(frames[0], last))
    edges = link_candidates(cands, max_distance=params.max_distance, k=params.k, dt_max=params.dt)
    keep = np.flatnonzero(cands.t[edges.source] <= frames[-1]) if len(edges.source) else np.zeros(0, np.int64)
    edges = _subset(edges, keep)
    if len(edges.source):
        with store.begin() as c:
            ingest.insert_edges(c, movie.id, run_id, ids, cands.t, edges)
    return len(edges.source)


def _subset(edges: CandidateEdges, keep: np.ndarray) -> CandidateEdges:
    def opt(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return CandidateEdges(
        source=edges.source[keep],
        target=edges.target[keep],
        dt=edges.dt[keep],
        distance=edges.distance[keep],
        iou=edges.iou[keep],
        offset_vote=opt(edges.offset_vote),
        embedding_distance=opt(edges.embedding_distance),
    )


def no_links(movie: Movie, params: LinkParams) -> InputError:
    return InputError(f"movie {movie.name!r}: no candidate pairs within {params.max_distance} px; raise --max-distance")


def run_link(store: Store, movie_name: str, *, max_distance: float = 60.0, k: int = 10, dt: int = 1) -> int:
    """Candidate links from every node to its k nearest candidates in the next ``dt`` frames."""
    movie = store.movie(movie_name)
    params = link_params(store, movie, max_distance=max_distance, k=k, dt=dt)
    with runs.record(store, movie.id, RunKind.LINK, params, parent_run_id=params.candidate_run_id) as run_id:
        if link_frames(store, movie, run_id, params) == 0:
            raise no_links(movie, params)
    return run_id
