"""A movie's graph as pandas tables: the one bulk read every graph export goes through.

Three queries (nodes, edges, tracks), each joined in SQL with solution membership and the latest
probabilities. Rows never become ORM objects: on PostgreSQL a query is streamed with ``COPY …
TO STDOUT`` into pandas' C CSV parser, on SQLite the cursor's tuples are turned into one numpy
array per column. The column set is documented in :mod:`trackdb.export_tables`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.store import runs, schema
from trackdb.store.bulk import driver_connection
from trackdb.store.core import Movie, Store

_BLOBS = ("mask", "embedding")
_DROP_IN_2D = ("z", "bbox_z0", "bbox_z1", "prev_z")
_NODE_SKIP = ("id", "movie_id")
_EDGE_SKIP = ("id", "movie_id")


@dataclass(frozen=True)
class GraphFrames:
    """One movie's graph as tables; ``tracks`` is None when no solution was asked for or exists."""

    movie: Movie
    solution_id: int | None
    candidates: bool
    nodes: pd.DataFrame
    edges: pd.DataFrame
    tracks: pd.DataFrame | None
    node_probability_run: int | None
    edge_probability_run: int | None


def _dtype(col: sa.ColumnElement, nullable: bool) -> str:
    """pandas dtype of a SQL column: nullable ints as ``Int64`` (NULL stays NULL, not 0.0)."""
    t = col.type
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "Int64" if nullable else "int64"
    if isinstance(t, sa.Float):
        return "float64"  # NULL -> NaN; pyarrow writes NaN of a pandas column as null
    if isinstance(t, sa.LargeBinary):
        return "bytes"
    return "object"


# numpy dtype each pandas dtype is fetched as; nullable ints go through float64, where C code
# turns None into NaN (ids and counts stay exact below 2**53)
_FETCH = {
    "Int64": np.float64,
    "int64": np.int64,
    "float64": np.float64,
    "bool": np.bool_,
    "bytes": object,
    "object": object,
}
SQLITE_FETCH_ROWS = 65_536  # fetching in blocks costs 20% less CPU than one fetchall of 1M rows


def _series(arr: np.ndarray, dtype: str) -> pd.Series:
    if dtype == "Int64":
        missing = np.isnan(arr)
        return pd.Series(pd.arrays.IntegerArray(np.where(missing, 0, arr).astype(np.int64), missing))
    return pd.Series(arr)


def _read_sqlite(conn: Connection, sql: str, names: list[str], dtypes: list[str]) -> pd.DataFrame:
    cur = driver_connection(conn).execute(sql)  # plain tuples, no Row objects
    parts: list[list[np.ndarray]] = [[] for _ in names]
    while rows := cur.fetchmany(SQLITE_FETCH_ROWS):
        for part, values, dtype in zip(parts, zip(*rows), dtypes):
            part.append(np.array(values, dtype=_FETCH[dtype]))
    cur.close()
    arrays = [np.concatenate(p) if p else np.empty(0, _FETCH[d]) for p, d in zip(parts, dtypes)]
    return pd.DataFrame({n: _series(a, d) for n, a, d in zip(names, arrays, dtypes)}, columns=names)


def _read_postgres(conn: Connection, sql: str, names: list[str], dtypes: list[str]) -> pd.DataFrame:
    buf = io.BytesIO()
    with driver_connection(conn).cursor() as cur:
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)") as copy:
            for chunk in copy:
                buf.write(chunk)
    buf.seek(0)
    as_text = {n for n, d in zip(names, dtypes) if d in ("bool", "bytes", "object")}
    read = {n: ("str" if n in as_text else d) for n, d in zip(names, dtypes)}
    # PostgreSQL prints floats in their shortest exact form and pandas 3 parses them exactly.
    df = pd.read_csv(
        buf, names=names, header=None, dtype=read, keep_default_na=False, na_values={n: [""] for n in names}
    )
    for n, d in zip(names, dtypes):
        col = df[n]
        if d == "bool":
            df[n] = (col == "t").to_numpy()
        elif d == "bytes":  # bytea in hex output: \x0a1b…
            df[n] = pd.Series([None if v is None or v != v else bytes.fromhex(v[2:]) for v in col], dtype=object)
        elif d == "object":
            df[n] = pd.Series(col.astype(object).where(col.notna(), None).to_numpy(), dtype=object)
    return df


