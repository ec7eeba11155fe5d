"""Joint ILP scaling: time and peak memory per backend on synthetic movies with 3-level forests.

Each frame holds ``cells`` true cells (drifting on a smooth field, 0.5% dividing and 0.5% vanishing per frame)
and their candidate forest: the cells (leaves), pairs of neighbours merged (level 1) and pairs
of pairs (level 2), so ~1.75 × cells candidates per frame competing along leaf-to-root paths.
Every candidate links to its 4 nearest candidates of the next frame. Leaves are slightly
better than their merges, so the optimum is the leaves; the LP relaxation is nearly tight,
as for real tracking problems.

Every measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own. Prints ONE JSON object on stdout; progress on stderr.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/joint_scaling.py          # modest default
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/joint_scaling.py --full   # + 100 × 1000 windowed
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from solvers.joint import solve_joint, solve_windowed
from solvers.types import CandidateGraph

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, log, restore_stdout, stdout_to_stderr


def synthetic_graph(n_frames: int, cells: int, seed: int = 0, k: int = 4) -> CandidateGraph:
    """A synthetic movie's candidate graph (see the module docstring)."""
    rng = np.random.default_rng(seed)
    side = np.sqrt(cells) * 25.0
    pos = rng.uniform(0, side, (cells, 2))
    t_parts, c_parts, cost_parts, par_parts = [], [], [], []
    offset = 0
    for f in range(n_frames):
        n = len(pos)
        # forest: order cells along a serpentine scan so that consecutive cells are neighbours
        row = np.floor(pos[:, 0] / 25.0)
        order = np.lexsort((np.where(row % 2 == 0, pos[:, 1], -pos[:, 1]), row))
        leaves = pos[order]
        m1 = n // 2
        lvl1 = (leaves[0 : 2 * m1 : 2] + leaves[1 : 2 * m1 : 2]) / 2
        m2 = m1 // 2
        lvl2 = (lvl1[0 : 2 * m2 : 2] + lvl1[1 : 2 * m2 : 2]) / 2
        cen = np.concatenate([leaves, lvl1, lvl2])
        parent = np.full(len(cen), -1)
        parent[: 2 * m1] = n + np.arange(2 * m1) // 2
        parent[n : n + 2 * m2] = n + m1 + np.arange(2 * m2) // 2
        leaf_cost = -10.0 + rng.normal(0, 0.5, n)
        c1 = leaf_cost[0 : 2 * m1 : 2] + leaf_cost[1 : 2 * m1 : 2] + 3.0 + rng.normal(0, 1, m1)
        c2 = c1[0 : 2 * m2 : 2] + c1[1 : 2 * m2 : 2] + 3.0 + rng.normal(0, 1, m2)
        t_parts.append(np.full(len(cen), f))
        c_parts.append(cen)
        cost_parts.append(np.concatenate([leaf_cost, c1, c2]))
        par_parts.append(np.where(parent >= 0, parent + offset, -1))
        offset += len(cen)
        # move: smooth drift field + noise; 0.5% divide
        drift = 4.0 * np.stack([np.sin(pos[:, 1] / side * 3), np.cos(pos[:, 0] / side * 3)], 1)
        pos = pos + drift + rng.normal(0, 1.5, pos.shape)
        div = rng.random(len(pos)) < 0.005
        gone = rng.random(len(pos)) < 0.005  # as many vanish, so the count stays ≈ cells
        pos = np.concatenate([pos[~gone], pos[div] + rng.normal(0, 6, (int(div.sum()), 2))])
    t = np.concatenate(t_parts)
    cen = np.concatenate(c_parts)
    src_parts, dst_parts = [], []
    for f in range(n_frames - 1):
        a = np.flatnonzero(t == f)
        b = np.flatnonzero(t == f + 1)
        _, nb = cKDTree(cen[b]).query(cen[a], k=k)
        src_parts.append(np.repeat(a, k))
        dst_parts.append(b[nb.ravel()])
    src = np.concatenate(src_parts)
    dst = np.concatenate(dst_parts)
    d2 = np.sum((cen[dst] - cen[src]) ** 2, axis=1)
    n = len(t)
    return CandidateGraph(
        node_t=t,
        node_cost=np.concatenate(cost_parts),
        node_hier_parent=np.concatenate(par_parts),
        edge_source=src,
        edge_target=dst,
        edge_cost=d2 / (2 * 5.0**2),
        appear_cost=np.where(t == 0, 0.0, 8.0),
        disappear_cost=np.where(t == n_frames - 1, 0.0, 8.0),
        division_cost=np.full(n, 6.0),
    )


def measure_one(spec: dict) -> dict:
    """Run one configuration in this process and report its figures."""
    t0 = time.perf_counter()
    g = synthetic_graph(spec["frames"], spec["cells"], seed=spec.get("seed", 0))
    gen = time.perf_counter() - t0
    kw = dict(backend=spec["backend"], time_limit=spec["time_limit"], workers=spec["workers"])
    if spec.get("window"):
        sol = solve_windowed(g, window=spec["window"], overlap=spec["overlap"], **kw)
    else:
        sol = solve_joint(g, **kw)
    leaves = np.ones(g.n_nodes, bool)
    leaves[g.node_hier_parent[g.node_hier_parent >= 0]] = False
    return {
        **spec,
        "nodes": g.n_nodes,
        "edges": g.n_edges,
        "status": sol.status.value,
        "objective": sol.objective,
        "gap": sol.gap,
        "seconds": round(sol.seconds, 2),
        "build_seconds": round(float(sol.info.get("build_seconds", float("nan"))), 3),
        "generate_seconds": round(gen, 2),
        "selected_leaf_fraction": float(sol.node_selected[leaves].mean()),
        "windows": sol.info.get("windows"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_isolated(spec: dict) -> dict:
    log("running", spec)
    proc = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["time_limit"] * 3 + 900,
    )
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    log("  ->", {k: out[k] for k in ("status", "seconds", "peak_rss_mb", "nodes", "edges")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="add 100 frames × 1000 cells windowed")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--backends", default="highs,ortools-highs,scip,cpsat")
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    if args.one:
        saved = stdout_to_stderr()
        one = measure_one(json.loads(args.one))
        restore_stdout(saved)
        # one configuration for the parent process: its JSON line, not a recorded result
        emit("joint_scaling", one, save=False, indent=None)
        return
    backends = args.backends.split(",")
    base = {"time_limit": args.time_limit, "workers": 1}
    runs = []
    # backend comparison: 3 frames x 300 cells (≈ the 3 × 1,050 candidates)
    for b in backends:
        runs.append(run_isolated({**base, "backend": b, "frames": 3, "cells": 600}))
    # growth with cells per frame (fastest backend), 5 frames
    for cells in (100, 300, 1000):
        runs.append(run_isolated({**base, "backend": "highs", "frames": 5, "cells": cells}))
    # windowed
    runs.append(run_isolated({**base, "backend": "highs", "frames": 20, "cells": 300, "window": 10, "overlap": 2}))
    if args.full:
        runs.append(
            run_isolated(
                {
                    **base,
                    "backend": "highs",
                    "frames": 100,
                    "cells": 1000,
                    "window": 10,
                    "overlap": 2,
                    "time_limit": 120.0,
                }
            )
        )
    note = "peak_rss_mb is the whole subprocess (Python + numpy + solver); seconds = model build + solve"
    emit("joint_scaling", {"runs": runs, "note": note})


if __name__ == "__main__":
    main()
