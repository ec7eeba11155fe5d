"""Speed of ``trackdb uncertainty --method as --k 10`` on one plate movie (issue 12), two code
versions alternated, with their stored results compared byte for byte.

The movie is the plate benchmark's first (``benchmarks/plate.py``: 100 frames, ~30,000 cells,
seed 1000; read from ``--data`` or generated there). One store is built once with the candidate
code (``init``, ``import-ctc --masks-only``, ``link``, ``solve --method joint``); then, ``--repeat``
times, each version runs ``uncertainty`` as a CLI process (OMP_NUM_THREADS=1) on a fresh copy
of it, the baseline and the candidate alternating. Reported per version: min and median wall
and CPU seconds (user + system of the process, imports included) and the stage's own
``seconds``; the load before and after; and whether the two versions stored the same rows in
every table the stage writes (edge_probability, node_probability, solution, solution_*_stored,
track_stored, solution_layer, solution_hidden; the timestamps left out).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/uncertainty_speed.py --baseline /tmp/base-worktree
        [--candidate /tmp/new-worktree] [--repeat 3] [--out-name uncertainty_speed]

``--baseline`` / ``--candidate``: a checkout of trackdb to put on PYTHONPATH (the candidate
defaults to this repository). Prints ONE JSON object on stdout (also written to
``benchmarks/results/<out-name>.json``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import ROOT, emit, log  # noqa: E402
from fixed_masks import TrackdbCLI, code_version  # noqa: E402

TABLES = (
    "edge_probability",
    "node_probability",
    "solution",
    "solution_edge_stored",
    "solution_node_stored",
    "track_stored",
    "solution_layer",
    "solution_hidden",
)
UNCERTAINTY = ("uncertainty", "--movie", "A01", "--method", "as", "--k", "10")


def movie_folder(data: Path) -> Path:
    """The plate's first movie: the 24-movie plate's m000 when cached, else generated alone
    (the same seed and size, so the same movie)."""
    cached = data / "24x100x243" / "m000"
    if (cached / "01_GT" / "TRA" / "man_track.txt").exists():
        return cached
    from plate import write_plate

    write_plate(data / "1x100x243", 1, 100, 243, 25)
    return data / "1x100x243" / "m000"


def stored_digest(db: Path) -> dict[str, str]:
    """sha256 of each table's rows (every column but timestamps and timings), sorted."""
    out = {}
    with sqlite3.connect(db) as c:
        for t in TABLES:
            cols = [r[1] for r in c.execute(f"pragma table_info({t})") if r[1] not in ("created_at", "seconds")]
            rows = c.execute(f"select {','.join(cols)} from {t} order by {','.join(cols)}").fetchall()
            out[t] = f"{len(rows)}:{hashlib.sha256(repr(rows).encode()).hexdigest()[:16]}"
    return out


def build(work: Path, folder: Path, pythonpath: str | None) -> Path:
    db = work / "base.sqlite"
    cli = TrackdbCLI(db, pythonpath)
    steps = [
        ("init",),
        ("import-ctc", str(folder), "--seq", "01", "--movie", "A01", "--masks-only"),
        ("link", "--movie", "A01"),
        ("solve", "--movie", "A01", "--method", "joint"),
    ]
    for args in steps:
        rc, _, err, sec = cli.run(*args)
        if rc != 0:
            raise RuntimeError(f"{args[0]}: {err.strip()[-1000:]}")
        log(f"{args[0]}: {sec:.1f} s")
    return db


def one_run(work: Path, base: Path, name: str, pythonpath: str | None, i: int) -> dict[str, Any]:
    db = work / f"{name}-{i}.sqlite"
    shutil.copyfile(base, db)
    cli = TrackdbCLI(db, pythonpath)
    rc, so, err, wall = cli.run(*UNCERTAINTY)
    if rc != 0:
        raise RuntimeError(f"{name} uncertainty: {err.strip()[-1000:]}")
    reported = json.loads(so[so.index("{") :])
    digest = stored_digest(db)
    db.unlink()
    return {"wall": wall, "cpu": cli.last_cpu, "stage_seconds": reported.get("seconds"), "digest": digest}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("wall", "cpu", "stage_seconds"):
        vals = [float(r[key]) for r in runs]
        out[f"{key}_min"] = round(min(vals), 3)
        out[f"{key}_median"] = round(statistics.median(vals), 3)
        out[f"{key}_all"] = [round(v, 3) for v in vals]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="PYTHONPATH of the code to compare against")
    ap.add_argument("--candidate", default=None, help="PYTHONPATH of the new code (default: this repository)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/trackdb-plate-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out-name", default="uncertainty_speed")
    args = ap.parse_args()
    candidate = args.candidate or str(ROOT)
    folder = movie_folder(args.data)
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="unc-speed-") as tmp:
        work = Path(tmp)
        base = build(work, folder, candidate)
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "candidate": []}
        for i in range(args.repeat):
            for name, path in (("baseline", args.baseline), ("candidate", candidate)):
                r = one_run(work, base, name, path, i)
                runs[name].append(r)
                log(f"{name} #{i}: {r['wall']:.2f} s wall, {r['cpu']:.2f} CPU-s, stage {r['stage_seconds']} s")
    digests = {json.dumps(r["digest"], sort_keys=True) for rs in runs.values() for r in rs}
    result = {
        "movie": str(folder),
        "command": "trackdb " + " ".join(UNCERTAINTY),
        "repeat": args.repeat,
        "baseline_code": code_version(args.baseline),
        "candidate_code": code_version(candidate),
        "loadavg_before": load_before,
        "loadavg_after": list(os.getloadavg()),
        "baseline": summary(runs["baseline"]),
        "candidate": summary(runs["candidate"]),
        "cpu_min_ratio": round(
            min(r["cpu"] for r in runs["candidate"]) / min(r["cpu"] for r in runs["baseline"]),
            3,
        ),
        "stored_identical": len(digests) == 1,
        "stored_digest": runs["candidate"][0]["digest"],
    }
    emit(args.out_name, result)


if __name__ == "__main__":
    main()
