"""Bulk ingest of candidate nodes, edges and solutions: the write path every stage uses.

Rows are built column-wise from numpy arrays and written as one Arrow table per batch: binary
``COPY`` on PostgreSQL, ADBC into a staging file copied by ``INSERT … SELECT`` on SQLite
(``trackdb.store.bulk``, ``trackdb.store.arrow_ingest``). Callers hand in a ``Connection``
inside a transaction, so one batch is one transaction and a failure leaves no row behind (ids
reserved for it stay unused). Re-running a stage is idempotent at frame granularity: frames that
a run already wrote are skipped, never duplicated, also when two writers of the same frames run
at once (a retried task beside the original): the batch first holds its frames
(:func:`lock_frames`), then checks which are done.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from inference.types import CandidateEdges, Candidates
from trackdb.store import schema
from trackdb.store.bulk import (  # noqa: F401 (re-exported)
    _nullable,
    bulk_insert,
    bulk_insert_columns,
    refresh_statistics,
)
from trackdb.store.codecs import encode_masks

_ALLOCATE = sa.text("UPDATE id_block SET next_id = next_id + :n WHERE name = :k RETURNING next_id")


def allocate_ids(conn: Connection, kind: str, n: int) -> int:
    """Reserve ``n`` consecutive ids for ``kind`` ('node' or 'edge'); returns the first.

    A single UPDATE … RETURNING is atomic on both engines, so parallel writers get disjoint
    blocks without coordinating. On PostgreSQL it commits at once on a connection of its own:
    in the batch's transaction the ``id_block`` row would stay locked until that batch commits,
    and parallel writers queued behind it (4 writers spent most of their time waiting on it).
    The ids of a batch that then fails stay unused. On SQLite the batch already holds the
    database's only write lock, so the update runs in it.
    """
    params = {"n": int(n), "k": kind}
    if conn.dialect.name != "postgresql":
        return int(conn.execute(_ALLOCATE, params).one()[0]) - int(n)
    with conn.engine.connect() as own:
        first = int(own.execute(_ALLOCATE, params).one()[0]) - int(n)
        own.commit()
    return first


def lock_frames(conn: Connection, table: sa.Table, run_id: int, frames: np.ndarray) -> None:
    """Hold ``run_id``'s ``frames`` of ``table`` until the caller's transaction ends, so that a
    check of which frames are done and the write that follows are atomic.

    PostgreSQL: a transaction-scoped advisory lock per frame, keyed by schema, table, run and
    frame, taken in ascending order (two writers of overlapping frames never deadlock); writers
    of other frames do not wait. SQLite: the database's write lock (a write that changes
    nothing), which every writer takes anyway.
    """
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql("UPDATE id_block SET next_id = next_id WHERE 0")
        return
    conn.execute(
        sa.text(
            "SELECT count(pg_advisory_xact_lock(hashtext(current_schema() || :key), f)) "
            "FROM (SELECT DISTINCT unnest(CAST(:frames AS int[])) AS f ORDER BY f) AS frames"
        ),
        {"key": f":trackdb-frames:{table.name}:{int(run_id)}", "frames": np.unique(frames).tolist()},
    )


def _col(a: np.ndarray | None, n: int) -> list:
    return [None] * n if a is None else a.tolist()


NODE_COLUMNS = (
    "id",
    "movie_id",
    "run_id",
    "t",
    "label",
    "z",
    "y",
    "x",
    "area",
    "bbox_z0",
    "bbox_y0",
    "bbox_x0",
    "bbox_z1",
    "bbox_y1",
    "bbox_x1",
    "hier_parent_id",
    "threshold",
    "score",
    "max_prob",
    "prev_z",
    "prev_y",
    "prev_x",
    "mask",
    "embedding",
    "embedding_dim",
    "source",
)


def frames_done(conn: Connection, table: sa.Table, run_id: int, frames: np.ndarray | None = None) -> set[int]:
    """Frames of ``table`` that ``run_id`` has written; with ``frames``, only those among them.

    A batch asks about its own frames: the index on ``(run_id, t, …)`` then reads only the
    rows of that frame range (none for a new batch) instead of every row the run wrote before,
    which made a run's batches cost more the further it got (1M nodes in batches of 100k:
    0.18 s on SQLite, 0.75 s on PostgreSQL of 7 s).
    """
    q = sa.select(table.c.t).where(table.c.run_id == run_id)
    if frames is not None:
        if len(frames) == 0:
            return set()
        lo, hi = int(np.min(frames)), int(np.max(frames))
        q = q.where(table.c.t.between(lo, hi))
    rows = conn.execute(q.distinct())
    done = {int(r[0]) for r in rows}
    return done if frames is None else done & set(np.unique(frames).tolist())


def node_frames_done(conn: Connection, run_id: int) -> set[int]:
    """Frames a candidates run has already written (a resumed run skips them)."""
    return frames_done(conn, schema.node, run_id)


def node_ids_of_run(conn: Connection, run_id: int, t: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Database ids of the nodes a run wrote, aligned with ``(t, label)`` pairs."""
    rows = conn.execute(
        sa.select(schema.node.c.id, schema.node.c.t, schema.node.c.label).where(schema.node.c.run_id == run_id)
    ).all()
    lookup = {(int(r[1]), int(r[2])): int(r[0]) for r in rows}
    return np.array([lookup.get((int(a), int(b)), -1) for a, b in zip(t, label)], dtype=np.int64)


