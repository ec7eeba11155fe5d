"""Nodes, edges and tracks of a movie as pandas tables, and their CSV / Parquet export.

Every graph export (GEFF, networkx, these tables) reads the store through :func:`graph_frames`:
three bulk queries, one per table, joined in SQL with solution membership and the latest
probabilities, so a 1M-node movie comes out in seconds instead of the minutes a per-row walk
would take.

Columns (``[z]`` columns only for 3D movies; ``NULL`` becomes an empty CSV cell / Parquet null):

``nodes``
    ``node_id, t, label, [z,] y, x, area, bbox_[z0,]y0,x0,[z1,]y1,x1`` (half-open, pixels),
    ``hier_parent_id`` (containing candidate in the forest), ``threshold, score, max_prob``,
    ``prev_[z,]y,x`` (previous-frame centre the pixels vote for), ``embedding_dim, source,
    run_id``; with a solution ``track_id`` (CTC track; empty for unselected candidates) and, for
    the candidate graph, ``selected``; with a probability run ``probability, entropy``;
    Parquet with ``include_blobs`` adds ``mask`` (``np.packbits`` of the bbox mask, C order)
    and ``embedding`` (float32 little-endian bytes).
``edges``
    ``edge_id, source_id, target_id, t`` (source frame), ``dt, distance, iou, offset_vote,
    embedding_distance, cost, run_id``; ``selected`` for the candidate graph with a solution;
    ``probability, probability_method`` with a probability run.
``tracks``
    ``track_id, start_t, end_t, parent_track_id`` (empty for a root), ``lineage_id`` (root
    track of the lineage tree), ``n_nodes, confidence_min, confidence_product``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .errors import TrackdbError
from .store import Movie, Store

TableFormat = Literal["csv", "parquet"]

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


def _dtype(col: sa.ColumnElement, nullable: bool) -> str | None:
    """pandas dtype for a SQL column: nullable ints as ``Int64`` (NULL stays NULL, not 0.0)."""
    t = col.type
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "Int64" if nullable else "int64"
    if isinstance(t, sa.Float):
        return "float64"  # NULL -> NaN; pyarrow writes NaN of a pandas column as null
    return None  # strings and bytes stay Python objects


def read_frame(conn: Connection, query: sa.Select, nullable: dict[str, bool]) -> pd.DataFrame:
    """Run one query and build a DataFrame column by column (no per-row objects kept)."""
    result = conn.execute(query)
    names = list(result.keys())
    rows = result.fetchall()
    columns = list(zip(*rows)) if rows else [()] * len(names)
    data: dict[str, pd.Series] = {}
    for name, sel, values in zip(names, query.selected_columns, columns):
        dtype = _dtype(sel, nullable.get(name, True))
        if dtype == "Int64":
            data[name] = pd.Series(pd.array(list(values), dtype="Int64"), name=name)
        elif dtype is not None:  # numpy turns None into NaN for float64
            data[name] = pd.Series(np.array(values, dtype=dtype), name=name)
        else:
            data[name] = pd.Series(list(values), name=name, dtype=object)
    return pd.DataFrame(data, columns=names)


def latest_probability_run(conn: Connection, table: sa.Table, movie_id: int) -> int | None:
    """Newest succeeded run of the movie that wrote rows into a probability table."""
    r = schema.run.c
    return conn.execute(sa.select(sa.func.max(r.id)).where(
        r.movie_id == movie_id, r.status == "succeeded",
        sa.exists().where(table.c.run_id == r.id))).scalar()


def _resolve_solution(store: Store, movie: Movie, solution: str | int | None, candidates: bool) -> int | None:
    # The candidate graph needs no solution; a solution export defaults to the current one.
    if solution is not None or not candidates:
        return store.solution_id(movie, solution)
    return movie.current_solution_id


def graph_frames(store: Store, movie_name: str | int, solution: str | int | None = None, *,
                 candidates: bool = False, include_blobs: bool = False) -> GraphFrames:
    """Nodes, edges and tracks of one solution, or of the whole candidate graph of a movie.

    ``candidates=True`` returns every node and edge of the movie, with ``selected`` and
    ``track_id`` from ``solution`` (default: the current one, if any).
    """
    movie = store.movie(movie_name)
    sid = _resolve_solution(store, movie, solution, candidates)
    n, e, sn, se = schema.node, schema.edge, schema.solution_node, schema.solution_edge
    npr, epr = schema.node_probability, schema.edge_probability
    with store.engine.connect() as conn:
        nrun = latest_probability_run(conn, npr, movie.id)
        erun = latest_probability_run(conn, epr, movie.id)

        skip = _NODE_SKIP + (() if include_blobs else _BLOBS) + (_DROP_IN_2D if movie.ndim == 2 else ())
        ncols: list[sa.ColumnElement] = ([n.c.id.label("node_id")]
                                         + [c for c in n.c if c.name not in skip + ("run_id",)] + [n.c.run_id])
        nullable = {c.name: c.nullable for c in n.c} | {"node_id": False}
        nfrom: sa.FromClause = n
        nwhere = [n.c.movie_id == movie.id]
        if sid is not None and candidates:
            nfrom = nfrom.outerjoin(sn, (sn.c.node_id == n.c.id) & (sn.c.solution_id == sid))
            ncols += [sn.c.track_id, sa.case((sn.c.node_id.is_(None), False), else_=True)
                      .cast(sa.Boolean).label("selected")]
        elif sid is not None:
            nfrom = nfrom.join(sn, sn.c.node_id == n.c.id)
            nwhere.append(sn.c.solution_id == sid)
            ncols.append(sn.c.track_id)
            nullable["track_id"] = False
        if nrun is not None:
            nfrom = nfrom.outerjoin(npr, (npr.c.node_id == n.c.id) & (npr.c.run_id == nrun))
            ncols += [npr.c.p.label("probability"), npr.c.entropy]
        nodes = read_frame(conn, sa.select(*ncols).select_from(nfrom).where(*nwhere).order_by(n.c.id), nullable)

        ecols: list[sa.ColumnElement] = ([e.c.id.label("edge_id")]
                                         + [c for c in e.c if c.name not in _EDGE_SKIP + ("run_id",)] + [e.c.run_id])
        enull = {c.name: c.nullable for c in e.c} | {"edge_id": False}
        efrom: sa.FromClause = e
        ewhere = [e.c.movie_id == movie.id]
        if sid is not None and candidates:
            efrom = efrom.outerjoin(se, (se.c.edge_id == e.c.id) & (se.c.solution_id == sid))
            ecols.append(sa.case((se.c.edge_id.is_(None), False), else_=True).cast(sa.Boolean).label("selected"))
        elif sid is not None:
            efrom = efrom.join(se, se.c.edge_id == e.c.id)
            ewhere.append(se.c.solution_id == sid)
        if erun is not None:
            efrom = efrom.outerjoin(epr, (epr.c.edge_id == e.c.id) & (epr.c.run_id == erun))
            ecols += [epr.c.p.label("probability"), epr.c.method.label("probability_method")]
        edges = read_frame(conn, sa.select(*ecols).select_from(efrom).where(*ewhere).order_by(e.c.id), enull)

        tracks = None if sid is None else _tracks(conn, sid)
    return GraphFrames(movie, sid, candidates, nodes, edges, tracks, nrun, erun)


def _tracks(conn: Connection, solution_id: int) -> pd.DataFrame:
    tr, sn = schema.track, schema.solution_node
    counts = (sa.select(sn.c.track_id, sa.func.count().label("n_nodes"))
              .where(sn.c.solution_id == solution_id).group_by(sn.c.track_id).subquery())
    q = (sa.select(tr.c.track_id, tr.c.start_t, tr.c.end_t, tr.c.parent_track_id,
                   sa.func.coalesce(counts.c.n_nodes, 0).cast(sa.Integer).label("n_nodes"),
                   tr.c.confidence_min, tr.c.confidence_product)
         .select_from(tr.outerjoin(counts, counts.c.track_id == tr.c.track_id))
         .where(tr.c.solution_id == solution_id).order_by(tr.c.track_id))
    nullable = {c.name: c.nullable for c in tr.c} | {"n_nodes": False}
    df = read_frame(conn, q, nullable)
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


def export_tables(store: Store, outdir: Path | str, movie_name: str | int, solution: str | int | None = None,
                  fmt: TableFormat = "csv", *, candidates: bool = False,
                  include_blobs: bool = False) -> dict[str, Path]:
    """Write ``nodes``, ``edges`` and (with a solution) ``tracks`` as CSV or Parquet files.

    Returns ``{"nodes": path, "edges": path, "tracks": path}``. Masks and embeddings go only into
    Parquet (``include_blobs=True``): bytes have no faithful CSV form.
    """
    if fmt not in ("csv", "parquet"):
        raise TrackdbError(f"unknown table format {fmt!r}: use csv or parquet")
    if include_blobs and fmt == "csv":
        raise TrackdbError("masks and embeddings can only be exported to parquet, not csv")
    frames = graph_frames(store, movie_name, solution, candidates=candidates, include_blobs=include_blobs)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tables = {"nodes": frames.nodes, "edges": frames.edges}
    if frames.tracks is not None:
        tables["tracks"] = frames.tracks
    paths: dict[str, Path] = {}
    for name, df in tables.items():
        path = outdir / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False, engine="pyarrow")
        paths[name] = path
    return paths


__all__ = ["GraphFrames", "TableFormat", "export_tables", "graph_frames", "latest_probability_run",
           "lineage_roots", "read_frame"]
