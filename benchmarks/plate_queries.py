"""Plate-wide SQL and the per-experiment Parquet export on a plate of synthetic movies, both engines.

Generates ``--movies`` synthetic movies (``--frames`` frames, ``--cells`` initial cells,
divisions, deaths, cells crossing the border; ``synthetic.movies``), imports each with its GT
lineage (the GT solution is current) with conditions (drug, numeric dose, well): the first
``--queried`` into the experiment the queries read, the others into a second experiment of the
same store (a store holds many plates: a plate query must not read the others), and stores one
uncertainty run per movie with a random probability for every link and cell, so the probability
tables hold real volumes. Then times
every query of docs/plate_queries.md (median of ``--repeats``), checks each plan for tables read
whole (``tests/store/test_plate_queries.full_scans``: EXPLAIN QUERY PLAN on SQLite; on PostgreSQL
with the default planner over the ANALYZEd tables, and with sequential scans priced out), times
``export_parquet`` of the other (larger) experiment and pandas reading it back. One JSON object.

    python benchmarks/plate_queries.py [--movies 12 --queried 3 --frames 100 --cells 300 --engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, log
from benchmarks.synthetic_store import drop_pg, fresh_url
from synthetic.ctc_io import write_ctc
from synthetic.movies import MovieSpec, generate
from synthetic.simulate import Dynamics
from tests.store.test_plate_queries import DOC_PARAMS, full_scans, plan
from trackdb.io.import_ctc import import_ctc
from trackdb.io.parquet import export_parquet
from trackdb.store import Store, probabilities, queries, runs, schema
from trackdb.store.runs import RunKind, UncertaintyParams

EXPERIMENT = "plate-bench"
OTHER = "plate-other"


def write_movies(root: Path, n: int, frames: int, cells: int) -> list[tuple[str, Path, dict[str, object]]]:
    out = []
    for i in range(n):
        dyn = Dynamics(
            n_frames=frames,
            n_cells=cells,
            diameter=14.0,
            step=0.3,
            division_rate=0.01 if i % 2 == 0 else 0.005,
            min_cycle=15,
            death_rate=0.002 if i % 2 == 0 else 0.006,
            seed=100 + i,
        )
        side = int(14 * np.sqrt(cells) * 1.6)
        movie = generate(MovieSpec(dyn, (side, side)))
        name = f"{'ABCDEFGH'[i // 12]}{i % 12 + 1:02d}"
        ds = write_ctc(movie, root / name, raw=False)
        conds: dict[str, object] = {
            "well": name,
            "drug": "DMSO" if i % 2 == 0 else "taxol",
            "dose_um": 0.0 if i % 2 == 0 else 1.5,
        }
        out.append((name, ds, conds))
        log(f"  generated {name}: {movie.info['n_cells']} cells, {movie.info['n_divisions']} divisions")
    return out


def load(store: Store, movies: list[tuple[str, Path, dict[str, object]]], queried: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    t_import = t_prob = 0.0
    mc = schema.movie_condition
    for i, (name, ds, conds) in enumerate(movies):
        start = time.perf_counter()
        res = import_ctc(store, ds, "01", name, experiment=EXPERIMENT if i < queried else OTHER)
        t_import += time.perf_counter() - start
        with store.begin() as c:
            c.execute(
                mc.insert(),
                [
                    {
                        "movie_id": res.movie_id,
                        "key": k,
                        "value": v if c.dialect.name == "sqlite" else str(v),
                        "value_num": float(v) if isinstance(v, float) else None,
                    }
                    for k, v in conds.items()
                ],
            )
        start = time.perf_counter()
        sid = store.solution_id(store.movie(name))
        edge_ids = queries.run_sql(store, f"SELECT id FROM edge WHERE movie_id = {res.movie_id}")["id"].to_numpy()
        node_ids = queries.run_sql(store, f"SELECT id FROM node WHERE movie_id = {res.movie_id}")["id"].to_numpy()
        params = UncertaintyParams(method="as", k=10, temperature=1.0, solution_id=sid, solve_run_id=0)
        with runs.record(store, res.movie_id, RunKind.UNCERTAINTY, params) as run_id, store.begin() as c:
            probabilities.insert_probabilities(
                c,
                run_id,
                "as",
                edge_ids,
                rng.uniform(0.5, 1.0, len(edge_ids)),
                node_ids,
                np.ones(len(node_ids)),
                rng.uniform(0, 0.7, len(node_ids)),
            )
        t_prob += time.perf_counter() - start
    return {"import_seconds": round(t_import, 2), "probabilities_seconds": round(t_prob, 2)}


def time_query(store: Store, sql: str, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(queries.run_sql(store, sql))
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1), n


def default_plan_scans(store: Store, sql: str) -> list[str]:
    """PostgreSQL's own choice over the analysed tables (no planner setting changed)."""
    with store.engine.begin() as c:
        c.exec_driver_sql("ANALYZE")
        (doc,) = c.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()
    out: list[str] = []

    def walk(node: dict) -> None:
        if node.get("Node Type") == "Seq Scan":
            out.append(f"Seq Scan on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(doc["Plan"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--movies", type=int, default=12)
    ap.add_argument("--queried", type=int, default=3, help="movies of the queried experiment (the rest: another)")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="plate-queries-"))
    result: dict[str, object] = {
        "movies": args.movies,
        "queried_movies": args.queried,
        "frames": args.frames,
        "initial_cells": args.cells,
    }
    try:
        log("generating movies")
        start = time.perf_counter()
        movies = write_movies(tmp / "data", args.movies, args.frames, args.cells)
        result["generate_seconds"] = round(time.perf_counter() - start, 1)
        for engine in args.engines.split(","):
            url = fresh_url(engine, str(tmp / "plate.sqlite"))
            try:
                store = Store(url, create=True)
                log(f"{engine}: loading")
                res: dict[str, object] = {**load(store, movies, args.queried)}
                counts = queries.run_sql(
                    store,
                    "SELECT (SELECT COUNT(*) FROM node) AS nodes, (SELECT COUNT(*) FROM edge) AS edges, "
                    "(SELECT COUNT(*) FROM track) AS tracks, (SELECT COUNT(*) FROM edge_probability) AS link_p",
                ).to_dict("records")[0]
                res["rows"] = {str(k): int(v) for k, v in counts.items()}
                node = int(
                    queries.run_sql(
                        store,
                        "SELECT MAX(sn.node_id) AS node FROM movie m JOIN solution_node sn "
                        f"ON sn.solution_id = m.current_solution_id WHERE m.name = '{movies[0][0]}'",
                    )["node"].tolist()[0]
                )
                params = {**DOC_PARAMS, "experiment": EXPERIMENT, "node_id": node}
                per_query = {}
                for name, sql in queries.PLATE_SQL.items():
                    text = queries.inline(sql, params)
                    ms, n = time_query(store, text, args.repeats)
                    entry: dict[str, object] = {"median_ms": ms, "rows": n, "full_scans": full_scans(store, text)}
                    if store.is_postgres:
                        entry["default_plan_seq_scans"] = default_plan_scans(store, text)
                    per_query[name] = entry
                    log(f"  {name}: {ms} ms, {n} rows, scans {entry['full_scans']}")
                res["queries"] = per_query
                res["plan_lines_lineage"] = plan(store, queries.inline(queries.PLATE_SQL["lineage"], params))
                out = tmp / f"export-{engine}"
                start = time.perf_counter()
                exp = export_parquet(store, out, experiment=OTHER)
                res["export_seconds"] = round(time.perf_counter() - start, 2)
                res["export_rows"] = exp.rows
                res["export_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 1)
                start = time.perf_counter()
                nodes = pd.read_parquet(out / "nodes")
                res["pandas_read_nodes_seconds"] = round(time.perf_counter() - start, 2)
                assert len(nodes) == exp.rows["nodes"]
                store.close()
                result[engine] = res
            finally:
                if engine == "postgresql":
                    drop_pg(url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit("plate_queries", result)


if __name__ == "__main__":
    main()
