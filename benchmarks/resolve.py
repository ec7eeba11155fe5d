"""Edit + incremental re-solve against a full solve, through the store.

A movie with its ground-truth masks as detections → link → ``trackdb solve`` (joint, 4 cost
rounds, its final cost model stored) → forbid one selected link in the middle frame → ``trackdb
resolve`` (margin 2). Reported: the full solve's time, the re-solve's time end to end (reading
the window's candidates and links, pricing them with the stored cost model, the windowed solve,
writing the new solution), how many links and cells changed, whether every cell and link
outside the window stayed, and — like for like — a solve of the whole movie on the same stored
costs with the same pin: its time, objective and how many links it chooses differently from the
re-solve (exactness), and the same by the fixed-segmentation assignment (``solve_fixed_or_joint``,
what ``trackdb solve`` and ``resolve`` run on such a graph). ``resolve.solver`` names the
re-solve's solver.

Both the full solve and the re-solve are timed in-process, in wall and CPU seconds (the CPU ratio
``speedup_cpu`` is the one load on a shared machine leaves alone) (the Python API ``run_solve`` /
``resolve``: ``speedup_end_to_end``), as the issue's figure states them; ``cli`` repeats both as
users run them, ``trackdb resolve`` after one more one-link edit and then ``trackdb solve``, each
a fresh process (wall seconds including the interpreter's start and imports), and
``cli.startup_seconds`` is ``trackdb --version``'s wall time, the floor of any command.
``resolve.delta_rows`` counts the rows the new solution stores (a delta of the solve's solution,
revision 0011; the rest is read from its base).

Movies: ``synthetic`` (default; 100 frames, 1,000 nuclei at the start, divisions, drift and
border crossings, ``synthetic.simulate``) or ``bacteria`` (the shipped CTC movie, 53 frames).

    OMP_NUM_THREADS=1 python benchmarks/resolve.py [--movie synthetic|bacteria] [--db URL] [--margin 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from benchmarks.common import DEFAULT_DATA, emit, log, restore_stdout, stdout_to_stderr  # noqa: E402
from solvers.assignment import solve_fixed_or_joint  # noqa: E402
from solvers.joint import solve_joint  # noqa: E402
from solvers.model import objective  # noqa: E402
from synthetic.ctc_io import write_ctc  # noqa: E402
from synthetic.movies import MovieSpec, generate  # noqa: E402
from synthetic.simulate import Dynamics  # noqa: E402
from trackdb.io.import_ctc import import_ctc  # noqa: E402
from trackdb.stages import edits  # noqa: E402
from trackdb.stages import pins as pin_rules  # noqa: E402
from trackdb.stages import resolve as resolve_stage  # noqa: E402
from trackdb.stages.link import run_link  # noqa: E402
from trackdb.stages.solve import run_solve, solver_used  # noqa: E402
from trackdb.store import Store, deltas, runs, schema  # noqa: E402
from trackdb.store import edits as edit_log  # noqa: E402

MOVIE = "m"
SYNTHETIC = MovieSpec(
    Dynamics(
        n_frames=100,
        n_cells=1000,
        diameter=10.0,
        step=0.3,
        drift=(0.5, 0.3),
        division_rate=0.002,
        min_cycle=20,
        seed=113,
    ),
    (1024, 1024),
)


def selection(store: Store, sid: int) -> tuple[set[tuple[int, int]], set[tuple[int, int, int]]]:
    """({(node, t)}, {(edge, source t, target t)}) of a solution."""
    sn, se = schema.solution_node.c, schema.solution_edge.c
    src, dst = schema.node.alias("s"), schema.node.alias("d")
    with store.engine.connect() as c:
        nodes = {(a, b) for a, b in c.execute(sa.select(sn.node_id, sn.t).where(sn.solution_id == sid))}
        links = {
            (a, b, d)
            for a, b, d in c.execute(
                sa.select(se.edge_id, src.c.t, dst.c.t)
                .join(src, src.c.id == se.source_id)
                .join(dst, dst.c.id == se.target_id)
                .where(se.solution_id == sid)
            )
        }
    return nodes, links


def cli_times(store: Store, links: set, src_t: dict, mid: int, args: argparse.Namespace) -> dict:
    """``trackdb resolve`` (one more one-link edit) and ``trackdb solve`` as fresh processes."""
    url = str(store.engine.url.render_as_string(hide_password=False))
    cmd = [sys.executable, "-m", "trackdb"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    taken = {e for e, _, _ in links}
    target = next(e for e in sorted(taken) if src_t.get(e) == mid + 10)
    edits.add_edit(store, MOVIE, "forbid-edge", target, author="benchmark")

    def wall(*argv: str) -> tuple[float, float]:
        """(wall, CPU = user + system) seconds of one command."""
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run([*cmd, *argv], check=True, env=env, capture_output=True, text=True).stdout
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        printed.append(out)
        return time.perf_counter() - t0, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime

    printed: list[str] = []

    startup = wall("--version")
    resolve_s = wall("resolve", "--movie", MOVIE, "--margin", str(args.margin), "--db", url)
    solve = ["solve", "--movie", MOVIE, "--method", "joint", "--time-limit", str(args.time_limit), "--db", url]
    solve_s = wall(*solve, *(["--window", str(args.window)] if args.window else []))
    return {
        "startup_seconds": round(startup[0], 3),
        "startup_cpu_seconds": round(startup[1], 3),
        "resolve_seconds": round(resolve_s[0], 3),
        "resolve_cpu_seconds": round(resolve_s[1], 3),
        "solve_seconds": round(solve_s[0], 2),
        "solve_cpu_seconds": round(solve_s[1], 2),
        "speedup": round(solve_s[0] / resolve_s[0], 1),
        "speedup_cpu": round(solve_s[1] / resolve_s[1], 1),
        "resolve_printed": {
            k: v
            for k, v in json.loads(printed[1]).items()
            if k in ("windows", "widened", "links_changed", "costs", "solver", "build_seconds", "solve_seconds")
        },
        "edit": {"kind": "forbid-edge", "edge_id": target, "frame": mid + 10},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movie", choices=["synthetic", "bacteria"], default="synthetic")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="The bacteria CTC folder.")
    ap.add_argument("--db", default=None, help="Database URL (default: SQLite in a temporary folder).")
    ap.add_argument("--margin", type=int, default=2)
    ap.add_argument(
        "--max-distance", type=float, default=None, help="Link radius (default: 15 synthetic, 100 bacteria)."
    )
    ap.add_argument("--k", type=int, default=None, help="Links per cell (default: 4 synthetic, 12 bacteria).")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="Seconds per solve of the full solve's rounds.")
    ap.add_argument("--window", type=int, default=None, help="Solve the full movie in windows of this many frames.")
    args = ap.parse_args()
    saved = stdout_to_stderr()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or f"sqlite:///{tmp}/resolve.sqlite", create=True)
        t0 = time.perf_counter()
        if args.movie == "synthetic":
            write_ctc(generate(SYNTHETIC), Path(tmp) / "syn", raw=False)
            import_ctc(store, Path(tmp) / "syn", "01", MOVIE, masks_only=True)
            run_link(store, MOVIE, max_distance=args.max_distance or 15, k=args.k or 4)
        else:
            import_ctc(store, args.data, "01", MOVIE, masks_only=True)
            run_link(store, MOVIE, max_distance=args.max_distance or 100, k=args.k or 12)
        log("imported and linked", round(time.perf_counter() - t0, 1), "s")
        t0, c0 = time.perf_counter(), time.process_time()
        full = run_solve(store, MOVIE, method="joint", time_limit=args.time_limit, window=args.window)
        full_s, full_cpu = time.perf_counter() - t0, time.process_time() - c0
        log("full solve", full.status, round(full_s, 1), "s")
        movie = store.movie(MOVIE)
        nodes0, links0 = selection(store, full.solution_id)
        mid = movie.n_frames // 2
        se = schema.solution_edge.c
        with store.engine.connect() as c:
            rows = c.execute(
                sa.select(se.edge_id, se.source_id).where(se.solution_id == full.solution_id).order_by(se.edge_id)
            ).all()
        out_deg: dict[int, int] = {}
        for _, s in rows:
            out_deg[s] = out_deg.get(s, 0) + 1
        src_t = {e: t for e, t, _ in links0}
        target = next(e for e, s in rows if src_t[e] == mid and out_deg[s] == 1)  # a continuing link
        edit_id = edits.add_edit(store, MOVIE, "forbid-edge", target, author="benchmark")
        t0, c0 = time.perf_counter(), time.process_time()
        r = resolve_stage.resolve(store, MOVIE, margin=args.margin)
        resolve_s, resolve_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert r is not None
        log("resolve", r.status, round(resolve_s, 2), "s, windows", r.windows)
        nodes1, links1 = selection(store, r.solution_id)
        with store.engine.connect() as c:
            d = deltas.delta_of(c, r.solution_id)
        delta_rows = {"base_solution_id": d.base_id, **{f"own_{k}": len(v) for k, v in d.own.items()}}
        delta_rows.update({f"hidden_{k}": len(v) for k, v in d.hidden.items()})
        lo, hi = r.windows[0][0], r.windows[-1][1]

        def out_n(ns: set) -> set:
            return {x for x in ns if not lo <= x[1] <= hi}

        def out_e(es: set) -> set:
            return {x for x in es if x[2] < lo or x[1] > hi}

        # like for like: the whole movie on the same stored costs with the same pin
        chain = runs.solve_chain(store, movie)
        t0 = time.perf_counter()
        cm = resolve_stage.load_chain_model(store, movie, chain)
        whole_build_s = time.perf_counter() - t0
        cons = pin_rules.constraints(edit_log.all_edits(store, movie.id))
        pins, _, _ = pin_rules.pins_for(cons, cm.node_ids, cm.edge_ids)
        t0 = time.perf_counter()
        whole = solve_joint(cm.graph, pins=pins, time_limit=args.time_limit)
        whole_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole_fixed = solve_fixed_or_joint(cm.graph, pins, time_limit=args.time_limit)
        whole_fixed_s = time.perf_counter() - t0
        resolved = resolve_stage.selection_of(store, r.solution_id, cm.node_ids, cm.edge_ids)
        resolved_obj = objective(cm.graph, resolved.node_selected, resolved.edge_selected)
        links_w = {int(i) for i in cm.edge_ids[whole.edge_selected]}
        nodes_w = {int(i) for i in cm.node_ids[whole.node_selected]}
        result = {
            "movie": {
                "name": args.movie,
                "frames": movie.n_frames,
                "cells": len(nodes0),
                "links": len(links0),
                "candidate_links": int(cm.graph.n_edges),
            },
            "full_solve": {
                "seconds": round(full_s, 2),
                "cpu_seconds": round(full_cpu, 2),
                "status": full.status,
                "solver_seconds": round(full.seconds, 2),
                "rounds": len(full.history),
                "time_limit": args.time_limit,
                "window": args.window,
            },
            "edit": {"edit_id": edit_id, "kind": "forbid-edge", "edge_id": target, "frame": mid, "margin": args.margin},
            "resolve": {
                "seconds": round(resolve_s, 3),
                "cpu_seconds": round(resolve_cpu, 3),
                "status": r.status,
                "costs": r.costs,
                **r.solver,
                "build_seconds": round(r.build_seconds, 3),
                "solver_seconds": round(r.solve_seconds, 3),
                "write_seconds": round(r.write_seconds, 3),
                "delta_rows": delta_rows,
                "windows": r.windows,
                "widened": r.widened,
                "links_changed": r.links_changed,
                "cells_changed": r.nodes_changed,
                "forbidden_link_gone": target not in {e for e, _, _ in links1},
                "outside_window_identical": out_n(nodes1) == out_n(nodes0) and out_e(links1) == out_e(links0),
            },
            "whole_movie_same_costs_and_pin": {
                "build_seconds": round(whole_build_s, 2),
                "solver_seconds": round(whole_s, 2),
                "status": whole.status.value,
                "objective": whole.objective,
                "assignment": {
                    **solver_used(whole_fixed),
                    "seconds": round(whole_fixed_s, 3),
                    "objective": whole_fixed.objective,
                },
                "resolve_objective": resolved_obj,
                "resolve_reported_objective": r.objective,
                "relative_difference": abs(resolved_obj - whole.objective) / max(abs(whole.objective), 1.0),
                "links_differing_from_resolve": len(links_w ^ {e for e, _, _ in links1}),
                "cells_differing_from_resolve": len(nodes_w ^ {n for n, _ in nodes1}),
            },
            "speedup_end_to_end": round(full_s / resolve_s, 1),
            "speedup_cpu": round(full_cpu / resolve_cpu, 1),
        }
        result["cli"] = cli_times(store, links1, src_t, mid, args)
        store.close()
    restore_stdout(saved)
    emit(f"resolve_{args.movie}", result)


if __name__ == "__main__":
    main()
