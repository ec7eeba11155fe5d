"""The experiment engine's tasks: plain functions a Dask worker runs, each idempotent.

Every task opens the store by URL (one engine per worker process), looks at what the store
already holds and does only what is missing, so a task that runs twice (its worker died and
Dask ran it again, or the whole experiment was run again) leaves one copy of everything:

* ``begin_*`` registers the movie or reuses a stage's unfinished run with the same parameters
  (``runs.begin(resume=True)``), or reports the stage done when a succeeded run with those
  parameters exists;
* ``*_chunk`` writes a range of frames; frames the run already wrote are skipped (the ingest
  layer's per-frame rule) and each frame is one transaction, so a killed chunk leaves whole
  frames only;
* ``finish_*`` marks the run succeeded once every chunk has;
* ``solve`` and ``uncertainty`` are one transaction of output each: a killed one wrote nothing,
  and one killed between its commit and its success mark is only marked.

A chunk that fails marks its run failed with the error (file and frame named) and raises, so
Dask fails that movie's later tasks while the other movies go on.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from trackdb.errors import InputError
from trackdb.experiment.manifest import Masks, MovieEntry
from trackdb.stages import candidates, link, solve, uncertainty
from trackdb.store import Store, experiments, runs
from trackdb.store.runs import CandidatesParams, ImportParams, LinkParams, Params, RunKind, SolveParams
from trackdb.store.runs import UncertaintyParams as UParams

T = TypeVar("T")
_stores: dict[str, Store] = {}
_lock = threading.Lock()


def store_for(url: str) -> Store:
    """This process's store for ``url`` (one engine and connection pool per worker process)."""
    with _lock:
        if url not in _stores:
            _stores[url] = Store(url)
        return _stores[url]


@dataclass(frozen=True)
class StageRun:
    """A stage's run for one movie, handed from its begin task to its chunks and finish."""

    movie: str
    kind: RunKind
    run_id: int
    done: bool  # a succeeded run with these parameters existed: nothing to do
    params: dict[str, Any]


