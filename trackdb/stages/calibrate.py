"""``trackdb calibrate``: fit the temperature of an uncertainty method on a ground-truth movie.

The current solution's model is rebuilt as ``trackdb uncertainty`` does and scored at T = 1.
Every candidate node is matched to the ground-truth object it overlaps with IoU > 0.5 (for
movies imported with ``--masks-only`` the node *is* the GT object, IoU 1); the GT lineage then
names each cell's true mother (same label one frame earlier, else the parent track's last
cell), which labels every option (:func:`solvers.calibration.option_truth`). The temperature
minimises the NLL of the true options (Guo et al. 2017) plus a log-normal prior on T
(σ ``TEMPERATURE_PRIOR``); ECE (15 bins), the reliability
diagram and the sparsification curve are measured on the current solution's links whose
target has ground truth, before and after scaling. The fit is stored in ``calibration``
(one row per name + method, replaced on re-fit) for reuse with ``--calibration NAME``.
The T = 1 scores of AS are stored with the run (:mod:`trackdb.stages.scores`), so a following
``trackdb uncertainty`` of the same model re-tempers them instead of sampling again.
These figures are in-sample (fitted and measured on the same movie);
``benchmarks/uncertainty.py`` measures held-out frames.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from solvers.calibration import (
    fit_option_temperature,
    option_truth,
    reliability_diagram,
    sparsification_curve,
    write_reliability_png,
)
from solvers.kbest_joint import pair_max_marginals
from solvers.uncertainty import with_temperature
from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.stages import scores as stored_scores
from trackdb.stages.uncertainty import (
    _bar,
    _stored_selection,
    check_k,
    compute,
    parse_method,
    rebuild_model,
    shortfalls,
)
from trackdb.store import probabilities, runs
from trackdb.store.core import Movie, Store
from trackdb.store.graph import load_candidates
from trackdb.store.runs import CalibrateParams, LinkParams, RunKind, SolveParams

# the phases the progress bar counts, each named when it starts
CALIBRATE_STEPS = (
    "rebuilding the solve's model",
    "max-marginals",
    "scoring options",
    "matching the ground truth",
    "fitting the temperature",
    "reliability diagram",
    "storing",
)
IOU_MATCH = 0.5
# σ of the log-normal prior on the fitted temperature: an (almost) error-free ground truth
# would otherwise pick T → 0 (benchmarks/uncertainty.py, README "Uncertainty")
TEMPERATURE_PRIOR = 1.0


def ancestor_at(label: int, frame: int, lineage: dict[int, tuple[int, int, int]]) -> int:
    """The track of ``label``'s lineage alive at (or, after a gap, last alive before) ``frame``;
    0 if it did not exist yet. ``lineage``: label → (start, end, parent) of man_track.txt."""
    while label and lineage[label][0] > frame:
        label = lineage[label][2]
    return label


def read_ground_truth(gt_dir: Path, movie: Movie) -> tuple[np.ndarray, np.ndarray]:
    """(TRA masks, man_track table) of ``DATASET/SEQ_GT`` (or its TRA folder), checked against
    the movie's frame count and shape."""
    masks, tracks, _ = load_ground_truth(gt_dir, movie)
    return masks, tracks


def load_ground_truth(gt_dir: Path, movie: Movie) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`read_ground_truth` and the frames' pixels per GT label (counted once: the lineage
    check and the IoU of :func:`match_nodes` both need them)."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise InputError(f"ground-truth folder {gt_dir} does not exist")
    tra = gt_dir / "TRA" if (gt_dir / "TRA").is_dir() else gt_dir
    masks = ctc.read_stack(ctc.frame_files(tra, "man_track"), labels=True)
    tracks = ctc.read_man_track(tra / "man_track.txt")
    want = (movie.n_frames, *movie.shape)
    if masks.shape != want:
        raise InputError(
            f"ground truth {tra} has shape {masks.shape} but movie {movie.name!r} has "
            f"{want}: is it the ground truth of another movie?"
        )
    areas = ctc.label_counts(masks)
    ctc.check_lineage(masks, tracks, tra, counts=areas)
    return masks, tracks, areas


