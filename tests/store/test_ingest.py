"""Bulk ingest: values survive the round trip, re-runs are idempotent, ids never collide."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from inference.types import CandidateEdges, Candidates
from trackdb.store import Store, arrow_ingest, bulk, ingest, runs, schema
from trackdb.store.codecs import decode_embedding, decode_mask, encode_mask
from trackdb.store.runs import CandidatesParams, RunKind


def make_candidates(frames: range, per_frame: int = 4, dim: int = 8, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    n = len(frames) * per_frame
    masks = [rng.random((int(h), int(w))) > 0.3 for h, w in rng.integers(2, 9, size=(n, 2))]
    lo = rng.integers(0, 50, size=(n, 2))
    shapes = np.array([m.shape for m in masks])
    parent = np.full(n, -1)
    parent[1::per_frame] = np.arange(0, n, per_frame)  # second candidate of a frame sits in the first
    return Candidates(
        t=np.repeat(np.array(frames), per_frame),
        label=np.tile(np.arange(1, per_frame + 1), len(frames)),
        centroid=lo + shapes / 2,
        area=np.array([m.sum() for m in masks]),
        bbox=np.hstack([lo, lo + shapes]),
        masks=masks,
        hier_parent=parent,
        threshold=rng.random(n),
        score=rng.random(n),
        max_prob=rng.random(n),
        embedding=rng.standard_normal((n, dim)).astype(np.float32),
        prev_centroid=lo.astype(float),
    )


@pytest.fixture(params=["executemany", "staged"])
def sqlite_path(request, store: Store, tmp_path, monkeypatch):
    """Both SQLite transports of a column batch: ``executemany`` (small batches) and the ADBC
    staging file (every batch staged here, in ``tmp_path``); PostgreSQL runs the test once. After
    the test no staging file is left and no connection keeps one attached."""
    if request.param == "staged":
        if store.engine.dialect.name != "sqlite":
            pytest.skip("SQLite transport")
        monkeypatch.setattr(arrow_ingest, "STAGE_MIN_ROWS", 1)
        monkeypatch.setattr(arrow_ingest, "_STAGE_DIRS", (str(tmp_path),))
    yield request.param
    assert not list(tmp_path.glob("trackdb-stage-*")), "a staging file was left behind"
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as c:
            names = [r[1] for r in c.exec_driver_sql("PRAGMA database_list")]
        assert not [n for n in names if n.startswith(arrow_ingest.STAGE_SCHEMA)], names


def _movie(store: Store) -> tuple[int, int]:
    with store.engine.begin() as c:
        mid = store.add_movie(c, "m", (64, 64), 10)
    with runs.record(store, mid, RunKind.CANDIDATES, CandidatesParams(source="test", kind="labels")) as rid:
        pass
    return mid, rid


def test_nodes_roundtrip_values(store: Store, sqlite_path: str) -> None:
    mid, rid = _movie(store)
    cands = make_candidates(range(3))
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, mid, rid, cands, "forest")
    assert len(set(ids.tolist())) == len(cands)
    assert ids.min() >= 1
    with store.engine.connect() as c:
        rows = {r.id: r._mapping for r in c.execute(sa.select(schema.node))}
    assert cands.prev_centroid is not None
    assert cands.embedding is not None
    for i, nid in enumerate(ids.tolist()):
        r = rows[nid]
        assert (r["t"], r["label"]) == (cands.t[i], cands.label[i])
        assert np.isclose(r["y"], cands.centroid[i, 0])
        assert np.isclose(r["prev_x"], cands.prev_centroid[i, 1])
        shape = (r["bbox_y1"] - r["bbox_y0"], r["bbox_x1"] - r["bbox_x0"])
        assert np.array_equal(decode_mask(r["mask"], shape), cands.masks[i])
        assert np.array_equal(decode_embedding(r["embedding"], r["embedding_dim"]), cands.embedding[i])
        p = cands.hier_parent[i]
        assert r["hier_parent_id"] == (None if p < 0 else ids[p])


def test_rerun_is_idempotent(store: Store) -> None:
    mid, rid = _movie(store)
    first = make_candidates(range(2))
    with store.engine.begin() as c:
        ids1 = ingest.insert_nodes(c, mid, rid, first, "forest")
    both = make_candidates(range(4))  # frames 0-1 again (same labels) plus 2-3 new
    with store.engine.begin() as c:
        ids2 = ingest.insert_nodes(c, mid, rid, both, "forest")
    assert np.array_equal(ids2[: len(ids1)], ids1)
    with store.engine.connect() as c:
        count = c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one()
    assert count == len(both)
    edges = CandidateEdges(
        source=np.array([0, 4]),
        target=np.array([4, 8]),
        dt=np.array([1, 1]),
        distance=np.array([1.0, 2.0]),
        iou=np.array([0.5, 0.25]),
    )
    for _ in range(2):
        with store.engine.begin() as c:
            ingest.insert_edges(c, mid, rid, ids2, both.t, edges, cost=np.array([-1.0, 0.5]))
    with store.engine.connect() as c:
        got = c.execute(
            sa.select(schema.edge.c.source_id, schema.edge.c.target_id, schema.edge.c.cost).order_by(schema.edge.c.t)
        ).all()
    assert [tuple(g) for g in got] == [(ids2[0], ids2[4], -1.0), (ids2[4], ids2[8], 0.5)]


def test_id_blocks_are_disjoint(store: Store) -> None:
    with store.engine.begin() as c:
        a = ingest.allocate_ids(c, "node", 1000)
        b = ingest.allocate_ids(c, "node", 10)
    assert b == a + 1000


def test_failed_batch_leaves_nothing(store: Store, sqlite_path: str) -> None:
    mid, rid = _movie(store)
    cands = make_candidates(range(2))
    try:
        with store.engine.begin() as c:
            ingest.insert_nodes(c, mid, rid, cands, "forest")
            raise RuntimeError("crash after the write")
    except RuntimeError:
        pass
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one() == 0


def test_mask_codec_3d() -> None:
    m = np.random.default_rng(3).random((3, 5, 7)) > 0.5
    assert np.array_equal(decode_mask(encode_mask(m), m.shape), m)


def _make_3d(n: int = 6, seed: int = 1) -> Candidates:
    rng = np.random.default_rng(seed)
    masks = [rng.random((int(d), int(h), int(w))) > 0.4 for d, h, w in rng.integers(1, 6, size=(n, 3))]
    lo = rng.integers(0, 20, size=(n, 3))
    shapes = np.array([m.shape for m in masks])
    return Candidates(
        t=np.zeros(n, np.int64),
        label=np.arange(1, n + 1),
        centroid=lo + shapes / 3,
        area=np.array([m.sum() for m in masks]),
        bbox=np.hstack([lo, lo + shapes]),
        masks=masks,
        hier_parent=np.full(n, -1),
        threshold=rng.random(n),
        score=rng.random(n),
        max_prob=rng.random(n),
        embedding=None,
        prev_centroid=lo + 0.25,
    )


def test_nodes_3d_and_all_null_columns_roundtrip(store: Store) -> None:
    """3-D candidates bind z/bbox_z/prev_z; without embeddings both embedding columns stay NULL."""
    mid, rid = _movie(store)
    cands = _make_3d()
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, mid, rid, cands, "labels")
    with store.engine.connect() as c:
        rows = {r.id: r._mapping for r in c.execute(sa.select(schema.node))}
    assert cands.prev_centroid is not None
    for i, nid in enumerate(ids.tolist()):
        r = rows[nid]
        assert (r["z"], r["y"], r["x"]) == tuple(cands.centroid[i].tolist())
        assert (r["prev_z"], r["prev_y"], r["prev_x"]) == tuple(cands.prev_centroid[i].tolist())
        lo, hi = cands.bbox[i, :3].tolist(), cands.bbox[i, 3:].tolist()
        assert [r["bbox_z0"], r["bbox_y0"], r["bbox_x0"]] == lo
        assert [r["bbox_z1"], r["bbox_y1"], r["bbox_x1"]] == hi
        assert np.array_equal(decode_mask(r["mask"], np.subtract(hi, lo)), cands.masks[i])
        assert r["embedding"] is None
        assert r["embedding_dim"] is None
        assert r["hier_parent_id"] is None
        assert r["source"] == "labels"
        assert r["score"] == cands.score[i]


def test_bulk_columns_values_exact(store: Store, sqlite_path: str) -> None:
    """Every kind of column value survives the bulk path exactly: large ints, floats, NULLs, blobs."""
    mid, rid = _movie(store)
    n = 5
    floats = np.array([0.1, -0.0, 1e-300, 1.7976931348623157e308, 2.0 / 3.0])
    blobs = [b"", b"\x00\xff\x00", None, bytes(range(256)), b"\\x41'"]
    big = np.array([2**62, -(2**62), 2**63 - 1, -(2**63), 7], np.int64)
    cols = {
        "id": np.arange(10**12, 10**12 + n),
        "movie_id": mid,
        "run_id": rid,
        "t": np.arange(n),
        "label": big,
        "z": None,
        "y": floats,
        "x": floats[::-1].copy(),
        "area": np.array([0, 1, 2**31 - 1, -(2**31), 5]),
        "bbox_z0": None,
        "bbox_y0": np.zeros(n, np.int64),
        "bbox_x0": np.zeros(n, np.int32),
        "bbox_z1": None,
        "bbox_y1": np.ones(n, np.int64),
        "bbox_x1": np.ones(n, np.int64),
        "hier_parent_id": (big, np.array([False, True, False, True, False])),
        "threshold": np.arange(n),
        "score": None,
        "max_prob": None,
        "prev_z": None,
        "prev_y": None,
        "prev_x": (floats[::-1].copy(), np.array([True, False, True, False, False])),
        "mask": blobs,
        "embedding": np.arange(n * 8, dtype=np.uint8).reshape(n, 8),
        "embedding_dim": 2,
        "source": "it's",
    }
    with store.engine.begin() as c:
        assert ingest.bulk_insert_columns(c, schema.node, cols, n) == n
    with store.engine.connect() as c:
        rows = c.execute(sa.select(schema.node).order_by(schema.node.c.id)).all()
    assert [r.id for r in rows] == list(range(10**12, 10**12 + n))
    assert [r.label for r in rows] == big.tolist()
    assert [r.y for r in rows] == floats.tolist()
    assert [r.x for r in rows] == floats[::-1].tolist()
    assert [r.prev_x for r in rows] == [None, floats[3], None, floats[1], floats[0]]
    assert [r.area for r in rows] == [0, 1, 2**31 - 1, -(2**31), 5]
    assert [r.hier_parent_id for r in rows] == [2**62, None, 2**63 - 1, None, 7]
    assert [r.threshold for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [None if r.mask is None else bytes(r.mask) for r in rows] == blobs
    assert [bytes(r.embedding) for r in rows] == [bytes(range(8 * i, 8 * i + 8)) for i in range(n)]
    assert {(r.movie_id, r.run_id, r.embedding_dim, r.source) for r in rows} == {(mid, rid, 2, "it's")}
    assert all(r.z is None and r.bbox_z0 is None and r.score is None and r.prev_y is None for r in rows)


def test_bulk_columns_refuses_what_does_not_fit(store: Store, sqlite_path: str) -> None:
    mid, rid = _movie(store)
    cols = {
        "id": np.array([1]),
        "movie_id": mid + 99,
        "run_id": rid,
        "source_id": np.array([1]),
        "target_id": np.array([2]),
        "t": np.array([0]),
        "dt": np.array([1]),
    }
    with pytest.raises(Exception, match="(?i)foreign key"), store.engine.begin() as c:
        ingest.bulk_insert_columns(c, schema.edge, cols, 1)
    cols.update(movie_id=mid, t=np.array([2**31]))  # int4 column: no silent wrap-around, either engine
    with pytest.raises(OverflowError), store.engine.begin() as c:
        ingest.bulk_insert_columns(c, schema.edge, cols, 1)
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.edge)).scalar_one() == 0


def test_bulk_load_refreshes_planner_statistics_when_the_table_grew(store: Store) -> None:
    """PostgreSQL: a bulk load into a table without statistics, of any size, runs ANALYZE in its
    own transaction; a load that leaves the table less than twice as large does not again."""
    mid, rid = _movie(store)
    n = 2_000

    def load(first: int) -> None:
        edges = CandidateEdges(
            source=np.arange(n),
            target=np.arange(1, n + 1),
            dt=np.ones(n, np.int64),
            distance=np.ones(n),
            iou=np.zeros(n),
        )
        labels = np.arange(first, first + n + 1)
        with store.engine.begin() as c:
            ingest.insert_edges(c, mid, rid, labels, np.zeros(n + 1, np.int64), edges)

    def tuples() -> float | None:
        if store.engine.dialect.name != "postgresql":
            return None
        with store.engine.connect() as c:
            return c.exec_driver_sql("SELECT reltuples FROM pg_class WHERE oid = to_regclass('edge')").scalar()

    load(100)
    assert tuples() in (None, n)
    with store.engine.begin() as c:  # grow by a quarter: the statistics stay as they were
        ingest.insert_edges(
            c,
            mid,
            rid,
            np.arange(10_000, 10_000 + n // 4 + 1),
            np.ones(n // 4 + 1, np.int64),  # another source frame
            CandidateEdges(
                source=np.arange(n // 4),
                target=np.arange(1, n // 4 + 1),
                dt=np.ones(n // 4, np.int64),
                distance=np.ones(n // 4),
                iou=np.zeros(n // 4),
            ),
        )
    assert tuples() in (None, n)
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.edge)).scalar_one() == n + n // 4


# what a refused bulk write raises: the drivers' own errors (bulk paths use the DBAPI connection)
INTEGRITY_ERRORS = (sa.exc.IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


def _count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _chain_edges(cands: Candidates) -> CandidateEdges:
    """Each candidate to the same label one frame later."""
    src = np.flatnonzero(cands.t < cands.t.max())
    dst = src + int(np.sum(cands.t == cands.t.min()))
    n = len(src)
    return CandidateEdges(source=src, target=dst, dt=np.ones(n, np.int64), distance=np.ones(n), iou=np.ones(n))


def test_parallel_writers_write_each_frame_once(store: Store, sqlite_path: str) -> None:
    """Four writers at once, each of its own frames plus its neighbour's first one (a retried task
    beside the original): every frame is stored once, overlapping writers agree on its ids, and
    the links of a frame written by two writers at once are stored once."""
    mid, rid = _movie(store)
    per_frame = 50
    every = make_candidates(range(9), per_frame=per_frame)
    parts = [np.flatnonzero((every.t >= 2 * i) & (every.t <= 2 * i + 2)) for i in range(4)]
    barrier = threading.Barrier(4)
    node_ids: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            cands = _subset_candidates(every, parts[i])
            barrier.wait()
            with store.engine.begin() as c:
                node_ids[i] = ingest.insert_nodes(c, mid, rid, cands, "forest")
            barrier.wait()
            with store.engine.begin() as c:
                ingest.insert_edges(c, mid, rid, node_ids[i], cands.t, _chain_edges(cands))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert _count(store, schema.node) == len(every)
    for i in range(3):  # frame 2i+2 was written by writers i and i+1
        assert np.array_equal(node_ids[i][-per_frame:], node_ids[i + 1][:per_frame])
    everything = np.concatenate([node_ids[i] for i in range(4)])
    assert len(np.unique(everything)) == len(every)
    with store.engine.connect() as c:
        links = c.execute(sa.select(schema.edge.c.source_id, schema.edge.c.target_id)).all()
    assert len(links) == len(set(links)) == 8 * per_frame  # frames 0-7 each link once to the next


def _subset_candidates(cands: Candidates, idx: np.ndarray) -> Candidates:
    parent = np.asarray(cands.hier_parent)[idx]
    local = np.full(len(cands), -1)
    local[idx] = np.arange(len(idx))
    assert cands.embedding is not None
    assert cands.prev_centroid is not None
    return Candidates(
        t=cands.t[idx],
        label=cands.label[idx],
        centroid=cands.centroid[idx],
        area=cands.area[idx],
        bbox=cands.bbox[idx],
        masks=[cands.masks[i] for i in idx.tolist()],
        hier_parent=np.where(parent >= 0, local[np.maximum(parent, 0)], -1),
        threshold=cands.threshold[idx],
        score=cands.score[idx],
        max_prob=cands.max_prob[idx],
        embedding=cands.embedding[idx],
        prev_centroid=cands.prev_centroid[idx],
    )


def test_failed_batches_write_nothing(store: Store, sqlite_path: str) -> None:
    """A batch that repeats a (run, t, label) key in its last row, or names a run that does not
    exist, leaves no row behind; the ids reserved for it are never handed out again."""
    mid, rid = _movie(store)
    cands = make_candidates(range(2))
    bad_label = cands.label.copy()
    bad_label[-1] = bad_label[-2]
    repeated = dataclasses.replace(cands, label=bad_label)
    with pytest.raises(INTEGRITY_ERRORS), store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid, repeated, "forest")
    with pytest.raises(INTEGRITY_ERRORS, match="(?i)foreign key"), store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid + 99, cands, "forest")
    assert _count(store, schema.node) == 0
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, mid, rid, cands, "forest")
    assert _count(store, schema.node) == len(cands)
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT next_id FROM id_block WHERE name = 'node'")).scalar_one() == ids.max() + 1


def test_transaction_that_created_the_run_is_one_batch(store: Store, sqlite_path: str) -> None:
    """Nodes, links and a solution written in the transaction that created their movie and run (as
    an import does) see those rows, and all of it goes when that transaction fails."""
    cands = make_candidates(range(3))
    with pytest.raises(RuntimeError, match="crash"), store.engine.begin() as c:
        mid = store.add_movie(c, "imported", (64, 64), 3)
        rid = runs.record_finished(c, mid, RunKind.CANDIDATES, CandidatesParams(source="test", kind="labels"))
        ids = ingest.insert_nodes(c, mid, rid, cands, "labels")
        edges = _chain_edges(cands)
        edge_ids = ingest.insert_edges(c, mid, rid, ids, cands.t, edges)
        ingest.insert_solution(
            c,
            run_id=rid,
            movie_id=mid,
            node_ids=ids,
            node_t=cands.t,
            track_ids=cands.label,
            edge_ids=edge_ids,
            edge_source_ids=ids[edges.source],
            edge_target_ids=ids[edges.target],
            tracks=np.array([[label, 0, 2, 0] for label in range(1, 5)]),
            status="optimal",
        )
        assert c.execute(sa.select(sa.func.count()).select_from(schema.solution_node)).scalar_one() == len(cands)
        raise RuntimeError("crash after the writes")
    for table in (schema.movie, schema.run, schema.node, schema.edge, schema.solution, schema.track):
        assert _count(store, table) == 0


def test_both_engines_refuse_values_their_columns_cannot_hold(store: Store) -> None:
    """Fractional or NaN values for integer columns are refused, never truncated (SQLite's type
    affinity would store them: the batch is cast to the column types before either engine)."""
    mid, rid = _movie(store)
    edges = CandidateEdges(
        source=np.array([0]), target=np.array([1]), dt=np.array([1.5]), distance=np.ones(1), iou=np.ones(1)
    )
    with pytest.raises(TypeError, match="dt"), store.engine.begin() as c:
        ingest.insert_edges(c, mid, rid, np.array([10, 11]), np.array([0, 1]), edges)
    edges = dataclasses.replace(edges, dt=np.array([np.nan]))
    with pytest.raises(TypeError, match="dt"), store.engine.begin() as c:
        ingest.insert_edges(c, mid, rid, np.array([10, 11]), np.array([0, 1]), edges)
    assert _count(store, schema.edge) == 0


def test_postgres_foreign_key_triggers_back_on_after_a_batch(store: Store) -> None:
    """The constant-foreign-key shortcut switches the per-row triggers off for its COPY only."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    mid, rid = _movie(store)
    with store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid, make_candidates(range(1)), "forest")
        assert c.exec_driver_sql("SHOW session_replication_role").scalar_one() == "origin"
        with pytest.raises(sa.exc.IntegrityError):  # the triggers check this plain insert again
            with c.begin_nested():
                c.execute(
                    schema.edge.insert().values(
                        id=1, movie_id=mid + 99, run_id=rid, source_id=1, target_id=2, t=0, dt=1
                    )
                )


