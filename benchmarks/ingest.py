"""Ingest throughput: 1,000,000 nodes (~30×30 masks, 64-dim embeddings) and 2,985,000 edges.

Prints one JSON object. Goals (issues 2 and 12): ≥ 150,000 nodes/s into SQLite, ≥ 100,000 into
PostgreSQL with one writer and ≥ 1.6× that with 4 parallel writers.

Every run gets a fresh store made by ``trackdb init`` (a SQLite file under the temporary folder, or a
fresh schema in the ``--pg-base`` database) holding one movie and one run. ``--writers N`` processes
each take a contiguous block of frames and their own id blocks; each builds its candidates and
links first, then all start together: nodes (batches of ``--batch-frames`` frames), then, once
every writer is done, links from their frames. Rates are rows over the wall time from the common
start to the last writer's end. ``--writer current`` is ``trackdb.store.ingest``; ``executemany``
the same with SQLite's staging file switched off (every batch bound by ``executemany``, the
product's path for small batches; on PostgreSQL identical to ``current``); ``adbc`` the
prototype in ``adbc_writer_prototype.py`` (ADBC on the store file itself, which the product
cannot do: see ``trackdb.store.arrow_ingest``). With one writer the MAP solution is written afterwards
by ``trackdb.store.ingest.insert_solution`` (both writers: it is not ported). The configurations
of one repeat run back to back, so that load drift hits every writer alike.

Usage: ``python benchmarks/ingest.py [--frames 200 --cells 5000] [--engines sqlite,postgresql]
[--writer current,executemany,adbc] [--writers 1,4] [--repeats 3] [--pg-base URL] [--save-as NAME]``
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402
from synthetic_store import PG_BASE, frame_candidates, mask_pool  # noqa: E402

from inference.types import CandidateEdges, Candidates  # noqa: E402

LINKS = 3


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def code_state() -> dict[str, object]:
    """The commit measured, and whether the current writer's files differ from it."""
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "trackdb/store/bulk.py",
            "trackdb/store/ingest.py",
            "trackdb/store/arrow_ingest.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {"head": head.strip(), "uncommitted_writer_files": dirty[1::2]}


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def trackdb_init(url: str) -> None:
    """The schema through the CLI, as a user creates a store."""
    exe = Path(sys.executable).with_name("trackdb")
    subprocess.run([str(exe), "init", "--db", url], check=True, stdout=subprocess.DEVNULL)


def fresh_store(engine: str, folder: str, pg_base: str, pg_settings: tuple[str, ...] = ()) -> str:
    """URL of a new, initialised, empty store (on PostgreSQL with ``pg_settings``, ``NAME=VALUE``,
    set on every connection of the benchmark: a diagnostic, never the product's settings)."""
    if engine == "sqlite":
        url = f"sqlite:///{folder}/bench_{uuid.uuid4().hex[:8]}.sqlite"
    else:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        eng = sa.create_engine(pg_base)
        with eng.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {name}")
        eng.dispose()
        extra = "".join(f"%20-c{setting.replace('=', '%3D')}" for setting in pg_settings)
        # the schema's name as application_name too: Activity samples only this run's backends
        # (other sessions may use the same database)
        url = f"{pg_base}?options=-csearch_path%3D{name}%20-capplication_name%3D{name}{extra}"
    trackdb_init(url)
    return url


def drop_store(url: str, pg_base: str) -> None:
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            if path and os.path.exists(path + suffix):
                os.remove(path + suffix)
        return
    eng = sa.create_engine(pg_base)
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA {url.split('search_path%3D', 1)[1].split('%20', 1)[0]} CASCADE")
    eng.dispose()


def movie_and_run(url: str, frames: int) -> tuple[int, int]:
    """One movie and one 'running' run (this process's connections are closed again on return)."""
    from trackdb.store import Store, schema

    store = Store(url)
    with store.engine.begin() as c:
        movie_id = store.add_movie(c, "synthetic", (4100, 4100), frames)
        run_id = int(
            c.execute(
                schema.run.insert()
                .values(movie_id=movie_id, kind="benchmark-ingest", status="running")
                .returning(schema.run.c.id)
            ).scalar_one()
        )
    store.close()
    return movie_id, run_id


