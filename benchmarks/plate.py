"""A whole synthetic plate through ``trackdb experiment run`` on PostgreSQL (issue 12 figures).

Writes ``--movies`` synthetic CTC movies (``--frames`` × ~``--cells`` nuclei, the density and
motion of synthetic case ``speed``, one seed each; cached under ``--data``), and the issue's
manifest (link = {}, solve joint, uncertainty AS k = 10). Then, each in a PostgreSQL database of
its own (created, dropped after):

* ``workers_2``: the plate with 2 workers, end to end (CLI start to exit: cluster start, import of
  the label images, link, solve, uncertainty), peak memory per worker;
* ``workers_1``: the same with 1 worker (the scaling ratio); ``--skip-one-worker`` leaves it out;
* ``kill_resume``: the 2-worker run SIGKILLed as a whole (process group) once about half of the
  movies are solved, then run again; both parts' times beside the uninterrupted run and the
  equality check (row counts and selected-lineage digest per movie, defects) against
  ``workers_2``; ``--skip-kill`` leaves it out.

Accuracy of every movie against its synthetic truth (LNK, TRA) from the ``workers_2`` store, and
the measured cost of each stage per movie for the on-paper estimate: the workers' compute seconds
of its tasks (``compute_seconds``, Dask's task stream) beside the run rows' wall spans
(``stage_costs.run_span_seconds``, which include waiting for a worker). ``--cells`` is the count
of the first frame; divisions grow it (×~1.45 by frame 100 at the default rate), so the default
243 gives a mean of ~300 a frame over 100 frames, the issue's 720,000 cells; the plate's cell
count is reported as measured (``stage_costs.cells``), and the rows the 2-worker run stored per
table (``stored_rows``; alternatives as their delta rows).

    OMP_NUM_THREADS=1 python benchmarks/plate.py                       # the issue's 24 x 100 x ~300
    OMP_NUM_THREADS=1 python benchmarks/plate.py --movies 8 --frames 50 --cells 150
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, emit, log  # noqa: E402

ADMIN_URL = os.environ.get("TRACKDB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DENSITY = 258 / 1024**2  # cells per pixel of synthetic case "speed"
DIAMETER = 9.0


def write_plate(root: Path, movies: int, frames: int, cells: int, frames_per_task: int) -> Path:
    """The movies (generated once per size and seed) and the manifest; returns the manifest."""
    from synthetic.ctc_io import write_ctc
    from synthetic.movies import MovieSpec, generate
    from synthetic.simulate import Dynamics

    side = int(round((cells / DENSITY) ** 0.5 / 16) * 16)
    root.mkdir(parents=True, exist_ok=True)
    lines = [f'[experiment]\nname = "bench-plate"\nframes_per_task = {frames_per_task}\n']
    for i in range(movies):
        folder = root / f"m{i:03d}"
        if not (folder / "01_GT" / "TRA" / "man_track.txt").exists():
            t0 = time.perf_counter()
            dyn = Dynamics(
                n_frames=frames,
                n_cells=cells,
                diameter=DIAMETER,
                step=0.3,
                drift=(0.5, 0.3),
                division_rate=0.0045,
                min_cycle=15,
                seed=1000 + i,
            )
            write_ctc(generate(MovieSpec(dyn, (side, side))), folder, raw=False)
            log(f"generated {folder.name} ({side}x{side}) in {time.perf_counter() - t0:.1f} s")
        row, col = divmod(i, 12)
        well = f"{'ABCDEFGHIJKLMNOP'[row % 16]}{col + 1:02d}"
        dose = [0.0, 0.1, 1.0, 10.0][i % 4]
        lines.append(
            f'[[movie]]\nname = "{well}"\nsource = "{folder.name}"\nseq = "01"\nmasks = "gt"\n'
            f'conditions = {{ drug = "{"DMSO" if dose == 0 else "taxol"}", dose_um = {dose}, well = "{well}" }}\n'
        )
    lines.append('[stages]\nlink = {}\nsolve = { method = "joint" }\nuncertainty = { method = "as", k = 10 }\n')
    path = root / "plate.toml"
    path.write_text("\n".join(lines))
    return path


class Databases:
    """PostgreSQL databases of the benchmark's own, dropped at the end."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def new(self) -> str:
        name = f"plate_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
        self.made.append(name)
        return str(sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))

    def drop(self) -> None:
        with self.admin.connect() as c:
            for name in self.made:
                c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin.dispose()


