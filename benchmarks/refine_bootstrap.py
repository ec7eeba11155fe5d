"""How the motion refinement bootstraps on subsampled bacteria movies (issue 5's coarse rates).

``solvers.refine.refine_cost_model`` starts from a link-free motion guess (``initial_motion``) and
re-estimates a smooth motion field from each LAP solution. This script measures, per phase
offset, the MAP accuracy on the evaluation links (target frames 30–52) per target frame and per
solve, the LAP objective, the motion σ and the changed links per solve, for these starts:

* ``translation``: the product's start (``initial_motion`` as is): the translation mode where
  uniform growth moves the median cell less than a spacing relative to the colony centre;
  elsewhere the colony centre's move and uniform growth about it
  (``solvers.motion.colony_expansion``), corrected by the mode within half a spacing;
* ``legacy``: the product's start before ``colony_expansion``: the unrestricted mode of all
  candidate displacements per frame pair (``frame_translation``). At every 4th frame the true
  displacements spread over more than the cell spacing and that mode is a spurious peak
  (its figures: ``benchmarks/README.md``);
* ``similarity``: the translation *or* a similarity about the colony centre (scale from the
  spread of the centroids), whichever puts the shifted cells nearer the next frame's;
* ``expansion``: the colony centre's move and growth about it in every pair (no mode);
* ``zero``: no motion at all.

Each phase also reports, per source frame, how far uniform growth moves the median cell relative
to the colony centre (``growth_spread_px_by_source_frame``) beside the median nearest-neighbour
distance (``cell_spacing_px``): where the first exceeds the second, the product starts from the
expansion. Ground truth, candidates and links are those of ``benchmarks/uncertainty.py``.
Prints one JSON object; progress on stderr.

    OMP_NUM_THREADS=1 python benchmarks/refine_bootstrap.py [--step 4] [--iterations 30]
        [--start translation legacy ...]
        [--sigma-quantile 0.25]   # instead: the translation start, σ from a low residual quantile
                                  # (0: σ of the inliers of a Gaussian + uniform mixture, by EM)
        [--settled 0.05]          # with it: back to the median once < 5% of the links change
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from inference.edges import link_candidates
from inference.regions import candidates_from_labels, mask_covariance
from solvers.costs import CostModel, CostParams, fold_pairs
from solvers.features import CellFeatures
from solvers.lap import solve_lap
from solvers.motion import (
    MotionModel,
    cell_spacing,
    colony_expansion,
    estimate_motion,
    frame_translation,
    growth_spread,
    initial_motion,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import uncertainty as U
from benchmarks.common import DEFAULT_DATA, emit, log


def similarity_start(cells: CellFeatures, start: MotionModel) -> tuple[MotionModel, int]:
    """``start`` with each frame pair's shift replaced by the similarity about the colony centre
    where that lands the cells nearer the next frame's; also how many pairs switched."""
    t, c = np.asarray(cells.t), np.asarray(cells.centroid, np.float64)
    shift = start.shift.copy()
    switched = 0
    for f in np.unique(t):
        a, b = np.flatnonzero(t == f), np.flatnonzero(t == f + 1)
        if len(a) < 3 or len(b) < 3:
            continue
        scale = np.sqrt(np.trace(np.cov(c[b].T)) / max(np.trace(np.cov(c[a].T)), 1e-9))
        similar = c[b].mean(0) + scale * (c[a] - c[a].mean(0)) - c[a]
        tree = cKDTree(c[b])
        if np.median(tree.query(c[a] + similar)[0]) < np.median(tree.query(c[a] + shift[a])[0]):
            shift[a] = similar
            switched += 1
    return dataclasses.replace(start, shift=shift), switched


def low_quantile_sigma(
    cells: CellFeatures, src: np.ndarray, dst: np.ndarray, sol_edges: np.ndarray, motion: MotionModel, q: float
) -> MotionModel:
    """``motion`` with σ from the ``q``-quantile of the continuation residuals instead of their
    median (Rayleigh: the q-quantile of |r| is σ·√(−2 ln(1 − q))), so that up to 1 − q wrong
    links do not widen it."""
    t, c = np.asarray(cells.t), np.asarray(cells.centroid, np.float64)
    n_out = np.bincount(src[sol_edges], minlength=len(t))
    cont = sol_edges & (n_out[src] == 1) & (t[dst] - t[src] == 1)
    if not cont.any():
        return motion
    resid = np.linalg.norm(c[dst[cont]] - (c[src[cont]] + motion.shift[src[cont]]), axis=1)
    sigma = (
        inlier_sigma(c[dst[cont]] - (c[src[cont]] + motion.shift[src[cont]]))
        if q == 0
        else (float(np.quantile(resid, q)) / np.sqrt(-2.0 * np.log(1.0 - q)))
    )
    return dataclasses.replace(motion, sigma_motion=max(sigma, 1.0))


def inlier_sigma(resid: np.ndarray, iterations: int = 100) -> float:
    """σ of the inliers of a mixture: isotropic Gaussian residuals (norms χ-distributed with D
    degrees of freedom) plus wrong links uniform on [0, max |r|], fitted by EM."""
    from scipy.stats import chi

    r = np.linalg.norm(np.asarray(resid, np.float64), axis=1)
    d = resid.shape[1]
    span = max(float(r.max()), 1e-6)
    sigma = max(float(np.quantile(r, 0.25)) / float(chi.ppf(0.25, d)), 1e-3)
    share = 0.5
    for _ in range(iterations):
        p_in = share * chi.pdf(r / sigma, d) / sigma
        w = p_in / np.maximum(p_in + (1.0 - share) / span, 1e-300)
        sigma = max(float(np.sqrt(np.sum(w * r * r) / max(d * np.sum(w), 1e-12))), 1e-3)
        share = float(np.clip(w.mean(), 1e-3, 1.0 - 1e-3))
    return sigma


