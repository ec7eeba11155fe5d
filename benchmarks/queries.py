"""Lineage query latency and full export time on a 1M-node store, on SQLite and PostgreSQL.

Builds the synthetic store of ``synthetic_store.py`` (200 frames × 5,000 cells, 3 links per
cell), then times (a) the recursive-CTE ancestors query of cells at lineage depth 100 — the SQL
alone and through ``trackdb.store.queries.ancestors`` (two lookups + DataFrame) — and (b) a full
lineage export (nodes, edges, tracks of the MAP solution) to Parquet. Prints one JSON object.
Goals (issue 2): ancestors median ≤ 5 ms on both engines; full export ≤ 60 s.

    python benchmarks/queries.py [--frames 200 --cells 5000 --repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from trackdb.io.tables import export_tables
from trackdb.store import Store, queries

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, log
from benchmarks.synthetic_store import build, drop_pg, fresh_url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args()
    out: dict[str, object] = {"nodes": args.frames * args.cells, "depth": args.depth, "repeats": args.repeats}
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_url(engine, os.path.join(tmp, "q.sqlite"))
            log(f"{engine}: building {args.frames}x{args.cells} store")
            b = build(url, args.frames, args.cells)
            store = Store(url)
            with store.engine.connect() as c:
                c.exec_driver_sql("ANALYZE")
                targets = (
                    c.execute(sa.text("SELECT id FROM node WHERE t = :t ORDER BY id"), {"t": args.depth})
                    .scalars()
                    .all()
                )
            step = max(1, len(targets) // args.repeats)
            picks = targets[::step][: args.repeats]
            sql_ms, api_ms, depths = [], [], []
            with store.engine.connect() as c:
                stmt = sa.text(queries.ANCESTORS_SQL)
                for nid in picks:
                    t0 = time.perf_counter()
                    rows = c.execute(stmt, {"node_id": nid, "solution_id": b.solution_id}).all()
                    sql_ms.append((time.perf_counter() - t0) * 1000)
                    depths.append(rows[-1][0])
            for nid in picks:
                t0 = time.perf_counter()
                queries.ancestors(store, nid)
                api_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            paths = export_tables(store, os.path.join(tmp, "export"), b.movie, fmt="parquet")
            export_s = time.perf_counter() - t0
            sizes = {k: round(os.path.getsize(p) / 2**20, 1) for k, p in paths.items()}
            out[engine] = {
                "ancestors_sql_median_ms": round(statistics.median(sql_ms), 2),
                "ancestors_sql_p95_ms": round(sorted(sql_ms)[int(0.95 * len(sql_ms)) - 1], 2),
                "ancestors_api_median_ms": round(statistics.median(api_ms), 2),
                "lineage_depth_reached": int(min(depths)),
                "full_export_parquet_s": round(export_s, 1),
                "export_mb": sizes,
            }
            log(engine, out[engine])
            store.close()
            drop_pg(url)
    emit("queries", out)


if __name__ == "__main__":
    main()
