"""Ingest throughput: 1,000,000 nodes (~30×30 masks, 64-dim embeddings) and 3,000,000 edges.

Prints one JSON object. Goal (issue 2): ≥ 150,000 nodes/s into SQLite, ≥ 100,000 into
PostgreSQL. Usage: ``python benchmarks/ingest.py [--frames 200 --cells 5000] [--engines sqlite,postgresql]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_store import build, drop_pg, fresh_url  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args()
    out: dict[str, object] = {"nodes": args.frames * args.cells, "frames": args.frames, "cells_per_frame": args.cells,
                              "mask_bbox": "24-35 px square", "embedding_dim": 64, "cpu_count": os.cpu_count(),
                              "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_url(engine, os.path.join(tmp, "bench.sqlite"))
            t0 = time.perf_counter()
            b = build(url, args.frames, args.cells,
                      progress=lambda f: print(f"{engine}: {f}/{args.frames} frames", file=sys.stderr))
            total = time.perf_counter() - t0
            load = round(os.getloadavg()[0], 2)
            out[engine] = {
                "node_seconds": round(b.node_seconds, 2), "nodes_per_s": round(b.n_nodes / b.node_seconds),
                "edges": b.n_edges, "edge_seconds": round(b.edge_seconds, 2),
                "edges_per_s": round(b.n_edges / b.edge_seconds),
                "solution_seconds": round(b.solution_seconds, 2), "wall_seconds_incl_generation": round(total, 1),
                "load_avg_1m_at_end": load,
            }
            if engine == "sqlite":
                out[engine]["file_mb"] = round(os.path.getsize(os.path.join(tmp, "bench.sqlite")) / 2**20, 1)
            drop_pg(url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
