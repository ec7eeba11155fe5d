"""Tracking speed from fixed masks (issue 11, goal: link + solve ≤ 20 s on one core and ≤ laptrack).

A synthetic movie of ~26,000 cells (86 frames × ~300 small nuclei, ~100 divisions, cells
crossing the border; ``synthetic.cases.case("speed")``), its ground-truth masks as detections.
trackdb: ``import-ctc --masks-only``, ``link``, ``solve`` through the CLI with the defaults and
OMP_NUM_THREADS=1; laptrack with its radius from the cell size (``fixed_masks.py``), in the same
run. Both scored by the same traccuracy CTC scorer.

What each time includes (all on one core, wall and CPU):

* trackdb ``link`` + ``solve``: two CLI processes, each with its interpreter start and imports;
  their work reads the candidates (with masks) from the store, builds candidate links (k nearest
  within the chosen radius, with mask IoU), writes them, prices and solves the assignment with
  divisions in 4 solve / re-estimate rounds, and writes the solution and its cost model.
* trackdb ``track``: the same work in one CLI process (one start, the rows read once), on a
  second store from the same import; a link run and a solve run as the two commands write.
* trackdb in-process: ``link_movie`` + ``solve_linked`` (what ``track`` calls) timed inside a
  process after its imports.
* laptrack in-process (as before): its features (centroids and sizes of the masks by bincount,
  the input it needs, from label images already in memory) and its tracking, no imports.
* repeated: ``track`` (fresh copies of the import) and laptrack's in-process features + tracking
  alternated ``--repeat`` times, min and median (the load of a shared machine changes fast).
* laptrack as a process: ``python -c`` that imports laptrack, reads the label TIFFs, computes
  the features and tracks: the like-for-like of ``trackdb track``, which starts a process and
  reads its masks from the store (trackdb's import, which also reads the TIFFs and stores the
  masks, is reported beside it, not counted in link + solve).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/track_speed.py [--quick]
        [--out benchmarks/results/track_speed.json] [--pythonpath /work/baseline]

Prints ONE JSON object on stdout (also written to ``--out``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from common import finite  # noqa: E402
from fixed_masks import (  # noqa: E402
    LAPTRACK_RADIUS,
    RESULT_DIR,
    TrackdbCLI,
    code_version,
    ctc_scores,
    log,
    object_table,
    read_frames,
    score_both,
    scratch_dir,
)

from synthetic.cases import case  # noqa: E402
from synthetic.ctc_io import write_ctc  # noqa: E402
from synthetic.movies import generate  # noqa: E402

KEYS = ("LNK", "TRA", "DET", "division_f1", "fp_edges", "fn_edges", "ws_edges")


# trackdb's link + solve inside one process, timed after its imports (the stage functions the
# `track` command calls); prints one JSON line
_IN_PROCESS = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from trackdb.stages.link import link_movie
from trackdb.stages.solve import solve_linked
from trackdb.store import Store
t1, c1 = time.perf_counter(), time.process_time()
with Store(sys.argv[1]) as store:
    t2, c2 = time.perf_counter(), time.process_time()
    linked = link_movie(store, 'm')
    t3, c3 = time.perf_counter(), time.process_time()
    r = solve_linked(store, 'm', linked)
    t4, c4 = time.perf_counter(), time.process_time()
print(json.dumps({'imports_seconds': t1 - t0, 'link_seconds': t3 - t2, 'solve_seconds': t4 - t3,
    'link_solve_seconds': t4 - t2, 'link_solve_cpu_seconds': c4 - c2, 'objective': r.objective}))
"""

# laptrack as a program: imports, reads the label TIFFs, features, tracking; prints one JSON line
_LAPTRACK_PROCESS = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
sys.path.insert(0, sys.argv[1])
import numpy as np
tn = time.perf_counter()
from laptrack import LapTrack
tl = time.perf_counter()
from fixed_masks import equivalent_diameter, object_table, read_frames
t1 = time.perf_counter()
masks = read_frames(sys.argv[2], 'man_track')
t2 = time.perf_counter()
spacing = (1.0,) * (masks.ndim - 1)
objs = object_table(masks, spacing)
radius = float(sys.argv[3]) * equivalent_diameter(objs['size'], spacing)
order = np.lexsort((objs['label'], objs['t']))
t_, cen = objs['t'][order], objs['centroid'][order]
first = np.searchsorted(t_, np.arange(len(masks) + 1))
coords = [cen[first[t] : first[t + 1]] for t in range(len(masks))]
t3 = time.perf_counter()
tree = LapTrack(cutoff=radius**2, gap_closing_cutoff=radius**2, gap_closing_max_frame_count=2,
    splitting_cutoff=(2 * radius) ** 2).predict(coords)
