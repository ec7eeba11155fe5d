"""Tracking speed from fixed masks (issue 11, goal: link + solve ≤ 20 s on one core and ≤ laptrack).

A synthetic movie of ~26,000 cells (86 frames × ~300 small nuclei, ~100 divisions, cells
crossing the border; ``synthetic.cases.case("speed")``), its ground-truth masks as detections.
trackdb: ``import-ctc --masks-only``, ``link``, ``solve`` through the CLI with the defaults and
OMP_NUM_THREADS=1; laptrack with its radius from the cell size (``fixed_masks.py``), in the same
run. Both scored by the same traccuracy CTC scorer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/track_speed.py [--quick]
        [--out benchmarks/results/track_speed.json] [--pythonpath /work/baseline]

Prints ONE JSON object on stdout (also written to ``--out``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from common import finite  # noqa: E402
from fixed_masks import LAPTRACK_RADIUS, code_version, log, score_both, scratch_dir  # noqa: E402

from synthetic.cases import case  # noqa: E402
from synthetic.ctc_io import write_ctc  # noqa: E402
from synthetic.movies import generate  # noqa: E402

KEYS = ("LNK", "TRA", "DET", "division_f1", "fp_edges", "fn_edges", "ws_edges")


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
