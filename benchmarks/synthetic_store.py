"""A large synthetic store for the ingest and query benchmarks (not a pytest module).

``frames × cells`` nodes with ~30×30 bbox masks (a pool of ellipse shapes, each packed per
node as ingest does) and 64-dim embeddings; every node links to ``links`` nodes of the next
frame, the first of which continues its chain, so the MAP solution is ``cells`` tracks of
``frames`` cells each and a cell at frame t has lineage depth t.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from inference.types import CandidateEdges, Candidates
from trackdb.store import Store, ingest, runs
from trackdb.store.runs import CandidatesParams, RunKind

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def mask_pool(n: int = 256, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(n):
        h, w = rng.integers(24, 36, size=2)
        yy, xx = np.mgrid[:h, :w]
        pool.append(((yy - h / 2 + 0.5) / (h / 2)) ** 2 + ((xx - w / 2 + 0.5) / (w / 2)) ** 2 <= 1.0)
    return pool


def frame_candidates(
    t0: int, n_frames: int, cells: int, pool: list[np.ndarray], rng: np.random.Generator, dim: int = 64
) -> Candidates:
    n = n_frames * cells
    pick = rng.integers(0, len(pool), n)
    masks = [pool[i] for i in pick.tolist()]
    shapes = np.array([m.shape for m in masks])
    lo = rng.integers(0, 4000, size=(n, 2))
    return Candidates(
        t=np.repeat(np.arange(t0, t0 + n_frames), cells),
        label=np.tile(np.arange(1, cells + 1), n_frames),
        centroid=lo + shapes / 2.0,
        area=np.array([int(m.sum()) for m in masks]),
        bbox=np.hstack([lo, lo + shapes]),
        masks=masks,
        hier_parent=np.full(n, -1),
        threshold=np.ones(n),
        score=rng.random(n),
        max_prob=np.ones(n),
        embedding=rng.standard_normal((n, dim)).astype(np.float32),
    )


@dataclass
class Built:
    url: str
    movie: str
    node_seconds: float
    edge_seconds: float
    solution_seconds: float
    n_nodes: int
    n_edges: int
    solution_id: int


def fresh_url(engine: str, path: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{path}"
    name = f"bench_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(PG_BASE)
    with eng.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {name}")
    eng.dispose()
    return f"{PG_BASE}?options=-csearch_path%3D{name}"


def drop_pg(url: str) -> None:
    if "search_path" in url:
        name = url.rsplit("%3D", 1)[1]
        eng = sa.create_engine(PG_BASE)
        with eng.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        eng.dispose()


def build(
    url: str,
    frames: int,
    cells: int,
    links: int = 3,
    batch_frames: int = 20,
    progress: Callable[[int], object] | None = None,
) -> Built:
    rng = np.random.default_rng(1)
    pool = mask_pool()
    store = Store(url, create=True)
    with store.engine.begin() as c:
        movie_id = store.add_movie(c, "synthetic", (4100, 4100), frames)
    params = CandidatesParams(source="benchmark-ingest", kind="labels")
    with runs.record(store, movie_id, RunKind.CANDIDATES, params) as run_id:
        node_ids = np.zeros((frames, cells), np.int64)
        node_s = edge_s = 0.0
        for t0 in range(0, frames, batch_frames):
            nf = min(batch_frames, frames - t0)
            cands = frame_candidates(t0, nf, cells, pool, rng)
            start = time.perf_counter()
            with store.engine.begin() as c:
                ids = ingest.insert_nodes(c, movie_id, run_id, cands, "labels")
            node_s += time.perf_counter() - start
            node_ids[t0 : t0 + nf] = ids.reshape(nf, cells)
            if progress:
                progress(t0 + nf)
        # edges: cell i at t -> (i, i+1, i+2 ...) at t+1; the first continues the chain
        src_local = np.repeat(np.arange(cells), links)
        dst_local = (src_local + np.tile(np.arange(links), cells)) % cells
        edge_ids = []
        for t0 in range(0, frames - 1, batch_frames):
            ts = np.arange(t0, min(t0 + batch_frames, frames - 1))
            src = (ts[:, None] * cells + src_local[None]).ravel()
            dst = ((ts[:, None] + 1) * cells + dst_local[None]).ravel()
            flat_ids = node_ids.ravel()
            all_t = np.repeat(np.arange(frames), cells)
            e = CandidateEdges(
                source=src,
                target=dst,
                dt=np.ones(len(src), np.int64),
                distance=rng.random(len(src)) * 20,
                iou=rng.random(len(src)),
            )
            start = time.perf_counter()
            with store.engine.begin() as c:
                edge_ids.append(
                    ingest.insert_edges(c, movie_id, run_id, flat_ids, all_t, e, cost=rng.standard_normal(len(src)))
                )
            edge_s += time.perf_counter() - start
        eids = np.concatenate(edge_ids)
        chain = eids.reshape(-1, cells, links)[:, :, 0].ravel()
        start = time.perf_counter()
        with store.engine.begin() as c:
            tracks = np.column_stack(
                [
                    np.arange(1, cells + 1),
                    np.zeros(cells, np.int64),
                    np.full(cells, frames - 1),
                    np.zeros(cells, np.int64),
                ]
            )
            sid = ingest.insert_solution(
                c,
                run_id=run_id,
                movie_id=movie_id,
                node_ids=node_ids.ravel(),
                node_t=np.repeat(np.arange(frames), cells),
                track_ids=np.tile(np.arange(1, cells + 1), frames),
                edge_ids=chain,
                edge_source_ids=node_ids[:-1].ravel(),
                edge_target_ids=node_ids[1:].ravel(),
                tracks=tracks,
                status="optimal",
                name="map",
            )
            store.set_current_solution(c, movie_id, sid)
        sol_s = time.perf_counter() - start
    store.close()
    return Built(url, "synthetic", node_s, edge_s, sol_s, frames * cells, len(eids), sid)
