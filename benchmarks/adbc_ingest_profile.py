"""Where ADBC bulk ingest of node rows spends its time: the same Arrow batch into variants of ``node``.

One Arrow table of ``--rows`` node-shaped rows (24–35 px masks packed, 64-dim embeddings, exact
column types, as the prototype builds it) is ingested with ``adbc_ingest`` into fresh copies of
the ``node`` table that differ in one respect each:

- ``as_created``: the table ``trackdb init`` creates (foreign keys, unique key, two indexes);
- ``fk_off``: foreign keys not checked (SQLite ``foreign_keys=OFF``; PostgreSQL
  ``session_replication_role = replica``, which the writer uses for constant keys);
- ``primary_key_only``: foreign keys off and no secondary index or unique key;
- ``no_index`` (PostgreSQL): nothing but the heap, not even the primary key;
- ``unlogged`` (PostgreSQL): ``no_index`` without WAL;
- ``no_blobs``: ``as_created`` with the mask and embedding columns left out of the batch;
- ``fk_off_chunk_N``: ``fk_off`` with the batch cut into record batches of N rows (``--chunks``;
  the others use the prototype's ``COPY_CHUNK_ROWS``).

Each variant is timed ``--repeats`` times in rotation (wall seconds of the ingest and its commit;
this process's CPU seconds; on PostgreSQL also the server backend's). Prints one JSON object. Usage:
``python benchmarks/adbc_ingest_profile.py [--rows 200000] [--engines sqlite,postgresql] [--pg-base URL]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adbc_writer_prototype import AdbcWriter, arrow_batch, node_columns  # noqa: E402
from common import emit  # noqa: E402
from ingest import drop_store, fresh_store, loadavg, movie_and_run, proc_cpu  # noqa: E402
from synthetic_store import PG_BASE, frame_candidates, mask_pool  # noqa: E402

from trackdb.store import schema  # noqa: E402
from trackdb.store.codecs import encode_masks  # noqa: E402

SECONDARY = ("uq_node_run_id_t_label", "ix_node_movie_t", "ix_node_hier_parent_id")


def node_table(rows: int, movie_id: int, run_id: int) -> pa.Table:
    cells = 5000
    cands = frame_candidates(0, rows // cells, cells, mask_pool(), np.random.default_rng(1))
    idx = np.arange(len(cands))
    cols = node_columns(movie_id, run_id, cands, idx, idx + 1, "labels", encode_masks(cands.masks))
    return arrow_batch(schema.node, cols, len(cands))


def make_variant(w: AdbcWriter, name: str, variant: str) -> None:
    """``name``: a copy of ``node`` shaped as ``variant`` (see the module docstring)."""
    with w.transaction() as cur:
        if w.is_sqlite:
            cur.execute("SELECT sql FROM sqlite_master WHERE name = 'node'")
            ddl = cur.fetchall()[0][0].replace("CREATE TABLE node", f"CREATE TABLE {name}", 1)
            if variant in ("primary_key_only", "no_index"):
                ddl = ddl.replace(", \n\tCONSTRAINT uq_node_run_id_t_label UNIQUE (run_id, t, label)", "")
            cur.execute(ddl)
            if variant not in ("primary_key_only", "no_index"):
                cur.execute(f"CREATE INDEX ix_{name}_movie_t ON {name} (movie_id, t)")
                cur.execute(f"CREATE INDEX ix_{name}_hier ON {name} (hier_parent_id) WHERE hier_parent_id IS NOT NULL")
            return
        unlogged = "UNLOGGED " if variant == "unlogged" else ""
        cur.execute(f"CREATE {unlogged}TABLE {name} (LIKE node INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        if variant not in ("no_index", "unlogged"):
            cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
        if variant in ("as_created", "fk_off", "no_blobs"):
            cur.execute(f"ALTER TABLE {name} ADD UNIQUE (run_id, t, label)")
            cur.execute(f"CREATE INDEX ON {name} (movie_id, t)")
            cur.execute(f"CREATE INDEX ON {name} (hier_parent_id) WHERE hier_parent_id IS NOT NULL")
            cur.execute(f"ALTER TABLE {name} ADD FOREIGN KEY (movie_id) REFERENCES movie (id) ON DELETE CASCADE")
            cur.execute(f"ALTER TABLE {name} ADD FOREIGN KEY (run_id) REFERENCES run (id) ON DELETE CASCADE")


def ingest_once(w: AdbcWriter, name: str, variant: str, batch: pa.Table, pid: int | None) -> dict[str, float]:
    if variant == "no_blobs":
        batch = batch.drop_columns(["mask", "embedding", "embedding_dim"])
    if variant.startswith("fk_off_chunk_"):
        rows = int(variant.rsplit("_", 1)[1])
        batch = pa.Table.from_batches(batch.combine_chunks().to_batches(max_chunksize=rows), schema=batch.schema)
    fk_off = variant.startswith("fk_off") or variant in ("primary_key_only", "no_index", "unlogged")
    if w.is_sqlite:
        with w.conn.cursor() as cur:
            cur.execute(f"PRAGMA foreign_keys={'OFF' if fk_off else 'ON'}")
    server, client = proc_cpu(pid), time.process_time()
    start = time.perf_counter()
    with w.transaction() as cur:
        if fk_off and not w.is_sqlite:
            cur.execute("SET LOCAL session_replication_role = replica")
        cur.adbc_ingest(name, batch, mode="append")
    out = {
        "seconds": time.perf_counter() - start,
        "client_cpu": time.process_time() - client,
        "server_cpu": proc_cpu(pid) - server,
    }
    if w.is_sqlite:
        with w.conn.cursor() as cur:
            cur.execute("PRAGMA foreign_keys=ON")
    return out


def profile_engine(engine: str, folder: str, args: argparse.Namespace) -> dict[str, Any]:
    url = fresh_store(engine, folder, args.pg_base)
    try:
        movie_id, run_id = movie_and_run(url, 10)
        batch = node_table(args.rows, movie_id, run_id)
        variants = ["as_created", "fk_off", "primary_key_only", "no_index", "no_blobs"]
        if engine == "postgresql":
            variants.insert(4, "unlogged")
        else:  # the rowid is the primary key: no index to leave out beyond primary_key_only
            variants.remove("no_index")
        variants += [f"fk_off_chunk_{n}" for n in args.chunks.split(",") if n]
        times: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        with AdbcWriter(url) as w:
            pid = None
            if not w.is_sqlite:
                with w.transaction() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    pid = int(cur.fetchall()[0][0])
            for rep in range(args.repeats):
                for v in variants:
                    name = f"p_{v}_{rep}"
                    make_variant(w, name, "fk_off" if v.startswith("fk_off") else v)
                    times[v].append(ingest_once(w, name, v, batch, pid))
                    with w.transaction() as cur:
                        cur.execute(f"DROP TABLE {name}")
        out: dict[str, Any] = {"rows": batch.num_rows, "arrow_mb": round(batch.nbytes / 2**20, 1)}
        for v, runs in times.items():
            sec = statistics.median(r["seconds"] for r in runs)
            out[v] = {
                "rows_per_s_median": round(batch.num_rows / sec),
                "seconds": [round(r["seconds"], 3) for r in runs],
                "client_cpu_seconds": [round(r["client_cpu"], 3) for r in runs],
            }
            if engine == "postgresql":
                out[v]["server_cpu_seconds"] = [round(r["server_cpu"], 2) for r in runs]
        return out
    finally:
        drop_store(url, args.pg_base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--pg-base", default=PG_BASE)
    ap.add_argument("--chunks", default="100000,16384,4096", help="record-batch sizes of the fk_off_chunk variants")
    args = ap.parse_args()
    out: dict[str, Any] = {"loadavg_at_start": loadavg()}
    with tempfile.TemporaryDirectory() as folder:
        for engine in args.engines.split(","):
            out[engine] = profile_engine(engine, folder, args)
    out["loadavg_at_end"] = loadavg()
    emit("adbc_ingest_profile", out)


if __name__ == "__main__":
    main()