def _keywords(fn: Callable[..., Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest's settings that ``fn`` takes as keyword parameters (a stage's checked
    parameters are passed on whole, so new ones need no change here)."""
    names = inspect.signature(fn).parameters
    return {k: v for k, v in settings.items() if k in names and k not in ("store", "movie")}


def _guarded(store: Store, run: StageRun, work: Callable[[], T]) -> T:
    """Run ``work``; on an error mark the stage's run failed with it, then re-raise."""
    try:
        return work()
    except Exception as exc:
        runs.finish(store, run.run_id, exc)
        raise


def _begin(store: Store, movie_id: int, name: str, kind: RunKind, params: Params, parent: int | None) -> StageRun:
    done = runs.succeeded_with(store, movie_id, kind, params)
    if done is not None:
        return StageRun(name, kind, done.id, True, params.to_json())
    run_id = runs.begin(store, movie_id, kind, params, parent_run_id=parent, resume=True)
    return StageRun(name, kind, run_id, False, params.to_json())


# --- import: the movie and its detections ------------------------------------------------------
def import_params(entry: MovieEntry) -> ImportParams:
    if entry.masks is Masks.PROB:  # detections come from the candidates stage
        return ImportParams(dataset=str(entry.source), seq="", no_gt=True)
    return ImportParams(dataset=str(entry.source), seq=entry.seq, masks_only=True)


def begin_import(url: str, experiment: str, entry: MovieEntry) -> StageRun:
    """Register the movie (with its conditions) in the experiment and begin its import run."""
    store = store_for(url)
    src = entry.frames()
    movie_id = experiments.register_movie(
        store,
        experiment,
        entry.name,
        src.shape,
        src.n_frames,
        uri=entry.raw_uri,
        spacing=None,
        conditions=entry.conditions,
    )
    run = _begin(store, movie_id, entry.name, RunKind.IMPORT, import_params(entry), None)
    if entry.masks is Masks.PROB and not run.done:  # nothing to write: the movie is all it imports
        runs.finish(store, run.run_id)
        run = StageRun(run.movie, run.kind, run.run_id, True, run.params)
    return run


def import_chunk(url: str, entry: MovieEntry, run: StageRun, frames: range) -> None:
    """The detections of ``frames``: every object of the label images, one candidate."""
    if run.done:
        return
    store = store_for(url)
    movie = store.movie(run.movie)
    _guarded(store, run, lambda: candidates.candidates_frames(store, movie, run.run_id, entry.frames(), frames))


def _finish_with_nodes(url: str, run: StageRun, empty: str) -> StageRun:
    """Mark a node-writing run succeeded once its chunks are done; ``empty`` fails a run that wrote none."""
    if run.done:
        return run
    store = store_for(url)

    def check() -> None:
        if not experiments.has_nodes(store, run.run_id):
            raise InputError(f"movie {run.movie!r}: {empty}")

    _guarded(store, run, check)
    runs.finish(store, run.run_id)
    return run


def finish_import(url: str, run: StageRun, *chunks: None) -> StageRun:
    return _finish_with_nodes(url, run, "no objects in any frame of its masks")


# --- candidates (probability maps) -------------------------------------------------------------
def begin_candidates(url: str, entry: MovieEntry, settings: dict[str, Any], upstream: StageRun) -> StageRun:
    store = store_for(url)
    movie = store.movie(entry.name)
    params = CandidatesParams(source=str(entry.source), kind="prob", tau=settings["tau"], min_area=settings["min_area"])
    return _begin(store, movie.id, entry.name, RunKind.CANDIDATES, params, None)


def candidates_chunk(url: str, entry: MovieEntry, run: StageRun, frames: range) -> None:
    """The pruned H-EMD forests of ``frames`` of the probability map."""
    if run.done:
        return
    store = store_for(url)
    movie = store.movie(run.movie)
    p = CandidatesParams.from_json(run.params)
    tau, min_area = float(p.tau or 0.5), int(p.min_area or 10)
    _guarded(
        store,
        run,
        lambda: candidates.candidates_frames(
            store, movie, run.run_id, entry.frames(), frames, tau=tau, min_area=min_area
        ),
    )


def finish_candidates(url: str, run: StageRun, *chunks: None) -> StageRun:
    return _finish_with_nodes(url, run, "no candidates in any frame (is the map empty or tau too high?)")


# --- link --------------------------------------------------------------------------------------
def begin_link(url: str, name: str, settings: dict[str, Any], upstream: StageRun) -> StageRun:
    store = store_for(url)
    movie = store.movie(name)
    params = link.link_params(store, movie, **_keywords(link.link_params, settings))
    return _begin(store, movie.id, name, RunKind.LINK, params, params.candidate_run_id)


def link_chunk(url: str, run: StageRun, frames: range) -> int:
    """The candidate links whose source lies in ``frames``."""
    if run.done:
        return 0
    store = store_for(url)
    movie = store.movie(run.movie)
    params = LinkParams.from_json(run.params)
    return _guarded(store, run, lambda: link.link_frames(store, movie, run.run_id, params, frames))


def finish_link(url: str, run: StageRun, *chunks: int) -> StageRun:
    if run.done:
        return run
    store = store_for(url)
    movie = store.movie(run.movie)

    def check() -> None:
        if not experiments.has_edges(store, run.run_id):
            raise link.no_links(movie, LinkParams.from_json(run.params))

    _guarded(store, run, check)
    runs.finish(store, run.run_id)
    return run


# --- per movie: solve, uncertainty -------------------------------------------------------------
def _unfinished_complete(store: Store, movie_id: int, kind: RunKind, params: Params) -> int | None:
    """An unfinished run with these parameters whose one output transaction committed."""
    payload = params.to_json()
    for r in runs.runs_of(store, movie_id, kind, status=None):
        if r.status is not runs.RunStatus.SUCCEEDED and r.params.to_json() == payload:
            if experiments.wrote_output(store, r.id, kind.value):
                runs.finish(store, r.id)
                return r.id
    return None


def _once(store: Store, movie_id: int, kind: RunKind, params: Params, run: Callable[[], int]) -> int:
    """The run of ``kind`` with ``params``: a succeeded one, an unfinished one whose output
    committed (marked succeeded), or else a new one from ``run``."""
    done = runs.succeeded_with(store, movie_id, kind, params)
    if done is not None:
        return done.id
    marked = _unfinished_complete(store, movie_id, kind, params)
    if marked is not None:
        return marked
    return run()


def solve_task(url: str, name: str, settings: dict[str, Any], link_run: StageRun) -> int:
    """Solve the movie's links (once); returns the solve run."""
    store = store_for(url)
    movie = store.movie(name)
    s = settings
    params = SolveParams(
        method=s["method"],
        window=s["window"],
        time_limit=s["time_limit"],
        gap=s["gap"],
        iterations=s["iterations"],
        link_run_id=link_run.run_id,
    )
    return _once(
        store,
        movie.id,
        RunKind.SOLVE,
        params,
        lambda: (
            solve.run_solve(
                store,
                name,
                method=s["method"],
                window=s["window"],
                time_limit=s["time_limit"],
                gap=s["gap"],
                iterations=s["iterations"],
                link_run_id=link_run.run_id,
                resume=True,
            ).run_id
        ),
    )


def uncertainty_task(url: str, name: str, settings: dict[str, Any], solve_run_id: int) -> int:
    """Probabilities of the movie's current solution (once); returns the uncertainty run."""
    store = store_for(url)
    movie = store.movie(name)
    s = settings
    m = uncertainty.parse_method(s["method"])
    temperature = uncertainty.resolve_temperature(store, m, s["calibration"], s["temperature"])
    sid, solve_run = runs.current_solve(store, movie)
    perturbs = m in (uncertainty.Method.FP, uncertainty.Method.FPA)
    params = UParams(
        method=m.value,
        k=uncertainty.check_k(s["k"]),
        temperature=temperature,
        calibration=s["calibration"],
        solution_id=sid,
        solve_run_id=solve_run.id,
        sigma_px=uncertainty.check_sigma("sigma-px", s["sigma_px"]) if perturbs else None,
        sigma_area=uncertainty.check_sigma("sigma-area", s["sigma_area"]) if perturbs else None,
    )
    return _once(
        store,
        movie.id,
        RunKind.UNCERTAINTY,
        params,
        lambda: uncertainty.run_uncertainty(
            store,
            name,
            m.value,
            k=s["k"],
            calibration=s["calibration"],
            temperature=s["temperature"],
            sigma_px=s["sigma_px"],
            sigma_area=s["sigma_area"],
            resume=True,
        ),
    )


def peak_memory() -> int:
    """Peak resident memory of this process in bytes (run on every worker at the end)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


__all__ = [
    "StageRun",
    "begin_candidates",
    "begin_import",
    "begin_link",
    "candidates_chunk",
    "finish_candidates",
    "finish_import",
    "finish_link",
    "import_chunk",
    "import_params",
    "link_chunk",
    "peak_memory",
    "solve_task",
    "store_for",
    "uncertainty_task",
]
