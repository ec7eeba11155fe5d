"""Held-out frames 40–52 from raw pixels through the store: EmbedTrack baseline vs joint solver.

raw frames → ``predict`` (the shipped model, CPU here) → (a) ``solve --method embedtrack``
(the network's own clustering and backward linking) and (b) ``candidates-from-predictions`` →
``link`` → ``solve --method joint``; both scored with the CTC metrics on frames 40–52 only (the
model was trained on frames 0–39). Prints one JSON object (issue 4: SEG ≥ 0.80, DET ≥ 0.95,
TRA ≥ 0.93, and the joint solver's gain over EmbedTrack's linking).

    python benchmarks/pipeline_model.py [--model models/bacteria] [--tta] [--no-merges]

``--zarr PATH`` keeps the predictions (a later run with the same model and ``--tta`` reuses
them; only the stages after ``predict`` then run). ``--no-merges`` leaves out the merged
candidates of touching clusters (``inference.merges``), i.e. the pipeline before they existed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, ROOT, emit, log
from trackdb.io.import_ctc import import_ctc
from trackdb.io.render import render_labels
from trackdb.stages.evaluate import ctc_scores
from trackdb.stages.link import run_link
from trackdb.stages.predictions import run_candidates_from_predictions, run_embedtrack, run_predict
from trackdb.stages.solve import run_solve
from trackdb.store import Store
from trackdb.store.solutions import solution_tracks

KEYS = (
    "SEG",
    "DET",
    "TRA",
    "LNK",
    "fp_nodes",
    "fn_nodes",
    "ns_nodes",
    "fp_edges",
    "fn_edges",
    "ws_edges",
    "division_Division F1",
)


def held_out(store: Store, sid: int, gt: Path, frames: slice) -> dict[str, Any]:
    movie = store.movie("m")
    s = ctc_scores(render_labels(store, movie, sid), solution_tracks(store, sid), gt, frames=frames)
    return {k: (round(s[k], 4) if isinstance(s[k], float) else s[k]) for k in KEYS if k in s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "bacteria")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--first", type=int, default=40)
    ap.add_argument("--no-merges", action="store_true", help="clusters only, no merged candidates")
    ap.add_argument(
        "--zarr",
        type=Path,
        default=None,
        help="predictions store to write or reuse (predict resumes: a finished one is reused)",
    )
    args = ap.parse_args()
    frames = slice(args.first, None)
    out: dict[str, Any] = {
        "model": str(args.model),
        "tta": args.tta,
        "merges": not args.no_merges,
        "held_out_frames": [args.first, 52],
        "seconds": {},
    }
    sec = out["seconds"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/m.sqlite", create=True)
        import_ctc(store, args.data, "01", "m", no_gt=True)
        t = time.perf_counter()
        run_predict(store, "m", args.model, zarr_path=args.zarr or Path(tmp) / "m.zarr", tta=args.tta)
        sec["predict_all_53_frames"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        sid = run_embedtrack(store, "m")
        sec["embedtrack"] = round(time.perf_counter() - t, 1)
        out["embedtrack"] = held_out(store, sid, args.data / "01_GT", frames)
        log("embedtrack", out["embedtrack"])
        t = time.perf_counter()
        run_candidates_from_predictions(store, "m", merges=not args.no_merges, progress=False)
        run_link(store, "m", max_distance=100, k=12)
        res = run_solve(store, "m", method="joint")
        sec["candidates_link_joint"] = round(time.perf_counter() - t, 1)
        out["joint"] = {"status": res.status, **held_out(store, res.solution_id, args.data / "01_GT", frames)}
        log("joint", out["joint"])
    out["joint_minus_embedtrack"] = {
        k: round(out["joint"][k] - out["embedtrack"][k], 4) for k in ("SEG", "DET", "TRA", "LNK") if k in out["joint"]
    }
    emit("pipeline_model", out)


if __name__ == "__main__":
    main()
