"""The edit log: append-only ``edit`` rows, and the candidate cells and links edits create.

What an edit means is :mod:`trackdb.stages.edits` (checks) and :mod:`trackdb.stages.pins`
(constraints); this module reads and appends rows, writes the cells and links an edit creates
(in the caller's transaction, :func:`trackdb.store.locks.movie_transaction`), and marks the edits
a (re-)solve applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from inference.types import Candidates
from trackdb.store import schema
from trackdb.store.bulk import bulk_insert_columns
from trackdb.store.codecs import encode_masks
from trackdb.store.core import Store
from trackdb.store.ingest import allocate_ids

EDIT_SOURCE = "edit"  # node.source of cells made by edits


def node_row(store: Store, movie_id: int, node_id: int) -> dict[str, Any] | None:
    """Frame and run of a candidate node of the movie, or None."""
    n = schema.node.c
    with store.engine.connect() as c:
        row = c.execute(sa.select(n.t, n.run_id).where(n.id == node_id, n.movie_id == movie_id)).mappings().first()
    return dict(row) if row else None


def edge_row(store: Store, movie_id: int, edge_id: int) -> dict[str, Any] | None:
    """Frame, gap, run and endpoints of a candidate link of the movie, or None."""
    e = schema.edge.c
    with store.engine.connect() as c:
        row = (
            c.execute(
                sa.select(e.t, e.dt, e.run_id, e.source_id, e.target_id).where(e.id == edge_id, e.movie_id == movie_id)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def find_edge(store: Store, link_run_id: int, source_id: int, target_id: int) -> int | None:
    """The id of the link run's candidate link source → target, if it has one."""
    e = schema.edge.c
    with store.engine.connect() as c:
        eid = c.execute(
            sa.select(e.id)
            .where(e.run_id == link_run_id, e.source_id == source_id, e.target_id == target_id)
            .order_by(e.id)
            .limit(1)
        ).scalar()
    return None if eid is None else int(eid)


def out_degree(store: Store, link_run_id: int, node_id: int) -> int:
    """How many one-frame candidate links of the link run leave the node (daughter choices)."""
    e = schema.edge.c
    with store.engine.connect() as c:
        return int(
            c.execute(
                sa.select(sa.func.count()).where(e.run_id == link_run_id, e.source_id == node_id, e.dt == 1)
            ).scalar_one()
        )


def present(store: Store, run_id: int, ids: Sequence[int], what: str) -> set[int]:
    """Which of ``ids`` are nodes (``what="node"``) or edges of the run."""
    table = schema.node if what == "node" else schema.edge
    wanted = sorted({int(i) for i in ids})
    found: set[int] = set()
    with store.engine.connect() as c:
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            found |= {
                int(i)
                for i in c.execute(
                    sa.select(table.c.id).where(table.c.run_id == run_id, table.c.id.in_(chunk))
                ).scalars()
            }
    return found


def longest_link(store: Store, link_run_id: int) -> int:
    """The largest frame gap of the link run's candidate links (1 when it has none)."""
    e = schema.edge.c
    with store.engine.connect() as c:
        dt = c.execute(sa.select(sa.func.max(e.dt)).where(e.run_id == link_run_id)).scalar()
    return 1 if dt is None else int(dt)


