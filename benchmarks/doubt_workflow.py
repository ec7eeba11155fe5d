"""The README's worked example and its "Doubt and calibration" commands, timed in one run.

Runs the commands exactly as the README writes them, through the ``trackdb`` executable, in a
fresh folder: ``init``, ``import-ctc --masks-only``, ``link --max-distance 100 --k 12``,
``solve --method joint`` (the reference time), then ``calibrate --method as --png``,
``uncertainty --method as --k 10 --calibration default``, ``uncertain --below 0.8`` and
``export-ctc --solution as-rank1``. Issue 15's goal: the four doubt commands together take at
most 5x the solve, and every one of them exits 0. Wall seconds are the goal's measure; each
step's CPU seconds (user + system of the command) are reported beside them, since on a shared
machine the load stretches short and long commands unequally. Prints one JSON object (logs on
stderr)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/doubt_workflow.py [--data DATASET] [--engine sqlite|postgresql]
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
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, ROOT, emit, log  # noqa: E402

GOAL_RATIO = 5.0


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def run(step: str, args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    exe = str(Path(sys.executable).with_name("trackdb"))
    log(f"== {step}: trackdb {' '.join(args)}")
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    log(proc.stderr.strip()[-2000:])
    return {
        "step": step,
        "command": "trackdb " + " ".join(args),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # user + system: what the load does not inflate
        "returncode": proc.returncode,
        "stdout": proc.stdout,
        "stderr_tail": proc.stderr.strip().splitlines()[-3:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server for --engine postgresql")
    ap.add_argument(
        "--compare-nogood",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also run the whole-movie no-good K best (the scheme these graphs used before) with this time cap",
    )
    args = ap.parse_args()
    data, gt = args.data.resolve(), (args.data / "01_GT").resolve()
    work = Path(tempfile.mkdtemp(prefix="doubt-"))
    if args.engine == "sqlite":
        url = f"sqlite:///{work / 'bacteria.sqlite'}"
    else:
        name = f"doubt_{uuid.uuid4().hex[:8]}"
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        url = f"{args.pg}/{name}"
    env = {**os.environ, "TRACKDB_DB": url, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    load_before = loadavg()
    setup = [
        ("init", ["init"]),
        ("import", ["import-ctc", str(data), "--seq", "01", "--movie", "bact", "--masks-only"]),
        ("link", ["link", "--movie", "bact", "--max-distance", "100", "--k", "12"]),
        ("solve", ["solve", "--movie", "bact", "--method", "joint"]),
    ]
    doubt = [
        ("calibrate", ["calibrate", "--movie", "bact", "--gt", str(gt), "--method", "as", "--png", "rel.png"]),
        ("uncertainty", ["uncertainty", "--movie", "bact", "--method", "as", "--k", "10", "--calibration", "default"]),
        ("uncertain", ["uncertain", "--movie", "bact", "--below", "0.8"]),
        ("export_alternative", ["export-ctc", "alt/", "--movie", "bact", "--solution", "as-rank1"]),
    ]
    steps = []
    for step, cmd in setup + doubt:
        steps.append(run(step, cmd, env, work))
        if steps[-1]["returncode"] != 0:
            break
    by = {s["step"]: s for s in steps}
    solve_s = by["solve"]["seconds"] if "solve" in by else None
    doubt_s = sum(by[s]["seconds"] for s, _ in doubt if s in by)
    all_ok = all(s["returncode"] == 0 for s in steps) and len(steps) == len(setup) + len(doubt)
    uncertainty = json.loads(by["uncertainty"]["stdout"]) if "uncertainty" in by and all_ok else None
    calibrate = json.loads(by["calibrate"]["stdout"]) if "calibrate" in by and all_ok else None
    ratio = doubt_s / solve_s if solve_s else None
    solve_cpu = by["solve"]["cpu_seconds"] if "solve" in by else None
    doubt_cpu = sum(by[s]["cpu_seconds"] for s, _ in doubt if s in by)
    result = {
        "benchmark": "doubt_workflow",
        "engine": args.engine,
        "data": str(data),
        "solve_seconds": solve_s,
        "doubt_seconds": round(doubt_s, 2),
        "doubt_over_solve": None if ratio is None else round(ratio, 2),
        "solve_cpu_seconds": solve_cpu,
        "doubt_cpu_seconds": round(doubt_cpu, 2),
        "doubt_over_solve_cpu": round(doubt_cpu / solve_cpu, 2) if solve_cpu else None,
        "goal_ratio": GOAL_RATIO,
        "goal_met": bool(all_ok and ratio is not None and ratio <= GOAL_RATIO),
        "every_command_exit_0": all_ok,
        "steps": {
            s["step"]: {k: s[k] for k in ("command", "seconds", "cpu_seconds", "returncode", "stderr_tail")}
            for s in steps
        },
        "alternatives": None if uncertainty is None else uncertainty.get("alternatives"),
        "kbest": None if uncertainty is None else (uncertainty.get("info") or {}).get("kbest"),
        # the calibrate run whose AS scores uncertainty re-tempered (None: it sampled them itself)
        "reused_scores": None if uncertainty is None else (uncertainty.get("info") or {}).get("reused_scores"),
        "warnings": None if uncertainty is None else uncertainty.get("warnings"),
        "calibration": None
        if calibrate is None
        else {k: calibrate.get(k) for k in ("temperature", "ece_before", "ece_after", "wrong_calibration_cells")},
        "exported_masks": len(list((work / "alt").glob("mask*.tif"))) if (work / "alt").is_dir() else 0,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpus": os.cpu_count(),
        "workdir": str(work),
        "root": str(ROOT),
    }
    if args.compare_nogood > 0 and all_ok:
        result["nogood"] = nogood_kbest(url, args.compare_nogood)
    emit("doubt_workflow" if args.engine == "sqlite" else "doubt_workflow_pg", result)
    if args.engine == "postgresql":  # the database was this run's own
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", url.rsplit("/", 1)[1]], check=False)


def nogood_kbest(url: str, time_limit: float) -> dict[str, Any]:
    """The same model's 10 best by whole-movie re-solves with no-good cuts, and by frame pairs."""
    from solvers.kbest_joint import kbest_joint
    from trackdb.stages.uncertainty import rebuild_model
    from trackdb.store import Store, runs

    with Store(url) as store:
        movie = store.movie("bact")
        sid, solve_run = runs.current_solve(store, movie)
        graph = rebuild_model(store, movie, sid, solve_run).graph
    out = {}
    for method in ("pairs", "nogood"):
        log(f"== K best by {method} (time limit {time_limit:g} s per re-solve)")
        found = kbest_joint(graph, 10, method=method, time_limit=time_limit)
        out[method] = {**found.summary(), "objectives": [round(s.objective, 3) for s in found.solutions]}
    return out


if __name__ == "__main__":
    main()
