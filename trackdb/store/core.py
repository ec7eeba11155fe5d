"""The store: one object that owns the engine and answers "which movie, run, solution?".

Everything that names a movie or solution by the user's words goes through here, so an unknown
name or id gets the same clear :class:`~trackdb.errors.NotFoundError` everywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from trackdb import __version__
from trackdb.store import db
from trackdb.store import schema
from trackdb.errors import NotFoundError, SolveFailed, TrackdbError


@dataclass(frozen=True)
class Movie:
    id: int
    name: str
    ndim: int
    n_frames: int
    shape: tuple[int, ...]  # spatial shape ([Z,]Y,X)
    spacing: tuple[float, ...]
    uri: str | None
    zarr_uri: str | None
    current_solution_id: int | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def code_version() -> str:
    """trackdb version plus the git commit when run from a checkout (provenance of runs)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


class Store:
    """A trackdb database: SQLite file or PostgreSQL, at this code's schema revision."""

    def __init__(self, url: str | None = None, *, create: bool = False) -> None:
        self.engine: Engine = db.make_engine(url)
        if create:
            db.upgrade(self.engine)
        db.check_schema(self.engine)

    @property
    def is_postgres(self) -> bool:
        return db.is_postgres(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- movies -----------------------------------------------------------------------------
    def add_movie(self, conn: Connection, name: str, shape: tuple[int, ...], n_frames: int, *,
                  uri: str | None = None, spacing: tuple[float, ...] | None = None,
                  time_interval: float | None = None, experiment: str | None = None,
                  zarr_uri: str | None = None) -> int:
        if conn.execute(sa.select(schema.movie.c.id).where(schema.movie.c.name == name)).first():
            raise TrackdbError(f"movie {name!r} already exists; choose another --movie name")
        ndim = len(shape)
        if ndim not in (2, 3):
            raise TrackdbError(f"movie {name!r}: frames must be 2D or 3D, got shape {shape}")
        spacing = spacing or (1.0,) * ndim
        exp_id = None
        if experiment:
            exp_id = conn.execute(sa.select(schema.experiment.c.id).where(schema.experiment.c.name == experiment)).scalar()
            if exp_id is None:
                exp_id = conn.execute(schema.experiment.insert().values(name=experiment)
                                      .returning(schema.experiment.c.id)).scalar_one()
        values: dict[str, Any] = dict(
            name=name, experiment_id=exp_id, uri=uri, ndim=ndim, n_frames=n_frames,
            size_y=shape[-2], size_x=shape[-1], spacing_y=spacing[-2], spacing_x=spacing[-1],
            time_interval=time_interval, zarr_uri=zarr_uri)
        if ndim == 3:
            values.update(size_z=shape[0], spacing_z=spacing[0])
        return int(conn.execute(schema.movie.insert().values(**values).returning(schema.movie.c.id)).scalar_one())

    def movie(self, name_or_id: str | int, conn: Connection | None = None) -> Movie:
        m = schema.movie.c
        cond = (m.id == int(name_or_id)) if str(name_or_id).isdigit() else (m.name == str(name_or_id))
        with self._conn(conn) as c:
            row = c.execute(sa.select(schema.movie).where(cond)).mappings().first()
            if row is None and str(name_or_id).isdigit():
                row = c.execute(sa.select(schema.movie).where(m.name == str(name_or_id))).mappings().first()
        if row is None:
            raise NotFoundError(f"no movie {name_or_id!r} in this database (see `trackdb movies`)")
        shape = ((row["size_z"],) if row["ndim"] == 3 else ()) + (row["size_y"], row["size_x"])
        spacing = ((row["spacing_z"],) if row["ndim"] == 3 else ()) + (row["spacing_y"], row["spacing_x"])
        return Movie(row["id"], row["name"], row["ndim"], row["n_frames"], tuple(shape),
                     tuple(spacing), row["uri"], row["zarr_uri"], row["current_solution_id"])

    def movies(self) -> list[Movie]:
        with self.engine.connect() as c:
            ids = c.execute(sa.select(schema.movie.c.id).order_by(schema.movie.c.id)).scalars().all()
        return [self.movie(i) for i in ids]

    # --- runs -------------------------------------------------------------------------------
    @contextmanager
    def run(self, movie_id: int | None, kind: str, params: dict[str, Any] | None = None,
            parent_run_id: int | None = None, resume: bool = False) -> Iterator[int]:
        """Record a run: 'running' now, 'succeeded' or 'failed' (with the error) at the end.

        The run row is committed on its own so that a failure stays visible after the work's
        own transaction rolled back. With ``resume``, an unfinished run of the same kind and
        parameters is continued (its finished frames are skipped by the ingest layer).
        """
        params = json.loads(json.dumps(params or {}, default=str))
        r = schema.run.c
        with self.engine.begin() as c:
            run_id = None
            if resume:
                for rid, p in c.execute(sa.select(r.id, r.params).where(
                        r.movie_id == movie_id, r.kind == kind, r.status != "succeeded").order_by(r.id.desc())):
                    if p == params:
                        run_id = int(rid)
                        c.execute(schema.run.update().where(r.id == rid).values(status="running", message=None))
                        break
            if run_id is None:
                run_id = int(c.execute(schema.run.insert().values(
                    movie_id=movie_id, kind=kind, params=params, code_version=code_version(),
                    status="running", started_at=_now(), parent_run_id=parent_run_id)
                    .returning(r.id)).scalar_one())
        try:
            yield run_id
        except BaseException as exc:
            with self.engine.begin() as c:
                c.execute(schema.run.update().where(schema.run.c.id == run_id).values(
                    status="failed", message=str(exc)[:2000] or type(exc).__name__, finished_at=_now()))
            raise
        with self.engine.begin() as c:
            c.execute(schema.run.update().where(schema.run.c.id == run_id).values(
                status="succeeded", finished_at=_now()))

    # --- solutions --------------------------------------------------------------------------
    def solution_id(self, movie: Movie, solution: str | int | None = None) -> int:
        """Resolve a solution by id or name; default: the movie's current solution."""
        s = schema.solution.c
        with self.engine.connect() as c:
            if solution is None:
                if movie.current_solution_id is None:
                    raise NotFoundError(f"movie {movie.name!r} has no solution yet: import ground truth or run `trackdb solve`")
                return movie.current_solution_id
            if str(solution).isdigit():
                sid = c.execute(sa.select(s.id).where(s.id == int(solution), s.movie_id == movie.id)).scalar()
            else:
                sid = c.execute(sa.select(s.id).where(s.name == str(solution), s.movie_id == movie.id)
                                .order_by(s.id.desc())).scalar()
        if sid is None:
            raise NotFoundError(f"no solution {solution!r} for movie {movie.name!r}")
        return int(sid)

    def set_current_solution(self, conn: Connection, movie_id: int, solution_id: int) -> None:
        conn.execute(schema.movie.update().where(schema.movie.c.id == movie_id)
                     .values(current_solution_id=solution_id))

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as c:
                yield c


__all__ = ["Movie", "Store", "SolveFailed", "code_version"]
