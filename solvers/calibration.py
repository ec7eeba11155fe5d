r"""Calibration of tracking probabilities: temperature fitting, ECE, reliability, sparsification.

Following Paul et al. (ICCV 2025, ``shared/papers/004``) §2.2, which takes these from Guo et al.
(ICML 2017, "On calibration of modern neural networks"):

* **Temperature** (Eq. 20): one scalar ``T > 0`` dividing every option's log-score before the
  per-cell softmax, fitted by minimising the negative log-likelihood of the true options on
  labelled cells. ``NLL(β = 1/T) = Σ_j logsumexp_o(β s_o) − β s_true(j)`` is convex in β (a
  log-sum-exp of functions linear in β minus a linear term), so a bounded 1-D search on
  ``log β`` finds the global optimum.
* **ECE** (Eq. 19): confidences binned into 15 equal-width bins on [0, 1];
  ``ECE = Σ_b n_b/N · |accuracy_b − confidence_b|``.
* **Sparsification** (§4.2): accuracy of the predictions kept after removing the fraction f
  judged most uncertain, for f on a grid; its area (mean over the grid) beside the oracle's
  (errors removed first). Ties in uncertainty are split in expectation, so a method that gives
  many links the same confidence is neither rewarded nor punished by the sort order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

N_BINS = 15


def _segment_logsumexp(x: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    top = np.full(n_groups, -np.inf)
    np.maximum.at(top, group, x)
    safe = np.where(np.isfinite(top), top, 0.0)
    z = np.bincount(group, weights=np.exp(x - safe[group]), minlength=n_groups)
    with np.errstate(divide="ignore"):
        return np.log(z) + safe


def temperature_nll(score: np.ndarray, group: np.ndarray, is_true: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true options at ``temperature`` (per labelled group)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    score, group, is_true = _check_options(score, group, is_true)
    labelled = np.unique(group[is_true])
    _, dense = np.unique(group, return_inverse=True)
    n = int(dense.max()) + 1 if len(dense) else 0
    lse = _segment_logsumexp(score / temperature, dense, n)
    true_dense = dense[is_true]
    return float(np.mean(lse[true_dense] - score[is_true] / temperature)) if len(labelled) else 0.0


def fit_temperature(
    score: np.ndarray,
    group: np.ndarray,
    is_true: np.ndarray,
    bounds: tuple[float, float] = (1e-3, 1e3),
    prior_sigma: float | None = None,
) -> float:
    """The temperature minimising the NLL of the true options (Guo et al. 2017).

    With ``prior_sigma`` the fit is a MAP estimate under a log-normal prior on T centred on 1
    (penalty ``(log T)² / 2 prior_sigma²`` added to the summed NLL, still convex in log β): on
    cells whose true option already scores highest, the NLL alone keeps falling as T → 0, so
    an almost error-free calibration set (sparse early frames) would pick an arbitrarily sharp
    T that the ambiguous frames it is reused on cannot bear; the prior leaves T near 1 unless
    the errors in the data say otherwise, and vanishes against many labelled cells.

    ``score`` (log-scores of options, −inf allowed for impossible ones), ``group`` (the cell an
    option belongs to) and ``is_true`` (exactly one true option per labelled cell; cells with
    none are ignored) are aligned arrays. Raises ValueError when nothing is labelled or a true
    option has score −inf (no temperature can give it probability).
    """
    score, group, is_true = _check_options(score, group, is_true)
    if not is_true.any():
        raise ValueError("no labelled option: cannot fit a temperature")
    if not np.all(np.isfinite(score[is_true])):
        raise ValueError("a true option has score -inf (probability 0); smooth the scores first")
    keep = np.isin(group, group[is_true])
    score, group, is_true = score[keep], group[keep], is_true[keep]
    _, dense = np.unique(group, return_inverse=True)
    n = int(dense.max()) + 1
    true_score = score[is_true][np.argsort(dense[is_true])]

    if prior_sigma is not None and not (np.isfinite(prior_sigma) and prior_sigma > 0):
        raise ValueError(f"prior_sigma must be a finite number > 0, got {prior_sigma!r}")
    penalty = 0.0 if prior_sigma is None else 0.5 / prior_sigma**2

    def nll(log_beta: float) -> float:
        beta = np.exp(log_beta)
        lse = _segment_logsumexp(beta * score, dense, n)
        return float(np.sum(lse - beta * true_score)) + penalty * log_beta**2

    lo, hi = bounds
    res = minimize_scalar(nll, bounds=(np.log(1.0 / hi), np.log(1.0 / lo)), method="bounded", options={"xatol": 1e-6})
    return float(1.0 / np.exp(res.x))


def _check_options(
    score: np.ndarray, group: np.ndarray, is_true: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.asarray(score, np.float64)
    group = np.asarray(group, np.int64)
    is_true = np.asarray(is_true, bool)
    if not (score.shape == group.shape == is_true.shape) or score.ndim != 1:
        raise ValueError("score, group and is_true must be 1-D arrays of equal length")
    if np.any(np.isnan(score)) or np.any(score == np.inf):
        raise ValueError("scores must not be NaN or +inf")
    if len(group) and np.any(np.bincount(group[is_true] - group.min()) > 1):
        raise ValueError("a cell has more than one true option")
    return score, group, is_true


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin counts, mean confidence and accuracy (NaN for empty bins), and the ECE."""

    edges: np.ndarray  # (B+1,)
    count: np.ndarray  # (B,)
    confidence: np.ndarray  # (B,)
    accuracy: np.ndarray  # (B,)
    ece: float


