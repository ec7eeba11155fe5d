"""Bulk load from Arrow: a column batch as an Arrow table of the table's exact types, written in
the caller's transaction by each engine's fastest path.

**PostgreSQL**: binary ``COPY``. pgpq encodes the Arrow buffers into COPY's binary format (in
Rust) and psycopg streams it on the caller's own connection, so a batch stays atomic with
everything else that transaction writes and sees what it wrote before: the movie and run an
import creates, the nodes its links and solution then reference. ADBC's PostgreSQL driver does the
same COPY from Arrow, but only on a connection of its own, whose batch could neither see nor roll
back with the caller's transaction; it was no faster either (README, "Store").

**SQLite** (:func:`sqlite_insert`): ADBC's SQLite driver binds and steps the Arrow columns in C
into a private staging file (no indexes, no journal, in ``/dev/shm`` where it has room); the
caller's ``sqlite3`` connection then ATTACHes that file and copies it with one ``INSERT … SELECT``
in its own transaction, so the batch commits or rolls back with that transaction and the store's
locks, foreign keys, indexes and WAL are those of ``sqlite3`` alone. ADBC never opens the store:
its wheel links its own SQLite library, whose POSIX locks a ``sqlite3`` connection in the same
process does not see (``benchmarks/adbc_sqlite_locks.py``), so each file is only ever opened by
one of the two libraries, and the staging file by one at a time (ADBC has closed it before
``sqlite3`` attaches it). The staging file is unlinked as soon as it is attached (the open file
stays readable) and the attachment dropped when the transaction has ended (the connection's
return to the pool, or its next batch); a file left by a process killed before attaching it is
deleted by the next batch written there. Per-row
Python binding was most of a node batch's time (``benchmarks/ingest.py``: 147-149k against this
path's figures in the README). Batches under :data:`STAGE_MIN_ROWS` rows, a connection without a
free attachment slot, or a Python without ``adbc-driver-sqlite`` take ``executemany`` over the
same Arrow columns.

Binary COPY converts nothing: every field must be its column's exact type (an int64 sent to an
``integer`` column is refused, one sent to ``double precision`` reads as a tiny float). Columns
are therefore cast to the Arrow type of their SQL type with pyarrow's safe casts, which refuse
fractional and NaN values for integer columns; integers out of the column's range raise
``OverflowError`` (never a silent wrap-around). SQLite gets the same columns, so both engines
accept and refuse the same batches.

Batch vocabulary (``trackdb.store.bulk.bulk_insert_columns``): a mapping column -> ``None`` (all
NULL: the column is left out), a scalar (the same value in every row), a 1-D numpy array,
``(array, missing)`` (NULL where ``missing``), a list of ``bytes``/``str``/``None`` (or numbers),
or a 2-D ``uint8`` array (a fixed-width blob per row, e.g. embeddings).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

if TYPE_CHECKING:
    import psycopg

# subclass before base class: BigInteger is an Integer
_ARROW_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], pa.DataType], ...] = (
    (sa.BigInteger, pa.int64()),
    (sa.Integer, pa.int32()),
    (sa.Float, pa.float64()),
    (sa.LargeBinary, pa.binary()),
    (sa.String, pa.string()),
    (sa.Text, pa.string()),
)
_NUMPY_INTS: dict[pa.DataType, np.dtype[Any]] = {pa.int64(): np.dtype(np.int64), pa.int32(): np.dtype(np.int32)}
_NUMPY_TYPES: dict[pa.DataType, np.dtype[Any]] = {**_NUMPY_INTS, pa.float64(): np.dtype(np.float64)}

# Rows per Arrow record batch encoded and sent at a time: the server inserts one chunk while
# the client encodes the next, and the client never holds a whole batch's payload at once.
COPY_CHUNK_ROWS = 25_000


def arrow_type(column: sa.Column[Any]) -> pa.DataType:
    """The Arrow type whose COPY encoding is ``column``'s PostgreSQL type."""
    for sa_type, pa_type in _ARROW_TYPES:
        if isinstance(column.type, sa_type):
            return pa_type
    raise TypeError(f"no Arrow type for {column}")


