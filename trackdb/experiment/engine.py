"""Run an experiment on Dask distributed: the manifest's movies × stages as one task graph.

Per movie: ``begin_import`` → ``import_chunk`` × frame chunks → ``finish_import`` → (for
probability maps) the same three for ``candidates`` → ``begin_link`` → ``link_chunk`` × frame
chunks → ``finish_link`` → ``solve`` → ``uncertainty`` (:mod:`trackdb.experiment.tasks`).
Dependencies are Dask futures, so a failed task fails only its own movie's later tasks, a
worker that dies has its tasks run again elsewhere (every task is idempotent), and a re-run of
the manifest skips what is done. Later stages get higher priority, so workers finish movies
rather than start new ones and long solves are not left for the end.

The cluster is a ``dask.distributed.LocalCluster`` (``workers`` processes × ``threads``) unless
a scheduler address is given (an existing cluster, e.g. dask-jobqueue's SLURMCluster: see
docs/experiments.md).

Writers: PostgreSQL takes any number of parallel writers (ids come in blocks from
``id_block``); SQLite is one process's store, so a run on SQLite is refused unless it has one
worker with one thread and no external scheduler (:func:`environment_problems`).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trackdb.errors import TrackdbError
from trackdb.experiment import tasks
from trackdb.experiment.manifest import Manifest, Masks, Stage
from trackdb.store import Store, db, experiments, probabilities

SCHEDULER_TIMEOUT_S = 5
# priority of a movie's tasks by stage: later stages first (depth-first over movies)
_PRIORITY = {"import": 0, "candidates": 1, "link": 2, "solve": 3, "uncertainty": 4}


@dataclass(frozen=True)
class Options:
    url: str  # the store, resolved (trackdb.store.db.resolve_url)
    workers: int = 1
    threads_per_worker: int = 1
    scheduler: str | None = None  # tcp://HOST:PORT of an existing cluster
    progress: bool = True


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def default_workers(url: str) -> int:
    """One worker on SQLite (its rule), else one per core up to 4."""
    import os

    return 1 if is_sqlite(url) else max(1, min(4, os.cpu_count() or 1))


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database)."""
    database = db.parse_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def environment_problems(manifest: Manifest | None, options: Options) -> list[str]:
    """What makes the run impossible outside the manifest: the store (it must connect and be at
    this code's revision), the writers rule, movie names owned by another experiment, stored
    calibrations. One line each; nothing is written (a SQLite file that does not exist yet is
    not created here, and a PostgreSQL database is only connected to)."""
    problems: list[str] = []
    if options.workers < 1 or options.threads_per_worker < 1:
        problems.append("--workers and --threads-per-worker must be >= 1")
    try:
        sqlite = db.parse_url(options.url).get_backend_name() == "sqlite"
    except TrackdbError as exc:
        return [*problems, str(exc)]
    if sqlite and (options.workers > 1 or options.threads_per_worker > 1 or options.scheduler):
        problems.append(
            f"SQLite is a one-process store: a run with --workers {options.workers} --threads-per-worker "
            f"{options.threads_per_worker}{' and --scheduler' if options.scheduler else ''} is refused; "
            "run it with --workers 1 --threads-per-worker 1 and no --scheduler, or use PostgreSQL "
            "(--db postgresql://USER@HOST/DB) for parallel workers"
        )
    if sqlite:
        path = _sqlite_file(options.url)
        if path is None:
            problems.append("an in-memory SQLite database cannot be shared with worker processes: give a file")
            return problems
        if not path.parent.is_dir():
            problems.append(f"cannot open database {options.url}: folder {path.parent} does not exist")
            return problems
        if not path.exists():
            return problems  # a new store: created once everything is checked
    try:
        engine = db.make_engine(options.url, must_exist=True)
    except TrackdbError as exc:
        problems.append(str(exc))
        return problems
    try:
        revision = db.current_revision(engine)
        if revision is not None:
            try:
                db.check_schema(engine)
            except TrackdbError as exc:
                problems.append(str(exc))
                return problems
    finally:
        engine.dispose()
    if revision is not None and manifest is not None:
        with Store(options.url) as store:
            owners = experiments.movie_owners(store, [m.name for m in manifest.movies])
            for name, owner in sorted(owners.items()):
                if owner != manifest.name:
                    where = f"experiment {owner!r}" if owner else "no experiment (imported on its own)"
                    problems.append(f"[[movie]] {name!r}: a movie of that name already belongs to {where}; rename it")
            cal = (
                manifest.params(Stage.UNCERTAINTY).get("calibration") if Stage.UNCERTAINTY in manifest.stages else None
            )
            method = manifest.params(Stage.UNCERTAINTY).get("method") if cal else None
            if cal and probabilities.calibration_temperature(store, cal, str(method)) is None:
                problems.append(f"[stages] uncertainty: no stored calibration {cal!r} for method {method!r}")
    return problems


