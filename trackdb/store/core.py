"""The store: one object that owns the engine and answers "which movie, run, solution?".

Everything that names a movie or solution by the user's words goes through here, so an unknown
name or id gets the same clear :class:`~trackdb.errors.NotFoundError` everywhere.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from trackdb import __version__
from trackdb.errors import NotFoundError, TrackdbError
from trackdb.store import db, schema


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


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def code_version() -> str:
    """trackdb version plus the git commit when run from a checkout (provenance of runs)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


class Store:
    """A trackdb database: SQLite file or PostgreSQL, at this code's schema revision.

    ``create``: a database without a trackdb schema (a new SQLite file, an empty PostgreSQL
    database or schema) gets one. A database at another revision is refused either way: only
    ``trackdb init`` and ``trackdb db upgrade`` migrate (:func:`trackdb.store.db.upgrade`).
    Without ``create`` a missing SQLite file is refused, not created.
    """

    def __init__(self, url: str | None = None, *, create: bool = False) -> None:
        self.engine: Engine = db.make_engine(url, must_exist=not create)
        if create and db.current_revision(self.engine) is None:
            db.upgrade(self.engine)
        db.check_schema(self.engine)

    @property
    def is_postgres(self) -> bool:
        return db.is_postgres(self.engine)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite store (None on PostgreSQL or in memory)."""
        if self.engine.dialect.name != "sqlite" or not self.engine.url.database:
            return None
        return None if self.engine.url.database == ":memory:" else Path(self.engine.url.database)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- movies -----------------------------------------------------------------------------
    def add_movie(
        self,
        conn: Connection,
        name: str,
        shape: tuple[int, ...],
        n_frames: int,
        *,
        uri: str | None = None,
        spacing: tuple[float, ...] | None = None,
        time_interval: float | None = None,
        experiment: str | None = None,
        zarr_uri: str | None = None,
    ) -> int:
        if conn.execute(sa.select(schema.movie.c.id).where(schema.movie.c.name == name)).first():
            raise TrackdbError(f"movie {name!r} already exists; choose another --movie name")
        ndim = len(shape)
        if ndim not in (2, 3):
            raise TrackdbError(f"movie {name!r}: frames must be 2D or 3D, got shape {shape}")
        spacing = spacing or (1.0,) * ndim
        exp_id = None
        if experiment:
            exp_id = conn.execute(
                sa.select(schema.experiment.c.id).where(schema.experiment.c.name == experiment)
            ).scalar()
            if exp_id is None:
                exp_id = conn.execute(
                    schema.experiment.insert().values(name=experiment).returning(schema.experiment.c.id)
                ).scalar_one()
        values: dict[str, Any] = dict(
            name=name,
            experiment_id=exp_id,
            uri=uri,
            ndim=ndim,
            n_frames=n_frames,
            size_y=shape[-2],
            size_x=shape[-1],
            spacing_y=spacing[-2],
            spacing_x=spacing[-1],
            time_interval=time_interval,
            zarr_uri=zarr_uri,
        )
        if ndim == 3:
            values.update(size_z=shape[0], spacing_z=spacing[0])
        return int(conn.execute(schema.movie.insert().values(**values).returning(schema.movie.c.id)).scalar_one())

    def movie(self, name_or_id: str | int, conn: Connection | None = None) -> Movie:
        m = schema.movie.c
        cond = (m.id == int(name_or_id)) if str(name_or_id).isdigit() else (m.name == str(name_or_id))
        with self.connection(conn) as c:
            row = c.execute(sa.select(schema.movie).where(cond)).mappings().first()
            if row is None and str(name_or_id).isdigit():
                row = c.execute(sa.select(schema.movie).where(m.name == str(name_or_id))).mappings().first()
        if row is None:
            raise NotFoundError(f"no movie {name_or_id!r} in this database (see `trackdb movies`)")
        shape = ((row["size_z"],) if row["ndim"] == 3 else ()) + (row["size_y"], row["size_x"])
        spacing = ((row["spacing_z"],) if row["ndim"] == 3 else ()) + (row["spacing_y"], row["spacing_x"])
        return Movie(
            row["id"],
            row["name"],
            row["ndim"],
            row["n_frames"],
            tuple(shape),
            tuple(spacing),
            row["uri"],
            row["zarr_uri"],
            row["current_solution_id"],
        )

    def movies(self) -> list[Movie]:
        with self.engine.connect() as c:
            ids = c.execute(sa.select(schema.movie.c.id).order_by(schema.movie.c.id)).scalars().all()
        return [self.movie(i) for i in ids]

    # --- solutions --------------------------------------------------------------------------
    def solution_id(self, movie: Movie, solution: str | int | None = None) -> int:
        """Resolve a solution by id or name; default: the movie's current solution."""
        s = schema.solution.c
        with self.engine.connect() as c:
            if solution is None:
                if movie.current_solution_id is None:
                    raise NotFoundError(
                        f"movie {movie.name!r} has no solution yet: import ground truth or run `trackdb solve`"
                    )
                return movie.current_solution_id
            if str(solution).isdigit():
                sid = c.execute(sa.select(s.id).where(s.id == int(solution), s.movie_id == movie.id)).scalar()
            else:
                sid = c.execute(
                    sa.select(s.id).where(s.name == str(solution), s.movie_id == movie.id).order_by(s.id.desc())
                ).scalar()
        if sid is None:
            raise NotFoundError(f"no solution {solution!r} for movie {movie.name!r}")
        return int(sid)

    def set_current_solution(self, conn: Connection, movie_id: int, solution_id: int) -> None:
        conn.execute(schema.movie.update().where(schema.movie.c.id == movie_id).values(current_solution_id=solution_id))

    # --- connections ------------------------------------------------------------------------
    @contextmanager
    def connection(self, conn: Connection | None = None) -> Iterator[Connection]:
        """The caller's connection, else a new one for the duration of the block."""
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as c:
                yield c

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.engine.begin() as c:
            yield c

    def set_zarr_uri(self, movie_id: int, uri: str) -> None:
        with self.engine.begin() as c:
            c.execute(schema.movie.update().where(schema.movie.c.id == movie_id).values(zarr_uri=uri))

    def movie_time_meta(self, movie_id: int) -> tuple[float | None, dict[str, Any] | None]:
        """(time interval between frames, free metadata) of a movie."""
        m = schema.movie.c
        with self.engine.connect() as c:
            row = c.execute(sa.select(m.time_interval, m.meta).where(m.id == movie_id)).one()
        return row.time_interval, row.meta


__all__ = ["Connection", "Movie", "Store", "code_version", "now"]
