"""What the ADBC writer prototype keeps of trackdb's write contract, checked on both engines.

Every check runs on a fresh ``trackdb init`` store (SQLite file, PostgreSQL schema) and reports
what it observed beside ``ok``:

- ``same_rows_as_current``: 3-D forest candidates (NULL parents for roots, previous centres,
  embeddings), 2-D label candidates (NULL z, no embedding) and links with missing columns, written
  by the prototype and by ``trackdb.store.ingest``: identical rows, ids included; on SQLite the same
  storage class in every column.
- ``idempotent``: the same call again returns the same ids and writes nothing; a call with one
  written and one new frame looks the first up and writes the second; links likewise.
- ``atomic_fk`` / ``atomic_unique`` / ``refused_values``: a batch with an unknown run, one whose
  last row repeats a ``(run, t, label)`` key, nodes with an out-of-range frame and links with a
  fractional ``dt`` leave no row behind (ids reserved for them stay unused).
- ``raw_adbc_type_mapping``: what plain ``adbc_ingest`` stores when handed int64 for a
  ``double precision`` column (PostgreSQL) or 1.5 for an ``INTEGER`` column (SQLite): why the
  prototype casts to the table's types.
- PostgreSQL: ``role_restored`` (``session_replication_role`` back to origin after a batch),
  ``analyzed`` (statistics after a large first batch), ``exactly_once_concurrent`` (two processes
  writing the same frames at once: one copy of each row).
- SQLite: ``busy_wait`` (a batch waits for another process's write lock, then commits).

SQLite files are never open through ``sqlite3`` and ADBC at once in this process
(``adbc_sqlite_locks.py``). Prints one JSON object. Usage:
``python benchmarks/adbc_writer_checks.py [--pg-base URL]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adbc_writer_prototype import AdbcWriter  # noqa: E402
from common import emit  # noqa: E402
from ingest import drop_store, fresh_store, movie_and_run  # noqa: E402
from synthetic_store import PG_BASE, frame_candidates, mask_pool  # noqa: E402

from inference.types import CandidateEdges, Candidates  # noqa: E402


def forest_3d(t0: int, frames: int, per_frame: int, rng: np.random.Generator) -> Candidates:
    """3-D candidates: in each frame, pairs of children under one parent (roots have no parent)."""
    n = frames * per_frame
    masks = [rng.random((3, 4, 5)) < 0.6 for _ in range(n)]
    lo = rng.integers(0, 50, size=(n, 3))
    local = np.arange(n) % per_frame
    parent = np.where(local % 3 == 0, -1, np.arange(n) - local % 3)
    return Candidates(
        t=np.repeat(np.arange(t0, t0 + frames), per_frame),
        label=np.tile(np.arange(1, per_frame + 1), frames),
        centroid=lo + rng.random((n, 3)),
        area=np.array([int(m.sum()) for m in masks]),
        bbox=np.hstack([lo, lo + np.array([3, 4, 5])]),
        masks=masks,
        hier_parent=parent,
        threshold=rng.random(n),
        score=rng.random(n),
        max_prob=rng.random(n),
        embedding=rng.standard_normal((n, 8)).astype(np.float32),
        prev_centroid=lo + rng.random((n, 3)),
    )


def labels_2d(t0: int, frames: int, cells: int, rng: np.random.Generator) -> Candidates:
    c = frame_candidates(t0, frames, cells, mask_pool(16), rng, dim=4)
    return Candidates(
        t=c.t,
        label=c.label,
        centroid=c.centroid,
        area=c.area,
        bbox=c.bbox,
        masks=c.masks,
        hier_parent=c.hier_parent,
        threshold=c.threshold,
        score=c.score,
        max_prob=c.max_prob,
    )


def links(cands: Candidates, rng: np.random.Generator, with_vote: bool) -> CandidateEdges:
    t = np.asarray(cands.t)
    src = np.flatnonzero(t < t.max())
    dst = np.array([np.flatnonzero(t == t[s] + 1)[k % int((t == t[s] + 1).sum())] for k, s in enumerate(src)])
    e = len(src)
    return CandidateEdges(
        source=src,
        target=dst,
        dt=np.ones(e, np.int64),
        distance=rng.random(e) * 10,
        iou=rng.random(e),
        offset_vote=rng.random(e) if with_vote else None,
    )


def select_all(url: str, table: str) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """Every row of ``table`` ordered by id, and on SQLite each column's storage classes."""
    eng = sa.create_engine(url)
    with eng.connect() as c:
        cols = [col.name for col in sa.Table(table, sa.MetaData(), autoload_with=c).columns]
        rows = [tuple(r) for r in c.exec_driver_sql(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id")]
        classes = []
        if eng.dialect.name == "sqlite":
            classes = [
                [r[0] for r in c.exec_driver_sql(f"SELECT DISTINCT typeof({col}) FROM {table} ORDER BY 1")]
                for col in cols
            ]
    eng.dispose()
    return rows, classes


def count(url: str, sql: str) -> Any:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        value = c.exec_driver_sql(sql).scalar_one()
    eng.dispose()
    return value


def write_all(url: str, writer: str, movie_id: int, run_id: int) -> None:
    """The same candidates and links through either writer."""
    rng = np.random.default_rng(7)
    forest, flat = forest_3d(0, 3, 9, rng), labels_2d(3, 2, 6, rng)
    e1, c1 = links(forest, rng, True), rng.standard_normal(18)
    e2 = links(flat, rng, False)
    if writer == "adbc":
        with AdbcWriter(url) as w:
            ids = w.insert_nodes(movie_id, run_id, forest, "forest")
            ids2 = w.insert_nodes(movie_id, run_id, flat, "labels")
            w.insert_edges(movie_id, run_id, ids, forest.t, e1, cost=c1)
            w.insert_edges(movie_id, run_id, ids2, flat.t, e2)
        return
    from trackdb.store import Store, ingest

    store = Store(url)
    with store.engine.begin() as c:
        ids = ingest.insert_nodes(c, movie_id, run_id, forest, "forest")
    with store.engine.begin() as c:
        ids2 = ingest.insert_nodes(c, movie_id, run_id, flat, "labels")
    with store.engine.begin() as c:
        ingest.insert_edges(c, movie_id, run_id, ids, forest.t, e1, cost=c1)
    with store.engine.begin() as c:
        ingest.insert_edges(c, movie_id, run_id, ids2, flat.t, e2)
    store.close()


def same_rows_as_current(engine: str, folder: str, pg_base: str) -> dict[str, Any]:
    stores = {}
    for writer in ("current", "adbc"):
        url = fresh_store(engine, folder, pg_base)
        write_all(url, writer, *movie_and_run(url, 10))
        stores[writer] = url
    out: dict[str, Any] = {}
    for table in ("node", "edge"):
        (cur, cur_cls), (new, new_cls) = select_all(stores["current"], table), select_all(stores["adbc"], table)
        out[table] = {"rows": len(new), "identical": cur == new, "same_storage_classes": cur_cls == new_cls}
        if engine == "sqlite":
            out[table]["storage_classes"] = new_cls
    out["node_nulls"] = count(stores["adbc"], "SELECT count(*) FROM node WHERE hier_parent_id IS NULL") == 3 * 3 + 12
    for url in stores.values():
        drop_store(url, pg_base)
    out["ok"] = (
        all(out[t]["identical"] and out[t]["same_storage_classes"] for t in ("node", "edge")) and out["node_nulls"]
    )
    return out


def contract_checks(engine: str, folder: str, pg_base: str) -> dict[str, Any]:
    """Idempotency, atomicity, refused values and the PostgreSQL extras on one store."""
    url = fresh_store(engine, folder, pg_base)
    movie_id, run_id = movie_and_run(url, 400)
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {}
    with AdbcWriter(url) as w:

        def n_rows(table: str) -> int:
            with w.transaction() as cur:
                cur.execute(f"SELECT count(*) FROM {table}")
                return int(cur.fetchone()[0])

        def next_id() -> int:
            with w.transaction() as cur:
                cur.execute("SELECT next_id FROM id_block WHERE name = 'node'")
                return int(cur.fetchone()[0])

        first = labels_2d(0, 2, 5, rng)
        ids1 = w.insert_nodes(movie_id, run_id, first, "labels")
        again = w.insert_nodes(movie_id, run_id, first, "labels")
        both = labels_2d(1, 2, 5, np.random.default_rng(3))  # frame 1 (written) and frame 2 (new)
        ids_both = w.insert_nodes(movie_id, run_id, both, "labels")
        e = links(first, rng, False)
        eid1 = w.insert_edges(movie_id, run_id, ids1, first.t, e)
        eid2 = w.insert_edges(movie_id, run_id, ids1, first.t, e)
        out["idempotent"] = {
            "same_ids_again": bool(np.array_equal(ids1, again)),
            "nodes": n_rows("node"),
            "written_frame_looked_up": bool(np.array_equal(ids_both[:5], ids1[5:])),
            "new_frame_written": bool((ids_both[5:] > ids1.max()).all()),
            "edges_after_rerun": n_rows("edge"),
            "rerun_edge_ids": sorted(set(eid2.tolist())),
        }
        out["idempotent"]["ok"] = (
            out["idempotent"]["same_ids_again"]
            and out["idempotent"]["nodes"] == 15
            and out["idempotent"]["written_frame_looked_up"]
            and out["idempotent"]["new_frame_written"]
            and out["idempotent"]["edges_after_rerun"] == len(eid1)
            and int(eid2.max()) == -1
        )

        before, ids_before = n_rows("node"), next_id()
        try:
            w.insert_nodes(movie_id, 999, labels_2d(10, 1, 5, rng), "labels")
            error = None
        except Exception as exc:
            error = type(exc).__name__ + ": " + str(exc).splitlines()[0][:160]
        out["atomic_fk"] = {
            "error": error,
            "rows_added": n_rows("node") - before,
            "ids_reserved": next_id() - ids_before,
        }
        out["atomic_fk"]["ok"] = error is not None and out["atomic_fk"]["rows_added"] == 0

        dup = labels_2d(20, 1, 6, rng)
        label = np.asarray(dup.label).copy()
        label[-1] = label[0]
        dup = Candidates(**{**dup.__dict__, "label": label})
        try:
            w.insert_nodes(movie_id, run_id, dup, "labels")
            error = None
        except Exception as exc:
            error = type(exc).__name__ + ": " + str(exc).splitlines()[0][:160]
        out["atomic_unique"] = {"error": error, "rows_added": n_rows("node") - before}
        out["atomic_unique"]["ok"] = error is not None and out["atomic_unique"]["rows_added"] == 0

        refused: dict[str, str | None] = {}
        edges_before = n_rows("edge")
        base = labels_2d(30, 2, 4, rng)
        try:
            w.insert_nodes(movie_id, run_id, Candidates(**{**base.__dict__, "t": base.t + 2**31}), "labels")
            refused["node t = 2**31 (integer column)"] = None
        except TypeError as exc:
            refused["node t = 2**31 (integer column)"] = str(exc).splitlines()[0][:160]
        base_ids = w.insert_nodes(movie_id, run_id, base, "labels")
        e = links(base, rng, False)
        try:
            half = CandidateEdges(**{**e.__dict__, "dt": np.full(len(e.source), 1.5)})
            w.insert_edges(movie_id, run_id, base_ids, base.t, half)
            refused["edge dt = 1.5 (integer column)"] = None
        except TypeError as exc:
            refused["edge dt = 1.5 (integer column)"] = str(exc).splitlines()[0][:160]
        out["refused_values"] = {
            "errors": refused,
            "nodes_added": n_rows("node") - before - len(base),
            "edges_added": n_rows("edge") - edges_before,
        }
        out["refused_values"]["ok"] = (
            all(refused.values())
            and out["refused_values"]["nodes_added"] == 0
            and out["refused_values"]["edges_added"] == 0
        )

        if engine == "postgresql":
            with w.transaction() as cur:
                cur.execute("SELECT current_setting('session_replication_role')")
                role = cur.fetchone()[0]
            out["role_restored"] = {"session_replication_role": role, "ok": role == "origin"}
            w.insert_nodes(movie_id, run_id, labels_2d(100, 4, 5000, rng), "labels")
            with w.transaction() as cur:
                cur.execute("SELECT relpages, reltuples FROM pg_class WHERE oid = to_regclass('node')")
                pages, tuples = cur.fetchone()
            out["analyzed"] = {"relpages": int(pages), "reltuples": float(tuples), "ok": pages > 0 and tuples > 10_000}
        raw = raw_adbc_type_mapping(w)
        out["raw_adbc_type_mapping"] = raw
    if engine == "postgresql":
        out["exactly_once_concurrent"] = exactly_once_concurrent(url, movie_id, run_id)
    else:
        out["busy_wait"] = busy_wait(url, movie_id, run_id)
    drop_store(url, pg_base)
    return out


def raw_adbc_type_mapping(w: AdbcWriter) -> dict[str, Any]:
    """Plain ``adbc_ingest`` into a scratch table shaped like node's columns, no casts."""
    with w.transaction() as cur:
        cur.execute("CREATE TABLE scratch_types (area INTEGER, distance DOUBLE PRECISION)")
    out: dict[str, Any] = {}
    with w.transaction() as cur:
        if w.is_sqlite:
            cur.adbc_ingest("scratch_types", pa.table({"area": pa.array([1.5])}), mode="append")
            cur.execute("SELECT area, typeof(area) FROM scratch_types")
            out["float64 1.5 into INTEGER"] = list(cur.fetchone())
        else:
            cur.adbc_ingest("scratch_types", pa.table({"distance": pa.array([1], pa.int64())}), mode="append")
            cur.execute("SELECT distance FROM scratch_types")
            out["int64 1 into double precision"] = cur.fetchone()[0]
    with w.transaction() as cur:
        cur.execute("DROP TABLE scratch_types")
    return out


def _duplicate_writer(url: str, movie_id: int, run_id: int, barrier: Any, results: Any) -> None:
    rng = np.random.default_rng(11)
    cands = labels_2d(200, 3, 2000, rng)
    with AdbcWriter(url) as w:
        barrier.wait()
        ids = w.insert_nodes(movie_id, run_id, cands, "labels")
        e = links(cands, rng, False)
        barrier.wait()
        eids = w.insert_edges(movie_id, run_id, ids, cands.t, e)
    results.put({"node_ids_first": int(ids[0]), "edges_written": int((eids >= 0).sum())})


def exactly_once_concurrent(url: str, movie_id: int, run_id: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2, timeout=300), ctx.Queue()
    procs = [ctx.Process(target=_duplicate_writer, args=(url, movie_id, run_id, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outs = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    nodes = count(url, "SELECT count(*) FROM node WHERE t BETWEEN 200 AND 202")
    edges = count(url, "SELECT count(*) FROM edge WHERE t BETWEEN 200 AND 202")
    return {
        "writers": outs,
        "nodes_of_frames": nodes,
        "edges_of_frames": edges,
        "ok": nodes == 6000 and edges == 4000 and outs[0]["node_ids_first"] == outs[1]["node_ids_first"],
    }


HOLD_LOCK = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def busy_wait(url: str, movie_id: int, run_id: int) -> dict[str, Any]:
    """Another process holds the write lock for 2 s; the writer's batch waits, then commits."""
    path = sa.engine.make_url(url).database or ""
    hold = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path, "2"], stdout=subprocess.PIPE, text=True)
    assert hold.stdout is not None
    if hold.stdout.readline().strip() != "locked":
        raise RuntimeError("the lock holder did not start")
    start = time.perf_counter()
    with AdbcWriter(url) as w:
        ids = w.insert_nodes(movie_id, run_id, labels_2d(300, 1, 10, np.random.default_rng(5)), "labels")
    waited = time.perf_counter() - start
    hold.wait(timeout=60)
    return {"seconds_until_committed": round(waited, 2), "written": int((ids >= 0).sum()), "ok": bool((ids >= 0).all())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-base", default=PG_BASE, help="PostgreSQL database that gets a fresh schema per check")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in ("sqlite", "postgresql"):
            out[engine] = {
                "same_rows_as_current": same_rows_as_current(engine, folder, args.pg_base),
                **contract_checks(engine, folder, args.pg_base),
            }
    out["all_ok"] = all(
        v["ok"] for e in ("sqlite", "postgresql") for v in out[e].values() if isinstance(v, dict) and "ok" in v
    )
    emit("adbc_writer_checks", out)


if __name__ == "__main__":
    main()
