"""Bulk writers: plain rows or numpy columns into one table, the fastest way each engine allows.

SQLite gets ``executemany`` binding only the columns that are not NULL for the batch (constants
inlined as literals); PostgreSQL gets a binary ``COPY`` payload assembled with numpy, one check
of constant foreign keys per batch where the role may skip the per-row triggers, and ``ANALYZE``
when a table has doubled (the planner otherwise assumes tiny tables right after a bulk load).
Measured figures: ``benchmarks/ingest.py`` and the README.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQLITE_CHUNK_ROWS = 20_000

_PG_TYPES = {
    sa.BigInteger: "int8",
    sa.Integer: "int4",
    sa.Float: "float8",  # subclass first
    sa.LargeBinary: "bytea",
    sa.String: "text",
    sa.Text: "text",
}


def driver_connection(conn: Connection) -> Any:
    """The DBAPI connection under a SQLAlchemy connection (sqlite3 or psycopg), for bulk paths."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("connection is closed")
    return raw


def _pg_type(column: sa.Column) -> str:
    if column.table.name in ("node", "edge") and column.name == "id":
        return "int8"
    for py, name in _PG_TYPES.items():
        if isinstance(column.type, py):
            return name
    raise TypeError(f"no COPY type for {column}")


def bulk_insert(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert plain tuples fast: ``executemany`` on SQLite, binary ``COPY`` on PostgreSQL."""
    raw = driver_connection(conn)
    count = 0
    if conn.dialect.name == "postgresql":
        types = [_pg_type(table.c[c]) for c in columns]
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
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


# ---------------------------------------------------------------------------------------------
# Column-wise bulk path (nodes, edges, solutions). A batch is a mapping column -> values, where
# values is one of: ``None`` (all NULL: the column is left out of the statement, so it gets
# its NULL default without being bound per row), a scalar (the same value in every row), a 1-D
# numpy array, ``(array, missing)`` (NULL where ``missing``), a list of ``bytes``/``str``/``None``
# or a 2-D ``uint8`` array (a fixed-width blob per row, e.g. embeddings).

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_NULL = b"\xff\xff\xff\xff"
_PG_NUMERIC = {"int8": ">i8", "int4": ">i4", "float8": ">f8"}
_INT_LIMITS = {"int8": (-(2**63), 2**63 - 1), "int4": (-(2**31), 2**31 - 1)}
PG_COPY_CHUNK_ROWS = 25_000
PG_ANALYZE_MIN_ROWS = 10_000


def _numeric(values: np.ndarray, pgtype: str, name: str) -> np.ndarray:
    """``values`` as the big-endian array a binary COPY field holds; refuses what would not fit."""
    a = np.asarray(values)
    if pgtype == "float8":
        return a.astype(">f8")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            raise TypeError(f"column {name}: non-integer values for an integer column")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"column {name}: cannot write {a.dtype} values")
    lo, hi = _INT_LIMITS[pgtype]
    if a.size and (a.min() < lo or a.max() > hi):
        raise OverflowError(f"column {name}: value out of range for {pgtype}")
    return a.astype(_PG_NUMERIC[pgtype])


def _scalar_bytes(value: object, pgtype: str, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = _numeric(np.array([value]), pgtype, name).tobytes()
    return len(data).to_bytes(4, "big", signed=True) + data


def _blob_lengths(values: Sequence[object]) -> tuple[np.ndarray, list[bytes]]:
    """Field lengths (−1 = NULL) and data of a variable-width column (``str`` as UTF-8)."""
    if all(type(v) is bytes for v in values):
        data = values if isinstance(values, list) else list(values)
    else:
        data = [v.encode() if isinstance(v, str) else (b"" if v is None else bytes(v)) for v in values]  # type: ignore[call-overload]  # blobs arrive as bytes-like objects
    lens = np.fromiter(map(len, data), np.int64, len(data))
    for i, v in enumerate(values):
        if v is None:
            lens[i] = -1
    return lens, data  # type: ignore[return-value]


def _pg_payload(table: sa.Table, cols: dict[str, object], n: int, start: int, stop: int) -> tuple[list[str], bytes]:
    """Column order and binary COPY rows ``start:stop`` (no signature, no trailer)."""
    m = stop - start
    fixed: list[tuple[str, np.dtype, object]] = []  # (column, field dtype, values)
    var: list[tuple[str, list[bytes] | None, list[bytes]]] = []  # (column, prefixes, data)
    first_len: np.ndarray | None = None  # lengths of the variable field right after the block
    for name, v in cols.items():
        if v is None:
            continue
        pgtype = _pg_type(table.c[name])
        if isinstance(v, tuple):  # (values, missing) with some NULLs: width differs per row
            values, missing = v
            enc = _numeric(np.asarray(values)[start:stop], pgtype, name)
            width = enc.dtype.itemsize
            rec = np.empty(m, [("n", ">i4"), ("v", enc.dtype)])
            rec["n"], rec["v"] = width, enc
            raw = rec.tobytes()
            step = 4 + width
            cells = [raw[i : i + step] for i in range(0, m * step, step)]
            for i in np.flatnonzero(np.asarray(missing)[start:stop]).tolist():
                cells[i] = _PG_NULL
            var.append((name, None, cells))
        elif isinstance(v, np.ndarray) and v.ndim == 2:  # fixed-width blob per row
            fixed.append((name, np.dtype(">i4"), v.shape[1]))
            fixed.append((name + "\0data", np.dtype(("u1", (v.shape[1],))), v[start:stop]))
        elif isinstance(v, np.ndarray):
            enc = _numeric(v[start:stop], pgtype, name)
            fixed.append((name, np.dtype(">i4"), enc.dtype.itemsize))
            fixed.append((name + "\0data", enc.dtype, enc))
        elif isinstance(v, list):
            lens, data = _blob_lengths(v[start:stop])
            if first_len is None:  # the first variable field: its length closes the fixed block
                first_len = lens
                var.insert(0, (name, None, data))
            else:
                raw_lens = lens.astype(">i4").tobytes()
                var.append((name, [raw_lens[i : i + 4] for i in range(0, 4 * m, 4)], data))
        else:  # scalar
            b = _scalar_bytes(v, pgtype, name)
            fixed.append((name + "\0const", np.dtype(("u1", (len(b),))), np.frombuffer(b, np.uint8)))
    names = [f for f, _, _ in fixed if "\0" not in f or f.endswith("\0const")]
    if first_len is not None:
        fixed.append(("\0len", np.dtype(">i4"), first_len))
    order = [f.split("\0")[0] for f in names] + [name for name, _, _ in var]
    dtype = np.dtype([("nfields", ">i2")] + [(f, dt) for f, dt, _ in fixed])
    rec = np.empty(m, dtype)
    rec["nfields"] = len(order)
    for f, _, values in fixed:
        rec[f] = values
    raw = rec.tobytes()
    if not var:
        return order, raw
    w = dtype.itemsize
    pieces: list[list[bytes]] = [[raw[i : i + w] for i in range(0, m * w, w)]]
    for _, prefixes, data in var:
        if prefixes is not None:
            pieces.append(prefixes)
        pieces.append(data)
    k = len(pieces)
    parts: list[bytes] = [b""] * (m * k)
    for j, p in enumerate(pieces):
        parts[j::k] = p
    return order, b"".join(parts)


def _pg_check_constant_fks(cur: Any, table: sa.Table, cols: dict[str, object]) -> bool:
    """Check a batch's foreign keys once instead of once per row, where that is equivalent.

    PostgreSQL checks each foreign key with a trigger per inserted row (``SELECT … FOR KEY
    SHARE`` on the parent): more than half the time of a COPY into ``node`` or ``edge``. When
    every foreign key column of the batch holds one constant (movie, run, solution id) the same
    check, with the same lock, done once is equivalent; the per-row triggers are then skipped
    for this COPY only (``SET LOCAL session_replication_role = replica``, reset right after).
    This is done only where the table has no triggers besides the foreign-key ones and the
    role may set that parameter (superuser or ``GRANT SET ON PARAMETER``); otherwise the
    triggers run as usual. Returns whether the triggers were switched off.
    """
    fks = [fk for fk in table.foreign_keys]
    if not fks or any(
        fk.parent.name not in cols
        or isinstance(cols[fk.parent.name], (np.ndarray, list, tuple))
        or cols[fk.parent.name] is None
        for fk in fks
    ):
        return False
    cur.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal", (table.name,))
    if cur.fetchone()[0]:
        return False
    import psycopg.errors

    cur.execute("SAVEPOINT trackdb_fk")
    try:
        cur.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT trackdb_fk")
        return False
    finally:
        cur.execute("RELEASE SAVEPOINT trackdb_fk")
    for fk in fks:
        value = int(cols[fk.parent.name])  # type: ignore[call-overload]
        ref = fk.column
        cur.execute(f"SELECT 1 FROM ONLY {ref.table.name} WHERE {ref.name} = %s FOR KEY SHARE", (value,))
        if cur.fetchone() is None:
            raise psycopg.errors.ForeignKeyViolation(
                f'insert into "{table.name}" violates foreign key constraint: '
                f'{fk.parent.name}={value} is not present in table "{ref.table.name}"'
            )
    return True


def _pg_analyze(conn: Connection, table: sa.Table, rows: int) -> None:
    """Refresh planner statistics after a bulk load, in the load's own transaction.

    Right after a large COPY the planner has no statistics for the new rows and picked nested
    loops that took 15+ minutes on a 1M-node export. ANALYZE samples a fixed number of rows
    (0.1–0.4 s on ``node``), so it runs after a batch of ≥ ``PG_ANALYZE_MIN_ROWS`` rows when the
    table has no statistics yet or has at least doubled since they were taken (relation size
    against ``pg_class.relpages``): a store growing batch by batch is analysed O(log n) times
    and its statistics always describe at least half of it. ``SKIP_LOCKED``: a concurrent
    writer that is analysing the same table already holds its lock, so this one does not wait.
    """
    if rows < PG_ANALYZE_MIN_ROWS:
        return
    pages, now = conn.exec_driver_sql(
        "SELECT relpages, pg_relation_size(oid) / current_setting('block_size')::int "
        "FROM pg_class WHERE oid = to_regclass(%(t)s)",
        {"t": table.name},
    ).one()
    if pages > 0 and now < 2 * pages:
        return
    conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {table.name}")


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
    """Insert ``n`` rows given column-wise (see above); returns ``n``.

    SQLite: one ``executemany`` over tuples of only the columns that carry values (constants
    inlined as literals, all-NULL columns left out). PostgreSQL: binary ``COPY`` whose payload is
    assembled with numpy (fixed-width fields as one structured array per chunk) and written in
    chunks; large batches refresh the planner's statistics (``_pg_analyze``).
    """
    if n == 0:
        return 0
    raw = driver_connection(conn)
    if conn.dialect.name == "postgresql":
        order, _ = _pg_payload(table, cols, n, 0, 0)
        with raw.cursor() as cur:
            checked = _pg_check_constant_fks(cur, table, cols)
            with cur.copy(f"COPY {table.name} ({', '.join(order)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_PG_SIGNATURE)
                for start in range(0, n, PG_COPY_CHUNK_ROWS):
                    copy.write(_pg_payload(table, cols, n, start, min(n, start + PG_COPY_CHUNK_ROWS))[1])
                copy.write(_PG_TRAILER)
            if checked:
                cur.execute("SET LOCAL session_replication_role = origin")
        _pg_analyze(conn, table, n)
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