def reliability_diagram(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> ReliabilityDiagram:
    """Bin predictions by confidence (equal-width bins, right-closed, 0 in the first bin)."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError("confidence and correct must be 1-D arrays of equal length")
    if len(conf) == 0:
        raise ValueError("no predictions to calibrate")
    if np.any(~np.isfinite(conf)) or np.any((conf < 0) | (conf > 1 + 1e-9)):
        raise ValueError("confidences must lie in [0, 1]")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_conf = np.bincount(b, weights=conf, minlength=n_bins)
    sum_ok = np.bincount(b, weights=ok.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = sum_conf / count
        acc = sum_ok / count
    ece = float(np.sum(np.abs(sum_ok - sum_conf)) / len(conf))
    return ReliabilityDiagram(edges, count, mean_conf, acc, ece)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE with ``n_bins`` equal-width bins (15 by default, as in the paper)."""
    return reliability_diagram(confidence, correct, n_bins).ece


def write_reliability_png(diagram: ReliabilityDiagram, path: str | Path, title: str = "") -> Path:
    """Save the reliability diagram (accuracy per bin against the diagonal) as a PNG.

    Drawn on a bare :class:`matplotlib.figure.Figure` (Agg): pyplot and its backend machinery
    would add about a second to every ``trackdb calibrate --png``."""
    from matplotlib.figure import Figure

    path = Path(path)
    centers = (diagram.edges[:-1] + diagram.edges[1:]) / 2
    width = np.diff(diagram.edges)
    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    filled = diagram.count > 0
    ax.bar(
        centers[filled],
        diagram.accuracy[filled],
        width=width[filled],
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    ax.bar(
        centers[filled],
        (diagram.confidence - diagram.accuracy)[filled],
        bottom=diagram.accuracy[filled],
        width=width[filled],
        color="tab:red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}  ECE={diagram.ece:.3f}".strip())
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


@dataclass(frozen=True)
class Sparsification:
    """Accuracy of the kept predictions after removing the most uncertain fraction."""

    fraction: np.ndarray  # removed fraction, ascending from 0
    accuracy: np.ndarray
    oracle: np.ndarray  # errors removed first
    area: float  # mean accuracy over the grid
    oracle_area: float

    def accuracy_at(self, fraction: float) -> float:
        return float(np.interp(fraction, self.fraction, self.accuracy))


def kept_accuracy(uncertainty: np.ndarray, correct: np.ndarray, fraction: float) -> float:
    """Accuracy of the predictions left after removing ``fraction`` of them, most uncertain
    first; a tie group straddling the cut is removed proportionally (its expected accuracy)."""
    u = np.asarray(uncertainty, np.float64)
    ok = np.asarray(correct, bool)
    n = len(u)
    n_remove = int(np.rint(fraction * n))
    if n_remove >= n:
        return float("nan")
    order = np.argsort(-u, kind="stable")
    v = u[order[n_remove]]
    above = u > v
    tie = u == v
    n_above = int(above.sum())
    g = int(tie.sum())
    kept_in_tie = g - (n_remove - n_above)
    good = float(ok[u < v].sum()) + float(ok[tie].sum()) * kept_in_tie / g
    return good / (n - n_remove)


def sparsification_curve(
    uncertainty: np.ndarray, correct: np.ndarray, fractions: np.ndarray | None = None
) -> Sparsification:
    """Sparsification curve on ``fractions`` (default 0, 0.05, …, 0.9) with its oracle."""
    u = np.asarray(uncertainty, np.float64)
    ok = np.asarray(correct, bool)
    if u.shape != ok.shape or u.ndim != 1 or len(u) == 0:
        raise ValueError("uncertainty and correct must be non-empty 1-D arrays of equal length")
    if np.any(np.isnan(u)):
        raise ValueError("uncertainty contains NaN")
    f = np.round(np.arange(0.0, 0.9001, 0.05), 4) if fractions is None else np.asarray(fractions)
    acc = np.array([kept_accuracy(u, ok, x) for x in f])
    oracle = np.array([kept_accuracy((~ok).astype(float), ok, x) for x in f])
    return Sparsification(f, acc, oracle, float(np.nanmean(acc)), float(np.nanmean(oracle)))


def option_truth(
    edge_source: np.ndarray, edge_target: np.ndarray, true_mother: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of every option (edges, then one "appears" per node) from ground truth.

    ``true_mother[j]`` is the node index of j's true mother in the previous frame, −1 if j
    truly appears, −2 if unknown (no ground truth for j). Returns (option is true, cell is
    labelled); a cell whose true mother is not among its candidate edges is not labelled
    (no option of it is true, so it cannot train a temperature).
    """
    src = np.asarray(edge_source, np.int64)
    dst = np.asarray(edge_target, np.int64)
    mother = np.asarray(true_mother, np.int64)
    n = len(mother)
    edge_true = (mother[dst] >= 0) & (src == mother[dst])
    appear_true = mother == -1
    has_edge = np.bincount(dst[edge_true], minlength=n) > 0
    labelled = has_edge | appear_true
    return np.concatenate([edge_true, appear_true]), labelled


def fit_option_temperature(
    edge_score: np.ndarray,
    appear_score: np.ndarray,
    edge_target: np.ndarray,
    option_true: np.ndarray,
    cells: np.ndarray,
    prior_sigma: float | None = None,
) -> float:
    """Temperature of an uncertainty result (``solvers.uncertainty.Uncertainty`` scores) fitted
    on the options of the labelled ``cells`` (bool mask over nodes, e.g. labelled & calibration
    frames); what ``trackdb calibrate`` stores for reuse on other movies."""
    n = len(appear_score)
    group = np.concatenate([np.asarray(edge_target, np.int64), np.arange(n)])
    score = np.concatenate([edge_score, appear_score])
    keep = np.asarray(cells, bool)[group]
    return fit_temperature(score[keep], group[keep], np.asarray(option_true, bool)[keep], prior_sigma=prior_sigma)
