"""Per-movie locks: short write transactions that see the latest current solution, and a long
lock that serialises re-solves of one movie.

* :func:`movie_transaction` is one transaction that holds the movie's row for writing from its
  first statement (PostgreSQL ``SELECT … FOR UPDATE``; SQLite ``BEGIN IMMEDIATE``, the database's
  write lock), so a check of ``movie.current_solution_id`` and the write that depends on it are
  atomic: an edit naming the solution it was made on, or a re-solve replacing the solution it
  started from.
* :func:`movie_lock` is held for a whole re-solve, from reading the current solution to writing
  the next one, without blocking edits or readers meanwhile: a PostgreSQL session advisory lock
  keyed by schema and movie, or on SQLite an exclusive ``flock`` on a file beside the database
  (``<db>.movie-<id>.lock``; SQLite databases are local files by definition). Both are released
  by the operating system or server when the process dies, so a crashed re-solve never leaves a
  stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.errors import NotFoundError
from trackdb.store import schema
from trackdb.store.core import Store


@contextmanager
def movie_transaction(store: Store, movie_id: int) -> Iterator[tuple[Connection, int | None]]:
    """A write transaction holding the movie's row; yields (connection, current solution id)."""
    m = schema.movie.c
    with store.engine.connect() as c:
        if store.is_postgres:
            query = sa.select(m.current_solution_id).where(m.id == movie_id).with_for_update()
        else:
            c.exec_driver_sql("BEGIN IMMEDIATE")
            query = sa.select(m.current_solution_id).where(m.id == movie_id)
        try:
            row = c.execute(query).first()
            if row is None:
                raise NotFoundError(f"no movie {movie_id} in this database")
            yield c, None if row[0] is None else int(row[0])
        except BaseException:
            c.rollback()
            raise
        c.commit()


def _advisory(function: str, movie_id: int) -> sa.TextClause:
    """pg_advisory_(un)lock on (this schema's re-solve key, movie): schemas of one database
    (the test suite's) never share a lock."""
    return sa.text(f"SELECT {function}(hashtext(current_schema() || :key), :m)").bindparams(
        key=":trackdb-resolve", m=int(movie_id)
    )


@contextmanager
def movie_lock(store: Store, movie_id: int) -> Iterator[None]:
    """Hold the movie's re-solve lock for the block (waits while another process holds it)."""
    if store.is_postgres:
        with store.engine.connect() as c:
            c.execute(_advisory("pg_advisory_lock", movie_id))
            c.commit()
            try:
                yield
            finally:
                c.execute(_advisory("pg_advisory_unlock", movie_id))
                c.commit()
        return
    path = store.sqlite_path
    if path is None:  # in memory: one process, nothing to serialise against
        yield
        return
    fd = os.open(f"{path}.movie-{int(movie_id)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
