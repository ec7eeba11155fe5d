"""Generalisation benchmark (issue 11): trackdb's default pipeline beside laptrack on data it was not tuned on.

Cases: the bacteria movie and the mouse-epidermis annotations (real, ``../shared/data``) and the
synthetic movies of :mod:`synthetic.cases` with known lineages (border crossing; entering,
leaving and dying; shallow and deep anisotropic 3D stacks; missed detections; every 2nd and 4th
frame). Per case, on the ground-truth masks as detections: trackdb through its CLI with the
documented defaults (``import-ctc --masks-only``, ``link``, ``solve``; the only per-case flag is
``link --dt`` on the gap case) and laptrack with its radius from the cell size (one rule for all
cases, see ``fixed_masks.py``), both scored by the same traccuracy CTC scorer: LNK, TRA, DET,
division F1 and the time of link + solve (laptrack: its ``predict``). Also, per tracker, the
missing and wrong links sorted by what they share (border, beyond the link radius, gap,
division), to find causes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generalise.py [--cases a,b] [--quick]
        [--out benchmarks/results/generalise.json] [--pythonpath /work/baseline] [--gap-dt 3]
        [--seed-offset N]

``--seed-offset N`` draws every synthetic movie again with its seed + N: movies of the same kinds
that no one has looked at, how much a figure moves with the draw (the real movies are
unchanged by it).

Prints ONE JSON object on stdout (also written to ``--out``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from common import finite  # noqa: E402
from fixed_masks import (  # noqa: E402
    LAPTRACK_RADIUS,
    code_version,
    log,
    read_frames,
    read_table,
    score_both,
    scratch_dir,
    write_result,
)

from synthetic.cases import CASES, case  # noqa: E402
from synthetic.ctc_io import write_ctc  # noqa: E402
from synthetic.lineage import division_count  # noqa: E402
from synthetic.movies import generate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REAL = {"bacteria": DATA / "bacteria-divisualisation", "epidermis": DATA / "mouse-epidermis-area1"}
ALL_CASES = tuple(REAL) + CASES
QUICK_FRAMES = 8  # frames of a real movie kept by --quick


def clip_dataset(src: Path, dst: Path, n_frames: int) -> Path:
    """The first ``n_frames`` of a CTC GT sequence (no raw frames), lineage clipped to them."""
    tra = src / "01_GT" / "TRA"
    masks = read_frames(tra, "man_track")[:n_frames]
    tracks = read_table(tra / "man_track.txt")
    tracks = tracks[tracks[:, 1] < n_frames].copy()
    tracks[:, 2] = np.minimum(tracks[:, 2], n_frames - 1)
    out = dst / "01_GT" / "TRA"
    write_result(out, masks, tracks)  # maskTTT.tif + res_track.txt, renamed below to the GT names
    for p in out.glob("mask*.tif"):
        p.rename(out / p.name.replace("mask", "man_track"))
    (out / "res_track.txt").rename(out / "man_track.txt")
    return dst


def with_zero_raw(src: Path, dst: Path) -> Path:
    """A copy of a GT-only sequence with all-zero raw frames (for an import that demands them)."""
    shutil.copytree(src / "01_GT", dst / "01_GT")
    masks = read_frames(src / "01_GT" / "TRA", "man_track")
    (dst / "01").mkdir(parents=True)
    for t in range(len(masks)):
        tifffile.imwrite(dst / "01" / f"t{t:03d}.tif", np.zeros(masks.shape[1:], np.uint8))
    return dst


def division_rate_check(tracks: np.ndarray, n_frames: int, bounds: tuple[float, float] = (0.01, 0.5)) -> dict[str, Any]:
    """The true per-frame division rate against one read from cell counts, (N_{t+1} − N_t) / N_t.

    The count rule (clipped to ``bounds``, the floor in the last frame) is what trackdb's costs
    start from; entering, leaving and dying cells move the counts as much as divisions do.
    """
    alive = np.zeros(n_frames, np.int64)
    np.add.at(alive, np.concatenate([np.arange(s, e + 1) for _, s, e, _ in tracks.tolist()]), 1)
    par, n_kids = np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)
    end = dict(zip(tracks[:, 0].tolist(), tracks[:, 2].tolist()))
    div = np.bincount([end[p] for p in par[n_kids >= 2].tolist()], minlength=n_frames)[:n_frames]
    true = div / np.maximum(alive, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        counted = np.clip(np.nan_to_num((alive[1:] - alive[:-1]) / alive[:-1], nan=bounds[0]), *bounds)
    counted = np.append(counted, bounds[0])
    return {
        "true_mean": round(float(true[:-1].mean()), 4),
        "from_counts_mean": round(float(counted[:-1].mean()), 4),
        "frames_at_floor": round(float((counted[:-1] <= bounds[0]).mean()), 3),
        "divisions_in_floor_frames": int(div[:-1][counted[:-1] <= bounds[0]].sum()),
        "divisions": int(div.sum()),
    }


def prepare(name: str, quick: bool, work: Path, seed_offset: int = 0) -> tuple[Path, dict[str, Any]]:
    """The case's CTC folder and its description (synthetic movies are generated and written,
    their seeds moved by ``seed_offset``)."""
    if name in REAL:
        src = REAL[name]
        ds = clip_dataset(src, work / "data", QUICK_FRAMES) if quick else src
        tracks = read_table(ds / "01_GT" / "TRA" / "man_track.txt")
        masks = read_frames(ds / "01_GT" / "TRA", "man_track")
        info = {
            "kind": "real",
            "dataset": str(src),
            "raw_frames": (ds / "01").is_dir(),
            "spacing": None,
            "n_frames": int(len(masks)),
            "n_cells": int(sum(len(np.unique(f)) - 1 for f in masks)),
            "n_tracks": int(len(tracks)),
            "n_divisions": division_count(tracks),
            "division_rate": division_rate_check(tracks, len(masks)),
        }
        return ds, info
    spec = case(name, quick)
    if seed_offset:
        spec = dataclasses.replace(
            spec, dynamics=dataclasses.replace(spec.dynamics, seed=spec.dynamics.seed + seed_offset)
        )
    movie = generate(spec)
    ds = write_ctc(movie, work / "data", raw=True, seed=seed_offset)
    info = {
        "kind": "synthetic",
        "seed": spec.dynamics.seed,
        "spacing": list(movie.spacing),
        **movie.info,
        "division_rate": division_rate_check(movie.tracks, len(movie.masks)),
    }
    return ds, info


def run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = scratch_dir(f"generalise-{name}-")
    t0 = time.perf_counter()
    ds, info = prepare(name, args.quick, work, args.seed_offset)
    ndim = tifffile.imread(next((ds / "01_GT" / "TRA").glob("man_track*.tif"))).ndim
    spacing = tuple(info["spacing"]) if info["spacing"] else (1.0,) * ndim
    dt = args.gap_dt if info.get("missed_rate") else 1
    log(f"{name}: {info['n_frames']} frames, {info['n_cells']} cells, {info['n_divisions']} divisions")
    opts = {
        "dt": dt,
        "spacing_known": info["spacing"] is not None,
        "evaluate": not args.no_evaluate,
        "radius_factor": args.laptrack_radius,
    }
    res = score_both(ds, work, spacing, args.pythonpath, **opts)
    td = res["trackdb"]
    if not td["ok"] and str(td.get("error", "")).startswith("import") and not (ds / "01").is_dir():
        log(f"  import without raw frames failed ({td['error']}); retrying with zero raw frames")
        first_error = td["error"]
        ds0 = with_zero_raw(ds, work / "zero-raw")
        res = score_both(ds0, work, spacing, args.pythonpath, **opts)
        res["trackdb"]["import_without_raw_error"] = first_error
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"case": name, **info, "link_dt": dt, **res, "case_seconds": round(time.perf_counter() - t0, 1)}


def table_row(r: dict[str, Any]) -> dict[str, Any]:
    def pick(d: dict[str, Any], time_key: str) -> dict[str, Any]:
        keys = ("LNK", "TRA", "DET", "division_f1")
        out = {k: (round(d[k], 4) if d.get(k) is not None else None) for k in keys}
        out["seconds"] = d.get(time_key)
        if d.get("error"):
            out["error"] = d["error"]
        return out

    return {
        "case": r["case"],
        "frames": r["n_frames"],
        "cells": r["n_cells"],
        "divisions": r["n_divisions"],
        "trackdb": pick(r["trackdb"], "link_solve_seconds"),
        "laptrack": pick(r["laptrack"], "track_seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated, from {', '.join(ALL_CASES)}")
    ap.add_argument("--quick", action="store_true", help="small movies (smoke run)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generalise.json")
    ap.add_argument(
        "--pythonpath",
        default=os.environ.get("PYTHONPATH") or None,
        help="where the trackdb subprocesses import trackdb from (default: $PYTHONPATH or the install)",
    )
    ap.add_argument(
        "--gap-dt",
        type=int,
        default=3,
        help="link --dt on the gap case: 1 + its longest absence (2 frames), so every gap is linkable",
    )
    ap.add_argument(
        "--laptrack-radius",
        type=float,
        default=LAPTRACK_RADIUS,
        help="laptrack's radius in median cell diameters, for every case (a sensitivity check)",
    )
    ap.add_argument(
        "--seed-offset", type=int, default=0, help="draw the synthetic movies with their seeds + N (fresh movies)"
    )
    ap.add_argument("--no-evaluate", action="store_true", help="skip the `trackdb evaluate` cross-check")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(ALL_CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(ALL_CASES)}")
    t0 = time.perf_counter()
    results = [run_case(n, args) for n in names]
    out = {
        "benchmark": "generalise",
        "trackdb_code": code_version(args.pythonpath),
        "pythonpath": args.pythonpath,
        "quick": args.quick,
        "seed_offset": args.seed_offset,
        "omp_num_threads": 1,
        "laptrack_rule": f"radius = {args.laptrack_radius} x median equivalent diameter (physical units) for "
        "linking and gap closing (window max(2, dt) frames), splitting radius 2x that, merging off; every case",
        "trackdb_rule": "import-ctc --masks-only, link (defaults; --dt on the gap case), solve (defaults)",
        "table": [table_row(r) for r in results],
        "cases": results,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(finite(out), indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