def match_nodes(
    cands_t: np.ndarray,
    bbox: np.ndarray,
    node_masks: list[np.ndarray],
    gt: np.ndarray,
    gt_area: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(GT label, IoU) of every node: the GT object its mask overlaps most, kept if IoU > 0.5.
    ``gt_area``: the frames' pixels per GT label if already counted."""
    ndim = gt.ndim - 1
    if gt_area is None:
        gt_area = [np.bincount(f.ravel()) for f in gt]
    label = np.zeros(len(cands_t), np.int64)
    iou = np.zeros(len(cands_t))
    for i, (t, box, m) in enumerate(zip(cands_t.tolist(), bbox.tolist(), node_masks)):
        region = gt[t][tuple(slice(a, a + s) for a, s in zip(box[:ndim], m.shape))][m]
        counts = np.bincount(region, minlength=1)
        counts[0] = 0
        best = int(np.argmax(counts))
        if best == 0:
            continue
        inter = counts[best]
        iou[i] = inter / (int(m.sum()) + gt_area[t][best] - inter)
        if iou[i] > IOU_MATCH:
            label[i] = best
    return label, iou


def true_mothers(node_t: np.ndarray, gt_label: np.ndarray, iou: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """True mother (local index) of every node: −1 it truly appears, −2 unknown (no GT match,
    or its mother object has no matching candidate)."""
    lineage = {int(a): (int(b), int(c), int(d)) for a, b, c, d in tracks.tolist()}
    best: dict[tuple[int, int], int] = {}  # (t, GT label) → its best-overlapping candidate
    for j in np.flatnonzero(gt_label > 0).tolist():
        key = (int(node_t[j]), int(gt_label[j]))
        if key not in best or iou[j] > iou[best[key]]:
            best[key] = j
    mother = np.full(len(node_t), -2, np.int64)
    for j in np.flatnonzero(gt_label > 0).tolist():
        t = int(node_t[j])
        a = ancestor_at(int(gt_label[j]), t - 1, lineage)
        mother[j] = -1 if a == 0 else best.get((min(t - 1, lineage[a][1]), a), -2)
    return mother


def run_calibrate(
    store: Store,
    movie_name: str,
    gt_dir: Path,
    method: str,
    *,
    name: str = "default",
    png: Path | None = None,
    k: int = 10,
    temperature_prior: float | None = TEMPERATURE_PRIOR,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit, measure and store the temperature of ``method`` on this movie's ground truth.
    ``progress``: a bar on stderr naming the phase (shown on a terminal only).

    ``temperature_prior``: σ of the log-normal prior on T (None: plain NLL), see
    :func:`solvers.calibration.fit_temperature`."""
    m = parse_method(method)
    k = check_k(k)
    if temperature_prior is not None and not (math.isfinite(temperature_prior) and temperature_prior > 0):
        raise InputError(f"--temperature-prior must be a finite number > 0, got {temperature_prior!r}")
    if not name:
        raise InputError("--name must not be empty")
    movie = store.movie(movie_name)
    sid, solve_run = runs.current_solve(store, movie)
    gt, tracks, gt_area = load_ground_truth(gt_dir, movie)
    params = CalibrateParams(
        gt=str(Path(gt_dir).resolve()),
        method=m.value,
        name=name,
        k=k,
        temperature_prior=temperature_prior,
        solution_id=sid,
        png=str(Path(png).resolve()) if png else None,
    )
    bar = _bar("calibrate") if progress else None
    done = 0

    def step() -> None:  # a phase starts (after the last: all done, the bar closes)
        nonlocal done
        if bar is not None:
            n = len(CALIBRATE_STEPS)
            bar(min(done, n), n, CALIBRATE_STEPS[done] if done < n else None)
        done += 1

    with runs.record(store, movie.id, RunKind.CALIBRATE, params, parent_run_id=solve_run.id) as run_id:
        step()
        model = rebuild_model(store, movie, sid, solve_run)
        # AS scores are temperature-free: computed once per model, kept for `trackdb uncertainty`
        reused = stored_scores.find(store, model, m, k)
        step()
        deltas = pair_max_marginals(model.graph) if reused is None and stored_scores.reusable(model, m) else None
        step()
        unc, _ = compute(model, m, k=k, temperature=1.0, ranked=False, reused=reused, pair_deltas=deltas)
        step()
        g = model.graph
        link_run_id = solve_run.typed(SolveParams).link_run_id
        assert link_run_id is not None  # rebuild_model refused solves without links
        link = runs.get_run(store, link_run_id).typed(LinkParams)
        cands, ids = load_candidates(store, link.candidate_run_id, movie.ndim, with_masks=True)
        pos = np.searchsorted(ids, model.node_ids)  # ids come in ascending order
        gt_label, iou = match_nodes(cands.t[pos], cands.bbox[pos], [cands.masks[i] for i in pos.tolist()], gt, gt_area)
        mother = true_mothers(g.node_t, gt_label, iou, tracks)
        step()
        option_true, labelled = option_truth(g.edge_source, g.edge_target, mother)
        cells = labelled & (g.node_t > g.node_t.min())
        if not cells.any():
            raise InputError(
                f"no candidate cell of movie {movie.name!r} matches {gt_dir} with IoU > "
                f"{IOU_MATCH} and a known mother: is it the ground truth of another movie?"
            )
        wrong = wrong_cells(unc.edge_score, unc.appear_score, g.edge_target, option_true, cells)
        warnings = []
        if wrong == 0 and temperature_prior is None:
            raise InputError(
                f"nothing to calibrate: the most probable option of every one of the {int(cells.sum())} "
                f"labelled cells is the true one, so the plain NLL fit drives T to 0; keep the prior "
                f"(--temperature-prior 1) or calibrate on a movie with errors"
            )
        if wrong == 0:
            warnings.append(
                f"no labelled cell's most probable option is wrong (of {int(cells.sum())}): "
                "the temperature is set by the prior, not by errors in this movie"
            )
        temperature = fit_option_temperature(
            unc.edge_score, unc.appear_score, g.edge_target, option_true, cells, prior_sigma=temperature_prior
        )
        scaled = with_temperature(unc, g, temperature)
        _, edge_sel, _ = _stored_selection(store, model)
        ev = np.flatnonzero(edge_sel & (mother[g.edge_target] != -2))
        if len(ev) == 0:
            raise InputError(f"no link of the current solution of {movie.name!r} has ground truth in {gt_dir}")
        correct = option_true[: g.n_edges][ev]
        before = reliability_diagram(np.clip(unc.edge_p[ev], 0, 1), correct)
        after = reliability_diagram(np.clip(scaled.edge_p[ev], 0, 1), correct)
        by_p = sparsification_curve(1.0 - scaled.edge_p[ev], correct)
        by_h = sparsification_curve(scaled.entropy[g.edge_target[ev]], correct)
        step()
        if png is not None:
            write_reliability_png(after, png, title=f"{movie.name} {m.value} T={temperature:.2f}")
        result = {
            "movie": movie.name,
            "name": name,
            "method": m.value,
            "temperature": round(temperature, 4),
            "ece_before": round(before.ece, 4),
            "ece_after": round(after.ece, 4),
            "links": len(ev),
            "accuracy": round(float(correct.mean()), 4),
            "sparsification_area": round(by_p.area, 4),
            "sparsification_oracle_area": round(by_p.oracle_area, 4),
            "accuracy_drop10": round(by_p.accuracy_at(0.1), 4),
            "entropy_sparsification_area": round(by_h.area, 4),
            "matched_nodes": int((gt_label > 0).sum()),
            "nodes": int(g.n_nodes),
            "calibration_cells": int(cells.sum()),
            "wrong_calibration_cells": wrong,
            "png": str(png) if png else None,
            "run_id": run_id,
            "info": unc.info,
            "scores_stored": deltas is not None,
            "warnings": warnings + shortfalls(model, unc, k),
        }
        step()
        probabilities.store_calibration(store, name, m.value, temperature, before.ece, after.ece, run_id)
        with store.begin() as c:
            if deltas is not None:
                stored_scores.save(c, run_id, model, k, unc, deltas)
            runs.set_summary(c, run_id, result)
        step()
    return result


def wrong_cells(
    edge_score: np.ndarray,
    appear_score: np.ndarray,
    edge_target: np.ndarray,
    option_true: np.ndarray,
    cells: np.ndarray,
) -> int:
    """How many of the labelled ``cells`` score a wrong option highest: the errors a
    temperature can be fitted against (none: only the prior holds T)."""
    n = len(appear_score)
    group = np.concatenate([np.asarray(edge_target, np.int64), np.arange(n)])
    score = np.concatenate([edge_score, appear_score])
    top = np.full(n, -np.inf)
    np.maximum.at(top, group, score)
    true = np.full(n, -np.inf)
    hit = np.asarray(option_true, bool)
    np.maximum.at(true, group[hit], score[hit])
    return int(np.sum(np.asarray(cells, bool) & (true < top)))