def read_frame(conn: Connection, query: sa.Select, nullable: dict[str, bool]) -> pd.DataFrame:
    """Run one query into a typed DataFrame; ``nullable`` names the columns that can be NULL."""
    names = list(query.selected_columns.keys())
    dtypes = [_dtype(c, nullable.get(n, True)) for n, c in zip(names, query.selected_columns)]
    # Parameters here are our own ints and booleans, so inlining them is safe.
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    read = _read_postgres if conn.dialect.name == "postgresql" else _read_sqlite
    return read(conn, sql, names, dtypes)


def sorted_by(df: pd.DataFrame, *keys: str) -> pd.DataFrame:
    """Sort in numpy, not SQL: an ORDER BY makes the database spill a million wide rows to disk."""
    order = np.lexsort([df[k].to_numpy() for k in reversed(keys)])
    if np.array_equal(order, np.arange(len(df))):
        return df
    return df.iloc[order].reset_index(drop=True)


@contextmanager
def bulk_reader(store: Store) -> Iterator[Connection]:
    """A connection for reading whole tables.

    On PostgreSQL nested-loop joins are switched off for its transaction: right after a bulk
    COPY, before autovacuum has analysed the tables, the planner believes they hold one row and
    joins a million nodes to a million solution rows by nested loop (an export that did not
    finish in 15 minutes on the 1M-node store). Hash joins are linear whatever the statistics.
    """
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        yield conn


def track_points(store: Store, movie: Movie, solution_id: int) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """``track_id, t, [z,] y, x`` of every cell of a solution (sorted by track, then frame) and
    the (track, parent track) pairs of its tracks that have a parent."""
    n, sn, tr = schema.node.c, schema.solution_node.c, schema.track.c
    coords = [n.z, n.y, n.x] if movie.ndim == 3 else [n.y, n.x]
    query = (
        sa.select(sn.track_id, n.t, *coords)
        .select_from(schema.solution_node.join(schema.node, n.id == sn.node_id))
        .where(sn.solution_id == solution_id)
    )
    with bulk_reader(store) as conn:
        table = sorted_by(read_frame(conn, query, {"track_id": False, "t": False}), "track_id", "t")
        links = conn.execute(
            sa.select(tr.track_id, tr.parent_track_id)
            .where(tr.solution_id == solution_id, tr.parent_track_id.is_not(None))
            .order_by(tr.track_id)
        ).all()
    return table, [(int(a), int(b)) for a, b in links]


def _resolve_solution(store: Store, movie: Movie, solution: str | int | None, candidates: bool) -> int | None:
    # The candidate graph needs no solution; a solution export defaults to the current one.
    if solution is not None or not candidates:
        return store.solution_id(movie, solution)
    return movie.current_solution_id


def _selected(member_key: sa.ColumnElement) -> sa.ColumnElement:
    return sa.case((member_key.is_(None), False), else_=True).cast(sa.Boolean).label("selected")


def _node_query(
    movie: Movie, sid: int | None, candidates: bool, prob_run: int | None, include_blobs: bool
) -> tuple[sa.Select, dict[str, bool]]:
    n, sn, npr = schema.node, schema.solution_node, schema.node_probability
    skip = _NODE_SKIP + ("run_id",) + (() if include_blobs else _BLOBS) + (_DROP_IN_2D if movie.ndim == 2 else ())
    cols: list[sa.ColumnElement] = [n.c.id.label("node_id"), *(c for c in n.c if c.name not in skip), n.c.run_id]
    nullable = {c.name: bool(c.nullable) for c in n.c} | {"node_id": False}
    frm: sa.FromClause = n
    where = [n.c.movie_id == movie.id]
    if sid is not None and candidates:
        frm = frm.outerjoin(sn, (sn.c.node_id == n.c.id) & (sn.c.solution_id == sid))
        cols += [sn.c.track_id, _selected(sn.c.node_id)]
    elif sid is not None:
        frm = frm.join(sn, sn.c.node_id == n.c.id)
        where.append(sn.c.solution_id == sid)
        cols.append(sn.c.track_id)
        nullable["track_id"] = False
    if prob_run is not None:
        frm = frm.outerjoin(npr, (npr.c.node_id == n.c.id) & (npr.c.run_id == prob_run))
        cols += [npr.c.p.label("probability"), npr.c.entropy]
    return sa.select(*cols).select_from(frm).where(*where), nullable