def connect_scheduler(address: str) -> Any:
    """A client of the cluster at ``address``, or TrackdbError when it does not answer."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackdbError(f"scheduler {address} does not answer within {SCHEDULER_TIMEOUT_S} s: {msg}") from exc


@contextmanager
def local_client(options: Options) -> Iterator[Any]:
    """A LocalCluster of ``workers`` processes × ``threads_per_worker`` threads and its client."""
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=options.workers,
            threads_per_worker=options.threads_per_worker,
            processes=True,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@dataclass
class Result:
    """What a run did: counts, the first error of every failed movie, time and memory."""

    experiment: str
    movies: int
    tasks: int
    tasks_failed: int
    failed: dict[str, str]  # movie -> its first error
    seconds: float
    dashboard: str | None
    workers: int
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    # per stage: the workers' compute seconds of its tasks (Dask's task stream), apart from
    # the time they waited for a worker, which a run row's start-to-finish span includes
    compute_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "movies": self.movies,
            "movies_failed": len(self.failed),
            "tasks": self.tasks,
            "tasks_failed": self.tasks_failed,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "dashboard": self.dashboard,
            "workers": self.workers,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
            "compute_seconds": self.compute_seconds,
        }


@dataclass
class _Graph:
    futures: list[Any] = field(default_factory=list)
    movie_of: dict[str, str] = field(default_factory=dict)  # future key -> movie
    stage_of: dict[str, str] = field(default_factory=dict)  # future key -> stage (a run kind)
    last: dict[str, Any] = field(default_factory=dict)  # movie -> its final future


def _chunks(n_frames: int, size: int) -> list[range]:
    return [range(t, min(t + size, n_frames)) for t in range(0, n_frames, size)]


def submit(client: Any, manifest: Manifest, url: str) -> _Graph:
    """Submit every movie's tasks; returns the futures (nothing runs in this process)."""
    token = uuid.uuid4().hex[:8]  # keys unique per run: a long-lived scheduler must not reuse results
    graph = _Graph()

    def put(fn: Any, *args: Any, movie: str, stage: str, i: int, part: str = "") -> Any:
        key = f"{stage}{'-' + part if part else ''}-{movie}-{token}"
        fut = client.submit(fn, *args, key=key, pure=False, priority=_PRIORITY[stage] * 100_000 - i)
        graph.futures.append(fut)
        graph.movie_of[fut.key] = movie
        graph.stage_of[fut.key] = stage
        return fut

    size = manifest.frames_per_task
    for i, entry in enumerate(manifest.movies):
        name = entry.name
        frames = _chunks(entry.frames().n_frames, size)
        run = put(tasks.begin_import, url, manifest.name, entry, movie=name, stage="import", i=i, part="begin")
        parts = [
            put(tasks.import_chunk, url, entry, run, r, movie=name, stage="import", i=i, part=f"t{r.start}")
            for r in frames
        ]
        upstream = put(tasks.finish_import, url, run, *parts, movie=name, stage="import", i=i, part="finish")
        if Stage.CANDIDATES in manifest.stages and entry.masks is Masks.PROB:
            settings = manifest.params(Stage.CANDIDATES)
            run = put(tasks.begin_candidates, url, entry, settings, upstream, movie=name, stage="candidates", i=i,
                      part="begin")  # fmt: skip
            parts = [
                put(tasks.candidates_chunk, url, entry, run, r, movie=name, stage="candidates", i=i, part=f"t{r.start}")
                for r in frames
            ]
            upstream = put(tasks.finish_candidates, url, run, *parts, movie=name, stage="candidates", i=i,
                           part="finish")  # fmt: skip
        last = upstream
        if Stage.LINK in manifest.stages:
            settings = manifest.params(Stage.LINK)
            run = put(tasks.begin_link, url, name, settings, upstream, movie=name, stage="link", i=i, part="begin")
            parts = [
                put(tasks.link_chunk, url, run, r, movie=name, stage="link", i=i, part=f"t{r.start}") for r in frames
            ]
            last = put(tasks.finish_link, url, run, *parts, movie=name, stage="link", i=i, part="finish")
        if Stage.SOLVE in manifest.stages:
            last = put(tasks.solve_task, url, name, manifest.params(Stage.SOLVE), last, movie=name, stage="solve", i=i)
        if Stage.UNCERTAINTY in manifest.stages:
            settings = manifest.params(Stage.UNCERTAINTY)
            last = put(tasks.uncertainty_task, url, name, settings, last, movie=name, stage="uncertainty", i=i)
        graph.last[name] = last
    return graph


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, TrackdbError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def wait(
    client: Any, graph: _Graph, manifest: Manifest, progress: bool, url: str | None = None
) -> tuple[int, dict[str, str]]:
    """Wait for every task with a progress bar (tasks done / total, movies done, failures);
    returns (failed tasks, first error per failed movie). A task the scheduler gave up on
    because its workers died fails its stage's running run in the store at ``url``."""
    from distributed import as_completed
    from tqdm import tqdm

    n_movies = len(manifest.movies)
    first_error: dict[str, tuple[int, str]] = {}
    order = {f.key: i for i, f in enumerate(graph.futures)}
    finals = {f.key: m for m, f in graph.last.items()}
    movies_done = failed_tasks = 0
    bar = tqdm(total=len(graph.futures), desc=manifest.name, unit="task", disable=not progress, file=sys.stderr)
    with bar:
        for fut in as_completed(graph.futures):
            movie = graph.movie_of[fut.key]
            if fut.status == "error":
                failed_tasks += 1
                exc = fut.exception()
                if url is not None and type(exc).__name__ == "KilledWorker":
                    experiments.abandon_running(
                        tasks.store_for(url),
                        manifest.name,
                        movie,
                        graph.stage_of[fut.key],
                        f"abandoned: Dask gave up on task {fut.key} after its workers died ({_error_line(exc)})",
                    )
                if exc is not None:
                    prev = first_error.get(movie)
                    if prev is None or order[fut.key] < prev[0]:
                        first_error[movie] = (order[fut.key], _error_line(exc))
            elif fut.key in finals:
                movies_done += 1
            bar.update(1)
            bar.set_postfix_str(f"movies {movies_done}/{n_movies} done, {len(first_error)} failed", refresh=False)
    return failed_tasks, {m: e for m, (_, e) in sorted(first_error.items())}


