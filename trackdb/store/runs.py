"""Runs: what each stage records (typed parameters per kind), and every lookup of runs.

A run row is a stage's provenance: its kind, parameters, status, error message, summary and the
run it builds on (``parent_run_id``). Parameters are one frozen dataclass per kind, stored as
JSON with ``None`` fields left out, so a stage reads ``LinkParams.candidate_run_id`` instead of
``params["candidate_run_id"]``. ``message`` holds a failed run's error; what a succeeded run
reports about itself goes in ``summary``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.errors import InputError, NotFoundError
from trackdb.store import processes, schema

if TYPE_CHECKING:
    from trackdb.store.core import Movie, Store


class RunKind(enum.StrEnum):
    IMPORT = "import"
    INFERENCE = "inference"
    CANDIDATES = "candidates"
    LINK = "link"
    SOLVE = "solve"
    UNCERTAINTY = "uncertainty"
    CALIBRATE = "calibrate"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


P = TypeVar("P", bound="Params")


@dataclass(frozen=True)
class Params:
    """Base of the per-kind parameter records: JSON in and out, unknown keys refused."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.name] = v.to_json() if isinstance(v, Params) else v
        encoded: dict[str, Any] = json.loads(json.dumps(out, default=str))
        return encoded

    @classmethod
    def from_json(cls: type[P], data: dict[str, Any] | None) -> P:
        data = dict(data or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown parameters {sorted(unknown)}")
        nested = {"resolve": ResolveParams}
        for key, sub in nested.items():
            if key in names and isinstance(data.get(key), dict):
                data[key] = sub.from_json(data[key])
        for key in ("windows",):
            if key in names and data.get(key) is not None:
                data[key] = [tuple(w) for w in data[key]]
        return cls(**data)


@dataclass(frozen=True)
class ImportParams(Params):
    dataset: str
    seq: str
    masks_only: bool = False
    no_gt: bool = False


@dataclass(frozen=True)
class InferenceParams(Params):
    model: str
    zarr: str
    tta: bool = False
    tile: int = 1024
    overlap: int = 128


@dataclass(frozen=True)
class CandidatesParams(Params):
    source: str
    kind: str  # "prob", "labels" or "predictions"
    tau: float | None = None
    min_area: int | None = None
    min_object_size: int | None = None
    fg_thresh: float | None = None
    merges: bool | None = None


@dataclass(frozen=True)
class LinkParams(Params):
    """A link run: radius ``max_distance`` in ``units`` ("physical": the movie's spacing;
    None: pixels, the runs written before spacing was honoured, whose rows carry no unit) and
    ``k``, either given or chosen from the cells (``chosen``: the statistics and the reason)."""

    candidate_run_id: int
    max_distance: float
    k: int
    dt: int = 1
    units: str | None = None
    chosen: dict[str, Any] | None = None


@dataclass(frozen=True)
class ResolveParams(Params):
    """What a re-solve did on top of the solve chain it edits."""

    margin: int
    backend: str
    time_limit: float
    gap: float
    root_run_id: int
    previous_solution_id: int
    windows: list[tuple[int, int]] = field(default_factory=list)
    edits: list[int] = field(default_factory=list)
    violated: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SolveParams(Params):
    method: str
    link_run_id: int | None = None
    window: int | None = None
    time_limit: float | None = None
    gap: float | None = None
    iterations: int | None = None
    resolve: ResolveParams | None = None  # set on a re-solve
    # EmbedTrack's own linking (method "embedtrack") reads the predictions instead of links
    zarr: str | None = None
    min_object_size: int | None = None
    fg_thresh: float | None = None


@dataclass(frozen=True)
class UncertaintyParams(Params):
    method: str
    k: int
    temperature: float
    solution_id: int
    solve_run_id: int
    calibration: str | None = None
    sigma_px: float | None = None
    sigma_area: float | None = None


@dataclass(frozen=True)
class CalibrateParams(Params):
    gt: str
    method: str
    name: str
    k: int
    solution_id: int
    temperature_prior: float | None = None
    png: str | None = None


PARAMS: dict[RunKind, type[Params]] = {
    RunKind.IMPORT: ImportParams,
    RunKind.INFERENCE: InferenceParams,
    RunKind.CANDIDATES: CandidatesParams,
    RunKind.LINK: LinkParams,
    RunKind.SOLVE: SolveParams,
    RunKind.UNCERTAINTY: UncertaintyParams,
    RunKind.CALIBRATE: CalibrateParams,
}


@dataclass(frozen=True)
class Run:
    id: int
    movie_id: int | None
    kind: RunKind
    params: Params
    status: RunStatus
    message: str | None
    summary: dict[str, Any] | None
    parent_run_id: int | None
    pid: int | None = None  # the process that began it (None: written before revision 0008)
    host: str | None = None

    def typed(self, cls: type[P]) -> P:
        """The parameters as ``cls``; a run of another kind is a caller's bug."""
        if not isinstance(self.params, cls):
            raise TypeError(f"run {self.id} is a {self.kind} run, not {cls.__name__}")
        return self.params

    @property
    def is_resolve(self) -> bool:
        return isinstance(self.params, SolveParams) and self.params.resolve is not None


def _run_of(row: Any) -> Run:
    kind = RunKind(row["kind"])
    return Run(
        int(row["id"]),
        row["movie_id"],
        kind,
        PARAMS[kind].from_json(row["params"]),
        RunStatus(row["status"]),
        row["message"],
        row["summary"],
        row["parent_run_id"],
        row.get("pid"),
        row.get("host"),
    )


# --- recording ---------------------------------------------------------------------------------
def begin(
    store: Store,
    movie_id: int | None,
    kind: RunKind,
    params: Params,
    parent_run_id: int | None = None,
    resume: bool = False,
) -> int:
    """A run row in state 'running', committed on its own; returns its id.

    With ``resume``, an unfinished run (running or failed) of the same kind and parameters is
    continued instead of a new row (its finished frames are skipped by the ingest layer); runs
    whose process is gone are marked failed first (:func:`reap`), and a resumed run belongs to
    this process unless its own process still runs (another process of a multi-process stage).
    Stages whose work spans several processes (the experiment engine's frame chunks) call
    :func:`begin` and :func:`finish` themselves; a stage in one process uses :func:`record`.
    """
    from trackdb.store.core import code_version, now

    payload = params.to_json()
    r = schema.run.c
    me = processes.this_process()
    mine = {"pid": me.pid, "host": me.host, "process_started": me.started}
    if resume:
        reap(store, movie_id)
    with store.engine.begin() as c:
        if resume:
            for rid, p, status in c.execute(
                sa.select(r.id, r.params, r.status)
                .where(r.movie_id == movie_id, r.kind == kind.value, r.status != RunStatus.SUCCEEDED.value)
                .order_by(r.id.desc())
            ):
                if p == payload:
                    owner = mine if status != RunStatus.RUNNING.value else {}  # alive: reap left it running
                    c.execute(
                        schema.run.update()
                        .where(r.id == rid)
                        .values(status=RunStatus.RUNNING.value, message=None, **owner)
                    )
                    return int(rid)
        return int(
            c.execute(
                schema.run.insert()
                .values(
                    movie_id=movie_id,
                    kind=kind.value,
                    params=payload,
                    code_version=code_version(),
                    status=RunStatus.RUNNING.value,
                    started_at=now(),
                    parent_run_id=parent_run_id,
                    **mine,
                )
                .returning(r.id)
            ).scalar_one()
        )


def reap(store: Store, movie_id: int | None = None) -> list[int]:
    """Mark every ``running`` run (of the movie, or all) whose process on this host is gone as
    ``failed`` with the reason; returns their ids. Runs of other hosts and runs without a
    recorded process are left as they are: nothing can be checked about them from here."""
    from trackdb.store.core import now

    r = schema.run.c
    q = sa.select(r.id, r.pid, r.host, r.process_started).where(
        r.status == RunStatus.RUNNING.value, r.pid.is_not(None), r.host == processes.hostname()
    )
    if movie_id is not None:
        q = q.where(r.movie_id == movie_id)
    with store.engine.connect() as c:
        candidates = c.execute(q).all()
    reaped = []
    for rid, pid, host, started in candidates:
        reason = processes.gone_reason(int(pid), host, started)
        if reason is None:
            continue
        with store.engine.begin() as c:  # only if it is still running: its finish may have raced us
            done = c.execute(
                schema.run.update()
                .where(r.id == rid, r.status == RunStatus.RUNNING.value, r.pid == pid)
                .values(status=RunStatus.FAILED.value, message=reason, finished_at=now())
            ).rowcount
        if done:
            reaped.append(int(rid))
    return reaped


def finish(store: Store, run_id: int, error: BaseException | str | None = None) -> None:
    """Mark a run 'succeeded', or 'failed' with the error as its message (committed on its own)."""
    from trackdb.store.core import now

    if error is None:
        values: dict[str, Any] = {"status": RunStatus.SUCCEEDED.value}
    else:
        message = str(error) or type(error).__name__
        values = {"status": RunStatus.FAILED.value, "message": message[:2000]}
    with store.engine.begin() as c:
        c.execute(schema.run.update().where(schema.run.c.id == run_id).values(**values, finished_at=now()))


@contextmanager
def record(
    store: Store,
    movie_id: int | None,
    kind: RunKind,
    params: Params,
    parent_run_id: int | None = None,
    resume: bool = False,
) -> Iterator[int]:
    """Record a run: 'running' now, 'succeeded' or 'failed' (with the error) at the end.

    The run row is committed on its own so that a failure stays visible after the work's own
    transaction rolled back. With ``resume``, an unfinished run of the same kind and parameters is
    continued (its finished frames are skipped by the ingest layer).
    """
    run_id = begin(store, movie_id, kind, params, parent_run_id, resume)
    try:
        yield run_id
    except BaseException as exc:
        finish(store, run_id, exc)
        raise
    finish(store, run_id)


def record_finished(conn: Connection, movie_id: int, kind: RunKind, params: Params) -> int:
    """A run that is done when its caller's transaction commits (an import): one row, succeeded."""
    from trackdb.store.core import code_version, now

    return int(
        conn.execute(
            schema.run.insert()
            .values(
                movie_id=movie_id,
                kind=kind.value,
                status=RunStatus.SUCCEEDED.value,
                code_version=code_version(),
                params=params.to_json(),
                started_at=now(),
                finished_at=now(),
            )
            .returning(schema.run.c.id)
        ).scalar_one()
    )


def set_summary(conn: Connection, run_id: int, summary: dict[str, Any]) -> None:
    conn.execute(
        schema.run.update()
        .where(schema.run.c.id == run_id)
        .values(summary=json.loads(json.dumps(summary, default=str)))
    )


# --- lookups -----------------------------------------------------------------------------------
def get_run(store: Store, run_id: int, conn: Connection | None = None) -> Run:
    with store.connection(conn) as c:
        row = c.execute(sa.select(schema.run).where(schema.run.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no run {run_id} in this database")
    return _run_of(row)


def listing(store: Store, movie_id: int | None = None) -> list[dict[str, Any]]:
    """Every run (of the movie, or all), oldest first, after :func:`reap`: what ``trackdb runs``
    shows, so that ``running`` means running."""
    reap(store, movie_id)
    r = schema.run.c
    q = sa.select(
        r.id, r.movie_id, r.kind, r.status, r.started_at, r.finished_at, r.host, r.pid, r.parent_run_id, r.message
    ).order_by(r.id)
    if movie_id is not None:
        q = q.where(r.movie_id == movie_id)
    with store.engine.connect() as c:
        return [dict(row) for row in c.execute(q).mappings()]


def runs_of(store: Store, movie_id: int, kind: RunKind, status: RunStatus | None = RunStatus.SUCCEEDED) -> list[Run]:
    """The movie's runs of ``kind`` (with ``status``, None: any), newest first."""
    r = schema.run.c
    q = sa.select(schema.run).where(r.movie_id == movie_id, r.kind == kind.value)
    if status is not None:
        q = q.where(r.status == status.value)
    with store.engine.connect() as c:
        return [_run_of(row) for row in c.execute(q.order_by(r.id.desc())).mappings()]


def succeeded_with(store: Store, movie_id: int, kind: RunKind, params: Params) -> Run | None:
    """The newest succeeded run of ``kind`` whose parameters equal ``params`` (a re-run of an
    experiment skips the stages that have one)."""
    payload = params.to_json()
    for run in runs_of(store, movie_id, kind):
        if run.params.to_json() == payload:
            return run
    return None


def latest_run(store: Store, movie_id: int, kind: RunKind, status: RunStatus = RunStatus.SUCCEEDED) -> Run | None:
    """The latest run of ``kind`` with ``status`` (by default: succeeded) for the movie."""
    r = schema.run.c
    with store.engine.connect() as c:
        row = (
            c.execute(
                sa.select(schema.run)
                .where(r.movie_id == movie_id, r.kind == kind.value, r.status == status.value)
                .order_by(r.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return _run_of(row) if row else None


def candidate_run(store: Store, movie: Movie) -> int:
    """The movie's candidate set: the latest candidates run, else its imported detections."""
    n = schema.node.c
    for kind in (RunKind.CANDIDATES, RunKind.IMPORT):
        run = latest_run(store, movie.id, kind)
        if run is not None:
            with store.engine.connect() as c:
                if c.execute(sa.select(n.id).where(n.run_id == run.id).limit(1)).first():
                    return run.id
    raise NotFoundError(f"movie {movie.name!r} has no candidates: run `trackdb candidates` or import masks")


def solution_run(store: Store, solution_id: int) -> Run:
    """The run that wrote a solution."""
    s, r = schema.solution.c, schema.run.c
    with store.engine.connect() as c:
        row = (
            c.execute(sa.select(schema.run).join(schema.solution, s.run_id == r.id).where(s.id == solution_id))
            .mappings()
            .one()
        )
    return _run_of(row)


@dataclass(frozen=True)
class SolveChain:
    """Which candidates and links make the movie's current graph, and the solves it came from."""

    candidate_run: int
    link_run: int
    root: Run | None  # the chain's full solve (None: no solve yet)
    current: Run | None  # the run of the current solution, if a solve


def solve_chain(store: Store, movie: Movie) -> SolveChain:
    """The graph edits refer to: that of the current solution's solve chain, else the latest links."""
    root = current = None
    if movie.current_solution_id is not None:
        run = solution_run(store, movie.current_solution_id)
        if run.kind is RunKind.SOLVE:
            current = root = run
            while root.is_resolve and root.parent_run_id is not None:
                root = get_run(store, root.parent_run_id)
    if root is not None:
        link_run_id = root.typed(SolveParams).link_run_id
        if link_run_id is not None:
            link = get_run(store, link_run_id).typed(LinkParams)
            return SolveChain(link.candidate_run_id, link_run_id, root, current)
    link_run = latest_run(store, movie.id, RunKind.LINK)
    if link_run is None:
        raise NotFoundError(f"movie {movie.name!r} has no candidate links: run `trackdb link` first")
    return SolveChain(link_run.typed(LinkParams).candidate_run_id, link_run.id, None, None)


def current_solve(store: Store, movie: Movie) -> tuple[int, Run]:
    """(current solution id, the solve run that wrote it); refuses imported or missing ones."""
    sid = store.solution_id(movie)  # NotFoundError when the movie has no solution
    run = solution_run(store, sid)
    if run.kind is not RunKind.SOLVE:
        raise InputError(
            f"the current solution of movie {movie.name!r} (id {sid}) comes from a "
            f"{run.kind.value!r} run, not a solve: run `trackdb solve` first"
        )
    return sid, run


def uncertainty_run_of(store: Store, movie: Movie, solution_id: int) -> int | None:
    """The newest succeeded uncertainty run that describes solution ``solution_id`` (None: none)."""
    for run in runs_of(store, movie.id, RunKind.UNCERTAINTY):
        if run.typed(UncertaintyParams).solution_id == solution_id:
            return run.id
    return None


def latest_uncertainty_run(store: Store, movie: Movie) -> int:
    """The newest succeeded uncertainty run of the movie's *current* solution."""
    sid = store.solution_id(movie)
    run_id = uncertainty_run_of(store, movie, sid)
    if run_id is not None:
        return run_id
    raise NotFoundError(
        f"no uncertainty run for the current solution (id {sid}) of movie "
        f"{movie.name!r}: run `trackdb uncertainty --movie {movie.name} --method sm` first"
    )