def insert_nodes(
    conn: Connection,
    movie_id: int,
    run_id: int,
    cands: Candidates,
    source: str,
    masks_encoded: Sequence[bytes] | None = None,
) -> np.ndarray:
    """Write candidates of one run; returns their database ids (aligned with ``cands``).

    Frames this run already wrote are skipped (idempotent re-run); their ids are looked up.
    ``masks_encoded`` lets a caller that already packed masks skip re-encoding. Masks are packed
    before the batch takes its frames (and, in a transaction that has not written yet, before it
    starts on the server): a large part of the payload is then not built while the batch
    holds SQLite's write lock or an open PostgreSQL transaction.
    """
    n = len(cands)
    if n == 0:
        return np.zeros(0, np.int64)
    t = np.asarray(cands.t, np.int64)
    packed = encode_masks(cands.masks) if masks_encoded is None else masks_encoded
    lock_frames(conn, schema.node, run_id, t)
    done = frames_done(conn, schema.node, run_id, t)
    new = ~np.isin(t, np.fromiter(done, np.int64, len(done))) if done else np.ones(n, bool)
    ids = np.full(n, -1, np.int64)
    if (~new).any():
        ids[~new] = node_ids_of_run(conn, run_id, t[~new], cands.label[~new])
    m = int(new.sum())
    if m == 0:
        return ids
    first = allocate_ids(conn, "node", m)
    ids[new] = np.arange(first, first + m, dtype=np.int64)
    idx = np.flatnonzero(new)
    d = cands.ndim
    cen = np.asarray(cands.centroid, np.float64)[idx]
    bbox = np.asarray(cands.bbox, np.int64)[idx]
    parent = np.asarray(cands.hier_parent, np.int64)[idx]
    if np.any(ids[parent[parent >= 0]] < 0):
        raise ValueError("hier_parent points to a candidate that was not written")
    parent_id = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    masks = list(packed) if m == n else [packed[i] for i in idx.tolist()]
    emb = None if cands.embedding is None else np.asarray(cands.embedding)[idx]
    prev = None if cands.prev_centroid is None else np.asarray(cands.prev_centroid, np.float64)[idx]
    cols: dict[str, object] = {
        "id": ids[idx],
        "movie_id": int(movie_id),
        "run_id": int(run_id),
        "t": t[idx],
        "label": np.asarray(cands.label, np.int64)[idx],
    }
    c0 = 1 if d == 3 else 0
    cols.update(
        z=cen[:, 0] if d == 3 else None, y=cen[:, c0], x=cen[:, c0 + 1], area=np.asarray(cands.area, np.int64)[idx]
    )
    if d == 3:
        cols.update(
            bbox_z0=bbox[:, 0],
            bbox_y0=bbox[:, 1],
            bbox_x0=bbox[:, 2],
            bbox_z1=bbox[:, 3],
            bbox_y1=bbox[:, 4],
            bbox_x1=bbox[:, 5],
        )
    else:
        cols.update(
            bbox_z0=None, bbox_y0=bbox[:, 0], bbox_x0=bbox[:, 1], bbox_z1=None, bbox_y1=bbox[:, 2], bbox_x1=bbox[:, 3]
        )
    roots = parent < 0
    cols["hier_parent_id"] = None if roots.all() else parent_id if not roots.any() else (parent_id, roots)
    cols.update(
        threshold=np.asarray(cands.threshold, np.float64)[idx],
        score=np.asarray(cands.score, np.float64)[idx],
        max_prob=np.asarray(cands.max_prob, np.float64)[idx],
    )
    if prev is None:
        cols.update(prev_z=None, prev_y=None, prev_x=None)
    else:
        cols.update(prev_z=prev[:, 0] if d == 3 else None, prev_y=prev[:, c0], prev_x=prev[:, c0 + 1])
    cols["mask"] = masks
    if emb is None:
        cols.update(embedding=None, embedding_dim=None)
    else:
        e32 = np.ascontiguousarray(emb, dtype="<f4")
        if e32.ndim != 2 or e32.shape[0] != m:
            raise ValueError(f"embedding must have shape ({m}, C), got {e32.shape}")
        cols.update(embedding=e32.reshape(m, -1).view(np.uint8), embedding_dim=int(e32.shape[1]))
    cols["source"] = source
    bulk_insert_columns(conn, schema.node, cols, m)
    return ids


