"""Bulk writers: plain rows or numpy columns into one table, the fastest way each engine allows.

Column batches (``bulk_insert_columns``, the write path of nodes, edges and solutions) become an
Arrow table of the table's exact types on both engines and are written in the caller's
transaction: binary ``COPY`` on PostgreSQL, ADBC into a staging file and one ``INSERT … SELECT``
on SQLite (``trackdb.store.arrow_ingest``, which says why and how each stays atomic). Plain
tuples (``bulk_insert``, small tables) take ``executemany`` on SQLite. Measured figures:
``benchmarks/ingest.py`` and the README.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQLITE_CHUNK_ROWS = 20_000


def driver_connection(conn: Connection) -> Any:
    """The DBAPI connection under a SQLAlchemy connection (sqlite3 or psycopg), for bulk paths."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("connection is closed")
    return raw


def refresh_statistics(conn: Connection, table: sa.Table) -> None:
    """PostgreSQL: refresh ``table``'s planner statistics when it has none or has doubled since
    (``arrow_ingest.analyze_if_grown``; bulk writes do this themselves), for tables written row
    by row that the solution views join. SQLite: nothing (its planner reads the indexes)."""
    if conn.dialect.name != "postgresql":
        return
    from trackdb.store.arrow_ingest import analyze_if_grown  # pyarrow, pgpq: PostgreSQL only

    with driver_connection(conn).cursor() as cur:
        analyze_if_grown(cur, table)


def bulk_insert(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert plain tuples fast: ``executemany`` on SQLite, binary ``COPY`` on PostgreSQL."""
    raw = driver_connection(conn)
    if conn.dialect.name == "postgresql":
        from trackdb.store.arrow_ingest import copy_columns

        values = list(zip(*rows))
        if not values:
            return 0
        copy_columns(raw, table, {c: list(v) for c, v in zip(columns, values)}, len(values[0]))
        return len(values[0])
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    count = 0
    cur = raw.cursor()
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= SQLITE_CHUNK_ROWS:
            cur.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        cur.executemany(sql, batch)
        count += len(batch)
    cur.close()
    return count


def _nullable(values: np.ndarray, missing: np.ndarray) -> list:
    """``values`` as a list with None where ``missing`` (rows for :func:`bulk_insert`)."""
    out = values.tolist()
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def bulk_insert_columns(conn: Connection, table: sa.Table, cols: dict[str, object], n: int) -> int:
    """Insert ``n`` rows given column-wise (the vocabulary of ``trackdb.store.arrow_ingest``);
    returns ``n``.

    Both engines get the same Arrow table of the table's exact types (safe casts: out-of-range
    or fractional values for integer columns are refused alike). PostgreSQL: binary ``COPY``,
    checking constant foreign keys once and refreshing the planner's statistics when the table
    has grown. SQLite: ADBC into a staging file copied by one ``INSERT … SELECT`` (small batches:
    ``executemany``). Either way inside the caller's transaction.
    """
    if n == 0:
        return 0
    raw = driver_connection(conn)
    from trackdb.store import arrow_ingest  # pyarrow (and ADBC or pgpq): only where a batch is written

    if conn.dialect.name == "postgresql":
        arrow_ingest.copy_columns(raw, table, cols, n)
        return n
    _detach_on_checkin(conn.engine)
    arrow_ingest.sqlite_insert(raw, table, arrow_ingest.arrow_table(table, cols, n))
    return n


def _detach_stages(dbapi_connection: Any, _record: Any) -> None:
    """Pool check-in (the transaction has ended): drop the connection's attached staging files."""
    if dbapi_connection is None:
        return
    from trackdb.store.arrow_ingest import detach_stages

    try:
        detach_stages(dbapi_connection)
    except sqlite3.Error:
        pass  # a closed or broken connection: its attachments went with it


def _detach_on_checkin(engine: sa.Engine) -> None:
    """Free staging files when a connection goes back to the pool, not only at its next batch."""
    if not sa.event.contains(engine, "checkin", _detach_stages):
        sa.event.listen(engine, "checkin", _detach_stages)
