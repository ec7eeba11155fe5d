"""store.graph reads back what ingest wrote: every node column (masks of many shapes, forest
parents, embeddings, previous centres), edges with and without their optional scores, by frame
and then id, frame and id selections; the batch mask codec."""

from __future__ import annotations

import numpy as np
import pytest

from inference.types import CandidateEdges
from trackdb.store import Store, ingest, runs
from trackdb.store.codecs import decode_mask, decode_masks, encode_mask
from trackdb.store.graph import load_candidates, load_edges
from trackdb.store.runs import CandidatesParams, LinkParams, RunKind

from .test_ingest import make_candidates


def _written(store: Store, with_votes: bool) -> tuple:
    cands = make_candidates(range(4), per_frame=5, seed=3)
    with store.engine.begin() as c:
        mid = store.add_movie(c, "m", (64, 64), 4)
    with runs.record(store, mid, RunKind.CANDIDATES, CandidatesParams(source="test", kind="labels")) as rid:
        with store.engine.begin() as c:
            ids = ingest.insert_nodes(c, mid, rid, cands, "forest")
    src = np.flatnonzero(cands.t < 3)
    dst = src + 5  # the same slot one frame later
    n = len(src)
    rng = np.random.default_rng(0)
    edges = CandidateEdges(
        source=src,
        target=dst,
        dt=np.ones(n, np.int64),
        distance=rng.random(n),
        iou=rng.random(n),
        offset_vote=rng.random(n) if with_votes else None,
        embedding_distance=rng.random(n) if with_votes else None,
    )
    with runs.record(store, mid, RunKind.LINK, LinkParams(candidate_run_id=rid, max_distance=9.0, k=3, dt=1)) as lid:
        with store.engine.begin() as c:
            edge_ids = ingest.insert_edges(c, mid, lid, ids, cands.t, edges)
    return cands, ids, edges, edge_ids, rid, lid


@pytest.mark.parametrize("with_votes", [False, True])
def test_nodes_and_edges_round_trip(store: Store, with_votes: bool) -> None:
    cands, ids, edges, edge_ids, rid, lid = _written(store, with_votes)
    got, got_ids = load_candidates(store, rid, 2, with_masks=True)
    assert np.array_equal(got_ids, ids)  # written frame after frame: id order
    for name in ("t", "label", "area", "bbox", "hier_parent"):
        assert np.array_equal(getattr(got, name), getattr(cands, name)), name
    for name in ("centroid", "threshold", "score", "max_prob", "prev_centroid", "embedding"):
        assert np.allclose(getattr(got, name), getattr(cands, name)), name
    assert all(np.array_equal(a, b) for a, b in zip(got.masks, cands.masks))
    assert all(m.dtype == bool for m in got.masks)
    e, e_ids = load_edges(store, lid, got_ids)
    assert np.array_equal(e_ids, edge_ids)
    assert np.array_equal(e.source, edges.source)
    assert np.array_equal(e.target, edges.target)
    assert np.array_equal(e.dt, edges.dt)
    assert e.source.dtype == np.int64
    assert np.allclose(e.distance, edges.distance)
    assert np.allclose(e.iou, edges.iou)
    if with_votes:
        assert e.offset_vote is not None
        assert e.embedding_distance is not None
        assert np.allclose(e.offset_vote, edges.offset_vote)
        assert np.allclose(e.embedding_distance, edges.embedding_distance)
    else:
        assert e.offset_vote is None
        assert e.embedding_distance is None


def test_frame_and_id_selections(store: Store) -> None:
    cands, ids, _, edge_ids, rid, lid = _written(store, False)
    part, part_ids = load_candidates(store, rid, 2, with_masks=False, frames=(1, 2))
    assert np.array_equal(part_ids, ids[(cands.t >= 1) & (cands.t <= 2)])
    assert part.masks == []
    # the parents (first candidate of each frame) lie inside the frames: re-pointed locally
    assert part.hier_parent.tolist() == [-1, 0, -1, -1, -1, -1, 5, -1, -1, -1]
    e, e_ids = load_edges(store, lid, part_ids, frames=(1, 2))
    assert np.array_equal(e_ids, edge_ids[5:10])  # frame 1 -> 2 only
    some, some_ids = load_candidates(store, rid, 2, node_ids=ids[[1, 7]])
    assert np.array_equal(some_ids, ids[[1, 7]])
    assert np.array_equal(some.hier_parent, [-1, -1])  # their parents were not asked for
    empty, empty_ids = load_edges(store, lid, part_ids[:0], frames=(9, 9))
    assert len(empty_ids) == 0
    assert len(empty.source) == 0


def test_batch_mask_codec_matches_one_by_one() -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random(tuple(rng.integers(1, 7, 3))) > 0.5 for _ in range(50)] + [np.zeros((0, 3, 2), bool)]
    blobs = [encode_mask(m) for m in masks]
    shapes = np.array([m.shape for m in masks])
    got = decode_masks(blobs, shapes)
    assert all(
        np.array_equal(g, decode_mask(b, s)) and g.shape == m.shape for g, b, s, m in zip(got, blobs, shapes, masks)
    )
    assert decode_masks([], np.zeros((0, 2), np.int64)) == []
    with pytest.raises(ValueError, match="bbox"):
        decode_masks(blobs[:1], shapes[1:2] + 9)