def check(path: Path, options: Options) -> tuple[Manifest | None, list[str], Any | None]:
    """Everything checked before any work: the manifest, the store, the writers rule and the
    scheduler (connected to when given). Returns the manifest, every problem (one line each)
    and the scheduler's client (None for a LocalCluster, or when there are problems)."""
    from trackdb.experiment import manifest as mf

    manifest, problems = mf.parse(path)
    problems += environment_problems(manifest, options)
    client = None
    if options.scheduler:
        try:
            client = connect_scheduler(options.scheduler)
        except TrackdbError as exc:
            problems.append(str(exc))
    if problems and client is not None:
        client.close()
        client = None
    return manifest, problems, client


def run(manifest: Manifest, options: Options, client: Any | None = None) -> Result:
    """Run the checked manifest (:func:`check`) on ``client`` or a new LocalCluster: creates
    the store's schema if it has none, registers the experiment, then submits every task."""
    Store(options.url, create=True).close()
    experiments.ensure_experiment(
        tasks.store_for(options.url),
        manifest.name,
        {"manifest": str(manifest.path), "description": manifest.description, **_jsonable(manifest.raw)},
    )
    if client is not None:
        return _run_on(client, manifest, options)
    if options.scheduler:
        c = connect_scheduler(options.scheduler)
        try:
            return _run_on(c, manifest, options)
        finally:
            c.close()
    with local_client(options) as c:
        return _run_on(c, manifest, options)


