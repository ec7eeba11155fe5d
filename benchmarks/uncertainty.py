"""Calibration and usefulness of tracking uncertainty on the bacteria ground-truth masks.

The ground-truth masks are the detections (as in Paul et al., ICCV 2025: perfect segmentation
isolates the ambiguity of linking). For every subsampling (every 1st, 2nd, 4th frame):
regions → candidate edges → the product's costs (``solvers.costs``, motion re-estimated over
LAP solves, division pairs folded into the edges for the LAP) → MAP by ``solve_lap`` → the four
methods of ``solvers.uncertainty``. Temperatures are fitted on links into frames 0–29 and every
figure is measured on links into frames 30–52. Prints ONE JSON object on stdout; progress and
timings go to stderr.

Ground truth of a candidate edge i→j: with subsampling the true mother of j is the lineage
ancestor of j's label alive in the frame of i (walk man_track.txt's parent column up while the
track starts after that frame); at full frame rate this is "same label, or j's parent label".
Checked on this movie: no cell has more than two descendants 2 or 4 frames later (the lineage
of every subsampling fits the model's at most two successors), so the definition stands.

Tracking at coarse rates (the model, not the metric): cells move ~39 px per 4 frames against
23 px between neighbours, and 2/3 of the cells of an interval are new daughters, so

* the candidate mothers of a cell are its ``--k`` × step nearest (12, 24, 48): with 12 at every
  step, the true mother was not a candidate for 202 of 1,040 cells at every 4th frame (for 0 at
  every 2nd with 24, 6 at every 4th with 48);
* the motion field is re-estimated until the selected links stop changing (at most
  ``--iterations`` 30 LAP solves, as ``trackdb solve --iterations``): 4 solves stopped the
  bootstrap of the flow half-way (MAP accuracy on the evaluation links 0.843 → 0.976 at every
  2nd frame, 0.293 → 0.806 at every 4th; with the flow estimated from the true links instead,
  0.963 / 0.823 at k = 12 / 30: the refinement now reaches what this cost model can do).

Methods: K = 30 samples / alternatives (``--k-samples``; the paper's 10 leaves FP+A's
frequencies in steps of 0.1: at every 4th frame its ECE was 0.039 with K = 10, 0.026 with 30).
Temperatures are fitted with a log-normal prior on T (σ 1, ``--temperature-prior``, as
``trackdb calibrate``): the calibration frames hold 2–32 cells, and where they contain almost
no error (AS, MM at every frame and every 2nd) the plain NLL fit ran to T = 0.014–0.07 against
the 1.0–1.4 that the dense evaluation frames would pick; the plain fit is kept in
``diagnostic_*_without_prior``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/uncertainty.py [--steps 1 2 4] [--png-dir DIR]
        [--k 12] [--iterations 30] [--k-samples 30] [--sigma-px 2] [--sigma-area 0.05]
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.edges import link_candidates
from inference.regions import candidates_from_labels, mask_covariance
from solvers.calibration import (
    fit_temperature,
    reliability_diagram,
    sparsification_curve,
    write_reliability_png,
)
from solvers.costs import (
    CellFeatures,
    CostModel,
    CostParams,
    fold_pairs,
    refine_cost_model,
)
from solvers.lap import solve_lap
from solvers.murty import kbest_lap
from solvers.types import CandidateGraph
from solvers.uncertainty import (
    Method,
    Uncertainty,
    assignment_sampling,
    feature_noise_sampler,
    feature_perturbation,
    max_marginal_probabilities,
    option_groups,
    perturbed_assignments,
    softmax_probabilities,
    with_temperature,
)
from trackdb.calibrate import ancestor_at

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bacteria-divisualisation"
CALIBRATION_LAST_FRAME = 29  # links into frames 0..29 calibrate, into 30..52 evaluate


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def load_gt(gt_dir: Path) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    import tifffile

    files = sorted(glob.glob(str(gt_dir / "TRA" / "man_track*.tif")))
    labels = np.stack([tifffile.imread(f) for f in files])
    table = np.loadtxt(gt_dir / "TRA" / "man_track.txt", dtype=np.int64, ndmin=2)
    lineage = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in table}
    return labels, lineage


def ground_truth(graph: CandidateGraph, node_label: np.ndarray, node_frame: np.ndarray,
                 step: int, lineage: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edge is true, option is true (edges then appear), cell is labelled) for ``graph``."""
    n = graph.n_nodes
    want = np.array([ancestor_at(int(node_label[j]), int(node_frame[j]) - step, lineage)
                     for j in range(n)])
    edge_true = node_label[graph.edge_source] == want[graph.edge_target]
    first = graph.node_t == graph.node_t.min()
    has_true_edge = np.bincount(graph.edge_target[edge_true], minlength=n) > 0
    appear_true = (want == 0) & ~first
    labelled = ~first & (has_true_edge | appear_true)
    return edge_true, np.concatenate([edge_true, appear_true]), labelled