def test_frames_done_asks_only_about_the_batch_frames(store: Store) -> None:
    mid, rid = _movie(store)
    with store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid, make_candidates(range(2, 5)), "forest")
    with store.engine.connect() as c:
        assert ingest.frames_done(c, schema.node, rid) == {2, 3, 4}
        assert ingest.frames_done(c, schema.node, rid, np.array([0, 1, 1])) == set()
        assert ingest.frames_done(c, schema.node, rid, np.array([1, 3, 5])) == {3}  # 2 and 4 lie between
        assert ingest.frames_done(c, schema.node, rid, np.array([4, 0])) == {4}
        assert ingest.frames_done(c, schema.node, rid, np.zeros(0, np.int64)) == set()


def test_sparse_batch_over_written_frames_writes_only_new_ones(store: Store) -> None:
    """A batch whose frames straddle written ones (1 and 3 around 2, and 3 itself written)."""
    mid, rid = _movie(store)
    full = make_candidates(range(5))
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, mid, rid, full, "forest")
    first = _subset_candidates(full, np.flatnonzero(np.isin(full.t, [2, 3])))
    with runs.record(store, mid, RunKind.CANDIDATES, CandidatesParams(source="again", kind="labels")) as rid2:
        pass  # another run of the movie, holding frames 2-3 only
    with store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid2, first, "forest")
    batch = _subset_candidates(full, np.flatnonzero(np.isin(full.t, [1, 3])))
    with store.engine.begin() as c:
        ids2 = ingest.insert_nodes(c, mid, rid2, batch, "forest")
    with store.engine.connect() as c:
        got = c.execute(
            sa.select(schema.node.c.t, sa.func.count()).where(schema.node.c.run_id == rid2).group_by(schema.node.c.t)
        ).all()
    assert dict((int(t), int(k)) for t, k in got) == {1: 4, 2: 4, 3: 4}
    assert len(set(ids2.tolist())) == len(batch)
    assert not set(ids2.tolist()) & set(ids.tolist())
    with store.engine.begin() as c:  # the same batch again: nothing new, the same ids
        assert np.array_equal(ingest.insert_nodes(c, mid, rid2, batch, "forest"), ids2)
    assert _count(store, schema.node) == len(full) + 12


