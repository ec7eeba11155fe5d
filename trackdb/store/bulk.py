"""Bulk writers: plain rows or numpy columns into one table, the fastest way each engine allows.

PostgreSQL gets a binary ``COPY`` encoded from Arrow (``trackdb.store.arrow_ingest``). SQLite
gets Python's ``sqlite3`` ``executemany`` binding only the columns that are not NULL for the
batch, with per-batch constants inlined as literals. ADBC's SQLite driver ingests Arrow faster
(213k against 148k nodes/s in ``benchmarks/ingest.py``), but its wheel links its own copy of
SQLite: two copies in one process do not see each other's file locks, so a second writer is
granted the lock while the first holds it, a committed row is lost, and closing one copy's
connection deletes the WAL under the other (``benchmarks/adbc_sqlite_locks.py``). Every other
access to a store goes through ``sqlite3``, so SQLite stays on it.

Column batches (``bulk_insert_columns``) use the vocabulary in ``trackdb.store.arrow_ingest``'s
docstring. Measured figures: ``benchmarks/ingest.py`` and the README.
"""

from __future__ import annotations

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
    """``values`` as a list with None where ``missing``."""
    out = values.tolist()
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def _sqlite_literal(v: object) -> str | None:
    """An inline SQL literal for a per-batch constant (saves binding it in every row)."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, str) and "\0" not in v:
        return "'" + v.replace("'", "''") + "'"
    return None


def bulk_insert_columns(conn: Connection, table: sa.Table, cols: dict[str, object], n: int) -> int:
    """Insert ``n`` rows given column-wise; returns ``n``.

    SQLite: one ``executemany`` over tuples of only the columns that carry values (constants
    inlined as literals, all-NULL columns left out). PostgreSQL: binary ``COPY`` from an Arrow
    table of the table's exact types, checking constant foreign keys once and refreshing the
    planner's statistics when the table has grown (``trackdb.store.arrow_ingest.copy_columns``).
    """
    if n == 0:
        return 0
    raw = driver_connection(conn)
    if conn.dialect.name == "postgresql":
        from trackdb.store.arrow_ingest import copy_columns

        copy_columns(raw, table, cols, n)
        return n
    names: list[str] = []
    marks: list[str] = []
    lists: list[list] = []
    for name, v in cols.items():
        if v is None:
            continue
        if isinstance(v, tuple):
            values, missing = v
            lists.append(_nullable(np.asarray(values), np.asarray(missing)))
        elif isinstance(v, np.ndarray) and v.ndim == 2:
            b = np.ascontiguousarray(v, np.uint8).tobytes()
            w = v.shape[1]
            lists.append([b[i : i + w] for i in range(0, n * w, w)] if w else [b""] * n)
        elif isinstance(v, np.ndarray):
            lists.append(v.tolist())
        elif isinstance(v, list):
            lists.append(v)
        else:
            lit = _sqlite_literal(v)
            names.append(name)
            if lit is not None:
                marks.append(lit)
            else:
                marks.append("?")
                lists.append([v] * n)
            continue
        names.append(name)
        marks.append("?")
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(marks)})"
    cur = raw.cursor()
    try:
        if lists:
            cur.executemany(sql, zip(*lists))
        else:
            cur.executemany(sql, ((),) * n)
    finally:
        cur.close()
    return n
