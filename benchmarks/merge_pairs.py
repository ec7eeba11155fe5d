"""Which touching cluster pairs to offer as merged candidates (``inference.merges``).

On the training frames of the shipped model (0–39 by default; never the held-out 40–52) the
clusters of its predictions are compared with the ground-truth masks:

* a touching pair (after growing clusters by ``--gap`` px) is *one cell* when both clusters lie
  mostly in the same ground-truth cell, else *two cells*;
* a ground-truth cell is *over-split* when no cluster covers more than half of it and at least
  two cover 15 % each; it is *covered* when its two largest clusters are an offered pair.

For each vote-ratio threshold (``inference.merges.vote_ratio``; ``none`` = no vote test, pairs
by shared boundary) it reports the pairs offered that are one cell / two cells, and the
over-split cells covered, and how many frames before their annotated division the over-split
cells were (0 = the last frame before the daughters appear). Prints one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/merge_pairs.py [--zarr PRED.zarr] [--frames 0:40]

Without ``--zarr`` the shipped model predicts the movie first (a few minutes on CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.common import DEFAULT_DATA, ROOT, emit, log
from inference.candidates_from_pred import candidates_from_zarr
from inference.merges import grow_labels, merge_pairs, touching_pairs, vote_ratio
from inference.pred_store import child_array, open_pred
from trackdb.io import ctc

THRESHOLDS = (0.6, 0.7, 0.8, 0.9, None)


def majority(gt: np.ndarray, mask: np.ndarray) -> int:
    values, counts = np.unique(gt[mask], return_counts=True)
    return int(values[counts.argmax()])


def over_split_cells(gt: np.ndarray, clusters: np.ndarray) -> list[tuple[int, int, int]]:
    """(smaller, larger, GT label) -- the two largest clusters of every over-split GT cell."""
    found = []
    for g in np.unique(gt)[1:]:
        m = gt == g
        labels, counts = np.unique(clusters[m], return_counts=True)
        counts, labels = counts[labels > 0], labels[labels > 0]
        share = counts / m.sum()
        if len(share) and share.max() > 0.5:
            continue
        if (share >= 0.15).sum() >= 2:
            top = labels[np.argsort(-counts)[:2]]
            found.append((int(top.min()), int(top.max()), int(g)))
    return found


def frame_stats(
    gt: np.ndarray, clusters: np.ndarray, offsets: np.ndarray, gap: float, until_division: dict[int, int]
) -> dict:
    """Per threshold: offered pairs that are one cell / two cells; over-split cells covered.

    ``until_division``: frames from this one to the last frame of each GT track that divides.
    """
    pairs, _ = touching_pairs(grow_labels(clusters, gap))
    truth = {(int(a), int(b)): majority(gt, clusters == a) == majority(gt, clusters == b) > 0 for a, b in pairs}
    cells = over_split_cells(gt, clusters)
    split = [(a, b) for a, b, _ in cells]
    by_threshold: dict[str, dict[str, int]] = {}
    out: dict[str, Any] = {
        "touching_one_cell": sum(truth.values()),
        "touching_two_cells": len(truth) - sum(truth.values()),
        "over_split_cells": len(split),
        "by_threshold": by_threshold,
        "over_split_frames_before_division": [until_division.get(g, -1) for _, _, g in cells],
    }
    for th in THRESHOLDS:
        offered = merge_pairs(
            clusters, offsets if th is not None else None, max_vote_ratio=th if th is not None else np.inf, gap=gap
        )
        chosen = {(int(a), int(b)) for a, b in offered}
        by_threshold[str(th)] = {
            "offered_one_cell": sum(truth.get(p, False) for p in chosen),
            "offered_two_cells": sum(not truth.get(p, False) for p in chosen),
            "over_split_covered": sum(p in chosen for p in split),
        }
    if len(pairs):
        ratio = vote_ratio(clusters, offsets, pairs)
        out["ratio_one_cell"] = [float(r) for r, p in zip(ratio, pairs) if truth[(int(p[0]), int(p[1]))]]
        out["ratio_two_cells"] = [float(r) for r, p in zip(ratio, pairs) if not truth[(int(p[0]), int(p[1]))]]
    return out


def frames_before_division(tracks: np.ndarray, t: int) -> dict[int, int]:
    """{track label: last frame − t} for the tracks that have daughters (CTC table rows)."""
    mothers = {int(p) for p in tracks[:, 3] if p > 0}
    return {int(r[0]): int(r[2]) - t for r in tracks if int(r[0]) in mothers}


def summarise(per_frame: list[dict]) -> dict:
    total: dict = {
        k: sum(f[k] for f in per_frame) for k in ("touching_one_cell", "touching_two_cells", "over_split_cells")
    }
    total["by_threshold"] = {
        th: {
            k: sum(f["by_threshold"][th][k] for f in per_frame)
            for k in ("offered_one_cell", "offered_two_cells", "over_split_covered")
        }
        for th in per_frame[0]["by_threshold"]
    }
    before = np.array([d for f in per_frame for d in f["over_split_frames_before_division"]], np.int64)
    values, counts = np.unique(before, return_counts=True)
    # -1: the track does not divide within the movie
    total["over_split_cells_by_frames_before_division"] = {str(v): int(c) for v, c in zip(values, counts)}
    for kind in ("ratio_one_cell", "ratio_two_cells"):
        r = np.concatenate([f.get(kind, []) for f in per_frame])
        total[f"{kind}_quartiles"] = [round(float(q), 3) for q in np.quantile(r, [0.25, 0.5, 0.75])] if len(r) else None
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--zarr", type=Path, default=None, help="predictions of the movie (else predicted here)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "bacteria")
    ap.add_argument("--frames", default="0:40", help="A:B, frames scored (default: the training frames)")
    ap.add_argument("--gap", type=float, default=2.0)
    args = ap.parse_args()
    a, b = (int(x) for x in args.frames.split(":"))
    tra = args.data / "01_GT" / "TRA"
    gt = ctc.read_stack(ctc.frame_files(tra, "man_track"), labels=True)
    tracks = ctc.read_man_track(tra / "man_track.txt")
    with tempfile.TemporaryDirectory() as tmp:
        zpath = args.zarr
        if zpath is None:
            from trackdb.io.import_ctc import import_ctc
            from trackdb.stages.predictions import run_predict
            from trackdb.store import Store

            store = Store(f"sqlite:///{tmp}/m.sqlite", create=True)
            import_ctc(store, args.data, "01", "m", no_gt=True)
            zpath = Path(tmp) / "m.zarr"
            run_predict(store, "m", args.model, zarr_path=zpath)
        offsets = child_array(open_pred(zpath), "offsets")
        per_frame = []
        for t in range(a, b):
            clusters = candidates_from_zarr(str(zpath), t)[1].astype(np.int64)
            per_frame.append(
                frame_stats(
                    gt[t], clusters, np.asarray(offsets[t], np.float32), args.gap, frames_before_division(tracks, t)
                )
            )
            log(f"frame {t}: {per_frame[-1]['by_threshold']['0.8']}")
    emit("merge_pairs", {"frames": [a, b - 1], "gap": args.gap, **summarise(per_frame)})


if __name__ == "__main__":
    main()