def test_new_sqlite_store_gets_large_pages_an_old_one_keeps_its_own(tmp_path) -> None:
    new = Store(f"sqlite:///{tmp_path / 'new.sqlite'}", create=True)
    with new.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA page_size").scalar() == 16384
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    new.close()
    old_path = tmp_path / "old.sqlite"
    with sqlite3.connect(old_path) as db:  # a store made before: 4 KiB pages, already in WAL mode
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
    db.close()
    old = Store(f"sqlite:///{old_path}", create=True)
    mid, rid = _movie(old)
    with old.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid, make_candidates(range(3)), "forest")
    with old.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA page_size").scalar() == 4096
        assert c.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one() == 12
    old.close()


def test_masks_are_packed_before_the_batch_holds_anything(store: Store, monkeypatch) -> None:
    """Packing masks is the payload's slowest Python step: it runs before the batch's first
    statement, so no write lock (SQLite) or open transaction (PostgreSQL) waits on it."""
    mid, rid = _movie(store)
    seen: list[bool] = []
    real = ingest.encode_masks

    def spy(masks: list[np.ndarray]) -> list[bytes]:
        raw = bulk.driver_connection(conn)
        if store.is_postgres:
            seen.append(raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
        else:
            seen.append(raw.in_transaction)
        return real(masks)

    monkeypatch.setattr(ingest, "encode_masks", spy)
    cands = make_candidates(range(3))
    with store.engine.begin() as conn:
        ids = ingest.insert_nodes(conn, mid, rid, cands, "forest")
    assert seen == [False]
    with store.engine.connect() as c:
        rows = c.execute(sa.select(schema.node.c.id, schema.node.c.mask).order_by(schema.node.c.id)).all()
    assert [r.id for r in rows] == sorted(ids.tolist())
    assert [bytes(r.mask) for r in rows] == [encode_mask(cands.masks[i]) for i in np.argsort(ids)]


def test_sqlite_staged_batch_is_in_the_callers_transaction(store: Store, tmp_path, monkeypatch) -> None:
    """SQLite, staged batches: twelve batches in one transaction (more than SQLite's ten attached
    files: the rest take ``executemany``) are all visible to it and all rolled back with it, the
    staging files are gone at once, and the attachments once the connection is back in the pool;
    committed, the rows equal those of ``executemany``."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite transport")
    mid, rid = _movie(store)
    cands = make_candidates(range(12), per_frame=5)
    batches = [_subset_candidates(cands, np.flatnonzero(cands.t == t)) for t in range(12)]
    monkeypatch.setattr(arrow_ingest, "STAGE_MIN_ROWS", 1)
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    monkeypatch.setattr(arrow_ingest, "_STAGE_DIRS", (str(stage_dir),))
    written: list[str] = []
    real_write = arrow_ingest._write_stage

    def write_stage(batch: object) -> str:
        written.append(real_write(batch))
        return written[-1]

    monkeypatch.setattr(arrow_ingest, "_write_stage", write_stage)

    def attached(c: sa.Connection) -> list[str]:
        names = [r[1] for r in c.exec_driver_sql("PRAGMA database_list")]
        return [n for n in names if n.startswith(arrow_ingest.STAGE_SCHEMA)]

    with pytest.raises(RuntimeError, match="crash"), store.engine.begin() as c:
        for b in batches:
            ingest.insert_nodes(c, mid, rid, b, "forest")
        assert c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one() == len(cands)
        assert len(attached(c)) == 10 == len(written)
        assert not list(stage_dir.iterdir())
        raise RuntimeError("crash after the writes")
    assert _count(store, schema.node) == 0
    with store.engine.begin() as c:
        assert attached(c) == []
        staged = ingest.insert_nodes(c, mid, rid, cands, "forest")
    monkeypatch.setattr(arrow_ingest, "STAGE_MIN_ROWS", 10**9)
    with store.engine.begin() as c:
        other_run = runs.record_finished(c, mid, RunKind.CANDIDATES, CandidatesParams(source="t", kind="labels"))
        plain = ingest.insert_nodes(c, mid, other_run, cands, "forest")
    cols = [col for col in schema.node.c if col.name not in ("id", "run_id", "hier_parent_id")]
    with store.engine.connect() as c:
        via_stage = c.execute(sa.select(*cols).where(schema.node.c.run_id == rid).order_by(schema.node.c.id)).all()
        via_rows = c.execute(sa.select(*cols).where(schema.node.c.run_id == other_run).order_by(schema.node.c.id)).all()
        types = c.exec_driver_sql(
            "SELECT DISTINCT run_id, typeof(t), typeof(y), typeof(mask), typeof(embedding), typeof(source) FROM node"
        ).all()
    assert len(via_stage) == len(cands)
    assert via_stage == via_rows
    assert {r[1:] for r in types} == {("integer", "real", "blob", "blob", "text")}
    assert len(staged) == len(plain) == len(cands)


def test_sqlite_staging_files_of_dead_writers_are_swept(store: Store, tmp_path, monkeypatch) -> None:
    """A staging file whose writer died before attaching it (SIGKILL) is deleted by the next staged
    batch in that folder; one of a live process stays."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite transport")
    proc = subprocess.Popen(["true"])  # a pid that has exited
    proc.wait()
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    orphan = stage_dir / f"{arrow_ingest.STAGE_FILE}{proc.pid}-abc.sqlite"
    live = stage_dir / f"{arrow_ingest.STAGE_FILE}{os.getpid()}-abc.sqlite"
    orphan.write_bytes(b"")
    live.write_bytes(b"")
    monkeypatch.setattr(arrow_ingest, "STAGE_MIN_ROWS", 1)
    monkeypatch.setattr(arrow_ingest, "_STAGE_DIRS", (str(stage_dir),))
    mid, rid = _movie(store)
    with store.engine.begin() as c:
        ingest.insert_nodes(c, mid, rid, make_candidates(range(1)), "forest")
    assert sorted(stage_dir.iterdir()) == [live]