def _run_on(client: Any, manifest: Manifest, options: Options) -> Result:
    t0 = time.perf_counter()
    dashboard = getattr(client, "dashboard_link", None)
    n_workers = len(client.scheduler_info().get("workers", {}))
    if options.progress:
        print(f"experiment {manifest.name!r}: {len(manifest.movies)} movies on {n_workers} workers", file=sys.stderr)
        print(f"dashboard: {dashboard}", file=sys.stderr)
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        graph = submit(client, manifest, options.url)
        failed_tasks, failed = wait(client, graph, manifest, options.progress, options.url)
    try:
        peaks = client.run(tasks.peak_memory)
    except Exception:  # a worker that left meanwhile
        peaks = {}
    return Result(
        manifest.name,
        len(manifest.movies),
        len(graph.futures),
        failed_tasks,
        failed,
        time.perf_counter() - t0,
        dashboard,
        n_workers,
        {str(k): round(v / 2**20, 1) for k, v in peaks.items()},
        compute_seconds(graph, stream.data),
    )


def compute_seconds(graph: _Graph, stream: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage, from Dask's task stream: its tasks, their compute seconds in all, and per
    movie (the sum of the movie's tasks of that stage) the mean and the largest."""
    per_movie: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    count: dict[str, int] = defaultdict(int)
    for task in stream:
        key = task.get("key")
        stage = graph.stage_of.get(key)  # type: ignore[arg-type]
        if stage is None:
            continue
        busy = sum(s["stop"] - s["start"] for s in task.get("startstops", ()) if s.get("action") == "compute")
        per_movie[stage][graph.movie_of[key]] += busy  # type: ignore[index]
        count[stage] += 1
    return {
        stage: {
            "tasks": count[stage],
            "total": round(sum(movies.values()), 2),
            "per_movie_mean": round(sum(movies.values()) / len(movies), 2),
            "per_movie_max": round(max(movies.values()), 2),
        }
        for stage, movies in per_movie.items()
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


STAGE_COLUMNS = ("import", "candidates", "link", "solve", "uncertainty")


def status_table(store: Store, name: str) -> pd.DataFrame:
    """One row per movie of the experiment: its conditions, the status of each stage's newest run
    (blank: not run) and the first failed stage's message. Runs whose process is gone are marked
    failed first (:func:`trackdb.store.runs.reap`)."""
    from trackdb.store import runs

    movies = experiments.experiment_movies(store, name)
    for m in movies:
        runs.reap(store, m.id)
    cond = experiments.conditions(store, name)
    rows: dict[str, dict[str, Any]] = {m.name: {"movie": m.name} for m in movies}
    for movie, key, value in cond.itertuples(index=False):
        rows[movie][str(key)] = value
    states: dict[str, dict[str, experiments.StageState]] = defaultdict(dict)
    for st in experiments.stage_states(store, name):
        states[st.movie][st.kind] = st
    kinds = [k for k in STAGE_COLUMNS if any(k in v for v in states.values())]
    for movie, row in rows.items():
        error = ""
        for kind in kinds:
            state = states[movie].get(kind)
            row[kind] = state.status if state else ""
            if state and state.status == "failed" and not error:
                error = f"{kind} (run {state.run_id}): {state.message or 'failed'}"
        row["error"] = error
    columns = ["movie", *sorted({k for r in rows.values() for k in r} - {"movie", "error", *kinds}), *kinds, "error"]
    return pd.DataFrame(list(rows.values()), columns=columns)


__all__ = [
    "Options",
    "Result",
    "check",
    "connect_scheduler",
    "default_workers",
    "environment_problems",
    "local_client",
    "run",
    "status_table",
    "submit",
    "wait",
]