def run_phase(
    labels: np.ndarray,
    lineage: dict,
    step: int,
    offset: int,
    start: str,
    iterations: int,
    sigma_quantile: float | None = None,
    settled: float | None = None,
) -> dict:
    frames = np.arange(offset, labels.shape[0], step)
    cand = candidates_from_labels(labels[frames])
    cells = CellFeatures(
        t=cand.t,
        centroid=cand.centroid,
        area=cand.area.astype(float),
        cov=mask_covariance(cand),
        bbox=cand.bbox,
        image_shape=labels.shape[1:],
    )
    edges = link_candidates(cand, max_distance=100.0 * step, k=12 * step)
    src, dst = np.asarray(edges.source, np.int64), np.asarray(edges.target, np.int64)
    params = CostParams()
    motion = initial_motion(cells, src, dst)
    switched = 0
    if start == "similarity":
        motion, switched = similarity_start(cells, motion)
    t = np.asarray(cand.t, np.int64)
    c = np.asarray(cells.centroid, np.float64)
    grow = colony_expansion(t, c, np.asarray(cells.area, np.float64))
    if start == "legacy":  # before colony_expansion: the unrestricted translation mode only
        motion = dataclasses.replace(motion, shift=frame_translation(t, c, src, dst))
    if start == "zero":
        motion = dataclasses.replace(motion, shift=np.zeros_like(motion.shift))
    if start == "expansion":
        motion = dataclasses.replace(motion, shift=grow)
    sol, sigma, changed, graph = None, [], [], None
    objective, accuracy = [], []
    node_frame = frames[cand.t]
    edge_true = None  # the candidate links, hence their truth, are the same at every solve
    for _ in range(iterations):  # as refine_cost_model, with the start above
        graph = fold_pairs(CostModel(cells, src, dst, motion, params).graph())
        new = solve_lap(graph)
        if edge_true is None:
            edge_true, _, _ = U.ground_truth(graph, cand.label, node_frame, step, lineage)
        ev_it = U.eval_links(np.flatnonzero(new.edge_selected), graph.edge_target, node_frame)
        objective.append(round(float(new.objective), 1))
        accuracy.append(round(float(edge_true[ev_it].mean()), 3))
        changed.append(int(np.sum(new.edge_selected != sol.edge_selected)) if sol is not None else -1)
        sigma.append(round(float(motion.sigma_motion), 1))
        sol = new
        if changed[-1] == 0:
            break
        motion = estimate_motion(cells, src, dst, sol, motion, params.div_rate_bounds)
        unsettled = settled is None or changed[-1] < 0 or changed[-1] > settled * sol.edge_selected.sum()
        if sigma_quantile is not None and unsettled:
            motion = low_quantile_sigma(cells, src, dst, sol.edge_selected, motion, sigma_quantile)
    assert graph is not None
    assert sol is not None
    assert edge_true is not None
    ev = U.eval_links(np.flatnonzero(sol.edge_selected), graph.edge_target, node_frame)
    target = node_frame[graph.edge_target[ev]]
    out: dict[str, Any] = {
        "map_accuracy_eval": round(float(edge_true[ev].mean()), 4),
        "evaluation_links": len(ev),
        "by_target_frame": {int(f): round(float(edge_true[ev][target == f].mean()), 3) for f in np.unique(target)},
        "frame_pairs_switched_to_similarity": switched,
        "solves": len(changed),
        "sigma_motion_px": sigma,
        "changed_links": changed,
        "objective": objective,
        "map_accuracy_eval_per_solve": accuracy,
    }
    spread = growth_spread(t, grow)
    out["growth_spread_px_by_source_frame"] = {
        int(frames[f]): round(float(spread[t == f][0]), 1) for f in np.unique(t)[:-1]
    }
    spacing = cell_spacing(t, c)
    out["cell_spacing_px"] = None if spacing is None else round(spacing, 1)
    log(f"{start} phase {offset}: MAP accuracy {out['map_accuracy_eval']} {out['by_target_frame']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--step", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument(
        "--sigma-quantile",
        type=float,
        default=None,
        help="instead: the translation start with σ from this quantile of the residuals "
        "(0: from the inliers of a Gaussian + uniform mixture fitted by EM)",
    )
    ap.add_argument(
        "--settled",
        type=float,
        default=None,
        help="with --sigma-quantile: back to the median once fewer than this fraction "
        "of the selected links changed at the last solve",
    )
    ap.add_argument(
        "--start",
        nargs="+",
        default=["translation", "similarity"],
        choices=["translation", "similarity", "zero", "expansion", "legacy"],
    )
    args = ap.parse_args()
    labels, lineage = U.load_gt(args.data / "01_GT")
    result: dict = {"step": args.step, "iterations": args.iterations}
    runs = [(s, s, None) for s in args.start]
    if args.sigma_quantile is not None:
        runs = [(f"translation_sigma_q{args.sigma_quantile}_settled{args.settled}", "translation", args.sigma_quantile)]
    for name, start, q in runs:
        result[name] = {
            str(o): run_phase(labels, lineage, args.step, o, start, args.iterations, q, args.settled)
            for o in range(args.step)
        }
    emit("refine_bootstrap", result)


if __name__ == "__main__":
    main()