_WRITE_WITHOUT_PANDAS = """
import sys
import numpy as np
from inference.types import CandidateEdges, Candidates
from trackdb.store import Store, arrow_ingest, ingest, runs
from trackdb.store.runs import CandidatesParams, RunKind

staged = []
real_write = arrow_ingest._write_stage
arrow_ingest._write_stage = lambda batch: staged.append(batch.num_rows) or real_write(batch)
store = Store(sys.argv[1])
with store.engine.begin() as c:
    mid = store.add_movie(c, "m", (64, 64), 10)
with runs.record(store, mid, RunKind.CANDIDATES, CandidatesParams(source="t", kind="labels")) as rid:
    pass
n = 6
cands = Candidates(
    t=np.repeat(np.arange(3), 2), label=np.tile([1, 2], 3), centroid=np.ones((n, 2)), area=np.full(n, 4),
    bbox=np.tile([0, 0, 2, 2], (n, 1)), masks=[np.ones((2, 2), bool)] * n, hier_parent=np.full(n, -1),
    threshold=np.zeros(n), score=np.ones(n), max_prob=np.ones(n), embedding=np.ones((n, 4), np.float32),
)
edges = CandidateEdges(source=np.array([0, 2]), target=np.array([2, 4]), dt=np.array([1, 1]),
                       distance=np.ones(2), iou=np.ones(2))
with store.engine.begin() as c:
    arrow_ingest.STAGE_MIN_ROWS = 1  # SQLite: the ADBC staging file
    ids = ingest.insert_nodes(c, mid, rid, cands, "test")
    arrow_ingest.STAGE_MIN_ROWS = 10**9  # SQLite: executemany
    edge_ids = ingest.insert_edges(c, mid, rid, ids, cands.t, edges)
    ingest.insert_solution(
        c, run_id=rid, movie_id=mid, node_ids=ids[:3], node_t=cands.t[:3], track_ids=np.array([1, 1, 2]),
        edge_ids=edge_ids[:1], edge_source_ids=ids[:1], edge_target_ids=ids[2:3],
        tracks=np.array([[1, 0, 1, 0], [2, 0, 0, 1]]), status="optimal",
    )
store.close()
print(store.engine.dialect.name, staged, "pandas" in sys.modules)
"""


