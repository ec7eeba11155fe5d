"""Tracking from ground-truth masks: bacteria GT masks as detections → CTC LNK/TRA/DET.

regions → candidate edges → costs (iterated with motion re-estimation) → joint ILP and LAP →
CTC metrics (traccuracy). Prints ONE JSON object on stdout; progress goes to stderr.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/track_gt.py [--data DIR] [--iterations 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from inference.edges import link_candidates
from inference.regions import candidates_from_labels, mask_covariance
from solvers.costs import CostParams, division_slots
from solvers.features import CellFeatures
from solvers.joint import solve_joint
from solvers.refine import refine_cost_model
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Solution

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, emit, load_gt_masks, log, restore_stdout, stdout_to_stderr


def render(labels: np.ndarray, node_t: np.ndarray, node_label: np.ndarray, track_id: np.ndarray) -> np.ndarray:
    """Relabel each frame's objects with their track id (0 = not selected)."""
    out = np.zeros(labels.shape, np.uint32)
    for f in range(labels.shape[0]):
        here = np.flatnonzero(node_t == f)
        lut = np.zeros(int(labels[f].max()) + 1, np.uint32)
        lut[node_label[here]] = track_id[here]
        out[f] = lut[labels[f]]
    return out


def ctc_scores(pred_masks: np.ndarray, pred_tracks: np.ndarray, gt_dir: Path) -> dict:
    """CTC metrics through the product's scorer (traccuracy, trackdb.stages.evaluate)."""
    from trackdb.stages.evaluate import ctc_scores as shared

    out = dict(shared(pred_masks, pred_tracks, gt_dir))
    out["metrics_from"] = "trackdb.stages.evaluate.ctc_scores"
    return out


def evaluate(name: str, labels: np.ndarray, cand, graph: CandidateGraph, sol: Solution, gt_dir: Path) -> dict:
    t0 = time.perf_counter()
    tid, tracks = tracks_from_solution(
        graph.node_t, graph.edge_source, graph.edge_target, sol.node_selected, sol.edge_selected
    )
    masks = render(labels, cand.t, cand.label, tid)
    os.environ.setdefault("TQDM_DISABLE", "1")
    scores = ctc_scores(masks, tracks, gt_dir)
    n_out = np.bincount(graph.edge_source[sol.edge_selected], minlength=graph.n_nodes)
    out = {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items() if isinstance(v, (int, float, str))
    }
    out.update(
        {
            "status": sol.status.value,
            "objective": sol.objective,
            "tracks": int(len(tracks)),
            "divisions": int(np.sum(n_out == 2)),
            "links": int(sol.edge_selected.sum()),
            "solve_seconds": round(sol.seconds, 3),
            "eval_seconds": round(time.perf_counter() - t0, 2),
        }
    )
    log(name, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--max-distance", type=float, default=100.0)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--backend", default="highs")
    args = ap.parse_args()
    saved = stdout_to_stderr()
    gt_dir = args.data / "01_GT"
    result: dict = {"data": str(args.data.name), "seconds": {}}
    sec = result["seconds"]

    t = time.perf_counter()
    labels = load_gt_masks(gt_dir)
    sec["load"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    cand = candidates_from_labels(labels)
    cov = mask_covariance(cand)
    sec["regions"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    edges = link_candidates(cand, max_distance=args.max_distance, k=args.k)
    sec["edges"] = round(time.perf_counter() - t, 2)
    result.update({"frames": int(labels.shape[0]), "nodes": len(cand), "edges": len(edges.source)})
    log(f"{len(cand)} nodes, {len(edges.source)} edges")
    cells = CellFeatures(
        t=cand.t,
        centroid=cand.centroid,
        area=cand.area.astype(float),
        cov=cov,
        bbox=cand.bbox,
        image_shape=labels.shape[1:],
    )
    params = CostParams()

    t = time.perf_counter()
    refined = refine_cost_model(
        cells,
        edges.source,
        edges.target,
        lambda g: solve_joint(g, backend=args.backend, time_limit=120.0),
        n_iter=args.iterations,
        params=params,
    )
    graph, sol, hist = refined.graph, refined.solution, refined.history
    sec["costs_and_joint"] = round(time.perf_counter() - t, 2)
    result["iterations"] = hist
    result["pairs"] = int(len(graph.division_pairs)) if graph.division_pairs is not None else 0
    result["joint"] = evaluate("joint", labels, cand, graph, sol, gt_dir)

    try:
        from solvers.lap import solve_lap
    except ImportError:
        result["lap"] = "solvers.lap not available"
    else:
        t = time.perf_counter()
        # LAP has no pair variables: the division pairs become second-slot costs (as `solve --method lap`)
        lap_sol = solve_lap(division_slots(graph))
        sec["lap_on_final_costs"] = round(time.perf_counter() - t, 2)
        result["lap"] = evaluate(
            "lap (final joint costs, pairs as division slots)", labels, cand, graph, lap_sol, gt_dir
        )
        # LAP alone: the same cost iterations with the LAP as the solver (no joint solve at all)
        t = time.perf_counter()
        lap_refined = refine_cost_model(
            cells,
            edges.source,
            edges.target,
            lambda g: solve_lap(division_slots(g)),
            n_iter=args.iterations,
            params=params,
        )
        lgraph, lsol, lhist = lap_refined.graph, lap_refined.solution, lap_refined.history
        sec["costs_and_lap_only"] = round(time.perf_counter() - t, 2)
        result["lap_only"] = evaluate("lap only (refined with lap)", labels, cand, lgraph, lsol, gt_dir)
        result["lap_only"]["iterations"] = len(lhist)
    restore_stdout(saved)
    emit("track_gt", result)


if __name__ == "__main__":
    main()
