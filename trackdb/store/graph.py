"""Read the candidate graph back from SQL into the plain dataclasses the solvers take.

One bulk SELECT per table, columns straight into numpy; masks are unpacked only when asked
(solvers need their covariance; pure linking on label images does not).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from inference.types import CandidateEdges, Candidates
from trackdb.store import schema
from trackdb.store.codecs import decode_embedding, decode_masks
from trackdb.store.core import Store


def load_candidates(
    store: Store,
    run_id: int,
    ndim: int,
    with_masks: bool = True,
    *,
    frames: tuple[int, int] | None = None,
    node_ids: np.ndarray | None = None,
) -> tuple[Candidates, np.ndarray]:
    """All nodes a run wrote, by frame and then id; returns (cands, ids).

    Within a frame ids follow the order the nodes were produced. Ordering by frame first makes
    the graph the same whatever order a run's frames were written in (parallel frame chunks,
    a resumed run), so a solve of it is too; for a run written frame after frame it is the id
    order.

    ``frames=(t0, t1)`` keeps frames t0 <= t <= t1 only, ``node_ids`` those ids only (an
    edit's neighbourhood); forest parents outside the selection read as roots."""
    n = schema.node.c
    cols = [
        n.id,
        n.t,
        n.label,
        n.z,
        n.y,
        n.x,
        n.area,
        n.bbox_z0,
        n.bbox_y0,
        n.bbox_x0,
        n.bbox_z1,
        n.bbox_y1,
        n.bbox_x1,
        n.hier_parent_id,
        n.threshold,
        n.score,
        n.max_prob,
        n.prev_z,
        n.prev_y,
        n.prev_x,
        n.embedding_dim,
    ]
    if with_masks:
        cols.append(n.mask)
    with store.engine.connect() as c:
        query = sa.select(*cols, n.embedding).where(n.run_id == run_id)
        if frames is not None:
            query = query.where(n.t >= int(frames[0]), n.t <= int(frames[1]))
        if node_ids is not None:
            query = query.where(n.id.in_([int(i) for i in np.asarray(node_ids).tolist()]))
        rows = _fetch(c, query.order_by(n.t, n.id))
    k = len(rows)
    if k == 0:
        return _empty(ndim), np.zeros(0, np.int64)
    cols_t = list(zip(*rows))
    get = {col.name: cols_t[i] for i, col in enumerate(cols)}

    def arr(name: str, dtype: type = np.float64) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in get[name]], dtype=dtype)

    ids = np.array(get["id"], np.int64)
    axes = ("z", "y", "x") if ndim == 3 else ("y", "x")
    centroid = np.column_stack([arr(a) for a in axes])
    bbox = np.column_stack(
        [np.array(get[f"bbox_{a}0"], np.int64) for a in axes] + [np.array(get[f"bbox_{a}1"], np.int64) for a in axes]
    )
    pos = {int(i): j for j, i in enumerate(ids.tolist())}
    parent = np.array([-1 if p is None else pos.get(int(p), -1) for p in get["hier_parent_id"]], np.int64)
    masks: list[np.ndarray] = []
    if with_masks:
        extent = bbox[:, ndim:] - bbox[:, :ndim]
        masks = decode_masks(get["mask"], extent)
    prev = np.column_stack([arr(f"prev_{a}") for a in axes])
    emb_blobs = cols_t[-1]
    dims = get["embedding_dim"]
    embedding = None
    if dims[0] is not None:
        embedding = np.stack([decode_embedding(b, d) for b, d in zip(emb_blobs, dims)])
    cands = Candidates(
        t=np.array(get["t"], np.int64),
        label=np.array(get["label"], np.int64),
        centroid=centroid,
        area=np.array(get["area"], np.int64),
        bbox=bbox,
        masks=masks,
        hier_parent=parent,
        threshold=arr("threshold"),
        score=arr("score"),
        max_prob=arr("max_prob"),
        embedding=embedding,
        prev_centroid=None if np.isnan(prev).all() else prev,
    )
    return cands, ids


def _fetch(conn: Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as the driver's plain tuples (SQLAlchemy's row objects cost as
    much again as the fetch itself on 10^5 rows). Its parameters are ids and frames, inlined."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw = conn.connection.driver_connection
    assert raw is not None  # an open connection
    cur = raw.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def _empty(ndim: int) -> Candidates:
    z = np.zeros(0, np.int64)
    return Candidates(
        t=z,
        label=z,
        centroid=np.zeros((0, ndim)),
        area=z,
        bbox=np.zeros((0, 2 * ndim), np.int64),
        masks=[],
        hier_parent=z,
        threshold=np.zeros(0),
        score=np.zeros(0),
        max_prob=np.zeros(0),
    )


def positions(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the database ids ``wanted`` in ``ids`` (any order), and which were found;
    the one map from store ids to the local indices of the plain-data rooms."""
    ids = np.asarray(ids, np.int64)
    wanted = np.asarray(wanted, np.int64)
    if len(ids) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[order], wanted), len(ids) - 1)
    return order[pos], ids[order][pos] == wanted


def load_edges(
    store: Store, run_id: int, node_ids: np.ndarray, *, frames: tuple[int, int] | None = None
) -> tuple[CandidateEdges, np.ndarray]:
    """Edges a link run wrote, endpoints as local indices into ``node_ids``; returns (edges, ids).

    By source frame and then id, for the reason :func:`load_candidates` gives. ``frames=(t0,
    t1)``: only edges between nodes of those frames (``node_ids`` those of the frames)."""
    e = schema.edge.c
    query = sa.select(e.id, e.source_id, e.target_id, e.dt, e.distance, e.iou, e.offset_vote, e.embedding_distance)
    query = query.where(e.run_id == run_id)
    if frames is not None:
        # t < t1 bounds the (run_id, t) index range: without it the read runs to the movie's end
        query = query.where(e.t >= int(frames[0]), e.t < int(frames[1]), e.t + e.dt <= int(frames[1]))
    with store.engine.connect() as c:
        rows = _fetch(c, query.order_by(e.t, e.id))

    def local(ids: np.ndarray) -> np.ndarray:
        pos, found = positions(node_ids, ids)
        if not found.all():
            raise ValueError(f"edges of run {run_id} refer to nodes outside the candidate set")
        return pos

    if not rows:
        z = np.zeros(0, np.int64)
        return CandidateEdges(z, z, z, np.zeros(0), np.zeros(0)), z
    vals = np.array(rows, np.float64)  # one conversion, NULL -> NaN (zip over the rows: 2.5x slower)
    if np.abs(vals[:, :3]).max() >= 2**53:  # ids beyond float64's integers: column by column
        ints = np.array([r[:4] for r in rows], np.int64)
    else:
        ints = vals[:, :4].astype(np.int64)

    def opt(i: int) -> np.ndarray | None:
        return None if rows[0][i] is None else vals[:, i].copy()

    edges = CandidateEdges(
        source=local(ints[:, 1]),
        target=local(ints[:, 2]),
        dt=ints[:, 3].copy(),
        distance=vals[:, 4].copy(),
        iou=vals[:, 5].copy(),
        offset_vote=opt(6),
        embedding_distance=opt(7),
    )
    return edges, ints[:, 0].copy()
