"""The bacteria movie through the store, stage by stage: accuracy and time of each stage.

Two tasks, both on SQLite in a temporary folder (``--db`` for another URL):

* ``masks``: ground-truth masks as detections (``import-ctc --masks-only``) → link → solve
  (joint and lap) → CTC metrics (issue 3: LNK ≥ 0.90, TRA ≥ 0.98).
* ``prob``: a probability map derived from the ground truth with merges, splits and noise
  (``scripts/gt_probability.py``, seed 0) → candidate forest → link → joint → CTC metrics; the
  time of candidates + link + joint is the issue's "whole movie ≤ 60 s" figure.

    python benchmarks/pipeline_store.py [--tasks masks,prob] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.common import DEFAULT_DATA, emit, log
from inference.synthetic import prob_from_labels
from trackdb.io import ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.candidates import run_candidates
from trackdb.stages.evaluate import evaluate_solution
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.store import Store

T = TypeVar("T")

METRICS = (
    "TRA",
    "DET",
    "LNK",
    "SEG",
    "fp_nodes",
    "fn_nodes",
    "ns_nodes",
    "fp_edges",
    "fn_edges",
    "ws_edges",
    "division_Division F1",
    "division_Division Recall",
    "division_Division Precision",
)


def timed(fn: Callable[..., T], *a: Any, **kw: Any) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, round(time.perf_counter() - t0, 2)


def scores(store: Store, movie: str, gt: Path, solution: int) -> dict:
    s = evaluate_solution(store, movie, gt, solution)
    return {k: (round(s[k], 4) if isinstance(s[k], float) else s[k]) for k in METRICS if k in s}


def task_masks(store: Store, data: Path) -> dict:
    out: dict = {}
    _, out["import_s"] = timed(import_ctc, store, data, "01", "masks", masks_only=True)
    _, out["link_s"] = timed(run_link, store, "masks", max_distance=100, k=12)
    for method in ("joint", "lap"):
        res, sec = timed(run_solve, store, "masks", method=method)
        out[method] = {
            "solve_s": sec,
            "status": res.status,
            "tracks": res.n_tracks,
            **scores(store, "masks", data / "01_GT", res.solution_id),
        }
        log(method, out[method])
    return out


def task_prob(store: Store, data: Path, tmp: Path) -> dict:
    out: dict = {}
    labels = ctc.read_stack(ctc.frame_files(data / "01_GT" / "TRA", "man_track"), labels=True)
    prob = np.stack([prob_from_labels(f, seed=t) for t, f in enumerate(labels)])
    import tifffile

    tifffile.imwrite(tmp / "prob.tif", prob)
    import_ctc(store, data, "01", "prob", no_gt=True)
    _, out["candidates_s"] = timed(run_candidates, store, "prob", prob=tmp / "prob.tif", progress=False)
    _, out["link_s"] = timed(run_link, store, "prob", max_distance=100, k=12)
    res, out["joint_s"] = timed(run_solve, store, "prob", method="joint")
    out["candidates_link_joint_s"] = round(out["candidates_s"] + out["link_s"] + out["joint_s"], 2)
    from trackdb.store.stats import store_stats

    st = store_stats(store, "prob")["movies"][0]
    out.update({"candidates": st["nodes"], "candidate_links": st["edges"], "selected": st["selected_cells"]})
    out["joint"] = {"status": res.status, **scores(store, "prob", data / "01_GT", res.solution_id)}
    log("prob", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--tasks", default="masks,prob")
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    result: dict = {"data": args.data.name, "engine": "sqlite" if not args.db else args.db.split(":")[0]}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or f"sqlite:///{tmp}/bench.sqlite", create=True)
        if "masks" in args.tasks:
            result["masks"] = task_masks(store, args.data)
        if "prob" in args.tasks:
            result["prob"] = task_prob(store, args.data, Path(tmp))
    emit("pipeline_store", result)


if __name__ == "__main__":
    main()