def _check_range(values: np.ndarray, typ: pa.DataType, name: str) -> np.ndarray:
    info = np.iinfo(_NUMPY_INTS[typ])
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise OverflowError(f"column {name}: value out of range for {typ}")
    return values.astype(_NUMPY_INTS[typ], copy=False)


# Arrays are built from their buffers, never with ``pa.array``/``pa.scalar``: those look for
# pandas objects and import pandas the first time (~0.3 CPU-s for every writing command).
def _validity(missing: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    """(Arrow validity bitmap, NULL count) of the ``missing`` flags (no bitmap without NULLs)."""
    nulls = 0 if missing is None else int(np.count_nonzero(missing))
    if not nulls or missing is None:
        return None, 0
    return pa.py_buffer(np.packbits(~missing, bitorder="little")), nulls


def _from_numpy(values: np.ndarray, typ: pa.DataType, missing: np.ndarray | None) -> pa.Array:
    """``values`` (already of ``typ``'s numpy dtype) as an Arrow array, NULL where ``missing``."""
    data = np.ascontiguousarray(values, _NUMPY_TYPES[typ])
    validity, nulls = _validity(missing)
    return pa.Array.from_buffers(typ, len(data), [validity, pa.py_buffer(data)], null_count=nulls)


def _numbers(values: object, typ: pa.DataType, name: str, missing: np.ndarray | None = None) -> pa.Array:
    a = np.asarray(values)
    if a.ndim != 1:
        raise TypeError(f"column {name}: {a.ndim}-D values, a column takes one value per row")
    if missing is not None:
        if missing.shape != a.shape:
            raise ValueError(f"column {name}: {len(missing)} missing flags for {len(a)} values")
        a = np.where(missing, np.zeros((), a.dtype), a)  # the value under a NULL is never checked
    if pa.types.is_integer(typ) and a.dtype.kind in "iub":
        return _from_numpy(_check_range(a, typ, name), typ, missing)
    if pa.types.is_integer(typ) and a.dtype.kind == "f":
        floats = _from_numpy(a.astype(np.float64, copy=False), pa.float64(), missing)
        return floats.cast(typ)  # safe cast: fractional or NaN values raise
    if pa.types.is_floating(typ) and a.dtype.kind in "iubf":
        return _from_numpy(a.astype(np.float64, copy=False), typ, missing)
    raise TypeError(f"column {name}: cannot write {a.dtype} values to a {typ} column")


def _binary(items: list[bytes], typ: pa.DataType, missing: np.ndarray | None, name: str) -> pa.Array:
    """A binary or string array of ``items`` (``b""`` under a NULL) from offsets and one buffer."""
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, items), np.int64, len(items)), out=offsets[1:])
    return _from_offsets(offsets, b"".join(items), typ, missing, name)