t4, c4 = time.perf_counter(), time.process_time()
print(json.dumps({'imports_seconds': t1 - t0, 'laptrack_import_seconds': tl - tn,
    'read_seconds': t2 - t1, 'features_seconds': t3 - t2,
    'track_seconds': t4 - t3, 'in_process_seconds': t4 - t0, 'cpu_seconds_in_process': c4 - c0,
    'n_links': len(list(tree.edges())), 'radius': radius}))
"""


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], float, float]:
    """(last stdout line as JSON, wall, CPU user + system) of a child process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _r(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


def run_track(ds: Path, work: Path, pythonpath: str | None) -> dict[str, Any]:
    """``trackdb track`` on a fresh store (one CLI process), and link + solve in-process on a copy
    of the same import; the ``track`` result is exported and scored."""
    db = work / "track" / "trackdb.sqlite"
    db.parent.mkdir(parents=True)
    cli = TrackdbCLI(db, pythonpath)
    out: dict[str, Any] = {}
    for name, args in (
        ("init", ("init",)),
        ("import", ("import-ctc", str(ds), "--seq", "01", "--movie", "m", "--masks-only")),
    ):
        rc, _, err, sec = cli.run(*args)
        if rc != 0:
            raise RuntimeError(f"{name}: {err.strip()[-500:]}")
        out[f"{name}_seconds"], out[f"{name}_cpu_seconds"] = round(sec, 3), round(cli.last_cpu, 3)
    rc, _, err, sec = cli.run("track", "--help")  # the start every `track` pays before it opens the store
    if rc != 0:
        raise RuntimeError(f"track --help: {err.strip()[-500:]}")
    out["track_help_seconds"], out["track_help_cpu_seconds"] = round(sec, 3), round(cli.last_cpu, 3)
    copy = db.with_name("inprocess.sqlite")
    shutil.copyfile(db, copy)
    rc, so, err, sec = cli.run("track", "--movie", "m")
    if rc != 0:
        raise RuntimeError(f"track: {err.strip()[-500:]}")
    out["track_seconds"], out["track_cpu_seconds"] = round(sec, 3), round(cli.last_cpu, 3)
    reported = json.loads(so[so.index("{") :])
    out["track_reported"] = {k: reported.get(k) for k in ("status", "cells", "links", "tracks", "solver")}
    out["objective"] = reported.get("objective")
    out["import_track_seconds"] = round(out["import_seconds"] + out["track_seconds"], 3)
    rc, _, err, _ = cli.run("export-ctc", str(work / "track" / RESULT_DIR), "--movie", "m")
    if rc != 0:
        raise RuntimeError(f"export: {err.strip()[-500:]}")
    out.update(ctc_scores(work / "track" / RESULT_DIR, ds / "01_GT" / "TRA"))
    inproc, wall, cpu = _timed([sys.executable, "-c", _IN_PROCESS, f"sqlite:///{copy}"], cli.env, cli.cwd)
    out["in_process"] = {**_r(inproc), "process_seconds": round(wall, 3), "process_cpu_seconds": round(cpu, 3)}
    out["in_process"]["same_objective"] = inproc["objective"] == out["objective"]
    return out


def laptrack_work(masks: np.ndarray, radius: float) -> tuple[float, float]:
    """laptrack's features + tracking as ``fixed_masks.run_laptrack`` times them: (wall, CPU)."""
    from laptrack import LapTrack

    t0, c0 = time.perf_counter(), time.process_time()
    objs = object_table(masks, (1.0,) * (masks.ndim - 1))
    order = np.lexsort((objs["label"], objs["t"]))
    node_t, cen = objs["t"][order], objs["centroid"][order]
    first = np.searchsorted(node_t, np.arange(len(masks) + 1))
    coords = [cen[first[t] : first[t + 1]] for t in range(len(masks))]
    params: dict[str, Any] = {
        "cutoff": radius**2,
        "gap_closing_cutoff": radius**2,
        "gap_closing_max_frame_count": 2,
        "splitting_cutoff": (2 * radius) ** 2,
    }
    LapTrack(**params).predict(coords)
    return time.perf_counter() - t0, time.process_time() - c0


def repeated(ds: Path, work: Path, pythonpath: str | None, radius: float, n: int) -> dict[str, Any]:
    """``trackdb track`` (each time on a fresh copy of the same import) and laptrack's in-process
    features + tracking, alternated ``n`` times: on a shared machine whose load changes from
    second to second, the minimum of each is the figure least stretched by other jobs."""
    template = work / "track" / "inprocess.sqlite"  # the import, before any link
    masks = read_frames(ds / "01_GT" / "TRA", "man_track")
    rows: dict[str, list[float]] = {"track": [], "track_cpu": [], "laptrack": [], "laptrack_cpu": []}
    for i in range(n):
        db = work / "repeat" / f"r{i}.sqlite"
        db.parent.mkdir(exist_ok=True)
        shutil.copyfile(template, db)
        cli = TrackdbCLI(db, pythonpath)
        rc, _, err, sec = cli.run("track", "--movie", "m")
        if rc != 0:
            raise RuntimeError(f"track: {err.strip()[-500:]}")
        rows["track"].append(sec)
        rows["track_cpu"].append(cli.last_cpu)
        db.unlink()
        wall, cpu = laptrack_work(masks, radius)
        rows["laptrack"].append(wall)
        rows["laptrack_cpu"].append(cpu)
    out: dict[str, Any] = {"n": n, "runs": {k: [round(v, 3) for v in vs] for k, vs in rows.items()}}
    for k, vs in rows.items():
        out[f"{k}_min"] = round(min(vs), 3)
        out[f"{k}_median"] = round(sorted(vs)[len(vs) // 2], 3)
    return out


def run_laptrack_process(ds: Path, work: Path) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _LAPTRACK_PROCESS, str(HERE), str(ds / "01_GT" / "TRA"), str(LAPTRACK_RADIUS)]
    out, wall, cpu = _timed(cmd, env, work)
    return {**_r(out), "process_seconds": round(wall, 3), "process_cpu_seconds": round(cpu, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small movie (smoke run)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "track_speed.json")
    ap.add_argument(
        "--pythonpath",
        default=os.environ.get("PYTHONPATH") or None,
        help="where the trackdb subprocesses import trackdb from (default: $PYTHONPATH or the install)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument(
        "--repeat", type=int, default=5, help="track and laptrack's features + tracking alternated this often"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    work = scratch_dir("track-speed-")
    movie = generate(case("speed", args.quick))
    ds = write_ctc(movie, work / "data", raw=False)
    info = movie.info
    log(f"speed: {info['n_frames']} frames, {info['n_cells']} cells, {info['n_divisions']} divisions")
    res = score_both(ds, work, movie.spacing, args.pythonpath, dt=1, spacing_known=False, evaluate=False)
    td, lt = res["trackdb"], res["laptrack"]
    log("  trackdb track ...")
    tr = run_track(ds, work, args.pythonpath)
    log("  laptrack as a process ...")
    lp = run_laptrack_process(ds, work)
    log(f"  track and laptrack alternated {args.repeat} times ...")
    rep = repeated(ds, work, args.pythonpath, lt["radius"], args.repeat) if args.repeat > 0 else None
    lt_work = round(lt["track_seconds"] + lt["features_seconds"], 3)
    lt_work_cpu = round((lt.get("track_cpu_seconds") or 0) + (lt.get("features_cpu_seconds") or 0), 3)
    ip = tr["in_process"]
    comparisons = {
        "fairest: both as a process from their input (trackdb track from the store, laptrack from the TIFFs)": {
            "trackdb_track": tr["track_seconds"],
            "laptrack_process": lp["process_seconds"],
            "trackdb_cpu": tr["track_cpu_seconds"],
            "laptrack_cpu": lp["process_cpu_seconds"],
        },
        "issue's figure: trackdb track (one CLI process) vs laptrack features + tracking in-process": {
            "trackdb_track": tr["track_seconds"],
            "laptrack_features_track": lt_work,
            "trackdb_cpu": tr["track_cpu_seconds"],
            "laptrack_cpu": lt_work_cpu,
        },
        "two CLI commands (link, solve) vs laptrack features + tracking in-process": {
            "trackdb_link_solve": td.get("link_solve_seconds"),
            "laptrack_features_track": lt_work,
            "trackdb_cpu": td.get("link_solve_cpu_seconds"),
            "laptrack_cpu": lt_work_cpu,
        },
        "work without starts or imports (trackdb link + solve in-process vs laptrack features + tracking)": {
            "trackdb_link_solve": ip["link_solve_seconds"],
            "laptrack_features_track": lt_work,
            "trackdb_cpu": ip["link_solve_cpu_seconds"],
            "laptrack_cpu": lt_work_cpu,
        },
        "tracking alone (trackdb link + solve in-process vs laptrack's tracking)": {
            "trackdb_link_solve": ip["link_solve_seconds"],
            "laptrack_track": lt["track_seconds"],
        },
        "repeated: trackdb track vs laptrack features + tracking in-process, alternated, min (median)": None
        if rep is None
        else {
            "trackdb_track": rep["track_min"],
            "laptrack_features_track": rep["laptrack_min"],
            "trackdb_cpu": rep["track_cpu_min"],
            "laptrack_cpu": rep["laptrack_cpu_min"],
            "trackdb_track_median": rep["track_median"],
            "laptrack_features_track_median": rep["laptrack_median"],
        },
        "from the TIFFs: trackdb import-ctc + track (two processes; import stores the masks) vs laptrack process": {
            "trackdb_import_track": tr["import_track_seconds"],
            "laptrack_process": lp["process_seconds"],
        },
    }
    out = {
        "benchmark": "track_speed",
        "trackdb_code": code_version(args.pythonpath),
        "pythonpath": args.pythonpath,
        "quick": args.quick,
        "omp_num_threads": 1,
        "movie": {k: info[k] for k in ("n_frames", "n_cells", "n_tracks", "n_divisions", "cells_per_frame", "shape")},
        "diameter_px": info["dynamics"]["diameter"],
        "goal": "trackdb link + solve <= 20 s on one core and <= laptrack's time",
        "trackdb": {
            "link_seconds": td.get("link_seconds"),
            "solve_seconds": td.get("solve_seconds"),
            "link_solve_seconds": td.get("link_solve_seconds"),
            "link_cpu_seconds": td.get("link_cpu_seconds"),
            "solve_cpu_seconds": td.get("solve_cpu_seconds"),
            "link_solve_cpu_seconds": td.get("link_solve_cpu_seconds"),
            "solve_reported": td.get("solve_reported"),
            "cli_help_seconds": td.get("cli_help_seconds"),
            "cli_help_cpu_seconds": td.get("cli_help_cpu_seconds"),
            **{k: td.get(k) for k in KEYS},
            "error": td.get("error"),
            "note": "wall and CPU (user + system) times of the CLI subprocesses; each includes the "
            "interpreter start and imports (cli_help_*: `trackdb --help`, a lower bound of it)",
        },
        "comparisons": comparisons,
        "trackdb_track": {
            **{k: v for k, v in tr.items() if k in ("import_seconds", "import_cpu_seconds", "track_seconds")},
            **{
                k: tr.get(k)
                for k in (
                    "track_cpu_seconds",
                    "track_help_seconds",
                    "track_help_cpu_seconds",
                    "import_track_seconds",
                    "track_reported",
                    "objective",
                )
            },
            **{k: tr.get(k) for k in KEYS},
            "in_process": ip,
            "note": "`trackdb track --movie m` (link then solve, one process) on a second store from its own "
            "import; track_help_*: `trackdb track --help` (interpreter + CLI start, before the store and the "
            "stages are imported); in_process: link_movie + solve_linked timed after the imports on a copy of "
            "that import",
        },
        "repeated": rep,
        "laptrack_process": {
            **lp,
            "note": "python -c: interpreter start, imports (numpy, laptrack), reading the label TIFFs, features "
            "(fixed_masks.object_table), tracking; the same parameters as the in-process run",
        },
        "laptrack": {
            "track_seconds": lt["track_seconds"],
            "features_seconds": lt["features_seconds"],
            "track_cpu_seconds": lt.get("track_cpu_seconds"),
            "features_cpu_seconds": lt.get("features_cpu_seconds"),
            "note": "in the benchmark's process (no interpreter start); features: centroids and sizes "
            "of the masks by bincount, the input laptrack needs",
            "radius": lt["radius"],
            "rule": f"{LAPTRACK_RADIUS} x median equivalent diameter; splitting 2x; gap closing 2 frames",
            **{k: lt.get(k) for k in KEYS},
        },
        "total_seconds": round(time.perf_counter() - t0, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(finite(out), indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