class Load:
    """The 1-minute load average sampled every 5 s while a run goes (other work shares the cores)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> Load:
        self.before = os.getloadavg()[0]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def summary(self) -> dict[str, float | None]:
        mean = sum(self.samples) / len(self.samples) if self.samples else None
        return {"before": round(self.before, 2), "mean_during": None if mean is None else round(mean, 2)}


def cli(manifest: Path, url: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trackdb",
        "experiment",
        "run",
        str(manifest),
        "--workers",
        str(workers),
        "--no-progress",
        "--db",
        url,
    ]


def run_plate(manifest: Path, url: str, workers: int) -> dict[str, Any]:
    """One end-to-end run of the CLI; its summary JSON, wall time and the load meanwhile."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with Load() as load:
        t0 = time.perf_counter()
        out = subprocess.run(cli(manifest, url, workers), capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
    if out.returncode != 0:
        log(out.stderr[-3000:])
    summary = json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}
    return {"exit": out.returncode, "wall_seconds": round(wall, 1), "load": load.summary(), "summary": summary}


def _count(url: str, sql: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(sa.text(sql)).scalar_one())
    except sa.exc.ProgrammingError:
        return 0
    finally:
        eng.dispose()


def kill_and_resume(manifest: Path, url: str, movies: int) -> dict[str, Any]:
    """SIGKILL the whole 2-worker run once half the movies are solved, then run it again."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cli(manifest, url, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        cwd=ROOT,
    )
    target = max(1, movies // 2)
    solved = 0
    while proc.poll() is None:
        solved = _count(url, "SELECT COUNT(*) FROM run WHERE kind = 'solve' AND status = 'succeeded'")
        if solved >= target:
            break
        time.sleep(0.5)
    finished_first = proc.poll() is not None
    if not finished_first:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.perf_counter() - t0
    unfinished = _count(url, "SELECT COUNT(*) FROM run WHERE status <> 'succeeded'")
    resumed = run_plate(manifest, url, 2)
    return {
        "killed_after_seconds": round(killed_after, 1),
        "solved_when_killed": solved,
        "runs_unfinished_when_killed": unfinished,
        "finished_before_kill": finished_first,
        "resumed": resumed,
        "total_seconds": round(killed_after + resumed["wall_seconds"], 1),
    }


def stored_rows(url: str) -> dict[str, int]:
    """Rows per stored table of the whole plate (tables, not views: an alternative stored as a
    delta counts its delta rows only), for the on-paper estimate of what a plate writes."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            names = sorted(sa.inspect(c).get_table_names())
            counts = {n: int(c.execute(sa.text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one()) for n in names}
    finally:
        eng.dispose()
    rows = {n: k for n, k in counts.items() if k and n != "alembic_version"}
    rows["total"] = sum(rows.values())
    return rows


def store_state(url: str) -> dict[str, Any]:
    from trackdb.store import Store, experiments

    with Store(url) as s:
        movies = experiments.experiment_movies(s, "bench-plate")
        return {
            "movies": {
                m.name: {"rows": experiments.row_counts(s, m.id), "lineage": experiments.lineage_digest(s, m.id)}
                for m in movies
            },
            "defects": experiments.defects(s),
        }


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Where two stores differ: per movie, the tables whose row counts differ and the digest."""
    out: dict[str, Any] = {}
    for movie in sorted(set(a["movies"]) | set(b["movies"])):
        ma, mb = a["movies"].get(movie), b["movies"].get(movie)
        if ma is None or mb is None:
            out[movie] = "missing in one store"
            continue
        rows = {t: [ma["rows"][t], mb["rows"][t]] for t in ma["rows"] if ma["rows"][t] != mb["rows"].get(t)}
        if rows or ma["lineage"] != mb["lineage"]:
            out[movie] = {"rows": rows, "same_lineage": ma["lineage"] == mb["lineage"]}
    return out


def accuracy(url: str, manifest: Path) -> dict[str, dict[str, float]]:
    """LNK and TRA of every movie's current solution against its synthetic truth."""
    from trackdb.experiment import manifest as mf
    from trackdb.stages.evaluate import evaluate_solution
    from trackdb.store import Store

    out = {}
    with Store(url) as s:
        for entry in mf.load(manifest).movies:
            ev = evaluate_solution(s, entry.name, entry.source / "01_GT", None)
            out[entry.name] = {"LNK": round(float(ev["LNK"]), 4), "TRA": round(float(ev["TRA"]), 4)}
    return out


def stage_costs(url: str) -> dict[str, Any]:
    """Per stage: mean and max wall span of a movie's run row (begun by its first task, marked
    finished by its last), and the plate's cells and candidate links. A span includes the time
    the movie's tasks waited for a worker (every movie's import begins at the start and its
    chunks queue behind the other movies'), so it is not the stage's cost: that is the workers'
    compute seconds of the run summary (``compute_seconds``, from Dask's task stream)."""
    from trackdb.store import Store

    sql = sa.text(
        "SELECT kind, COUNT(*), AVG(EXTRACT(EPOCH FROM (finished_at - started_at))), "
        "MAX(EXTRACT(EPOCH FROM (finished_at - started_at))) FROM run WHERE status = 'succeeded' GROUP BY kind"
    )
    with Store(url) as s, s.engine.connect() as c:
        rows = c.execute(sql).all()
        nodes = c.execute(sa.text("SELECT COUNT(*) FROM node")).scalar_one()
        edges = c.execute(sa.text("SELECT COUNT(*) FROM edge")).scalar_one()
    return {
        "run_span_seconds": {
            str(k): {"runs": int(n), "mean": round(float(a), 2), "max": round(float(b), 2)} for k, n, a, b in rows
        },
        "cells": int(nodes),
        "candidate_links": int(edges),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movies", type=int, default=24)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--cells", type=int, default=243, help="cells in the first frame")
    ap.add_argument("--frames-per-task", type=int, default=25)
    ap.add_argument("--data", type=Path, default=Path("/tmp/trackdb-plate-bench"))
    ap.add_argument("--skip-one-worker", action="store_true")
    ap.add_argument("--skip-kill", action="store_true")
    ap.add_argument("--name", default="plate", help="results file: benchmarks/results/NAME.json")
    ap.add_argument("--code", default=None, help="the commit the code was taken from (recorded)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    root = args.data / f"{args.movies}x{args.frames}x{args.cells}"
    t0 = time.perf_counter()
    manifest = write_plate(root, args.movies, args.frames, args.cells, args.frames_per_task)
    generate_s = time.perf_counter() - t0
    dbs = Databases()
    result: dict[str, Any] = {
        "size": {
            "movies": args.movies,
            "frames": args.frames,
            "cells_per_movie_start": args.cells,
            "frames_per_task": args.frames_per_task,
        },
        "issue_size": {"movies": 24, "frames": 100, "cells": 300},
        "generate_seconds": round(generate_s, 1),
        "goal": "24 x 100 x 300 on 2 workers with PostgreSQL <= 900 s end to end",
    }
    try:
        url2 = dbs.new()
        log("2 workers ...")
        result["workers_2"] = run_plate(manifest, url2, 2)
        log(f"  {result['workers_2']['wall_seconds']} s")
        state = store_state(url2)
        result["workers_2"]["defects"] = state["defects"]
        result["stored_rows"] = stored_rows(url2)
        result["stage_costs"] = stage_costs(url2)
        result["compute_seconds"] = result["workers_2"]["summary"].get("compute_seconds")
        result["accuracy"] = accuracy(url2, manifest)
        lnk = [v["LNK"] for v in result["accuracy"].values()]
        tra = [v["TRA"] for v in result["accuracy"].values()]
        result["accuracy_summary"] = {
            "LNK_min": min(lnk),
            "LNK_mean": round(sum(lnk) / len(lnk), 4),
            "TRA_min": min(tra),
            "TRA_mean": round(sum(tra) / len(tra), 4),
        }
        if not args.skip_one_worker:
            url1 = dbs.new()
            log("1 worker ...")
            result["workers_1"] = run_plate(manifest, url1, 1)
            log(f"  {result['workers_1']['wall_seconds']} s")
            result["scaling_1_to_2"] = round(
                result["workers_1"]["wall_seconds"] / result["workers_2"]["wall_seconds"], 2
            )
            state1 = store_state(url1)
            result["workers_1"]["same_store_as_workers_2"] = state1 == state
            result["workers_1"]["differences"] = differences(state, state1)
        if not args.skip_kill:
            urlk = dbs.new()
            log("kill and resume ...")
            kr = kill_and_resume(manifest, urlk, args.movies)
            resumed_state = store_state(urlk)
            kr["equal_to_uninterrupted"] = resumed_state == state
            kr["differences"] = differences(state, resumed_state)
            kr["defects"] = resumed_state["defects"]
            kr["uninterrupted_seconds"] = result["workers_2"]["wall_seconds"]
            result["kill_resume"] = kr
            log(
                f"  killed at {kr['killed_after_seconds']} s, resumed {kr['resumed']['wall_seconds']} s, "
                f"equal {kr['equal_to_uninterrupted']}"
            )
    finally:
        dbs.drop()
    result["code_commit"] = args.code
    emit(args.name, result)


if __name__ == "__main__":
    main()
