"""Edit + incremental re-solve against a full solve, on the bacteria movie through the store.

Ground-truth masks as detections (``import-ctc --masks-only``) → link (100 px, k 12) → joint
solve (``trackdb solve``: 4 cost rounds); then forbid one selected link in the middle of the
movie and ``trackdb resolve`` it (margin 2). Reported: the full solve's time, the re-solve's time
(everything: loading the graph, costs, the windowed solve, writing), how many links and cells
changed, and whether every cell and link outside the window stayed. For a like-for-like solver
figure it also solves the whole movie once on the re-solve's costs with the same pin, and once
without it (how many links the re-estimated costs choose differently from the stored solve).

    OMP_NUM_THREADS=1 python benchmarks/resolve.py [--data DIR] [--db URL] [--margin 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from benchmarks.common import (
    DEFAULT_DATA,
    finite,
    log,
    restore_stdout,
    stdout_to_stderr,
)
from solvers.joint import solve_joint
from solvers.types import Pins
from trackdb.stages import edits
from trackdb.stages import resolve as resolve_stage
from trackdb.store import runs, schema
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.store import Store

MOVIE = "bact"


def selection(store: Store, sid: int) -> tuple[set[tuple[int, int]], set[tuple[int, int, int]]]:
    """({(node, t)}, {(edge, source t, target t)}) of a solution."""
    sn, se = schema.solution_node.c, schema.solution_edge.c
    src, dst = schema.node.alias("s"), schema.node.alias("d")
    with store.engine.connect() as c:
        nodes = {(a, b) for a, b in c.execute(sa.select(sn.node_id, sn.t).where(sn.solution_id == sid))}
        links = {(a, b, d) for a, b, d in c.execute(
            sa.select(se.edge_id, src.c.t, dst.c.t).join(src, src.c.id == se.source_id)
            .join(dst, dst.c.id == se.target_id).where(se.solution_id == sid))}
    return nodes, links


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--db", default=None, help="Database URL (default: SQLite in a temporary folder).")
    ap.add_argument("--margin", type=int, default=2)
    args = ap.parse_args()
    saved = stdout_to_stderr()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or f"sqlite:///{tmp}/resolve.sqlite", create=True)
        import_ctc(store, args.data, "01", MOVIE, masks_only=True)
        run_link(store, MOVIE, max_distance=100, k=12)
        t0 = time.perf_counter()
        full = run_solve(store, MOVIE, method="joint")
        full_s = time.perf_counter() - t0
        log("full solve", full.status, round(full_s, 1), "s")
        movie = store.movie(MOVIE)
        nodes0, links0 = selection(store, full.solution_id)
        mid = movie.n_frames // 2
        # a continuing link (its source has one selected out-link) from the middle frame
        out_deg: dict[int, int] = {}
        se = schema.solution_edge.c
        with store.engine.connect() as c:
            rows = c.execute(sa.select(se.edge_id, se.source_id).where(se.solution_id == full.solution_id)
                             .order_by(se.edge_id)).all()
        for _, s in rows:
            out_deg[s] = out_deg.get(s, 0) + 1
        src_t = {e: t for e, t, _ in links0}
        target = next(e for e, s in rows if src_t[e] == mid and out_deg[s] == 1)
        edit_id = edits.add_edit(store, MOVIE, "forbid-edge", target, author="benchmark")
        t0 = time.perf_counter()
        r = resolve_stage.resolve(store, MOVIE, margin=args.margin)
        resolve_s = time.perf_counter() - t0
        assert r is not None
        log("resolve", r.status, round(resolve_s, 1), "s, windows", r.windows)
        nodes1, links1 = selection(store, r.solution_id)
        lo, hi = r.windows[0][0], r.windows[-1][1]

        def out_n(ns: set) -> set:
            return {x for x in ns if not lo <= x[1] <= hi}

        def out_e(es: set) -> set:
            return {x for x in es if x[2] < lo or x[1] > hi}

        # like-for-like: the whole movie on the same costs with the same pin
        chain = runs.solve_chain(store, movie)
        graph, node_ids, edge_ids = resolve_stage.chain_model(store, movie, chain)
        local = int(np.searchsorted(edge_ids, target))
        t0 = time.perf_counter()
        whole = solve_joint(graph, pins=Pins(forbid_edges=np.array([local])))
        whole_s = time.perf_counter() - t0
        plain = solve_joint(graph)  # no pin: how closely the rebuilt costs reproduce the stored solve
        plain_links = {int(i) for i in edge_ids[plain.edge_selected]}
        nodes_w = {int(i) for i in node_ids[whole.node_selected]}
        links_w = {int(i) for i in edge_ids[whole.edge_selected]}
        out = {
            "movie": {"frames": movie.n_frames, "cells": len(nodes0), "links": len(links0)},
            "full_solve": {"seconds": round(full_s, 2), "status": full.status,
                           "solver_seconds": round(full.seconds, 2), "rounds": len(full.history)},
            "edit": {"edit_id": edit_id, "kind": "forbid-edge", "edge_id": target, "frame": mid,
                     "margin": args.margin},
            "resolve": {"seconds": round(resolve_s, 2), "status": r.status,
                        "build_seconds": round(r.build_seconds, 2), "solver_seconds": round(r.solve_seconds, 2),
                        "windows": r.windows, "links_changed": r.links_changed, "cells_changed": r.nodes_changed,
                        "forbidden_link_gone": target not in {e for e, _, _ in links1},
                        "outside_window_identical": out_n(nodes1) == out_n(nodes0) and out_e(links1) == out_e(links0)},
            "whole_movie_same_costs_and_pin": {
                "solver_seconds": round(whole_s, 2), "status": whole.status.value,
                "objective": whole.objective, "resolve_objective": r.objective,
                "links_differing_from_resolve": len(links_w ^ {e for e, _, _ in links1}),
                "cells_differing_from_resolve": len(nodes_w ^ {n for n, _ in nodes1})},
            "rebuilt_costs_reproduce_full_solve": {
                "links_differing": len(plain_links ^ {e for e, _, _ in links0}), "status": plain.status.value},
            "speedup_end_to_end": round(full_s / resolve_s, 1),
        }
        store.close()
    restore_stdout(saved)
    print(json.dumps(finite(out), indent=2))


if __name__ == "__main__":
    main()
