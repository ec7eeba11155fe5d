"""Prototype of the store's bulk writer: node and edge batches as Arrow tables, written by ADBC.

``adbc_ingest`` moves Arrow columns into the table in C: on SQLite one prepared ``INSERT`` bound
and stepped per row, on PostgreSQL a binary ``COPY`` encoded from the Arrow buffers. That replaces
both hand-written paths of ``trackdb.store.bulk`` (``executemany`` over Python tuples, the numpy-built
COPY payload). What the drivers do not do, and a writer for trackdb must, lives here:

- **Exact column types.** In append mode neither driver looks at the table's column types.
  PostgreSQL's COPY sends each Arrow type's own binary encoding: int64 into ``integer`` fails
  ("incorrect binary data format") and int64 into ``double precision`` is silently read as a
  float (1 becomes 5e-324); SQLite stores whatever is bound. Every batch is therefore built with
  the Arrow schema derived from ``trackdb.store.schema`` through pyarrow's safe casts, which refuse
  fractional, NaN and out-of-range values for integer columns.
- **One batch, one transaction, exactly once.** Ids are reserved from ``id_block`` in a short
  transaction of their own, so parallel writers never wait on the ``id_block`` row while another
  copies (a batch that rolls back leaves a gap in the ids, nothing else). The batch's transaction
  then takes the run's frames (``BEGIN IMMEDIATE`` on SQLite; a transaction-scoped advisory lock
  per frame on PostgreSQL), re-reads which of them the run already wrote, ingests and commits.
  "Frame done" is the presence of the frame's rows, so it commits or rolls back with them.
- **PostgreSQL as ``trackdb.store.bulk`` does it:** constant foreign keys checked once per batch with
  the per-row triggers off for that COPY (where the role may), ``ANALYZE`` once a table doubled.
- **SQLite as ``trackdb.store.db`` does it:** WAL, foreign keys, busy timeout, ``synchronous=NORMAL``.

Hazard: the PyPI wheel of adbc-driver-sqlite links its own copy of SQLite. Two copies in one
process do not see each other's POSIX locks, and closing one copy's connection deletes the WAL
under the other's (``benchmarks/adbc_sqlite_locks.py`` shows both), so this writer must never
share a process with a ``sqlite3`` connection to the same file (``same_sqlite_library``).
Figures: ``benchmarks/ingest.py --writer adbc``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from inference.types import CandidateEdges, Candidates
from trackdb.store import schema
from trackdb.store.codecs import encode_masks

PG_ANALYZE_MIN_ROWS = 10_000  # the rule the store used when this prototype was measured
from trackdb.store.db import SQLITE_BUSY_TIMEOUT_MS, resolve_url

# subclass before base class: BigInteger is an Integer
_ARROW_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], pa.DataType], ...] = (
    (sa.BigInteger, pa.int64()),
    (sa.Integer, pa.int32()),
    (sa.Float, pa.float64()),
    (sa.LargeBinary, pa.binary()),
    (sa.String, pa.string()),
    (sa.Text, pa.string()),
)

# Arrow record batches handed to the driver per ingest. PostgreSQL's driver encodes one record
# batch completely before sending it, so smaller batches let the server insert while the client
# encodes the next: 100,000 node rows into a copy of ``node`` without foreign-key triggers took
# 0.53 s as one record batch and 0.46 s in 4,096-row batches (``adbc_ingest_profile.py --rows
# 100000 --repeats 5``, medians; SQLite is indifferent).
COPY_CHUNK_ROWS = 4096

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-262144",
)


def arrow_schema(table: sa.Table) -> pa.Schema:
    """The Arrow type of every column of ``table``: what the drivers must be handed, exactly."""
    fields = []
    for column in table.columns:
        for sa_type, pa_type in _ARROW_TYPES:
            if isinstance(column.type, sa_type):
                fields.append(pa.field(column.name, pa_type))
                break
        else:
            raise TypeError(f"no Arrow type for {column}")
    return pa.schema(fields)


def _arrow_column(value: object, typ: pa.DataType, n: int, name: str) -> pa.Array:
    """One column of the ``trackdb.store.bulk`` batch vocabulary as an Arrow array of type ``typ``."""
    try:
        if isinstance(value, tuple):  # (values, missing): NULL where missing
            values, missing = value
            return pa.array(np.asarray(values), mask=np.asarray(missing, bool)).cast(typ)
        if isinstance(value, np.ndarray) and value.ndim == 2:  # a fixed-width blob per row, no copy
            if typ != pa.binary():
                raise TypeError(f"column {name}: a 2-D array is a blob per row, the column is {typ}")
            raw = np.ascontiguousarray(value, np.uint8)
            return pa.FixedSizeBinaryArray.from_buffers(pa.binary(raw.shape[1]), n, [None, pa.py_buffer(raw)])
        if isinstance(value, np.ndarray):
            return pa.array(value).cast(typ)
        if isinstance(value, list):  # bytes / str / None
            return pa.array(value, type=typ)
        scalar = value.item() if isinstance(value, np.generic) else value
        return pa.repeat(pa.scalar(scalar, type=typ), n)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise TypeError(f"column {name}: {exc}") from exc


def arrow_batch(table: sa.Table, cols: dict[str, object], n: int) -> pa.Table:
    """``n`` rows given column-wise (``trackdb.store.bulk`` vocabulary) as an Arrow table of exact types.

    All-NULL columns (``None``) are left out, so they get their NULL default without a value per
    row, as the current writers do. The table is cut (without copying) into ``COPY_CHUNK_ROWS``
    record batches.
    """
    target = arrow_schema(table)
    names = [name for name, v in cols.items() if v is not None]
    arrays = [_arrow_column(cols[name], target.field(name).type, n, name) for name in names]
    table_ = pa.Table.from_arrays(arrays, names=names)
    return pa.Table.from_batches(table_.to_batches(max_chunksize=COPY_CHUNK_ROWS), schema=table_.schema)


def node_columns(
    movie_id: int, run_id: int, cands: Candidates, idx: np.ndarray, ids: np.ndarray, source: str, masks: list[bytes]
) -> dict[str, object]:
    """Columns of the ``node`` rows ``idx`` of ``cands`` (``ids``: every candidate's id, −1 if unknown).

    The same columns as ``trackdb.store.ingest.insert_nodes`` builds; in the store package both writers
    would share this function.
    """
    m, d = len(idx), cands.ndim
    cen = np.asarray(cands.centroid, np.float64)[idx]
    bbox = np.asarray(cands.bbox, np.int64)[idx]
    parent = np.asarray(cands.hier_parent, np.int64)[idx]
    if np.any(ids[parent[parent >= 0]] < 0):
        raise ValueError("hier_parent points to a candidate that was not written")
    parent_id = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    roots = parent < 0
    c0 = 1 if d == 3 else 0
    cols: dict[str, object] = {
        "id": ids[idx],
        "movie_id": int(movie_id),
        "run_id": int(run_id),
        "t": np.asarray(cands.t, np.int64)[idx],
        "label": np.asarray(cands.label, np.int64)[idx],
        "z": cen[:, 0] if d == 3 else None,
        "y": cen[:, c0],
        "x": cen[:, c0 + 1],
        "area": np.asarray(cands.area, np.int64)[idx],
        "bbox_z0": bbox[:, 0] if d == 3 else None,
        "bbox_y0": bbox[:, c0],
        "bbox_x0": bbox[:, c0 + 1],
        "bbox_z1": bbox[:, d] if d == 3 else None,
        "bbox_y1": bbox[:, d + c0],
        "bbox_x1": bbox[:, d + c0 + 1],
        "hier_parent_id": None if roots.all() else parent_id if not roots.any() else (parent_id, roots),
        "threshold": np.asarray(cands.threshold, np.float64)[idx],
        "score": np.asarray(cands.score, np.float64)[idx],
        "max_prob": np.asarray(cands.max_prob, np.float64)[idx],
        "mask": masks,
        "source": source,
    }
    prev = None if cands.prev_centroid is None else np.asarray(cands.prev_centroid, np.float64)[idx]
    cols.update(
        prev_z=None if prev is None or d != 3 else prev[:, 0],
        prev_y=None if prev is None else prev[:, c0],
        prev_x=None if prev is None else prev[:, c0 + 1],
    )
    if cands.embedding is None:
        cols.update(embedding=None, embedding_dim=None)
    else:
        e32 = np.ascontiguousarray(np.asarray(cands.embedding)[idx], dtype="<f4")
        if e32.ndim != 2 or e32.shape[0] != m:
            raise ValueError(f"embedding must have shape ({m}, C), got {e32.shape}")
        cols.update(embedding=e32.view(np.uint8), embedding_dim=int(e32.shape[1]))
    return cols


def edge_columns(
    movie_id: int,
    run_id: int,
    node_ids: np.ndarray,
    src_t: np.ndarray,
    edges: CandidateEdges,
    idx: np.ndarray,
    ids: np.ndarray,
    cost: np.ndarray | None,
) -> dict[str, object]:
    """Columns of the ``edge`` rows ``idx`` (as ``trackdb.store.ingest.insert_edges`` builds them)."""

    def opt(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, np.float64)[idx]

    return {
        "id": ids[idx],
        "movie_id": int(movie_id),
        "run_id": int(run_id),
        "source_id": np.asarray(node_ids, np.int64)[edges.source[idx]],
        "target_id": np.asarray(node_ids, np.int64)[edges.target[idx]],
        "t": src_t[idx],
        "dt": np.asarray(edges.dt)[idx],
        "distance": np.asarray(edges.distance, np.float64)[idx],
        "iou": np.asarray(edges.iou, np.float64)[idx],
        "offset_vote": opt(edges.offset_vote),
        "embedding_distance": opt(edges.embedding_distance),
        "cost": opt(cost),
    }


def same_sqlite_library() -> bool:
    """Whether ADBC's SQLite and Python's ``sqlite3`` are one library (their locks see each other).

    Holds the write lock of a scratch database through ``sqlite3`` and asks ADBC for it without
    waiting: one library refuses (busy), two copies grant it.
    """
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.sqlite")
        own = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            own.execute("PRAGMA journal_mode=WAL")
            own.execute("CREATE TABLE probe (x INTEGER)")
            own.execute("BEGIN IMMEDIATE")
            other = adbc_sqlite.connect(path, autocommit=True)
            try:
                with other.cursor() as cur:
                    cur.execute("PRAGMA busy_timeout=0")
                    try:
                        cur.execute("BEGIN IMMEDIATE")
                    except Exception:  # SQLITE_BUSY: the locks are shared, one library
                        return True
                    cur.execute("ROLLBACK")
                    return False
            finally:
                other.close()
        finally:
            own.close()


class AdbcWriter:
    """Bulk writer of one process (or Dask worker) over its own ADBC connection.

    ``insert_nodes`` / ``insert_edges`` keep the contracts of ``trackdb.store.ingest``: aligned ids back,
    frames the run already wrote skipped (their node ids looked up), one transaction per call.
    ``profile`` accumulates seconds per phase for the benchmark.
    """

    def __init__(self, url: str | None = None) -> None:
        u = sa.engine.make_url(resolve_url(url))
        self.is_sqlite = u.get_backend_name() == "sqlite"
        self.profile: dict[str, float] = {}
        self._no_user_triggers: dict[str, bool] = {}
        self.conn: Any
        if self.is_sqlite:
            import adbc_driver_sqlite.dbapi as adbc_sqlite

            if not u.database or u.database == ":memory:":
                raise ValueError("the ADBC writer needs a SQLite file")
            self.conn = adbc_sqlite.connect(u.database, autocommit=True)  # transactions: BEGIN IMMEDIATE below
            with self.conn.cursor() as cur:
                for pragma in SQLITE_PRAGMAS:
                    cur.execute(pragma)
                    cur.fetchall()
        else:
            import adbc_driver_postgresql.dbapi as adbc_pg

            self.conn = adbc_pg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> AdbcWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        """``?`` placeholders as the engine spells them (``$1, $2 …`` on PostgreSQL)."""
        if self.is_sqlite:
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    def _rows(self, cur: Any, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        cur.execute(self._sql(sql), parameters=params or None)
        return list(cur.fetchall())

    def _time(self, phase: str, start: float) -> float:
        now = time.perf_counter()
        self.profile[phase] = self.profile.get(phase, 0.0) + now - start
        return now

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on the writer's connection: committed on success, rolled back on error.

        SQLite takes the write lock up front (``BEGIN IMMEDIATE``, waiting up to the busy timeout)
        so that two writers never deadlock upgrading read locks.
        """
        cur = self.conn.cursor()
        began = False
        try:
            if self.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
                began = True
            yield cur
            if self.is_sqlite:
                cur.execute("COMMIT")
            else:
                self.conn.commit()
        except BaseException:
            if not self.is_sqlite:
                self.conn.rollback()
            elif began:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def _frames_done(self, cur: Any, table: sa.Table, run_id: int, frames: np.ndarray) -> np.ndarray:
        rows = self._rows(
            cur,
            f"SELECT DISTINCT t FROM {table.name} WHERE run_id = ? AND t >= ? AND t <= ?",
            (int(run_id), int(frames.min()), int(frames.max())),
        )
        done = np.array([r[0] for r in rows], np.int64)
        return done[np.isin(done, frames)]

    def _allocate(self, cur: Any, kind: str, n: int) -> int:
        (next_id,) = self._rows(
            cur, "UPDATE id_block SET next_id = next_id + ? WHERE name = ? RETURNING next_id", (int(n), kind)
        )[0]
        return int(next_id) - int(n)

    def _lock_frames(self, cur: Any, table: sa.Table, run_id: int, frames: np.ndarray) -> None:
        """PostgreSQL: hold the run's frames until commit, so that two writers of one frame (a retried
        task beside the original) write it once; frames in ascending order, so no deadlock."""
        if self.is_sqlite:  # BEGIN IMMEDIATE already serialises every writer
            return
        for t in np.sort(frames).tolist():
            self._rows(cur, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{table.name}:{run_id}:{t}",))

    def _pg_constant_fks(self, cur: Any, table: sa.Table, cols: dict[str, object]) -> bool:
        """Check constant foreign keys once and switch the per-row triggers off for this COPY.

        The same rule as ``trackdb.store.bulk._pg_check_constant_fks``: only where every foreign key of
        the batch is one constant, the table has no user triggers and the role may set
        ``session_replication_role``. Returns whether the triggers are off.
        """
        fks = list(table.foreign_keys)
        if not fks or any(isinstance(cols.get(fk.parent.name), (np.ndarray, list, tuple, type(None))) for fk in fks):
            return False
        if table.name not in self._no_user_triggers:
            (count,) = self._rows(
                cur,
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(?) AND NOT tgisinternal",
                (table.name,),
            )[0]
            self._no_user_triggers[table.name] = int(count) == 0
        if not self._no_user_triggers[table.name]:
            return False
        cur.execute("SAVEPOINT trackdb_fk")
        try:
            cur.execute("SET LOCAL session_replication_role = replica")
        except Exception as exc:  # InsufficientPrivilege: the triggers run as usual
            if "permission" not in str(exc).lower():
                raise
            cur.execute("ROLLBACK TO SAVEPOINT trackdb_fk")
            return False
        finally:
            cur.execute("RELEASE SAVEPOINT trackdb_fk")
        for fk in fks:
            value = int(cols[fk.parent.name])  # type: ignore[call-overload]
            ref = fk.column
            if not self._rows(cur, f"SELECT 1 FROM ONLY {ref.table.name} WHERE {ref.name} = ? FOR KEY SHARE", (value,)):
                raise ValueError(
                    f'insert into "{table.name}" violates foreign key constraint: '
                    f'{fk.parent.name}={value} is not present in table "{ref.table.name}"'
                )
        return True

    def _pg_analyze(self, cur: Any, table: sa.Table, rows: int) -> None:
        """``ANALYZE`` after a large batch when the table has no statistics or has doubled since
        (``trackdb.store.bulk._pg_analyze``'s rule, in the batch's own transaction)."""
        if rows < PG_ANALYZE_MIN_ROWS:
            return
        pages, now = self._rows(
            cur,
            "SELECT relpages, pg_relation_size(oid) / current_setting('block_size')::int "
            "FROM pg_class WHERE oid = to_regclass(?)",
            (table.name,),
        )[0]
        if pages > 0 and now < 2 * pages:
            return
        cur.execute(f"ANALYZE (SKIP_LOCKED) {table.name}")

    # --- the write path ---------------------------------------------------------------------
    def insert_frames(
        self,
        table: sa.Table,
        kind: str,
        run_id: int,
        frame: np.ndarray,
        build: Callable[[np.ndarray, np.ndarray], dict[str, object]],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Write the rows of the frames ``run_id`` has not written yet, exactly once, atomically.

        ``frame``: each row's frame; ``build(idx, ids)`` returns the columns of rows ``idx`` given
        every row's id (−1 for rows not written). Returns (written rows mask, ids).
        """
        frames = np.unique(frame)
        for _ in range(3):
            start = time.perf_counter()
            with self.transaction() as cur:  # short: id_block is free again at its commit
                done = self._frames_done(cur, table, run_id, frames)
                new = ~np.isin(frame, done)
                m = int(new.sum())
                first = self._allocate(cur, kind, m) if m else 0
            ids = np.full(len(frame), -1, np.int64)
            start = self._time("check_and_ids", start)
            if m == 0:
                return new, ids
            ids[new] = np.arange(first, first + m, dtype=np.int64)
            cols = build(np.flatnonzero(new), ids)
            batch = arrow_batch(table, cols, m)
            start = self._time("arrow", start)
            with self.transaction() as cur:
                self._lock_frames(cur, table, run_id, frames[~np.isin(frames, done)])
                if len(self._frames_done(cur, table, run_id, frames)) != len(done):
                    continue  # another writer finished some of these frames meanwhile: start over
                start = self._time("lock_and_recheck", start)
                checked = not self.is_sqlite and self._pg_constant_fks(cur, table, cols)
                start = self._time("fk_check", start)
                cur.adbc_ingest(table.name, batch, mode="append")
                start = self._time("ingest", start)
                if checked:
                    cur.execute("SET LOCAL session_replication_role = origin")
                if not self.is_sqlite:
                    self._pg_analyze(cur, table, m)
                start = self._time("analyze", start)
            self._time("commit", start)
            return new, ids
        raise RuntimeError(f"run {run_id}: frames of {table.name} kept changing under this writer")

    def node_ids_of_run(self, run_id: int, t: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Database ids of the nodes a run wrote, aligned with ``(t, label)`` pairs (−1: none)."""
        if len(t) == 0:
            return np.zeros(0, np.int64)
        with self.transaction() as cur:
            cur.execute(
                self._sql("SELECT id, t, label FROM node WHERE run_id = ? AND t >= ? AND t <= ?"),
                parameters=(int(run_id), int(np.min(t)), int(np.max(t))),
            )
            found = cur.fetch_arrow_table()
        lookup = dict(zip(zip(found["t"].to_pylist(), found["label"].to_pylist()), found["id"].to_pylist()))
        return np.array([lookup.get((int(a), int(b)), -1) for a, b in zip(t, label)], dtype=np.int64)

    def insert_nodes(
        self, movie_id: int, run_id: int, cands: Candidates, source: str, masks_encoded: list[bytes] | None = None
    ) -> np.ndarray:
        """As ``trackdb.store.ingest.insert_nodes``: the candidates' ids, frames already written skipped."""
        if len(cands) == 0:
            return np.zeros(0, np.int64)
        t = np.asarray(cands.t, np.int64)

        def build(idx: np.ndarray, ids: np.ndarray) -> dict[str, object]:
            start = time.perf_counter()
            if masks_encoded is None:
                masks = encode_masks(cands.masks[i] for i in idx.tolist())
            else:
                masks = [masks_encoded[i] for i in idx.tolist()]
            self._time("masks", start)
            return node_columns(movie_id, run_id, cands, idx, ids, source, masks)

        new, ids = self.insert_frames(schema.node, "node", run_id, t, build)
        if (~new).any():
            ids[~new] = self.node_ids_of_run(run_id, t[~new], np.asarray(cands.label)[~new])
        return ids

    def insert_edges(
        self,
        movie_id: int,
        run_id: int,
        node_ids: np.ndarray,
        node_t: np.ndarray,
        edges: CandidateEdges,
        cost: np.ndarray | None = None,
    ) -> np.ndarray:
        """As ``trackdb.store.ingest.insert_edges``: edge ids, −1 for frames already written."""
        if len(edges.source) == 0:
            return np.zeros(0, np.int64)
        src_t = np.asarray(node_t, np.int64)[edges.source]

        def build(idx: np.ndarray, ids: np.ndarray) -> dict[str, object]:
            return edge_columns(movie_id, run_id, node_ids, src_t, edges, idx, ids, cost)

        return self.insert_frames(schema.edge, "edge", run_id, src_t, build)[1]
