"""CTC metrics of a solution against ground truth: TRA, DET, LNK (traccuracy) and SEG.

traccuracy computes the AOGM-based scores and division metrics from CTC folders; SEG (mean
Jaccard of each ground-truth object with the prediction covering more than half of it) is not
in traccuracy, so it is computed here, vectorised per frame with one ``bincount``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.io.render import render_labels
from trackdb.store.core import Store
from trackdb.store.solutions import solution_tracks


def seg_score(gt: np.ndarray, pred: np.ndarray) -> float:
    """CTC SEG: mean over GT objects of IoU with the predicted object covering > 50% of it."""
    scores: list[np.ndarray] = []
    for g, p in zip(gt, pred):
        g = g.astype(np.int64).ravel()
        p = p.astype(np.int64).ravel()
        ng = int(g.max(initial=0)) + 1
        npred = int(p.max(initial=0)) + 1
        gt_area = np.bincount(g, minlength=ng)
        pred_area = np.bincount(p, minlength=npred)
        both = (g > 0) & (p > 0)
        pair = g[both] * npred + p[both]
        uniq, inter = np.unique(pair, return_counts=True)
        gi, pi = uniq // npred, uniq % npred
        ok = inter > 0.5 * gt_area[gi]
        best = np.zeros(ng)
        best[gi[ok]] = inter[ok] / (gt_area[gi[ok]] + pred_area[pi[ok]] - inter[ok])
        present = np.flatnonzero(gt_area[1:]) + 1
        scores.append(best[present])
    allj = np.concatenate(scores) if scores else np.zeros(0)
    return float(allj.mean()) if len(allj) else float("nan")


def ctc_scores(
    pred_masks: np.ndarray, pred_tracks: np.ndarray, gt_dir: Path, frames: slice | None = None
) -> dict[str, Any]:
    """Score a prediction (label images + CTC table) against ``gt_dir`` (``SEQ_GT``).

    ``frames`` restricts both to a frame range (e.g. held-out frames); the tables are clipped
    to it so that the CTC rules still hold.
    """
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    gt_dir = Path(gt_dir)
    tra = gt_dir / "TRA" if (gt_dir / "TRA").is_dir() else gt_dir
    gt_masks = ctc.read_stack(ctc.frame_files(tra, "man_track"), labels=True)
    gt_tracks = ctc.read_man_track(tra / "man_track.txt")
    if gt_masks.shape != pred_masks.shape:
        raise InputError(
            f"ground truth {tra} has shape {gt_masks.shape} but the movie has "
            f"{pred_masks.shape}: is it the ground truth of another movie?"
        )
    if frames is not None:
        gt_masks, gt_tracks = _clip(gt_masks, gt_tracks, frames)
        pred_masks, pred_tracks = _clip(pred_masks, pred_tracks, frames)
    seg_dir = gt_dir / "SEG"
    with tempfile.TemporaryDirectory(prefix="trackdb-eval-") as tmp:
        pd_, gd = Path(tmp) / "pred", Path(tmp) / "gt"
        ctc.write_masks(pd_, pred_masks, prefix="mask")
        ctc.write_man_track(pd_ / "res_track.txt", pred_tracks)
        ctc.write_masks(gd, gt_masks, prefix="man_track")
        ctc.write_man_track(gd / "man_track.txt", gt_tracks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gt = load_ctc_data(str(gd), str(gd / "man_track.txt"), name="gt")
            pred = load_ctc_data(str(pd_), str(pd_ / "res_track.txt"), name="pred")
            results, _ = run_metrics(gt, pred, CTCMatcher(), [CTCMetrics()])
            # division metrics need a one-to-one matching, which CTC's (>50% of the GT mask)
            # is not once segmentations merge or split cells
            div, _ = run_metrics(gt, pred, IOUMatcher(iou_threshold=0.5, one_to_one=True), [DivisionMetrics()])
            results += div
    out: dict[str, Any] = {}
    for r in results:
        res = r.get("results", {})
        if r.get("metric", {}).get("name") == "CTCMetrics":
            out.update({k: res[k] for k in ("TRA", "DET", "LNK") if k in res})
            out.update(
                {
                    k: int(res[k])
                    for k in ("fp_nodes", "fn_nodes", "ns_nodes", "fp_edges", "fn_edges", "ws_edges")
                    if k in res
                }
            )
        elif r.get("metric", {}).get("name") == "DivisionMetrics":
            for k, v in res.items():
                if isinstance(v, dict):
                    for kk, vv in v.items():
                        out[f"division_{kk}"] = vv
                else:
                    out[f"division_{k}"] = v
    if seg_dir.is_dir():
        seg_gt = ctc.read_stack(ctc.frame_files(seg_dir, "man_seg"), labels=True)
        out["SEG"], out["seg_source"] = seg_score(seg_gt, pred_masks), "SEG"
    else:  # TRA masks are full masks in our data; say which masks were used
        out["SEG"], out["seg_source"] = seg_score(gt_masks, pred_masks), "TRA"
    out["n_gt_tracks"], out["n_pred_tracks"] = int(len(gt_tracks)), int(len(pred_tracks))
    return out


def _clip(masks: np.ndarray, tracks: np.ndarray, frames: slice) -> tuple[np.ndarray, np.ndarray]:
    start, stop, _ = frames.indices(len(masks))
    tr = tracks[(tracks[:, 2] >= start) & (tracks[:, 1] < stop)].copy()
    tr[:, 1] = np.maximum(tr[:, 1], start) - start
    tr[:, 2] = np.minimum(tr[:, 2], stop - 1) - start
    tr[~np.isin(tr[:, 3], tr[:, 0]), 3] = 0
    return masks[start:stop], tr


def evaluate_solution(store: Store, movie_name: str, gt_dir: Path, solution: str | int | None = None) -> dict[str, Any]:
    movie = store.movie(movie_name)
    sid = store.solution_id(movie, solution)
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise InputError(f"ground-truth folder {gt_dir} does not exist")
    scores = ctc_scores(render_labels(store, movie, sid), solution_tracks(store, sid), gt_dir)
    return {"movie": movie.name, "solution_id": sid, **scores}
