"""Where a SQLite node batch spends its time: payload building, ``executemany``, index and
foreign-key upkeep, the commit's WAL checkpoint, and the page size (issue 12, item 5).

Prints one JSON object. Each variant writes ``--batches`` batches of ``--rows`` nodes of
``benchmarks/ingest.py``'s shape (a ~30×30 mask and a 64-dim embedding per node) into its own
copy of a fresh ``trackdb init`` store, one transaction per batch, through the store's own
phases: ``insert_nodes`` up to the write (ids, columns, mask encoding), the row tuples of the
store's ``executemany`` transport (since the ADBC staging file: only small batches take it),
``executemany``, ``COMMIT``. Variants run interleaved, ``--repeats``
times, and each phase reports the median and the minimum of its CPU seconds (this process's,
less sensitive than wall time to the other jobs of a shared 2-core machine) and the batches'
wall time. Variants that take something away (foreign keys, indexes) show what that part costs;
they are not safe for a live store (README, "Store").

Usage: ``python benchmarks/sqlite_ingest_profile.py [--rows 100000 --batches 3 --repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402
from synthetic_store import frame_candidates, mask_pool  # noqa: E402

from trackdb.store import Store, arrow_ingest, bulk, ingest, schema  # noqa: E402

VARIANTS = {
    "page_4k": "the page size of stores made before this change, everything else as the store",
    "page_16k": "what `trackdb init` makes now (16 KiB pages)",
    "page_16k_no_fk_checks": "16 KiB pages, PRAGMA foreign_keys=OFF (cost of the per-row movie/run checks)",
    "page_16k_no_movie_t_index": "16 KiB pages without ix_node_movie_t (cost of that index)",
    "page_16k_no_indexes": "16 KiB pages, a copy of node without keys or indexes (cost of all of them)",
}


def template(folder: str, page_size: int) -> tuple[str, int, int]:
    """A fresh store with one movie and one run, made by ``trackdb init`` with ``page_size``."""
    path = f"{folder}/template_{page_size}.sqlite"
    # the file exists with its page size before trackdb's connections open it
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA page_size={page_size}")
        db.execute("PRAGMA journal_mode=WAL")
    db.close()
    exe = Path(sys.executable).with_name("trackdb")
    subprocess.run([str(exe), "init", "--db", f"sqlite:///{path}"], check=True, stdout=subprocess.DEVNULL)
    store = Store(f"sqlite:///{path}")
    with store.engine.begin() as c:
        movie_id = store.add_movie(c, "synthetic", (4100, 4100), 10_000)
        run_id = int(
            c.execute(
                schema.run.insert()
                .values(movie_id=movie_id, kind="benchmark", status="running")
                .returning(schema.run.c.id)
            ).scalar_one()
        )
    store.close()
    return path, movie_id, run_id


class Capture:
    """Stands in for ``bulk_insert_columns`` inside ``insert_nodes``: keeps the columns."""

    def __init__(self) -> None:
        self.cols: dict[str, object] = {}

    def __call__(self, conn: Any, table: Any, cols: dict[str, object], n: int) -> int:
        self.cols = cols
        return n


def sql_and_rows(cols: dict[str, object], n: int, table: str) -> tuple[str, Any]:
    """The statement and row tuples of the store's ``executemany`` transport (small batches, or
    no ADBC; ``trackdb.store.arrow_ingest.sqlite_insert``), from the same Arrow columns."""
    batch = arrow_ingest.arrow_table(schema.node, cols, n)
    names, marks = ", ".join(batch.column_names), ", ".join("?" * batch.num_columns)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})", list(zip(*(c.to_pylist() for c in batch.columns)))


def one_variant(variant: str, tmpl: tuple[str, int, int], batches: list[Any], folder: str) -> dict[str, float]:
    src, movie_id, run_id = tmpl
    path = f"{folder}/{variant}.sqlite"
    shutil.copy(src, path)
    store = Store(f"sqlite:///{path}")
    table = "node"
    with store.engine.begin() as c:
        if variant.endswith("no_movie_t_index"):
            c.exec_driver_sql("DROP INDEX ix_node_movie_t")
        if variant.endswith("no_indexes"):
            c.exec_driver_sql("CREATE TABLE node_bare AS SELECT * FROM node WHERE 0")
            table = "node_bare"
    out = {"build": 0.0, "rows": 0.0, "executemany": 0.0, "commit": 0.0, "wall": 0.0}
    capture, real = Capture(), ingest.bulk_insert_columns
    ingest.bulk_insert_columns = capture
    try:
        with store.engine.connect() as c:
            raw = bulk.driver_connection(c)
            raw.execute(f"PRAGMA foreign_keys={'OFF' if 'no_fk' in variant else 'ON'}")
            c.commit()
            for cands in batches:
                w0, t0 = time.perf_counter(), time.process_time()
                ingest.insert_nodes(c, movie_id, run_id, cands, "labels")
                t1 = time.process_time()
                sql, rows = sql_and_rows(capture.cols, len(cands), table)
                t2 = time.process_time()
                raw.executemany(sql, rows)
                t3 = time.process_time()
                c.commit()
                t4 = time.process_time()
                out["wall"] += time.perf_counter() - w0
                for key, a, b in (("build", t0, t1), ("rows", t1, t2), ("executemany", t2, t3), ("commit", t3, t4)):
                    out[key] += b - a
            raw.execute("PRAGMA foreign_keys=ON")
    finally:
        ingest.bulk_insert_columns = real
        store.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    out["cpu"] = out["build"] + out["rows"] + out["executemany"] + out["commit"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000, help="nodes per batch (5,000 per frame)")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    variants = args.variants.split(",")
    rng, pool = np.random.default_rng(1), mask_pool()
    frames = max(1, args.rows // 5000)
    batches = [frame_candidates(b * frames, frames, args.rows // frames, pool, rng) for b in range(args.batches)]
    n = sum(len(b) for b in batches)
    load_start = list(os.getloadavg())
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as folder:
        tmpl = {ps: template(folder, ps) for ps in (4096, 16384)}
        for _ in range(args.repeats):
            for v in variants:
                runs[v].append(one_variant(v, tmpl[4096 if v == "page_4k" else 16384], batches, folder))
    result: dict[str, Any] = {
        "rows_per_batch": args.rows,
        "batches": args.batches,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": list(os.getloadavg()),
        "sqlite_version": sqlite3.sqlite_version,
        "variants": {},
    }
    for v, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        result["variants"][v] = {
            "what": VARIANTS[v],
            "seconds_median": {k: round(x, 3) for k, x in med.items()},
            "seconds_min": {k: round(min(r[k] for r in rs), 3) for k in rs[0]},
            "nodes_per_cpu_second_median": round(n / med["cpu"]),
            "nodes_per_wall_second_median": round(n / med["wall"]),
        }
    emit("sqlite_ingest_profile", result)


if __name__ == "__main__":
    main()