def test_batch_writes_do_not_import_pandas(store: Store, db_url: str) -> None:
    """Writing nodes, edges and a solution (both SQLite transports, PostgreSQL's COPY) leaves pandas
    unimported: ``pa.array`` and ADBC's DB-API module would import it (~0.3 CPU-s a command)."""
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_WITHOUT_PANDAS, db_url], capture_output=True, text=True, check=True
    ).stdout.split()
    engine = store.engine.dialect.name
    assert out == [engine, "[6]" if engine == "sqlite" else "[]", "False"]
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one() == 6
        assert c.execute(sa.select(sa.func.count()).select_from(schema.solution_node_stored)).scalar_one() == 3


def test_arrow_columns_from_scalars_and_lists() -> None:
    """The batch vocabulary built from buffers (no ``pa.array``): repeated and listed text and
    blobs with NULLs, numbers from lists, and the same refusals as the numpy columns."""
    import pyarrow as pa

    col = arrow_ingest.arrow_column
    assert col("é", pa.string(), 3, "s").to_pylist() == ["é"] * 3
    assert col(b"", pa.binary(), 2, "b").to_pylist() == [b"", b""]
    assert col(["a", None, "ü"], pa.string(), 3, "s").to_pylist() == ["a", None, "ü"]
    assert col([b"\x00", None, bytearray(b"z")], pa.binary(), 3, "b").to_pylist() == [b"\x00", None, b"z"]
    assert col([1, None, 3], pa.int32(), 3, "i").to_pylist() == [1, None, 3]
    assert col([0.5, None], pa.float64(), 2, "f").to_pylist() == [0.5, None]
    assert col(np.int64(7), pa.int32(), 2, "i").to_pylist() == [7, 7]
    with pytest.raises(TypeError, match="s"):
        col([b"\xff"], pa.string(), 1, "s")  # not UTF-8
    with pytest.raises(TypeError, match="i"):
        col(1.5, pa.int64(), 2, "i")
    with pytest.raises(TypeError, match="i"):
        col([1, 2.5], pa.int64(), 2, "i")
    with pytest.raises(OverflowError):
        col(2**31, pa.int32(), 2, "i")
    with pytest.raises(OverflowError):
        col([2**64], pa.int64(), 1, "i")
    with pytest.raises(TypeError, match="b"):
        col([1], pa.binary(), 1, "b")
