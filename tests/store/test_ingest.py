"""Bulk ingest: values survive the round trip, re-runs are idempotent, ids never collide."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from inference.types import CandidateEdges, Candidates
from trackdb import ingest, schema
from trackdb.masks import decode_embedding, decode_mask, encode_mask
from trackdb.store import Store


def make_candidates(frames: range, per_frame: int = 4, dim: int = 8, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    n = len(frames) * per_frame
    masks = [rng.random((int(h), int(w))) > 0.3 for h, w in rng.integers(2, 9, size=(n, 2))]
    lo = rng.integers(0, 50, size=(n, 2))
    shapes = np.array([m.shape for m in masks])
    parent = np.full(n, -1)
    parent[1::per_frame] = np.arange(0, n, per_frame)  # second candidate of a frame sits in the first
    return Candidates(
        t=np.repeat(np.array(frames), per_frame), label=np.tile(np.arange(1, per_frame + 1), len(frames)),
        centroid=lo + shapes / 2, area=np.array([m.sum() for m in masks]), bbox=np.hstack([lo, lo + shapes]),
        masks=masks, hier_parent=parent, threshold=rng.random(n), score=rng.random(n), max_prob=rng.random(n),
        embedding=rng.standard_normal((n, dim)).astype(np.float32), prev_centroid=lo.astype(float))


def _movie(store: Store) -> tuple[int, int]:
    with store.engine.begin() as c:
        mid = store.add_movie(c, "m", (64, 64), 10)
    with store.run(mid, "test") as rid:
        pass
    return mid, rid


def test_nodes_roundtrip_values(store: Store) -> None:
    mid, rid = _movie(store)
    cands = make_candidates(range(3))
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, mid, rid, cands, "forest")
    assert len(set(ids.tolist())) == len(cands) and ids.min() >= 1
    with store.engine.connect() as c:
        rows = {r.id: r._mapping for r in c.execute(sa.select(schema.node))}
    for i, nid in enumerate(ids.tolist()):
        r = rows[nid]
        assert (r["t"], r["label"]) == (cands.t[i], cands.label[i])
        assert np.isclose(r["y"], cands.centroid[i, 0]) and np.isclose(r["prev_x"], cands.prev_centroid[i, 1])
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
    edges = CandidateEdges(source=np.array([0, 4]), target=np.array([4, 8]), dt=np.array([1, 1]),
                           distance=np.array([1.0, 2.0]), iou=np.array([0.5, 0.25]))
    for _ in range(2):
        with store.engine.begin() as c:
            ingest.insert_edges(c, mid, rid, ids2, both.t, edges, cost=np.array([-1.0, 0.5]))
    with store.engine.connect() as c:
        got = c.execute(sa.select(schema.edge.c.source_id, schema.edge.c.target_id, schema.edge.c.cost)
                        .order_by(schema.edge.c.t)).all()
    assert [tuple(g) for g in got] == [(ids2[0], ids2[4], -1.0), (ids2[4], ids2[8], 0.5)]


def test_id_blocks_are_disjoint(store: Store) -> None:
    with store.engine.begin() as c:
        a = ingest.allocate_ids(c, "node", 1000)
        b = ingest.allocate_ids(c, "node", 10)
    assert b == a + 1000


def test_failed_batch_leaves_nothing(store: Store) -> None:
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