def edit_row(store: Store, movie_id: int, edit_id: int) -> dict[str, Any] | None:
    ed = schema.edit.c
    with store.engine.connect() as c:
        row = (
            c.execute(
                sa.select(ed.id, ed.kind, ed.payload, ed.t_start, ed.t_end, ed.run_id).where(
                    ed.id == edit_id, ed.movie_id == movie_id
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def insert(
    conn: Connection,
    movie_id: int,
    kind: str,
    payload: dict[str, Any],
    t_start: int,
    t_end: int,
    author: str | None,
) -> int:
    """Append one edit row in the caller's transaction; returns its id."""
    ed = schema.edit.c
    return int(
        conn.execute(
            schema.edit.insert()
            .values(
                movie_id=movie_id,
                created_at=sa.func.now(),
                author=author,
                kind=kind,
                payload=payload,
                t_start=t_start,
                t_end=t_end,
            )
            .returning(ed.id)
        ).scalar_one()
    )


def insert_cells(
    conn: Connection, movie_id: int, run_id: int, cells: Candidates, embedding_dim: int | None
) -> np.ndarray:
    """Write the cells an edit made into the candidate run (source ``edit``, label = −id so it
    never collides with a label image's); returns their ids. ``embedding_dim``: the run's, when
    its candidates carry embeddings (edit cells get zeros: they have no network features)."""
    n = len(cells)
    first = allocate_ids(conn, "node", n)
    ids = np.arange(first, first + n, dtype=np.int64)
    d = cells.ndim
    cen = np.asarray(cells.centroid, np.float64)
    bbox = np.asarray(cells.bbox, np.int64)
    axes = ("z", "y", "x") if d == 3 else ("y", "x")
    cols: dict[str, Any] = {
        "id": ids,
        "movie_id": int(movie_id),
        "run_id": int(run_id),
        "t": np.asarray(cells.t, np.int64),
        "label": -ids,
        "area": np.asarray(cells.area, np.int64),
        "hier_parent_id": None,
        "threshold": np.asarray(cells.threshold, np.float64),
        "score": np.asarray(cells.score, np.float64),
        "max_prob": np.asarray(cells.max_prob, np.float64),
        "prev_z": None,
        "prev_y": None,
        "prev_x": None,
        "mask": encode_masks(cells.masks),
        "source": EDIT_SOURCE,
    }
    for i, a in enumerate(axes):
        cols[a] = cen[:, i]
        cols[f"bbox_{a}0"] = bbox[:, i]
        cols[f"bbox_{a}1"] = bbox[:, d + i]
    if d == 2:
        cols.update(z=None, bbox_z0=None, bbox_z1=None)
    if embedding_dim:
        zeros = np.zeros((n, embedding_dim), "<f4")
        cols.update(embedding=zeros.view(np.uint8), embedding_dim=int(embedding_dim))
    else:
        cols.update(embedding=None, embedding_dim=None)
    bulk_insert_columns(conn, schema.node, cols, n)
    return ids


def insert_links(
    conn: Connection,
    movie_id: int,
    run_id: int,
    source_ids: np.ndarray,
    target_ids: np.ndarray,
    t: np.ndarray,
    dt: np.ndarray,
    distance: np.ndarray,
    iou: np.ndarray,
) -> np.ndarray:
    """Write candidate links an edit made into the link run; returns their ids."""
    n = len(source_ids)
    if n == 0:
        return np.zeros(0, np.int64)
    first = allocate_ids(conn, "edge", n)
    ids = np.arange(first, first + n, dtype=np.int64)
    cols: dict[str, Any] = {
        "id": ids,
        "movie_id": int(movie_id),
        "run_id": int(run_id),
        "source_id": np.asarray(source_ids, np.int64),
        "target_id": np.asarray(target_ids, np.int64),
        "t": np.asarray(t, np.int64),
        "dt": np.asarray(dt, np.int64),
        "distance": np.asarray(distance, np.float64),
        "iou": np.asarray(iou, np.float64),
        "offset_vote": None,
        "embedding_distance": None,
        "cost": None,
    }
    bulk_insert_columns(conn, schema.edge, cols, n)
    return ids


def removed(store: Store, movie_id: int) -> set[int]:
    """Ids of the edits a later ``remove`` undid."""
    ed = schema.edit.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(ed.payload).where(ed.movie_id == movie_id, ed.kind == "remove")).scalars()
        return {int(p["edit_id"]) for p in rows}


def all_edits(store: Store, movie_id: int, conn: Connection | None = None) -> list[dict[str, Any]]:
    """Every edit row of the movie, oldest first."""
    ed = schema.edit.c
    with store.connection(conn) as c:
        return [
            dict(r) for r in c.execute(sa.select(schema.edit).where(ed.movie_id == movie_id).order_by(ed.id)).mappings()
        ]


def mark_applied(conn: Connection, edit_ids: Sequence[int], run_id: int) -> None:
    """Record which (re-)solve applied these edits (in that solve's transaction)."""
    if edit_ids:
        conn.execute(schema.edit.update().where(schema.edit.c.id.in_(list(edit_ids))).values(run_id=run_id))
