"""The edit log: append-only ``edit`` rows (pins on the candidate graph and their removals).

What an edit means and how a re-solve applies it is :mod:`trackdb.stages.resolve`; this module
only reads and appends rows, and marks the edits a re-solve applied.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.store import schema
from trackdb.store.core import Store


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


def edit_row(store: Store, movie_id: int, edit_id: int) -> dict[str, Any] | None:
    ed = schema.edit.c
    with store.engine.connect() as c:
        row = (
            c.execute(sa.select(ed.kind, ed.t_start, ed.t_end).where(ed.id == edit_id, ed.movie_id == movie_id))
            .mappings()
            .first()
        )
    return dict(row) if row else None


def append(
    store: Store, movie_id: int, kind: str, payload: dict[str, Any], t_start: int, t_end: int, author: str | None
) -> int:
    ed = schema.edit.c
    with store.engine.begin() as c:
        return int(
            c.execute(
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


def removed(store: Store, movie_id: int) -> set[int]:
    """Ids of the edits a later ``remove`` undid."""
    ed = schema.edit.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(ed.payload).where(ed.movie_id == movie_id, ed.kind == "remove")).scalars()
        return {int(p["edit_id"]) for p in rows}


def all_edits(store: Store, movie_id: int) -> list[dict[str, Any]]:
    """Every edit row of the movie, oldest first."""
    ed = schema.edit.c
    with store.engine.connect() as c:
        return [
            dict(r) for r in c.execute(sa.select(schema.edit).where(ed.movie_id == movie_id).order_by(ed.id)).mappings()
        ]


def mark_applied(conn: Connection, edit_ids: list[int], run_id: int) -> None:
    """Record which re-solve applied these edits (in the re-solve's transaction)."""
    if edit_ids:
        conn.execute(schema.edit.update().where(schema.edit.c.id.in_(edit_ids)).values(run_id=run_id))