def ece_floor(confidence: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a *perfectly calibrated* predictor with these confidences on this many links
    (outcomes drawn as Bernoulli(confidence)): the finite-sample floor no method can beat."""
    rng = np.random.default_rng(seed)
    return float(np.mean([
        reliability_diagram(confidence, rng.random(len(confidence)) < confidence).ece
        for _ in range(draws)
    ]))


def evaluate_method(name: str, unc: Uncertainty, graph: CandidateGraph, map_edges: np.ndarray,
                    option_true: np.ndarray, labelled: np.ndarray, edge_true: np.ndarray,
                    node_frame: np.ndarray, png_dir: Path | None, tag: str,
                    prior: float | None) -> dict:
    group = option_groups(graph)
    score = np.concatenate([unc.edge_score, unc.appear_score])
    target_frame = node_frame[group]
    calib = labelled[group] & (target_frame <= CALIBRATION_LAST_FRAME)
    temperature = fit_temperature(score[calib], group[calib], option_true[calib],
                                  prior_sigma=prior)
    ev = map_edges[node_frame[graph.edge_target[map_edges]] > CALIBRATION_LAST_FRAME]
    ok = edge_true[ev]
    scaled = with_temperature(unc, graph, temperature)
    out: dict = {"temperature": round(temperature, 4), "seconds": round(unc.seconds, 3)}
    # diagnostic only (never used for the figures above): the temperature the evaluation frames
    # themselves would pick, to tell a calibration/evaluation shift from a weak method
    t_ml = fit_temperature(score[calib], group[calib], option_true[calib])
    out["diagnostic_temperature_without_prior"] = round(t_ml, 4)
    out["diagnostic_ece_ts_without_prior"] = round(reliability_diagram(
        with_temperature(unc, graph, t_ml).edge_p[ev], ok).ece, 4)
    evals = labelled[group] & (target_frame > CALIBRATION_LAST_FRAME)
    t_eval = fit_temperature(score[evals], group[evals], option_true[evals])
    out["diagnostic_eval_frames_temperature"] = round(t_eval, 4)
    out["diagnostic_ece_at_eval_temperature"] = round(reliability_diagram(
        with_temperature(unc, graph, t_eval).edge_p[ev], ok).ece, 4)
    for label, u in (("raw", unc), ("ts", scaled)):
        conf = u.edge_p[ev]
        diag = reliability_diagram(conf, ok)
        if png_dir is not None:
            write_reliability_png(diag, png_dir / f"reliability_{tag}_{name}_{label}.png",
                                  title=f"{tag} {name}{'+TS' if label == 'ts' else ''}")
        by_p = sparsification_curve(1.0 - conf, ok)
        by_h = sparsification_curve(u.entropy[graph.edge_target[ev]], ok)
        out[label] = {
            "ece": round(diag.ece, 4),
            "ece_if_calibrated": round(ece_floor(conf), 4),
            "mean_confidence": round(float(conf.mean()), 4),
            "sparsification_p": {
                "acc_all": round(by_p.accuracy_at(0.0), 4),
                "acc_drop10": round(by_p.accuracy_at(0.1), 4),
                "area": round(by_p.area, 4), "oracle_area": round(by_p.oracle_area, 4)},
            "sparsification_entropy": {
                "acc_all": round(by_h.accuracy_at(0.0), 4),
                "acc_drop10": round(by_h.accuracy_at(0.1), 4),
                "area": round(by_h.area, 4), "oracle_area": round(by_h.oracle_area, 4)},
        }
    return out


def refine_costs(cells: CellFeatures, src: np.ndarray, dst: np.ndarray, params: CostParams,
                 n_iter: int = 4) -> tuple[CandidateGraph, CostModel, int]:
    """``solvers.costs.refine_cost_model`` with LAP solves (as ``trackdb solve --method lap``):
    the final LAP graph (division pairs folded), the cost model it came from, iterations."""
    refined = refine_cost_model(cells, src, dst, lambda g: solve_lap(fold_pairs(g)), n_iter,
                                params)
    return fold_pairs(refined.graph), refined.model, len(refined.history)


def run_step(labels: np.ndarray, lineage: dict, step: int, args: argparse.Namespace,
             png_dir: Path | None) -> dict:
    frames = np.arange(0, labels.shape[0], step)
    t0 = time.perf_counter()
    cand = candidates_from_labels(labels[frames])
    cov = mask_covariance(cand)
    k_cand = args.k * step  # candidate mothers per cell (see the module docstring)
    edges = link_candidates(cand, max_distance=args.max_distance * step, k=k_cand)
    cells = CellFeatures(t=cand.t, centroid=cand.centroid, area=cand.area.astype(float), cov=cov,
                         bbox=cand.bbox, image_shape=labels.shape[1:])
    params = CostParams()
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph, cost_model, iterations = refine_costs(cells, edges.source, edges.target, params,
                                                 n_iter=args.iterations)
    t_costs = time.perf_counter() - t0
    node_frame = frames[cand.t]
    edge_true, option_true, labelled = ground_truth(graph, cand.label, node_frame, step, lineage)

    t0 = time.perf_counter()
    best = solve_lap(graph)
    t_best = time.perf_counter() - t0
    map_edges = np.flatnonzero(best.edge_selected)
    t0 = time.perf_counter()
    kbest_lap(graph, 10)
    t_top = time.perf_counter() - t0
    ev_map = map_edges[node_frame[graph.edge_target[map_edges]] > CALIBRATION_LAST_FRAME]
    log(f"step {step}: {len(cand)} cells, {graph.n_edges} edges, MAP accuracy (eval) "
        f"{edge_true[ev_map].mean():.4f}, best {t_best:.2f}s, top-10 {t_top:.2f}s")

    # FP's noise distribution Q: jittered centres and areas, re-costed by the cost model
    sampler = feature_noise_sampler(cost_model, args.sigma_px, args.sigma_area)
    results = {}
    runs = {
        Method.SM: lambda: softmax_probabilities(graph),
        Method.FP: lambda: feature_perturbation(graph, sampler, k=args.k_samples, seed=args.seed),
        Method.FPA: lambda: perturbed_assignments(graph, sampler, k=args.k_samples,
                                                  seed=args.seed),
        Method.AS: lambda: assignment_sampling(graph, k=args.k_samples),
        Method.MM: lambda: max_marginal_probabilities(graph),
    }
    tag = f"step{step}"
    for method, run in runs.items():
        unc = run()
        results[method.value] = evaluate_method(method.value, unc, graph, map_edges, option_true,
                                                labelled, edge_true, node_frame, png_dir, tag,
                                                args.temperature_prior or None)
        log(f"  {method.value}: {json.dumps(results[method.value])}")
    calib_cells = labelled & (node_frame <= CALIBRATION_LAST_FRAME)
    return {
        "frames": len(frames),
        "cells": len(cand),
        "edges": int(graph.n_edges),
        "calibration_cells": int(calib_cells.sum()),
        "evaluation_links": len(ev_map),
        "map_accuracy_eval": round(float(edge_true[ev_map].mean()), 4),
        "unreachable_eval_cells": int(np.sum(~labelled & (node_frame > CALIBRATION_LAST_FRAME)
                                             & (cand.t > 0))),
        "cost_iterations": iterations,
        "seconds": {"features_edges": round(t_feat, 2), "costs_refine": round(t_costs, 2),
                    "best_solve": round(t_best, 3), "top10_whole_movie": round(t_top, 3),
                    "top10_over_best": round(t_top / t_best, 2)},
        "methods": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--max-distance", type=float, default=100.0)
    ap.add_argument("--k", type=int, default=12,
                    help="candidate mothers per cell and per step of subsampling")
    ap.add_argument("--iterations", type=int, default=30,
                    help="most LAP solves of the motion refinement (stops when links stop changing)")
    ap.add_argument("--k-samples", type=int, default=30, help="K of FP, FP+A and AS")
    ap.add_argument("--temperature-prior", type=float, default=1.0,
                    help="sigma of the log-normal prior on T of the fit (0: plain NLL)")
    ap.add_argument("--seed", type=int, default=0, help="seed of FP's and FP+A's feature noise")
    ap.add_argument("--sigma-px", type=float, default=2.0)
    ap.add_argument("--sigma-area", type=float, default=0.05)
    ap.add_argument("--png-dir", type=Path, default=None)
    args = ap.parse_args()
    if args.png_dir is not None:
        args.png_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    labels, lineage = load_gt(args.data / "01_GT")
    log(f"loaded {labels.shape} in {time.perf_counter() - t0:.1f}s")
    result: dict = {
        "data": args.data.name,
        "params": {"k_samples": args.k_samples, "seed": args.seed, "temperature_prior": args.temperature_prior, "sigma_px": args.sigma_px,
                   "sigma_area": args.sigma_area, "candidate_k_per_step": args.k,
                   "max_refine_iterations": args.iterations,
                   "max_distance_per_step": args.max_distance,
                   "calibrate_frames": f"0-{CALIBRATION_LAST_FRAME}",
                   "evaluate_frames": f"{CALIBRATION_LAST_FRAME + 1}-{labels.shape[0] - 1}"},
        "steps": {},
    }
    for step in args.steps:
        result["steps"][str(step)] = run_step(labels, lineage, step, args, args.png_dir)
    summary = {}
    for step, r in result["steps"].items():
        best = min(r["methods"].items(), key=lambda kv: kv[1]["ts"]["ece"])
        any_best = min(((m, kind, v[kind]["ece"]) for m, v in r["methods"].items()
                        for kind in ("raw", "ts")), key=lambda x: x[2])
        summary[step] = {
            "best_method_ts": best[0], "best_ece_ts": best[1]["ts"]["ece"],
            "best_any": f"{any_best[0]}{'+TS' if any_best[1] == 'ts' else ''}",
            "best_any_ece": any_best[2],
            "best_any_ece_if_calibrated": r["methods"][any_best[0]][any_best[1]]["ece_if_calibrated"],
            "ts_improves_ece": {m: v["ts"]["ece"] < v["raw"]["ece"]
                                for m, v in r["methods"].items()},
            "drop10_raises_accuracy_p": {
                m: v["ts"]["sparsification_p"]["acc_drop10"] > v["ts"]["sparsification_p"]["acc_all"]
                for m, v in r["methods"].items()},
            "drop10_raises_accuracy_entropy": {
                m: v["ts"]["sparsification_entropy"]["acc_drop10"]
                > v["ts"]["sparsification_entropy"]["acc_all"] for m, v in r["methods"].items()},
            "top10_over_best": r["seconds"]["top10_over_best"],
        }
    result["summary"] = summary
    result["seconds_total"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