EDGE_COLUMNS = (
    "id",
    "movie_id",
    "run_id",
    "source_id",
    "target_id",
    "t",
    "dt",
    "distance",
    "iou",
    "offset_vote",
    "embedding_distance",
    "cost",
)


def insert_edges(
    conn: Connection,
    movie_id: int,
    run_id: int,
    node_ids: np.ndarray,
    node_t: np.ndarray,
    edges: CandidateEdges,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """Write candidate links of one run (endpoints as local indices into ``node_ids``).

    Idempotent per source frame, like :func:`insert_nodes`. Returns the edge ids (−1 for
    edges of frames that were already written and are not looked up again).
    """
    e = len(edges.source)
    if e == 0:
        return np.zeros(0, np.int64)
    src_t = np.asarray(node_t, np.int64)[edges.source]
    lock_frames(conn, schema.edge, run_id, src_t)
    done = frames_done(conn, schema.edge, run_id, src_t)
    new = ~np.isin(src_t, np.fromiter(done, np.int64, len(done))) if done else np.ones(e, bool)
    ids = np.full(e, -1, np.int64)
    m = int(new.sum())
    if m == 0:
        return ids
    first = allocate_ids(conn, "edge", m)
    ids[new] = np.arange(first, first + m, dtype=np.int64)
    idx = np.flatnonzero(new)

    def opt(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, np.float64)[idx]

    cols = {
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
    bulk_insert_columns(conn, schema.edge, cols, m)
    return ids


def insert_solution(
    conn: Connection,
    *,
    run_id: int,
    movie_id: int,
    node_ids: np.ndarray,
    node_t: np.ndarray,
    track_ids: np.ndarray,
    edge_ids: np.ndarray,
    edge_source_ids: np.ndarray,
    edge_target_ids: np.ndarray,
    tracks: np.ndarray,
    status: str,
    rank: int = 0,
    name: str | None = None,
    objective: float | None = None,
    bound: float | None = None,
    gap: float | None = None,
    weight: float | None = None,
    track_confidence: np.ndarray | None = None,
) -> int:
    """Write one solution: its selected nodes (with their CTC track ids and frames), edges and tracks.

    ``edge_source_ids``/``edge_target_ids`` are the selected links' endpoint node ids (stored
    beside each link so that lineage walks need no join). ``tracks`` is a CTC table ``(K, 4)``:
    track id, start frame, end frame, parent track (0 = none). ``track_confidence`` optionally
    ``(K, 2)``: minimum and product of link probabilities.
    """
    if len(node_t) != len(node_ids) or len(track_ids) != len(node_ids):
        raise ValueError(f"solution of {len(node_ids)} nodes has {len(node_t)} frames and {len(track_ids)} track ids")

    def _f(v: float | None) -> float | None:
        return None if v is None or not np.isfinite(v) else float(v)

    sid = conn.execute(
        schema.solution.insert()
        .values(
            run_id=run_id,
            movie_id=movie_id,
            name=name,
            rank=rank,
            objective=_f(objective),
            bound=_f(bound),
            gap=_f(gap),
            weight=_f(weight),
            status=status,
            created_at=sa.func.now(),
        )
        .returning(schema.solution.c.id)
    ).scalar_one()
    conn.execute(schema.solution_layer.insert().values(solution_id=int(sid), layer_id=int(sid)))
    refresh_statistics(conn, schema.solution_layer)
    bulk_insert_columns(
        conn,
        schema.solution_node_stored,
        {
            "solution_id": int(sid),
            "node_id": np.asarray(node_ids),
            "track_id": np.asarray(track_ids),
            "t": np.asarray(node_t),
        },
        len(node_ids),
    )
    bulk_insert_columns(
        conn,
        schema.solution_edge_stored,
        {
            "solution_id": int(sid),
            "edge_id": np.asarray(edge_ids),
            "source_id": np.asarray(edge_source_ids),
            "target_id": np.asarray(edge_target_ids),
        },
        len(edge_ids),
    )
    tr = np.asarray(tracks, np.int64).reshape(-1, 4)
    if track_confidence is None:
        conf_min = conf_prod = [None] * len(tr)
    else:
        conf_min, conf_prod = track_confidence[:, 0].tolist(), track_confidence[:, 1].tolist()
    parent = _nullable(tr[:, 3], tr[:, 3] == 0)
    bulk_insert(
        conn,
        schema.track_stored,
        ("solution_id", "track_id", "start_t", "end_t", "parent_track_id", "confidence_min", "confidence_product"),
        zip([sid] * len(tr), tr[:, 0].tolist(), tr[:, 1].tolist(), tr[:, 2].tolist(), parent, conf_min, conf_prod),
    )
    return int(sid)