def _edge_query(
    movie: Movie, sid: int | None, candidates: bool, prob_run: int | None
) -> tuple[sa.Select, dict[str, bool]]:
    e, se, epr = schema.edge, schema.solution_edge, schema.edge_probability
    skip = _EDGE_SKIP + ("run_id",)
    cols: list[sa.ColumnElement] = [e.c.id.label("edge_id"), *(c for c in e.c if c.name not in skip), e.c.run_id]
    nullable = {c.name: bool(c.nullable) for c in e.c} | {"edge_id": False}
    frm: sa.FromClause = e
    where = [e.c.movie_id == movie.id]
    if sid is not None and candidates:
        frm = frm.outerjoin(se, (se.c.edge_id == e.c.id) & (se.c.solution_id == sid))
        cols.append(_selected(se.c.edge_id))
    elif sid is not None:
        frm = frm.join(se, se.c.edge_id == e.c.id)
        where.append(se.c.solution_id == sid)
    if prob_run is not None:
        frm = frm.outerjoin(epr, (epr.c.edge_id == e.c.id) & (epr.c.run_id == prob_run))
        cols += [epr.c.p.label("probability"), epr.c.method.label("probability_method")]
    return sa.select(*cols).select_from(frm).where(*where), nullable


def graph_frames(
    store: Store,
    movie_name: str | int,
    solution: str | int | None = None,
    *,
    candidates: bool = False,
    include_blobs: bool = False,
) -> GraphFrames:
    """Nodes, edges and tracks of one solution, or of the whole candidate graph of a movie.

    ``candidates=True`` returns every node and edge of the movie, with ``selected`` and
    ``track_id`` from ``solution`` (default: the current one, if any).
    """
    movie = store.movie(movie_name)
    sid = _resolve_solution(store, movie, solution, candidates)
    # the probabilities that describe this solution (a newer run of another solution does not);
    # the whole candidate graph without a solution takes the newest run
    if sid is None:
        latest = runs.latest_run(store, movie.id, runs.RunKind.UNCERTAINTY)
        nrun = erun = None if latest is None else latest.id
    else:
        nrun = erun = runs.uncertainty_run_of(store, movie, sid)
    with bulk_reader(store) as conn:
        nodes = read_frame(conn, *_node_query(movie, sid, candidates, nrun, include_blobs))
        edges = read_frame(conn, *_edge_query(movie, sid, candidates, erun))
        tracks = None if sid is None else _tracks(conn, sid)
    nodes, edges = sorted_by(nodes, "node_id"), sorted_by(edges, "edge_id")
    return GraphFrames(movie, sid, candidates, nodes, edges, tracks, nrun, erun)


def _tracks(conn: Connection, solution_id: int) -> pd.DataFrame:
    tr, sn = schema.track, schema.solution_node
    counts = (
        sa.select(sn.c.track_id, sa.func.count().label("n_nodes"))
        .where(sn.c.solution_id == solution_id)
        .group_by(sn.c.track_id)
        .subquery()
    )
    q = (
        sa.select(
            tr.c.track_id,
            tr.c.start_t,
            tr.c.end_t,
            tr.c.parent_track_id,
            sa.func.coalesce(counts.c.n_nodes, 0).cast(sa.Integer).label("n_nodes"),
            tr.c.confidence_min,
            tr.c.confidence_product,
        )
        .select_from(tr.outerjoin(counts, counts.c.track_id == tr.c.track_id))
        .where(tr.c.solution_id == solution_id)
    )
    nullable = {c.name: bool(c.nullable) for c in tr.c} | {"n_nodes": False}
    df = sorted_by(read_frame(conn, q, nullable), "track_id")
    df.insert(4, "lineage_id", lineage_roots(df["track_id"].to_numpy(), df["parent_track_id"]))
    return df


def lineage_roots(track_ids: np.ndarray, parents: pd.Series) -> np.ndarray:
    """Root track of every track, by pointer jumping (log depth vectorised steps, no recursion)."""
    ids = np.asarray(track_ids, dtype=np.int64)
    if len(ids) == 0:
        return ids
    order = np.argsort(ids)
    par = parents.to_numpy(dtype=np.float64, na_value=np.nan)
    has_parent = ~np.isnan(par)
    pos = np.searchsorted(ids[order], par[has_parent].astype(np.int64))
    pos = np.clip(pos, 0, len(ids) - 1)
    found = ids[order][pos] == par[has_parent].astype(np.int64)
    up = np.arange(len(ids))  # index of each track's parent (itself for roots / unknown parents)
    up[np.flatnonzero(has_parent)[found]] = order[pos[found]]
    for _ in range(64):
        nxt = up[up]
        if np.array_equal(nxt, up):
            break
        up = nxt
    return ids[up]


__all__ = ["GraphFrames", "bulk_reader", "graph_frames", "lineage_roots", "read_frame", "sorted_by"]