def frame_blocks(frames: int, writers: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, frames, writers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def aux_cpu(pid: int) -> float:
    """:func:`proc_cpu` of a server process that may have exited (0 then)."""
    try:
        return proc_cpu(pid)
    except OSError:
        return 0.0


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a local process, e.g. the PostgreSQL backend of a connection."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CurrentWriter:
    """``trackdb.store.ingest`` in its own transaction per batch, with phase timers wrapped around it."""

    def __init__(self, url: str) -> None:
        from trackdb.store import Store, ingest

        self.ingest = ingest
        self.store = Store(url)
        self.profile: dict[str, float] = {}
        for name in (
            "lock_frames",
            "frames_done",
            "allocate_ids",
            "encode_masks",
            "bulk_insert_columns",
            "node_ids_of_run",
        ):
            setattr(ingest, name, self._timed(name, getattr(ingest, name)))

    def _timed(self, name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                out = fn(*a, **k)
                return list(out) if name == "encode_masks" else out
            finally:
                self.profile[name] = self.profile.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    def backend_pid(self) -> int | None:
        if not self.store.is_postgres:
            return None
        with self.store.engine.connect() as c:
            return int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def insert_nodes(self, movie_id: int, run_id: int, cands: Candidates) -> np.ndarray:
        with self.store.engine.begin() as c:
            return self.ingest.insert_nodes(c, movie_id, run_id, cands, "labels")

    def insert_edges(
        self, movie_id: int, run_id: int, ids: np.ndarray, t: np.ndarray, e: CandidateEdges, cost: np.ndarray
    ) -> np.ndarray:
        with self.store.engine.begin() as c:
            return self.ingest.insert_edges(c, movie_id, run_id, ids, t, e, cost=cost)

    def node_ids_of_frame(self, run_id: int, t: int, cells: int) -> np.ndarray:
        with self.store.engine.connect() as c:
            return self.ingest.node_ids_of_run(c, run_id, np.full(cells, t), np.arange(1, cells + 1))

    def close(self) -> None:
        self.store.close()


class PrototypeWriter:
    """The ADBC prototype behind the same calls."""

    def __init__(self, url: str) -> None:
        from adbc_writer_prototype import AdbcWriter

        self.w = AdbcWriter(url)
        self.profile = self.w.profile

    def backend_pid(self) -> int | None:
        if self.w.is_sqlite:
            return None
        with self.w.transaction() as cur:
            cur.execute("SELECT pg_backend_pid()")
            return int(cur.fetchone()[0])

    def insert_nodes(self, movie_id: int, run_id: int, cands: Candidates) -> np.ndarray:
        return self.w.insert_nodes(movie_id, run_id, cands, "labels")

    def insert_edges(
        self, movie_id: int, run_id: int, ids: np.ndarray, t: np.ndarray, e: CandidateEdges, cost: np.ndarray
    ) -> np.ndarray:
        return self.w.insert_edges(movie_id, run_id, ids, t, e, cost=cost)

    def node_ids_of_frame(self, run_id: int, t: int, cells: int) -> np.ndarray:
        return self.w.node_ids_of_run(run_id, np.full(cells, t), np.arange(1, cells + 1))

    def close(self) -> None:
        self.w.close()


def writer_process(spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """One writer: build its data, then nodes and links in step with the others; report timings."""
    frames, cells, (a, b), bf = spec["frames"], spec["cells"], spec["block"], spec["batch_frames"]
    movie_id, run_id = spec["movie_id"], spec["run_id"]
    rng = np.random.default_rng(1 + spec["index"])
    pool = mask_pool()
    batches = [(t0, frame_candidates(t0, min(bf, b - t0), cells, pool, rng)) for t0 in range(a, b, bf)]
    src_local = np.repeat(np.arange(cells), LINKS)
    dst_local = (src_local + np.tile(np.arange(LINKS), cells)) % cells
    last = min(b, frames - 1)  # links leave frames a .. last-1
    link_batches = []
    for t0 in range(a, last, bf):
        ts = np.arange(t0, min(t0 + bf, last))
        src = ((ts[:, None] - a) * cells + src_local[None]).ravel()
        dst = ((ts[:, None] - a + 1) * cells + dst_local[None]).ravel()
        e = CandidateEdges(
            source=src,
            target=dst,
            dt=np.ones(len(src), np.int64),
            distance=rng.random(len(src)) * 20,
            iou=rng.random(len(src)),
        )
        link_batches.append((e, rng.standard_normal(len(src))))
    if spec["writer"] == "executemany":
        from trackdb.store import arrow_ingest

        arrow_ingest.STAGE_MIN_ROWS = 2**62  # this writer process only
    writer = PrototypeWriter(spec["url"]) if spec["writer"] == "adbc" else CurrentWriter(spec["url"])
    pid = writer.backend_pid()
    out: dict[str, Any] = {"index": spec["index"], "block": [a, b]}

    barrier.wait()
    cpu, server = time.process_time(), proc_cpu(pid)
    out["node_start"] = time.perf_counter()
    node_ids = np.concatenate([writer.insert_nodes(movie_id, run_id, c) for _, c in batches])
    out["node_end"] = time.perf_counter()
    out["node_cpu_client"], out["node_cpu_server"] = time.process_time() - cpu, proc_cpu(pid) - server
    out["node_profile"] = dict(writer.profile)
    writer.profile.clear()

    barrier.wait()  # every node is written: the next block's first frame has ids now
    ids = node_ids if b >= frames else np.concatenate([node_ids, writer.node_ids_of_frame(run_id, b, cells)])
    local_t = np.repeat(np.arange(a, a + len(ids) // cells), cells)
    barrier.wait()
    cpu, server = time.process_time(), proc_cpu(pid)
    out["edge_start"] = time.perf_counter()
    edge_ids = [writer.insert_edges(movie_id, run_id, ids, local_t, e, cost) for e, cost in link_batches]
    out["edge_end"] = time.perf_counter()
    out["edge_cpu_client"], out["edge_cpu_server"] = time.process_time() - cpu, proc_cpu(pid) - server
    out["edge_profile"] = dict(writer.profile)
    out["n_nodes"], out["n_edges"] = int(len(node_ids)), int(sum(len(x) for x in edge_ids))
    out["node_ids"] = node_ids
    out["chain_edge_ids"] = (
        np.concatenate(edge_ids).reshape(-1, cells, LINKS)[:, :, 0].ravel() if edge_ids else np.zeros(0, np.int64)
    )
    writer.close()
    results.put(out)


def content_digest(url: str, frames: list[int]) -> dict[str, Any]:
    """What the writer stored, without ids: a digest of every node column of ``frames``, the
    storage class of each column on SQLite, and row and NULL counts (read without the schema-head
    check: the tree may move to a newer revision while a benchmark runs)."""
    from trackdb.store.db import make_engine

    engine = make_engine(url)
    cols = (
        "t",
        "label",
        "y",
        "x",
        "area",
        "bbox_y0",
        "bbox_x0",
        "bbox_y1",
        "bbox_x1",
        "hier_parent_id",
        "threshold",
        "score",
        "max_prob",
        "prev_y",
        "prev_x",
        "mask",
        "embedding",
        "embedding_dim",
        "source",
    )
    h = hashlib.sha256()
    with engine.connect() as c:
        rows = c.exec_driver_sql(
            f"SELECT {', '.join(cols)} FROM node WHERE t IN ({', '.join(map(str, frames))}) ORDER BY t, label"
        ).all()
        for r in rows:
            h.update(repr(tuple(r)).encode())
        out: dict[str, Any] = {
            "frames": frames,
            "rows": len(rows),
            "sha256": h.hexdigest()[:16],
            "nodes": c.exec_driver_sql("SELECT count(*) FROM node").scalar_one(),
            "edges": c.exec_driver_sql("SELECT count(*) FROM edge").scalar_one(),
            "duplicate_node_keys": c.exec_driver_sql(
                "SELECT count(*) - count(DISTINCT run_id * 1000000 + t * 10000 + label) FROM node"
            ).scalar_one(),
            "null_z": c.exec_driver_sql("SELECT count(*) FROM node WHERE z IS NULL").scalar_one(),
        }
        if engine.dialect.name == "sqlite":
            out["sqlite_storage_classes"] = {
                col: [r[0] for r in c.exec_driver_sql(f"SELECT DISTINCT typeof({col}) FROM node WHERE t = {frames[0]}")]
                for col in (
                    "id",
                    "movie_id",
                    "t",
                    "label",
                    "y",
                    "area",
                    "hier_parent_id",
                    "mask",
                    "embedding",
                    "embedding_dim",
                    "source",
                    "z",
                )
            }
            out["file_mb"] = round(os.path.getsize(sa.engine.make_url(url).database or "") / 2**20, 1)
    engine.dispose()
    return out


def write_solution(
    url: str, movie_id: int, run_id: int, frames: int, cells: int, node_ids: np.ndarray, chain: np.ndarray
) -> float:
    from trackdb.store import Store, ingest

    store = Store(url)
    ids = node_ids.reshape(frames, cells)
    tracks = np.column_stack(
        [np.arange(1, cells + 1), np.zeros(cells, np.int64), np.full(cells, frames - 1), np.zeros(cells, np.int64)]
    )
    start = time.perf_counter()
    with store.engine.begin() as c:
        sid = ingest.insert_solution(
            c,
            run_id=run_id,
            movie_id=movie_id,
            node_ids=ids.ravel(),
            node_t=np.repeat(np.arange(frames), cells),
            track_ids=np.tile(np.arange(1, cells + 1), frames),
            edge_ids=chain,
            edge_source_ids=ids[:-1].ravel(),
            edge_target_ids=ids[1:].ravel(),
            tracks=tracks,
            status="optimal",
            name="map",
        )
        store.set_current_solution(c, movie_id, sid)
    seconds = time.perf_counter() - start
    store.close()
    return seconds


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


PG_AUX = ("walwriter", "checkpointer", "background writer")


class Activity(threading.Thread):
    """Samples, every ``interval`` seconds: the machine's CPU use (every process, other users
    included) and, on PostgreSQL, what the benchmark's backends are doing (``pg_stat_activity``),
    the WAL position and the CPU seconds of the server's WAL writer, checkpointer and background
    writer (which write the backends' WAL and pages, and are no backend's CPU), from a connection
    of its own."""

    def __init__(self, url: str | None, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        # time, CPU, WAL bytes, states, the auxiliary processes' CPU seconds
        self.samples: list[tuple[float, tuple[int, int], int, list[str], float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        eng = sa.create_engine(self.url) if self.url else None
        c = eng.connect() if eng else None
        aux: list[int] = []
        if c is not None:
            kinds = ", ".join(f"'{k}'" for k in PG_AUX)
            sql = f"SELECT pid FROM pg_stat_activity WHERE backend_type IN ({kinds})"
            aux = [int(r[0]) for r in c.exec_driver_sql(sql)]
            c.commit()
        while not self.stop.is_set():
            wal, states = 0, []
            if c is not None:
                rows = c.exec_driver_sql(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = current_setting('application_name') "
                    "AND backend_type = 'client backend' AND state <> 'idle'"
                ).all()
                wal = int(c.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'").scalar_one())
                states = [
                    r[0] if r[0] != "active" else f"active {r[1]}:{r[2]}" if r[1] else "active on CPU" for r in rows
                ]
                c.commit()
            self.samples.append((time.perf_counter(), machine_cpu(), wal, states, sum(map(aux_cpu, aux))))
            time.sleep(self.interval)
        if c is not None and eng is not None:
            c.close()
            eng.dispose()

    def phase(self, start: float, end: float) -> dict[str, Any]:
        """Between ``start`` and ``end``: busy share of all CPUs, and on PostgreSQL the share of
        backend samples in each state and the WAL written."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {"samples": len(inside)}
        (b0, t0), (b1, t1) = inside[0][1], inside[-1][1]
        out: dict[str, Any] = {"samples": len(inside), "machine_cpu_busy": round((b1 - b0) / max(t1 - t0, 1), 3)}
        if self.url:
            counts: dict[str, int] = {}
            for _, _, _, states, _ in inside:
                for st in states:
                    counts[st] = counts.get(st, 0) + 1
            total = sum(counts.values()) or 1
            out["wal_mb"] = round((inside[-1][2] - inside[0][2]) / 2**20)
            out["server_aux_cpu_seconds"] = round(inside[-1][4] - inside[0][4], 2)
            out["backend_states"] = {k: round(v / total, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
        return out


def checkpoints(url: str) -> int:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        n = int(c.exec_driver_sql("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").scalar_one())
    eng.dispose()
    return n


def one_run(engine: str, writer: str, writers: int, args: argparse.Namespace, folder: str) -> dict[str, Any]:
    url = fresh_store(engine, folder, args.pg_base, tuple(args.pg_setting))
    try:
        movie_id, run_id = movie_and_run(url, args.frames)
        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(writers, timeout=args.timeout), ctx.Queue()
        procs = []
        for i, block in enumerate(frame_blocks(args.frames, writers)):
            spec = {
                "url": url,
                "writer": writer,
                "index": i,
                "block": block,
                "frames": args.frames,
                "cells": args.cells,
                "batch_frames": args.batch_frames,
                "movie_id": movie_id,
                "run_id": run_id,
            }
            procs.append(ctx.Process(target=writer_process, args=(spec, barrier, results)))
        load_before = loadavg()
        activity = Activity(url if engine == "postgresql" and args.pg_activity else None)
        checkpoints_before = checkpoints(url) if activity.url else 0
        activity.start()
        for p in procs:
            p.start()
        got: list[dict[str, Any]] = []
        while len(got) < len(procs):
            try:
                got.append(results.get(timeout=5))
            except queue.Empty:
                failed = [p.exitcode for p in procs if p.exitcode]
                if failed:
                    for p in procs:
                        p.terminate()
                    raise RuntimeError(f"writer process failed with exit code {failed[0]}") from None
        outs = sorted(got, key=lambda o: o["index"])
        for p in procs:
            p.join()
        load_after = loadavg()
        activity.stop.set()
        activity.join()
        node_s = max(o["node_end"] for o in outs) - min(o["node_start"] for o in outs)
        edge_s = max(o["edge_end"] for o in outs) - min(o["edge_start"] for o in outs)
        n_nodes, n_edges = sum(o["n_nodes"] for o in outs), sum(o["n_edges"] for o in outs)

        def summed(key: str) -> dict[str, float]:
            keys = sorted({k for o in outs for k in o[key]})
            return {k: round(sum(o[key].get(k, 0.0) for o in outs), 2) for k in keys}

        run: dict[str, Any] = {
            "engine": engine,
            "writer": writer,
            "writers": writers,
            "nodes": n_nodes,
            "edges": n_edges,
            "nodes_per_s": round(n_nodes / node_s),
            "edges_per_s": round(n_edges / edge_s),
            "node_seconds": round(node_s, 2),
            "edge_seconds": round(edge_s, 2),
            "node_seconds_per_writer": [round(o["node_end"] - o["node_start"], 2) for o in outs],
            "node_cpu_seconds": {
                "client": round(sum(o["node_cpu_client"] for o in outs), 2),
                "server": round(sum(o["node_cpu_server"] for o in outs), 2),
            },
            "edge_cpu_seconds": {
                "client": round(sum(o["edge_cpu_client"] for o in outs), 2),
                "server": round(sum(o["edge_cpu_server"] for o in outs), 2),
            },
            "node_profile_seconds_summed_over_writers": summed("node_profile"),
            "edge_profile_seconds_summed_over_writers": summed("edge_profile"),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }
        run["activity"] = {
            "nodes": activity.phase(min(o["node_start"] for o in outs), max(o["node_end"] for o in outs)),
            "edges": activity.phase(min(o["edge_start"] for o in outs), max(o["edge_end"] for o in outs)),
        }
        if activity.url:
            run["activity"]["checkpoints_during_run"] = checkpoints(url) - checkpoints_before
        if writers == 1 and args.solution:
            run["solution_seconds"] = round(
                write_solution(
                    url, movie_id, run_id, args.frames, args.cells, outs[0]["node_ids"], outs[0]["chain_edge_ids"]
                ),
                2,
            )
        run["stored"] = content_digest(url, [0, args.frames - 1])
        return run
    finally:
        drop_store(url, args.pg_base)


WAL_FLUSH_STATES = ("active IO:WALWrite", "active IO:WALSync", "active LWLock:WALWrite", "active IO:WALInitSync")


def node_cpu(run: dict[str, Any], cpu_count: int) -> dict[str, float]:
    """CPU of a run's node phase: seconds (writers' clients + their backends) per 1,000 nodes, the
    cores they kept busy, the cores of PostgreSQL's WAL writer, checkpointer and background writer
    (``aux_cores``, where sampled), and the cores everything else used meanwhile (other sessions,
    the kernel's writeback), from the machine's busy share sampled by ``Activity``."""
    own = run["node_cpu_seconds"]["client"] + run["node_cpu_seconds"]["server"]
    busy = run["activity"]["nodes"].get("machine_cpu_busy")
    cores = own / run["node_seconds"]
    aux = run["activity"]["nodes"].get("server_aux_cpu_seconds", 0.0) / run["node_seconds"]
    out = {"cpu_s_per_1k_nodes": round(1000 * own / run["nodes"], 4), "writer_cores": round(cores, 2)}
    if "server_aux_cpu_seconds" in run["activity"]["nodes"]:
        out["aux_cores"] = round(aux, 2)
    if busy is not None:
        out["other_cores"] = round(max(0.0, cpu_count * busy - cores - aux), 2)
    return out


def scaling_bound(one: dict[str, Any], many: dict[str, Any], cpu_count: int) -> dict[str, Any]:
    """What ``many`` writers could at best gain over one, measured in the same repeat.

    CPU bound: the cores left to the writers during the parallel run (all cores less what the
    others used) over the cores one writer needed for its rate (with the server's auxiliary
    processes, where sampled): a speed-up above it needs CPU the machine did not have. Amdahl
    bound: the one writer's backend samples spent flushing WAL (one flush at a time, whoever asks)
    as the serial fraction ``s``, ``1 / (s + (1 - s) / p)`` with ``p`` the writers the CPU bound
    allows (at most their number).
    """
    a, b = node_cpu(one, cpu_count), node_cpu(many, cpu_count)
    out: dict[str, Any] = {"one_writer": a, f"{many['writers']}_writers": b}
    if "other_cores" not in b:
        return out
    free = max(cpu_count - b["other_cores"], 0.0)
    cpu_bound = free / (a["writer_cores"] + a.get("aux_cores", 0.0))
    states = one["activity"]["nodes"].get("backend_states", {})
    serial = sum(v for k, v in states.items() if k in WAL_FLUSH_STATES)
    p = max(1.0, min(float(many["writers"]), cpu_bound))
    out.update(
        measured_ratio=round(many["nodes_per_s"] / one["nodes_per_s"], 2),
        cpu_bound_ratio=round(min(float(many["writers"]), cpu_bound), 2),
        wal_flush_fraction_one_writer=round(serial, 3),
        amdahl_bound_ratio=round(1 / (serial + (1 - serial) / p), 2),
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--batch-frames", type=int, default=20, help="frames per transaction")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--writer", default="current", help="current, executemany, adbc, or several: current,adbc")
    ap.add_argument("--writers", default="1", help="parallel writer processes, e.g. 1,4 (PostgreSQL only above 1)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--pg-base", default=PG_BASE, help="PostgreSQL database that gets a fresh schema per run")
    ap.add_argument("--no-solution", dest="solution", action="store_false")
    ap.add_argument(
        "--pg-activity", action="store_true", help="also sample pg_stat_activity wait events and WAL volume"
    )
    ap.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for every benchmark connection (diagnostic), e.g. synchronous_commit=off",
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds a writer may wait for the others")
    ap.add_argument("--save-as", default="ingest", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    writer_kinds = args.writer.split(",")
    counts = [int(w) for w in args.writers.split(",")]
    out: dict[str, Any] = {
        "nodes": args.frames * args.cells,
        "frames": args.frames,
        "cells_per_frame": args.cells,
        "batch_frames": args.batch_frames,
        "mask_bbox": "24-35 px square",
        "embedding_dim": 64,
        "links_per_node": LINKS,
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": loadavg(),
        "pg_base": sa.engine.make_url(args.pg_base).render_as_string(hide_password=True),
        "git": code_state(),
        "pg_settings": args.pg_setting,
        "runs": [],
        "failed_runs": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        for rep in range(args.repeats):
            for engine in args.engines.split(","):
                for writers in counts:
                    if engine == "sqlite" and writers > 1:
                        continue  # one writer at a time by design (issue 12, item 3)
                    for writer in writer_kinds:
                        if engine != "sqlite" and writer == "executemany":
                            continue  # a SQLite transport: PostgreSQL's writer is the same either way
                        log(f"repeat {rep + 1}/{args.repeats}: {engine} {writer} x{writers} ...")
                        try:
                            run = one_run(engine, writer, writers, args, folder)
                        except Exception as exc:  # e.g. the tree moved to a newer schema revision mid-run
                            err = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                            log(f"  failed: {err}")
                            out["failed_runs"].append(
                                {
                                    "engine": engine,
                                    "writer": writer,
                                    "writers": writers,
                                    "repeat": rep + 1,
                                    "error": err,
                                }
                            )
                            continue
                        run["repeat"] = rep + 1
                        log(
                            f"  {run['nodes_per_s']} nodes/s, {run['edges_per_s']} edges/s, load {run['loadavg_after']}"
                        )
                        out["runs"].append(run)
    summary: dict[str, Any] = {}
    for run in out["runs"]:
        key = f"{run['engine']}/{run['writer']}/x{run['writers']}"
        s = summary.setdefault(key, {"nodes_per_s": [], "edges_per_s": []})
        s["nodes_per_s"].append(run["nodes_per_s"])
        s["edges_per_s"].append(run["edges_per_s"])
    for s in summary.values():
        for k in ("nodes_per_s", "edges_per_s"):
            s[k + "_median"] = round(statistics.median(s[k]))
    for engine in ("sqlite", "postgresql"):
        for writers in counts:
            cur, new = summary.get(f"{engine}/current/x{writers}"), summary.get(f"{engine}/adbc/x{writers}")
            if cur and new:
                summary[f"{engine}/x{writers}: adbc over current (median nodes/s, edges/s)"] = [
                    round(new["nodes_per_s_median"] / cur["nodes_per_s_median"], 2),
                    round(new["edges_per_s_median"] / cur["edges_per_s_median"], 2),
                ]
        for writer in writer_kinds:
            one, four = summary.get(f"{engine}/{writer}/x1"), summary.get(f"{engine}/{writer}/x{max(counts)}")
            if one and four and max(counts) > 1:
                summary[f"{engine}/{writer}: x{max(counts)} over x1 (median nodes/s, edges/s)"] = [
                    round(four["nodes_per_s_median"] / one["nodes_per_s_median"], 2),
                    round(four["edges_per_s_median"] / one["edges_per_s_median"], 2),
                ]
    bounds = {}
    for writer in writer_kinds:
        for rep in range(1, args.repeats + 1):
            pair = {
                r["writers"]: r
                for r in out["runs"]
                if r["engine"] == "postgresql" and r["writer"] == writer and r["repeat"] == rep
            }
            if 1 in pair and max(counts) in pair and max(counts) > 1:
                bounds[f"postgresql/{writer}/repeat {rep}"] = scaling_bound(
                    pair[1], pair[max(counts)], out["cpu_count"]
                )
    if bounds:
        summary["scaling_bounds (x1 vs parallel writers, same repeat)"] = bounds
    out["summary"] = summary
    out["loadavg_at_end"] = loadavg()
    emit(args.save_as, out)


if __name__ == "__main__":
    main()
