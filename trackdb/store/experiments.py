"""Experiments (plates) in SQL: their movies and conditions, the state of every stage of every
movie, and the checks that a re-run left exactly one copy of everything.

An experiment owns movies (``movie.experiment_id``); each movie has free key/value conditions
(``movie_condition``, revision 0007: ``value`` as written, ``value_num`` for numbers). Registering
a movie is idempotent: the same name in the same experiment with the same size is the same
movie, so a re-run of a manifest finds what the last run wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.errors import InputError, NotFoundError
from trackdb.store import schema
from trackdb.store.core import Movie, Store

Condition = str | int | float | bool


# --- experiments and movies --------------------------------------------------------------------
def ensure_experiment(store: Store, name: str, meta: Mapping[str, Any] | None = None) -> int:
    """The experiment's id, created if new; ``meta`` (the manifest's description) replaces the stored one."""
    e = schema.experiment.c
    with store.begin() as c:
        eid = c.execute(sa.select(e.id).where(e.name == name)).scalar()
        if eid is None:
            return int(
                c.execute(
                    schema.experiment.insert().values(name=name, meta=dict(meta or {})).returning(e.id)
                ).scalar_one()
            )
        if meta is not None:
            c.execute(schema.experiment.update().where(e.id == eid).values(meta=dict(meta)))
        return int(eid)


def experiment_id(store: Store, name: str) -> int:
    e = schema.experiment.c
    with store.engine.connect() as c:
        eid = c.execute(sa.select(e.id).where(e.name == name)).scalar()
    if eid is None:
        raise NotFoundError(f"no experiment {name!r} in this database (run `trackdb experiment run PLATE.toml`)")
    return int(eid)


def experiment_meta(store: Store, name: str) -> dict[str, Any]:
    e = schema.experiment.c
    with store.engine.connect() as c:
        meta = c.execute(sa.select(e.meta).where(e.id == experiment_id(store, name))).scalar()
    return dict(meta or {})


def movie_owners(store: Store, names: list[str]) -> dict[str, str | None]:
    """For each of ``names`` already stored: the experiment it belongs to (None: none)."""
    m, e = schema.movie.c, schema.experiment.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(m.name, e.name)
            .select_from(schema.movie.outerjoin(schema.experiment, e.id == m.experiment_id))
            .where(m.name.in_(names))
        ).all()
    return {str(a): (None if b is None else str(b)) for a, b in rows}


def register_movie(
    store: Store,
    experiment: str,
    name: str,
    shape: tuple[int, ...],
    n_frames: int,
    *,
    uri: str | None,
    spacing: tuple[float, ...] | None,
    conditions: Mapping[str, Condition],
) -> int:
    """The movie ``name`` of ``experiment`` (created if new) with ``conditions`` stored; one transaction.

    A stored movie of that name must belong to the experiment and have the same frames and shape.
    """
    m = schema.movie.c
    eid = ensure_experiment(store, experiment)
    with store.begin() as c:
        row = c.execute(sa.select(m.id, m.experiment_id).where(m.name == name)).first()
        if row is None:
            movie_id = store.add_movie(c, name, shape, n_frames, uri=uri, spacing=spacing, experiment=experiment)
        else:
            movie_id = int(row[0])
            if row[1] != eid:
                raise InputError(f"movie {name!r} already exists outside experiment {experiment!r}; rename it")
            stored = store.movie(movie_id, c)
            if stored.n_frames != n_frames or stored.shape != tuple(shape):
                raise InputError(
                    f"movie {name!r} is stored with {stored.n_frames} frames of {stored.shape}, its source "
                    f"now has {n_frames} of {tuple(shape)}: give it another name"
                )
        set_conditions(c, movie_id, conditions)
    return movie_id


def set_conditions(conn: Connection, movie_id: int, conditions: Mapping[str, Condition]) -> None:
    """Replace the movie's conditions. Numbers go into ``value_num`` too; ``value`` keeps the
    Python value on SQLite (no type affinity) and its text on PostgreSQL."""
    mc = schema.movie_condition
    conn.execute(mc.delete().where(mc.c.movie_id == movie_id))
    rows = []
    for key, v in conditions.items():
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        text = ("true" if v else "false") if isinstance(v, bool) else str(v)
        value: Condition = v if number and conn.dialect.name == "sqlite" else text
        rows.append({"movie_id": movie_id, "key": key, "value": value, "value_num": float(v) if number else None})
    if rows:
        conn.execute(mc.insert(), rows)


def conditions(store: Store, experiment: str) -> pd.DataFrame:
    """``movie, key, value`` of every movie of the experiment (numbers as numbers)."""
    m, mc = schema.movie.c, schema.movie_condition.c
    eid = experiment_id(store, experiment)
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(m.name, mc.key, mc.value, mc.value_num)
            .select_from(schema.movie_condition.join(schema.movie, m.id == mc.movie_id))
            .where(m.experiment_id == eid)
            .order_by(m.name, mc.key)
        ).all()
    values = [(a, k, _number(n) if n is not None else v) for a, k, v, n in rows]
    return pd.DataFrame(values, columns=["movie", "key", "value"])


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def experiment_movies(store: Store, experiment: str) -> list[Movie]:
    m = schema.movie.c
    eid = experiment_id(store, experiment)
    with store.engine.connect() as c:
        ids = c.execute(sa.select(m.id).where(m.experiment_id == eid).order_by(m.name)).scalars().all()
    return [store.movie(int(i)) for i in ids]


# --- stage states ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageState:
    """The newest run of one kind for one movie."""

    movie: str
    kind: str
    run_id: int
    status: str
    message: str | None


def stage_states(store: Store, experiment: str) -> list[StageState]:
    """The newest run of every kind for every movie of the experiment (one query)."""
    m, r = schema.movie.c, schema.run.c
    eid = experiment_id(store, experiment)
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(m.name, r.kind, r.id, r.status, r.message)
            .select_from(schema.run.join(schema.movie, m.id == r.movie_id))
            .where(m.experiment_id == eid)
            .order_by(m.name, r.kind, r.id.desc())
        ).all()
    seen: set[tuple[str, str]] = set()
    out = []
    for name, kind, rid, status, message in rows:
        if (name, kind) in seen:
            continue
        seen.add((name, kind))
        out.append(StageState(str(name), str(kind), int(rid), str(status), message))
    return out


def abandon_running(store: Store, experiment: str, movie: str, kind: str, reason: str) -> list[int]:
    """Mark the movie's ``running`` runs of stage ``kind`` failed with ``reason``; returns their ids.

    For a task the scheduler gave up on (its workers died, ``KilledWorker``): no process will
    finish those runs, and :func:`trackdb.store.runs.reap` cannot see a worker of another host.
    """
    from trackdb.store.core import now

    m, r = schema.movie.c, schema.run.c
    eid = experiment_id(store, experiment)
    with store.engine.begin() as c:
        mid = c.execute(sa.select(m.id).where(m.experiment_id == eid, m.name == movie)).scalar()
        if mid is None:  # the movie's first task never ran: nothing to mark
            return []
        where = (r.movie_id == mid, r.kind == kind, r.status == "running")
        ids = [int(i) for i in c.execute(sa.select(r.id).where(*where)).scalars()]
        if ids:
            c.execute(schema.run.update().where(*where).values(status="failed", message=reason, finished_at=now()))
    return ids


def has_nodes(store: Store, run_id: int) -> bool:
    n = schema.node.c
    with store.engine.connect() as c:
        return c.execute(sa.select(n.id).where(n.run_id == run_id).limit(1)).first() is not None


def has_edges(store: Store, run_id: int) -> bool:
    e = schema.edge.c
    with store.engine.connect() as c:
        return c.execute(sa.select(e.id).where(e.run_id == run_id).limit(1)).first() is not None


def wrote_output(store: Store, run_id: int, kind: str) -> bool:
    """Whether a solve run wrote its solution, or an uncertainty run its probabilities: both are
    one transaction, so a run killed after it committed but before it was marked succeeded is
    complete and needs only the mark."""
    table, col = (
        (schema.solution, schema.solution.c.run_id)
        if kind == "solve"
        else (schema.edge_probability, schema.edge_probability.c.run_id)
    )
    with store.engine.connect() as c:
        return c.execute(sa.select(col).select_from(table).where(col == run_id).limit(1)).first() is not None


# --- exactly once ------------------------------------------------------------------------------
_PER_MOVIE = {
    "run": "SELECT COUNT(*) FROM run WHERE movie_id = :m",
    "node": "SELECT COUNT(*) FROM node WHERE movie_id = :m",
    "edge": "SELECT COUNT(*) FROM edge WHERE movie_id = :m",
    "solution": "SELECT COUNT(*) FROM solution WHERE movie_id = :m",
    "solution_node": "SELECT COUNT(*) FROM solution_node sn JOIN solution s ON s.id = sn.solution_id "
    "WHERE s.movie_id = :m",
    "solution_edge": "SELECT COUNT(*) FROM solution_edge se JOIN solution s ON s.id = se.solution_id "
    "WHERE s.movie_id = :m",
    "track": "SELECT COUNT(*) FROM track tr JOIN solution s ON s.id = tr.solution_id WHERE s.movie_id = :m",
    "edge_probability": "SELECT COUNT(*) FROM edge_probability p JOIN run r ON r.id = p.run_id WHERE r.movie_id = :m",
    "node_probability": "SELECT COUNT(*) FROM node_probability p JOIN run r ON r.id = p.run_id WHERE r.movie_id = :m",
    "movie_condition": "SELECT COUNT(*) FROM movie_condition WHERE movie_id = :m",
}

# rows that exist twice or point at nothing (the store's own keys refuse most; these are the rest)
_DEFECTS = {
    "duplicate_edges": "SELECT COUNT(*) FROM (SELECT run_id, source_id, target_id FROM edge "
    "GROUP BY run_id, source_id, target_id HAVING COUNT(*) > 1) d",
    "edges_without_nodes": "SELECT COUNT(*) FROM edge e WHERE NOT EXISTS "
    "(SELECT 1 FROM node n WHERE n.id = e.source_id) OR NOT EXISTS (SELECT 1 FROM node n WHERE n.id = e.target_id)",
    "cells_without_nodes": "SELECT COUNT(*) FROM solution_node sn WHERE NOT EXISTS "
    "(SELECT 1 FROM node n WHERE n.id = sn.node_id)",
    "links_without_edges": "SELECT COUNT(*) FROM solution_edge se WHERE NOT EXISTS "
    "(SELECT 1 FROM edge e WHERE e.id = se.edge_id)",
    "probabilities_without_edges": "SELECT COUNT(*) FROM edge_probability p WHERE NOT EXISTS "
    "(SELECT 1 FROM edge e WHERE e.id = p.edge_id)",
    "runs_not_succeeded": "SELECT COUNT(*) FROM run WHERE status <> 'succeeded'",
    "solutions_of_unfinished_runs": "SELECT COUNT(*) FROM solution s JOIN run r ON r.id = s.run_id "
    "WHERE r.status <> 'succeeded'",
}


def row_counts(store: Store, movie_id: int) -> dict[str, int]:
    """Rows the movie owns, per table."""
    with store.engine.connect() as c:
        return {k: int(c.execute(sa.text(q), {"m": movie_id}).scalar_one()) for k, q in _PER_MOVIE.items()}


def defects(store: Store) -> dict[str, int]:
    """Counts of duplicated or dangling rows in the whole store (all zero after a clean run)."""
    with store.engine.connect() as c:
        return {k: int(c.execute(sa.text(q)).scalar_one()) for k, q in _DEFECTS.items()}


_LINEAGE_CELLS = """
SELECT n.t, n.label FROM movie m JOIN solution_node sn ON sn.solution_id = m.current_solution_id
JOIN node n ON n.id = sn.node_id WHERE m.id = :m ORDER BY n.t, n.label
"""
_LINEAGE_LINKS = """
SELECT a.t, a.label, b.t, b.label FROM movie m JOIN solution_edge se ON se.solution_id = m.current_solution_id
JOIN node a ON a.id = se.source_id JOIN node b ON b.id = se.target_id WHERE m.id = :m
ORDER BY a.t, a.label, b.t, b.label
"""


def lineage_digest(store: Store, movie_id: int) -> str:
    """SHA-256 of the movie's selected lineage written without database ids: every selected cell
    as (frame, label) and every selected link as its two cells. Equal digests: same lineage,
    whatever ids the rows got."""
    h = hashlib.sha256()
    with store.engine.connect() as c:
        for sql, width in ((_LINEAGE_CELLS, 2), (_LINEAGE_LINKS, 4)):
            rows = np.array(c.execute(sa.text(sql), {"m": movie_id}).all(), np.int64).reshape(-1, width)
            h.update(f"{width}:{len(rows)}:".encode())
            h.update(rows.tobytes())
    return h.hexdigest()


__all__ = [
    "Condition",
    "StageState",
    "conditions",
    "defects",
    "ensure_experiment",
    "experiment_id",
    "experiment_meta",
    "experiment_movies",
    "has_edges",
    "has_nodes",
    "lineage_digest",
    "movie_owners",
    "register_movie",
    "row_counts",
    "set_conditions",
    "stage_states",
    "wrote_output",
]
