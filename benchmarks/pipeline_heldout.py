"""Held-out bacteria frames from raw pixels: predict -> cluster -> EmbedTrack linking -> CTC metrics.

Frames 40-52 of ``bacteria-divisualisation/01`` were never seen in training (frames 0-39). The
held-out movie is predicted on its own (frame 40 is its first frame, so it has no tracking partner),
clustered (EmbedTrack clustering) and linked by EmbedTrack's backward majority vote. Metrics:
SEG (CTC: mean Jaccard of each GT object with the predicted object covering > 50 % of it),
DET and TRA (traccuracy ``CTCMatcher`` + ``CTCMetrics``) against the GT restricted to the window.

Prints one JSON object. Run: ``python benchmarks/pipeline_heldout.py [--model models/bacteria]
[--tta] [--write-model-metrics]`` (the last writes ``<model>/heldout_metrics.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, ROOT, emit


def ctc_seg(gt: np.ndarray, pred: np.ndarray) -> float:
    """CTC SEG over a stack: Jaccard of each GT object with its > 50 %-overlap match (0 if none)."""
    scores: list[float] = []
    for g, p in zip(gt, pred):
        g = g.astype(np.int64).ravel()
        p = p.astype(np.int64).ravel()
        ids = np.unique(g[g > 0])
        if len(ids) == 0:
            continue
        fg = g > 0
        pair = g[fg] * (int(p.max()) + 1) + p[fg]
        keys, inter = np.unique(pair, return_counts=True)
        gk, pk = keys // (int(p.max()) + 1), keys % (int(p.max()) + 1)
        g_area = np.bincount(g, minlength=int(g.max()) + 1)
        p_area = np.bincount(p, minlength=int(p.max()) + 1)
        ok = (pk > 0) & (inter > 0.5 * g_area[gk])
        best = dict.fromkeys(ids.tolist(), 0.0)
        for a, b, n in zip(gk[ok], pk[ok], inter[ok]):
            best[int(a)] = n / (g_area[a] + p_area[b] - n)
        scores += list(best.values())
    return float(np.mean(scores)) if scores else 0.0


def window_gt(frames: range) -> tuple[np.ndarray, np.ndarray]:
    """GT masks of ``frames`` and the CTC table restricted (and re-timed) to that window."""
    import tifffile

    masks = np.stack(
        [tifffile.imread(DEFAULT_DATA / "01_GT" / "TRA" / f"man_track{t:03d}.tif") for t in frames]
    ).astype(np.uint32)
    rows = np.loadtxt(DEFAULT_DATA / "01_GT" / "TRA" / "man_track.txt", dtype=np.int64, ndmin=2)
    a, b = frames.start, frames.stop - 1
    keep = {int(r[0]): r for r in rows if r[2] >= a and r[1] <= b}
    table = []
    for lab, r in keep.items():
        start, end = max(int(r[1]), a) - a, min(int(r[2]), b) - a
        parent = int(r[3]) if int(r[3]) in keep and int(r[1]) > a else 0
        table.append([lab, start, end, parent])
    return masks, np.array(sorted(table), np.int64)


def write_ctc(folder: Path, masks: np.ndarray, table: np.ndarray, prefix: str, track_name: str) -> None:
    import tifffile

    folder.mkdir(parents=True)
    for t, m in enumerate(masks):
        tifffile.imwrite(folder / f"{prefix}{t:03d}.tif", m.astype(np.uint16))
    np.savetxt(folder / track_name, table.reshape(-1, 4), fmt="%d")


def tracking_metrics(gt: tuple[np.ndarray, np.ndarray], res: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics

    if len(res[1]) == 0:  # nothing detected: traccuracy cannot load an empty track file
        return {"TRA": 0.0, "DET": 0.0, "LNK": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        write_ctc(Path(tmp) / "gt", *gt, "man_track", "man_track.txt")
        write_ctc(Path(tmp) / "res", *res, "mask", "res_track.txt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = load_ctc_data(str(Path(tmp) / "gt"), str(Path(tmp) / "gt" / "man_track.txt"))
            r = load_ctc_data(str(Path(tmp) / "res"), str(Path(tmp) / "res" / "res_track.txt"))
            results, _ = run_metrics(g, r, CTCMatcher(), [CTCMetrics()])
    vals = results[0]["results"]
    return {k: round(float(vals[k]), 4) for k in ("TRA", "DET", "LNK") if k in vals}


def main() -> None:
    import tifffile

    from inference.embedtrack_link import embedtrack_solve
    from inference.model_io import read_config
    from inference.predict import predict_movie

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "models" / "bacteria"))
    ap.add_argument("--frames", default="40:53")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-model-metrics", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    a, b = (int(x) for x in args.frames.split(":"))
    frames = range(a, b)
    cfg = read_config(args.model)
    raw = [tifffile.imread(DEFAULT_DATA / "01" / f"t{t:03d}.tif") for t in frames]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "heldout.zarr"
        t0 = time.perf_counter()
        predict_movie(raw, store, args.model, tta=args.tta, embedding=False, progress=False)
        t1 = time.perf_counter()
        labels, table = embedtrack_solve(str(store), min_object_size=int(cfg.get("min_object_size", 10)))
        t2 = time.perf_counter()
    gt = window_gt(frames)
    seg = ctc_seg(gt[0], labels)
    tra = tracking_metrics(gt, (labels, table))
    n_div = int(len({int(p) for p in table[:, 3] if p > 0}))
    out = {
        "benchmark": "pipeline_heldout",
        "frames": [a, b - 1],
        "model": str(args.model),
        "model_width": cfg["width"],
        "trained_steps": cfg.get("trained_steps"),
        "tta": args.tta,
        "SEG": round(seg, 4),
        **tra,
        "targets": {"SEG": 0.80, "DET": 0.95, "TRA": 0.93},
        "gt_objects": int(sum(len(np.unique(m)) - 1 for m in gt[0])),
        "pred_objects": int(sum(len(np.unique(m)) - 1 for m in labels)),
        "pred_divisions": n_div,
        "gt_divisions": int(len({int(p) for p in gt[1][:, 3] if p > 0})),
        "seconds": {"predict": round(t1 - t0, 1), "cluster_and_link": round(t2 - t1, 1)},
        "linking": "embedtrack (backward majority vote)",
        "clustering": "embedtrack",
    }
    emit("pipeline_heldout", out)
    if args.write_model_metrics:
        (Path(args.model) / "heldout_metrics.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