def _from_offsets(
    offsets: np.ndarray, data: bytes, typ: pa.DataType, missing: np.ndarray | None, name: str
) -> pa.Array:
    """A binary or string array of ``data`` cut at the int64 ``offsets`` (one more than rows)."""
    if offsets[-1] > np.iinfo(np.int32).max:
        raise OverflowError(f"column {name}: {offsets[-1]} bytes in one batch (at most 2 GiB)")
    validity, nulls = _validity(missing)
    buffers = [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    array = pa.Array.from_buffers(typ, len(offsets) - 1, buffers, null_count=nulls)
    if pa.types.is_string(typ):
        array.validate(full=True)  # UTF-8
    return array


def _as_bytes(value: object, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"column {name}: cannot write {type(value).__name__} values to a text or blob column")


def _list_column(values: list[Any], typ: pa.DataType, name: str) -> pa.Array:
    """A list of ``bytes``/``str``/``None`` (or numbers/``None``) as ``typ``."""
    missing = np.fromiter((v is None for v in values), bool, len(values)) if None in values else None
    if pa.types.is_binary(typ) or pa.types.is_string(typ):
        items = values if missing is None else [b"" if v is None else v for v in values]
        if not all(type(v) is bytes for v in items):
            items = [_as_bytes(v, name) for v in items]
        return _binary(items, typ, missing, name)
    if missing is not None:
        values = [0 if v is None else v for v in values]
    a = np.asarray(values)
    if a.dtype.kind == "O" and all(isinstance(v, int) for v in values):
        raise OverflowError(f"column {name}: value out of range for {typ}")
    return _numbers(a, typ, name, missing)


def _repeat(scalar: object, typ: pa.DataType, n: int, name: str) -> pa.Array:
    """The same value in ``n`` rows."""
    if pa.types.is_binary(typ) or pa.types.is_string(typ):
        one = _as_bytes(scalar, name)
        offsets = np.arange(n + 1, dtype=np.int64) * len(one)
        if offsets[-1] > np.iinfo(np.int32).max:  # before building a payload that large
            raise OverflowError(f"column {name}: {offsets[-1]} bytes in one batch (at most 2 GiB)")
        return _from_offsets(offsets, one * n, typ, None, name)
    if isinstance(scalar, (bool, int)) and pa.types.is_integer(typ):
        _check_range(np.array([scalar]), typ, name)
        return _from_numpy(np.full(n, scalar, _NUMPY_INTS[typ]), typ, None)
    if isinstance(scalar, (bool, int, float)):
        return _numbers(np.full(n, scalar, np.float64), typ, name)
    raise TypeError(f"column {name}: cannot write {type(scalar).__name__} to a {typ} column")


def arrow_column(value: object, typ: pa.DataType, n: int, name: str) -> pa.Array:
    """One column of a batch (see the module docstring) as ``n`` values of Arrow type ``typ``."""
    try:
        if isinstance(value, tuple):
            values, missing = value
            return _numbers(values, typ, name, np.asarray(missing, bool))
        if isinstance(value, np.ndarray) and value.ndim == 2:  # a fixed-width blob per row, no copy
            if typ != pa.binary():
                raise TypeError(f"column {name}: a 2-D array is a blob per row, the column is {typ}")
            raw = np.ascontiguousarray(value, np.uint8)
            return pa.FixedSizeBinaryArray.from_buffers(pa.binary(raw.shape[1]), n, [None, pa.py_buffer(raw)])
        if isinstance(value, np.ndarray):
            return _numbers(value, typ, name)
        if isinstance(value, list):
            return _list_column(value, typ, name)
        scalar = value.item() if isinstance(value, np.generic) else value
        return _repeat(scalar, typ, n, name)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TypeError(f"column {name}: {exc}") from exc


def arrow_table(table: sa.Table, cols: dict[str, object], n: int) -> pa.Table:
    """``n`` rows given column-wise as an Arrow table of ``table``'s exact types; all-NULL columns
    (``None``) are left out, so the table's NULL default fills them without a value per row."""
    names = [name for name, v in cols.items() if v is not None]
    arrays = [arrow_column(cols[name], arrow_type(table.c[name]), n, name) for name in names]
    for name, array in zip(names, arrays):
        if len(array) != n:
            raise ValueError(f"column {name}: {len(array)} values for {n} rows")
    return pa.Table.from_arrays(arrays, names=names)


def _check_constant_fks(cur: psycopg.Cursor[Any], table: sa.Table, cols: dict[str, object]) -> bool:
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
    import psycopg

    fks = list(table.foreign_keys)
    if not fks or any(isinstance(cols.get(fk.parent.name), (np.ndarray, list, tuple, type(None))) for fk in fks):
        return False
    cur.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal", (table.name,))
    row = cur.fetchone()
    if row is None or row[0]:
        return False
    cur.execute("SAVEPOINT trackdb_fk")
    try:
        cur.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT trackdb_fk")
        return False
    finally:
        cur.execute("RELEASE SAVEPOINT trackdb_fk")
    for fk in fks:
        value = int(cols[fk.parent.name])  # type: ignore[call-overload]  # a constant (checked above)
        ref = fk.column
        cur.execute(f"SELECT 1 FROM ONLY {ref.table.name} WHERE {ref.name} = %s FOR KEY SHARE", (value,))
        if cur.fetchone() is None:
            raise psycopg.errors.ForeignKeyViolation(
                f'insert into "{table.name}" violates foreign key constraint: '
                f'{fk.parent.name}={value} is not present in table "{ref.table.name}"'
            )
    return True


def analyze_if_grown(cur: psycopg.Cursor[Any], table: sa.Table) -> None:
    """Refresh ``table``'s planner statistics, in the writer's own transaction, when it has
    none yet or has at least doubled since they were taken (relation size against
    ``pg_class.relpages``).

    Without statistics the planner misjudges the solution views' joins (a sequential scan of
    every solution's rows for one movie's) and, right after a large COPY, picked nested loops
    that took 15+ minutes on a 1M-node export; autovacuum may be off or behind. ANALYZE samples
    a fixed number of rows (0.1–0.4 s on ``node``, milliseconds on a small table), so a table
    growing batch by batch, in batches of any size, is analysed O(log n) times and its
    statistics always describe at least half of it. ``SKIP_LOCKED``: a concurrent writer that
    is analysing the same table already holds its lock, so this one does not wait.
    """
    cur.execute(
        "SELECT relpages, pg_relation_size(oid) / current_setting('block_size')::int "
        "FROM pg_class WHERE oid = to_regclass(%s)",
        (table.name,),
    )
    row = cur.fetchone()
    if row is None or row[1] < 1 or (row[0] > 0 and row[1] < 2 * row[0]):
        return
    cur.execute(f"ANALYZE (SKIP_LOCKED) {table.name}")


def copy_columns(raw: psycopg.Connection[Any], table: sa.Table, cols: dict[str, object], n: int) -> None:
    """Write ``n`` rows given column-wise into ``table`` with binary COPY on ``raw`` (the
    caller's psycopg connection, inside its transaction)."""
    import pgpq  # PostgreSQL only: SQLite stores never load it

    batch = arrow_table(table, cols, n)
    encoder = pgpq.ArrowToPostgresBinaryEncoder(batch.schema)
    with raw.cursor() as cur:
        checked = _check_constant_fks(cur, table, cols)
        with cur.copy(f"COPY {table.name} ({', '.join(batch.column_names)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encoder.write_header())
            for chunk in batch.to_batches(max_chunksize=COPY_CHUNK_ROWS):
                copy.write(encoder.write_batch(chunk))
            copy.write(encoder.finish())
        if checked:
            cur.execute("SET LOCAL session_replication_role = origin")
        analyze_if_grown(cur, table)


# SQLite: below this many rows a batch is bound by ``executemany`` (the staging file costs ~1 ms
# to create and attach; 1,000 narrow rows take ~5 ms either way).
STAGE_MIN_ROWS = 1_000
STAGE_SCHEMA = "trackdb_stage_"  # attached staging files are named trackdb_stage_0, _1, ...
STAGE_TABLE = "batch"
STAGE_FILE = "trackdb-stage-"  # then the writer's pid: trackdb-stage-<pid>-<random>.sqlite
_STAGE_DIRS = ("/dev/shm",)  # memory-backed where there is room; else the temporary folder


def _stage_dir(nbytes: int) -> str:
    """A folder with room for a staging file of a batch of ``nbytes`` (Arrow size, with margin)."""
    for folder in _STAGE_DIRS:
        try:
            if os.access(folder, os.W_OK) and shutil.disk_usage(folder).free > 2 * nbytes + 2**26:
                return folder
        except OSError:
            continue
    return tempfile.gettempdir()


def _sweep_stages(folder: str) -> None:
    """Delete staging files left by processes that died between writing and attaching one (a
    SIGKILLed worker); a file's name carries the pid of its writer."""
    for name in os.listdir(folder):
        if not (name.startswith(STAGE_FILE) and name.endswith(".sqlite")):
            continue
        try:
            os.kill(int(name[len(STAGE_FILE) :].split("-", 1)[0]), 0)
        except ProcessLookupError:
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
        except (ValueError, OSError):  # not ours, or a live process of another user
            continue


def _write_stage(batch: pa.Table) -> str:
    """``batch`` as table ``batch`` of a new SQLite file written by ADBC (closed again on return).

    ADBC's low-level API, not its DB-API module: that one imports ``pyarrow.dataset``, and with
    it pandas (~0.3 CPU-s), to accept inputs a batch never is."""
    import adbc_driver_manager
    import adbc_driver_sqlite

    folder = _stage_dir(batch.nbytes)
    _sweep_stages(folder)
    fd, path = tempfile.mkstemp(prefix=f"{STAGE_FILE}{os.getpid()}-", suffix=".sqlite", dir=folder)
    os.close(fd)
    try:
        with (
            adbc_driver_sqlite.connect(path) as db,
            adbc_driver_manager.AdbcConnection(db) as own,  # autocommit
            adbc_driver_manager.AdbcStatement(own) as stmt,
        ):
            # a throwaway file: no journal, no fsync (the batch becomes durable in the store's commit)
            for pragma in ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF"):
                stmt.set_sql_query(pragma)
                stmt.execute_update()
            options = adbc_driver_manager.StatementOptions
            stmt.set_options(
                **{
                    options.INGEST_TARGET_TABLE.value: STAGE_TABLE,
                    options.INGEST_MODE.value: adbc_driver_manager.INGEST_OPTION_MODE_CREATE,
                }
            )
            stmt.bind_stream(batch)
            stmt.execute_update()
    except BaseException:
        os.remove(path)
        raise
    return path


def detach_stages(raw: sqlite3.Connection) -> int:
    """Detach the staging files of transactions that have ended (one still in a transaction stays
    attached: SQLite refuses); returns how many stay attached."""
    left = 0
    for _, name, file in raw.execute("PRAGMA database_list").fetchall():
        if not name.startswith(STAGE_SCHEMA):
            continue
        try:
            raw.execute(f"DETACH DATABASE {name}")
        except sqlite3.OperationalError:  # "database … is locked": read by the open transaction
            left += 1
            continue
        if file and os.path.exists(file):
            os.remove(file)
    return left


def _free_stage_schema(raw: sqlite3.Connection) -> str | None:
    """A schema name to attach the next staging file as, or None when the connection has no free
    attachment slot (SQLite allows 10 by default; other attachments count too)."""
    detach_stages(raw)
    attached = [r[1] for r in raw.execute("PRAGMA database_list").fetchall()]
    if len(attached) - 2 >= raw.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED):  # less main and temp
        return None
    return next(f"{STAGE_SCHEMA}{i}" for i in range(len(attached) + 1) if f"{STAGE_SCHEMA}{i}" not in attached)


def _adbc_sqlite_available() -> bool:
    try:
        import adbc_driver_sqlite  # noqa: F401
    except ImportError:
        return False
    return True


def sqlite_insert(raw: sqlite3.Connection, table: sa.Table, batch: pa.Table) -> None:
    """Insert ``batch`` (from :func:`arrow_table`) into ``table`` on ``raw``, in its transaction:
    through an ADBC-written staging file and one ``INSERT … SELECT`` (module docstring), or by
    ``executemany`` for a small batch."""
    names = ", ".join(batch.column_names)
    schema_name = None
    if batch.num_rows >= STAGE_MIN_ROWS and _adbc_sqlite_available():
        schema_name = _free_stage_schema(raw)
    if schema_name is None:
        marks = ", ".join("?" * batch.num_columns)
        raw.executemany(
            f"INSERT INTO {table.name} ({names}) VALUES ({marks})", zip(*(c.to_pylist() for c in batch.columns))
        )
        return
    path = _write_stage(batch)
    try:
        raw.execute("ATTACH DATABASE ? AS " + schema_name, (path,))
    finally:
        os.remove(path)  # the attached file stays readable (open) until it is detached
    raw.execute(f"INSERT INTO main.{table.name} ({names}) SELECT {names} FROM {schema_name}.{STAGE_TABLE}")
