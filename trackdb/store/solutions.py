"""Reading solutions back: their cells, links and tracks, as database ids or painted masks.

Writing one is :func:`trackdb.store.ingest.insert_solution`; which solution is current is on the
movie (:meth:`trackdb.store.core.Store.set_current_solution`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.store import deltas, schema
from trackdb.store.codecs import decode_mask
from trackdb.store.core import Movie, Store


@dataclass(frozen=True)
class StoredSelection:
    """A solution as database ids: its cells (with their CTC track ids) and its links."""

    node_ids: np.ndarray  # (N,) int64
    track_ids: np.ndarray  # (N,) int64, the track of each cell
    edge_ids: np.ndarray  # (E,) int64


def _columns(rows: Sequence[Any], width: int) -> np.ndarray:
    """(n, width) int64 array of result rows, built column by column (numpy reading SQLAlchemy
    rows one by one goes through their key lookups: seconds for a 100k-cell solution)."""
    if not rows:
        return np.zeros((0, width), np.int64)
    return np.stack([np.asarray(col, np.int64) for col in zip(*rows)], axis=1)


def _int_rows(result: sa.CursorResult[Any], width: int) -> np.ndarray:
    """(n, width) int64 array of a result of non-null integer columns, fetched from the DBAPI
    cursor as plain tuples: no SQLAlchemy row objects (a re-solve reads the whole current
    solution: 0.55 s that way against 0.2 s for the 110k-cell synthetic movie on SQLite)."""
    rows = result.cursor.fetchall() if result.cursor is not None else []
    return np.array(rows, np.int64).reshape(-1, width) if rows else np.zeros((0, width), np.int64)


def selection(store: Store, solution_id: int, conn: Connection | None = None) -> StoredSelection:
    sn, se = schema.solution_node.c, schema.solution_edge.c
    with store.connection(conn) as c:
        arr = _int_rows(c.execute(sa.select(sn.node_id, sn.track_id).where(sn.solution_id == solution_id)), 2)
        links = _int_rows(c.execute(sa.select(se.edge_id).where(se.solution_id == solution_id)), 1)
    return StoredSelection(arr[:, 0].copy(), arr[:, 1].copy(), links[:, 0].copy())


@dataclass(frozen=True)
class SolutionArrays:
    """A solution's cells (with their frames) and links (with their endpoints), as ids: all a
    re-solve needs to rewrite it without reading the candidate graph."""

    node_ids: np.ndarray  # (N,) int64
    node_t: np.ndarray  # (N,) int64
    edge_ids: np.ndarray  # (E,) int64
    source_ids: np.ndarray  # (E,) int64
    target_ids: np.ndarray  # (E,) int64
    objective: float | None


def solution_arrays(store: Store, solution_id: int) -> SolutionArrays:
    sn, se, s = schema.solution_node.c, schema.solution_edge.c, schema.solution.c
    with store.engine.connect() as c:
        a = _int_rows(c.execute(sa.select(sn.node_id, sn.t).where(sn.solution_id == solution_id)), 2)
        b = _int_rows(
            c.execute(sa.select(se.edge_id, se.source_id, se.target_id).where(se.solution_id == solution_id)), 3
        )
        obj = c.execute(sa.select(s.objective).where(s.id == solution_id)).scalar()
    return SolutionArrays(
        a[:, 0].copy(),
        a[:, 1].copy(),
        b[:, 0].copy(),
        b[:, 1].copy(),
        b[:, 2].copy(),
        None if obj is None else float(obj),
    )


def solution_tracks(store: Store, solution_id: int) -> np.ndarray:
    """CTC table ``(K, 4)``: track id, start, end, parent (0 = none), sorted by track id."""
    tr = schema.track.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(tr.track_id, tr.start_t, tr.end_t, sa.func.coalesce(tr.parent_track_id, 0))
            .where(tr.solution_id == solution_id)
            .order_by(tr.track_id)
        ).all()
    return _columns(rows, 4)


def rank0_solution_of_run(store: Store, run_id: int) -> int:
    """The solution a solve run wrote (its rank-0 solution)."""
    s = schema.solution.c
    with store.engine.connect() as c:
        return int(c.execute(sa.select(s.id).where(s.run_id == run_id, s.rank == 0)).scalar_one())


def cell_masks(store: Store, movie: Movie, solution_id: int) -> Iterator[tuple[int, int, np.ndarray, tuple[int, ...]]]:
    """``(t, track id, bbox mask, bbox low corner)`` of every cell of a solution."""
    n, sn = schema.node.c, schema.solution_node.c
    cols = [n.t, sn.track_id, n.mask, n.bbox_y0, n.bbox_x0, n.bbox_y1, n.bbox_x1]
    if movie.ndim == 3:
        cols += [n.bbox_z0, n.bbox_z1]
    query = (
        sa.select(*cols)
        .select_from(schema.solution_node.join(schema.node, n.id == sn.node_id))
        .where(sn.solution_id == solution_id)
    )
    with store.engine.connect() as c:
        for t, track_id, blob, y0, x0, y1, x1, *zs in c.execute(query):
            lo, hi = ((zs[0], y0, x0), (zs[1], y1, x1)) if zs else ((y0, x0), (y1, x1))
            yield int(t), int(track_id), decode_mask(blob, [b - a for a, b in zip(lo, hi)]), lo


def set_track_confidence(conn: Connection, solution_id: int, track_ids: np.ndarray, confidence: np.ndarray) -> None:
    """Store each track's ``(min, product)`` link confidence (``confidence``: ``(K, 2)``); a
    delta solution first takes its own copy of the base's rows (the base stays as it was)."""
    if len(track_ids) == 0:
        return
    deltas.own_tracks(conn, solution_id, np.asarray(track_ids).tolist())
    tr = schema.track_stored.c
    conn.execute(
        schema.track_stored.update()
        .where(tr.solution_id == sa.bindparam("sid"), tr.track_id == sa.bindparam("tid"))
        .values(confidence_min=sa.bindparam("cmin"), confidence_product=sa.bindparam("cprod")),
        [
            {"sid": solution_id, "tid": int(a), "cmin": float(b), "cprod": float(d)}
            for a, (b, d) in zip(np.asarray(track_ids).tolist(), np.asarray(confidence).tolist())
        ],
    )


def objective_of(store: Store, solution_id: int) -> float | None:
    """A solution's stored objective (None when it has none)."""
    s = schema.solution.c
    with store.engine.connect() as c:
        obj = c.execute(sa.select(s.objective).where(s.id == solution_id)).scalar()
    return None if obj is None else float(obj)
