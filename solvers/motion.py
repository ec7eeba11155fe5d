r"""The motion model: what the costs need to know about motion, growth and division
(:class:`MotionModel`), estimated without ground truth — from the candidates alone before any
link is chosen (:func:`initial_motion`), then from a tracking solution (:func:`estimate_motion`).

**Motion field.** Cells in a dense colony move coherently with their neighbours (the colony
expands, drifts, flows), so the displacement of a cell between frames is predicted well by the
displacements of its neighbours even when it is larger than the distance between neighbours.
Given a selection of links, every selected cell with a successor gives one displacement ``u``
per frame (continuation: successor centre − centre; division: centre of the two daughters'
union − centre; :func:`link_displacements`). The predicted displacement of any candidate ``i``
at frame t is a leave-one-out, Gaussian-weighted mean of the ``u`` of its ``k`` nearest
neighbours at t, after discarding neighbours that disagree with the neighbourhood median by more
than 3 noise scales (:func:`smooth_shift`)::

    v_i = Σ_j w_ij u_j / Σ_j w_ij,   w_ij = exp(−‖c_i − c_j‖² / 2h²),   j ∈ kNN_t(i) \\ {i}

with ``h`` = 1.5 × the median nearest-neighbour distance of the frame. Leaving ``i`` out is
what lets a wrong link be corrected: its own (wrong) displacement does not vote for itself.

**Before any link** (:func:`initial_motion`): ``v`` is the frame's dominant translation (the
mode of all candidate displacements, :func:`frame_translation`), or, where uniform growth of the
colony (:func:`colony_expansion`) moves the median cell more than one cell spacing
(:func:`growth_spread` > :func:`cell_spacing`), that expansion corrected by the mode of what
remains; σ_m is the median distance from each shifted cell to the nearest cell of the next frame
divided by the Rayleigh median √(2 ln 2) ≈ 1.18; μ_g the median log ratio of consecutive frames'
total areas; the shape scales loose (σ_g = 0.1, μ_s = 1, σ_s = σ_⊥ = σ_r = 0.3).

**From a solution** (:func:`estimate_motion`), with r the residuals c_j − (c_i + v_i) and g the
log area ratios of the selected one-frame continuations, and sep, ⊥ the daughter offsets of the
selected divisions (:func:`solvers.features.daughter_offsets`), all robust statistics:

* σ_m = median ‖r‖ / √(2 ln 2) (Rayleigh: the median of ‖r‖ for a 2-D Gaussian of per-axis σ),
* μ_g = median g, σ_g = 1.4826 MAD(g) (at least 0.02),
* μ_s = median sep, σ_s = 1.4826 MAD(sep) (at least 0.05),
* σ_⊥ = median ⊥ / 0.6745, σ_r = median |log(A_j/A_k)| / 0.6745 (half-normal medians, at least
  0.05),
* p_t = (N_{t+1} − N_t) / N_t over the selected nodes (:func:`division_rate`), clipped to
  :data:`DIV_RATE_BOUNDS`,

each falling back to the previous value when too few links support it. So the costs
re-calibrate themselves on every iteration (:mod:`solvers.refine`) instead of being tuned by
hand.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from solvers.features import CellFeatures, daughter_offsets
from solvers.types import Solution

RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))  # median of |r| for a unit 2-D Gaussian
DIV_RATE_BOUNDS = (0.01, 0.5)  # per-frame division rate p_t is clipped to this range


@dataclass(frozen=True)
class MotionModel:
    """What the costs need to know about motion and growth (see module docstring)."""

    shift: np.ndarray  # (N, D) predicted displacement per frame of every candidate
    sigma_motion: float  # px, per-axis std of the residual c_j − (c_i + v_i)
    growth_mean: float  # mean log area ratio per frame
    growth_sigma: float  # std of the log area ratio per frame
    sep_sigma: float  # std of (daughter separation − L/2) / (L/2)
    perp_sigma: float  # std of daughter offset across the mother's long axis / (L/2)
    ratio_sigma: float  # std of log(area daughter 1 / area daughter 2)
    sep_mean: float = 1.0  # mean daughter separation / (L/2) (1 = halves of a rod)
    # per-node division rate of its frame; None: the costs count all candidates (division_rate)
    division_rate: np.ndarray | None = None


def link_displacements(
    node_t: np.ndarray,
    centroid: np.ndarray,
    area: np.ndarray,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    edge_selected: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame displacement ``u`` of each node with selected successors, and a has-u mask.

    For a division the union centre (area-weighted mean of the daughters) is the successor.
    """
    n, dim = centroid.shape
    sel = np.asarray(edge_selected, bool)
    src = edge_source[sel]
    dst = edge_target[sel]
    dt = (node_t[dst] - node_t[src]).astype(np.float64)
    w = area[dst].astype(np.float64)
    acc = np.zeros((n, dim))
    for d in range(dim):
        acc[:, d] = np.bincount(src, weights=w * (centroid[dst, d] - centroid[src, d]) / dt, minlength=n)
    wsum = np.bincount(src, weights=w, minlength=n)
    has = wsum > 0
    u = np.zeros((n, dim))
    u[has] = acc[has] / wsum[has, None]
    return u, has


def smooth_shift(
    node_t: np.ndarray,
    centroid: np.ndarray,
    u: np.ndarray,
    has_u: np.ndarray,
    sigma: float,
    k: int = 8,
) -> np.ndarray:
    """Leave-one-out neighbourhood prediction ``v`` of every node's displacement (docstring)."""
    n, dim = centroid.shape
    v = np.zeros((n, dim))
    for f in np.unique(node_t):
        here = np.flatnonzero(node_t == f)
        known = here[has_u[here]]
        if len(known) == 0:
            continue
        if len(known) == 1:
            v[here] = u[known[0]]
            continue
        tree = cKDTree(centroid[known])
        nn_d = np.asarray(tree.query(centroid[known], k=2)[0])
        h = 1.5 * max(float(np.median(nn_d[:, 1])), 1.0)
        kk = min(k + 1, len(known))
        query_d, query_nb = tree.query(centroid[here], k=kk)
        dist = np.asarray(query_d).reshape(len(here), kk)
        nb_idx = known[np.asarray(query_nb).reshape(len(here), kk)]
        own = nb_idx == here[:, None]
        w = np.exp(-0.5 * (dist / h) ** 2)
        w[own] = 0.0
        un = u[nb_idx]  # (H, kk, D)
        others = np.where(own[..., None], np.nan, un)
        with warnings.catch_warnings():  # rows with no other neighbour give NaN: handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(others, axis=1)
        med = np.where(np.isnan(med), un[:, 0], med)
        far = np.linalg.norm(un - med[:, None, :], axis=2) > 3.0 * max(sigma, 1.0)
        w[far] = 0.0
        wsum = w.sum(axis=1)
        ok = wsum > 1e-6
        v_here = np.where(
            ok[:, None],
            np.einsum("hk,hkd->hd", w, un) / np.maximum(wsum, 1e-12)[:, None],
            np.where(has_u[here, None], u[here], med),
        )
        v[here] = v_here
    return v


def robust_sigma(x: np.ndarray, floor: float, default: float) -> float:
    """1.4826 × median absolute deviation about the median, with a floor and a fallback."""
    x = np.asarray(x, np.float64)
    if len(x) < 5:
        return max(default, floor)
    return max(1.4826 * float(np.median(np.abs(x - np.median(x)))), floor)


def frame_translation(
    node_t: np.ndarray,
    centroid: np.ndarray,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    bin_px: float = 1.0,
    smooth_px: float = 3.0,
    base: np.ndarray | None = None,
    window_px: float | None = None,
) -> np.ndarray:
    """Dominant translation of every frame pair, voted by all one-frame candidate edges.

    Needs no links: the true displacements of a coherently moving colony pile up in one spot of
    the histogram of all candidate displacements, the wrong candidates spread out. The mode of
    the smoothed histogram, refined by the mean of the votes within ``smooth_px``, is the
    frame's shift (a stage jump of 34 px between two bacteria frames, three neighbour distances,
    is found this way). ``base`` (N, D), when given, is a displacement already predicted for each
    source node (e.g. :func:`colony_expansion`); the mode is then that of what remains, and
    with ``window_px`` only votes that far from ``base`` count: a correction, not a new guess.
    (At every 4th bacteria frame the displacements spread over more than the cell spacing and the
    unrestricted mode is one of the spurious peaks that the colony's near-lattice makes.)
    Returns (N, D): the shift of each node's frame on top of ``base`` (0 if it has no edges).
    """
    from scipy import ndimage

    n, dim = centroid.shape
    shift = np.zeros((n, dim))
    dt = node_t[edge_target] - node_t[edge_source]
    one = dt == 1
    src, dst = edge_source[one], edge_target[one]
    disp = centroid[dst] - centroid[src]
    if base is not None:
        disp = disp - base[src]
    ft = node_t[src]
    for f in np.unique(ft):
        dv = disp[ft == f]
        if window_px is not None:
            dv = dv[np.linalg.norm(dv, axis=1) <= window_px]
            if len(dv) == 0:
                continue
        lo = dv.min(axis=0) - 3 * smooth_px
        idx = np.floor((dv - lo) / bin_px).astype(np.int64)
        shape = tuple(idx.max(axis=0) + 1 + int(3 * smooth_px / bin_px))
        hist = np.zeros(shape)
        np.add.at(hist, tuple(idx.T), 1.0)
        hist = ndimage.gaussian_filter(hist, smooth_px / bin_px)
        peak = lo + (np.array(np.unravel_index(np.argmax(hist), shape)) + 0.5) * bin_px
        near = np.linalg.norm(dv - peak, axis=1) <= smooth_px
        if near.any():
            peak = dv[near].mean(axis=0)
        shift[node_t == f] = peak
    return shift


def colony_expansion(node_t: np.ndarray, centroid: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Displacement of every cell if its frame's colony grew uniformly into the next frame.

    A colony whose cells all grow at one rate expands about its centre by s, the square root
    (in 2-D; the D-th root in D dimensions) of its total area ratio, so a cell at distance r
    from the centre moves (s − 1)·r relative to it: at every 4th bacteria frame, from frame ~24
    on, 24–50 px for the median cell, more than the distance between cells, and in every
    direction, so no single translation describes it (``benchmarks/refine_bootstrap.py``).
    The area-weighted centre moves with the colony, stage drift included. Needs no links.
    Returns (N, D), zero in the last frame.
    """
    n, dim = centroid.shape
    out = np.zeros((n, dim))
    frames = np.unique(node_t)
    for f in frames:
        i = np.flatnonzero(node_t == f)
        j = np.flatnonzero(node_t == f + 1)
        if len(j) == 0 or area[i].sum() <= 0:
            continue
        ci = np.average(centroid[i], axis=0, weights=area[i])
        cj = np.average(centroid[j], axis=0, weights=area[j])
        scale = float((area[j].sum() / area[i].sum()) ** (1.0 / dim))
        out[i] = cj - ci + (scale - 1.0) * (centroid[i] - ci)
    return out


def cell_spacing(node_t: np.ndarray, centroid: np.ndarray) -> float | None:
    """Median distance from a cell to its nearest neighbour in the same frame (None: no frame
    holds two cells)."""
    near = [
        np.asarray(cKDTree(centroid[i]).query(centroid[i], k=2)[0])[:, 1]
        for i in (np.flatnonzero(node_t == f) for f in np.unique(node_t))
        if len(i) >= 2
    ]
    return float(np.median(np.concatenate(near))) if near else None


def growth_spread(node_t: np.ndarray, expansion: np.ndarray) -> np.ndarray:
    """Per cell: how far ``expansion`` (:func:`colony_expansion`) moves the median cell of its
    frame relative to the frame's mean move. Above the cell spacing, no translation describes
    the frame pair."""
    out = np.zeros(len(node_t))
    for f in np.unique(node_t):
        i = np.flatnonzero(node_t == f)
        out[i] = np.median(np.linalg.norm(expansion[i] - expansion[i].mean(axis=0), axis=1))
    return out


def division_rate(node_t: np.ndarray, bounds: tuple[float, float], counted: np.ndarray | None = None) -> np.ndarray:
    """Per-node division rate of its frame, (N_{t+1} − N_t)/N_t clipped to ``bounds``.

    N_t counts the nodes of frame t, or only the ``counted`` ones (the selected nodes of the
    previous solve: in a candidate forest, candidates are not cells).
    """
    node_t = np.asarray(node_t, np.int64)
    if len(node_t) == 0:
        return np.zeros(0)
    t0 = int(node_t.min())
    w = None if counted is None else np.asarray(counted, np.float64)
    counts = np.bincount(node_t - t0, weights=w, minlength=int(node_t.max()) - t0 + 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (counts[1:] - counts[:-1]) / counts[:-1]
    r = np.clip(np.nan_to_num(r, nan=bounds[0], posinf=bounds[1], neginf=bounds[0]), *bounds)
    r[-1] = bounds[0]
    rate: np.ndarray = r[node_t - t0]
    return rate


def initial_motion(cells: CellFeatures, edge_source: np.ndarray, edge_target: np.ndarray) -> MotionModel:
    """Starting point before any link is chosen: colony growth and drift per frame, loose scales.

    shift: :func:`frame_translation` (the mode of all candidate displacements: drift and stage
    jumps) where a translation can describe the frame pair, i.e. where uniform growth of the
    colony (:func:`colony_expansion`) moves the median cell less than one cell spacing relative
    to the centre's move; elsewhere (coarse frame rates: late pairs at every 4th bacteria frame,
    where the unrestricted mode is a spurious peak of the colony's near-lattice) that expansion,
    corrected by the mode of what remains within half a spacing;
    σ_m: the median distance from each shifted cell to the nearest cell of the next frame / 1.18
    (Rayleigh median), so the first solve behaves like a registered nearest-neighbour tracker;
    μ_g: the log ratio of the total area of consecutive frames (growth needs no links);
    σ_g = 0.1, μ_s = 1, σ_s = σ_⊥ = 0.3, σ_r = 0.3 (loose: refined from the selected divisions).
    """
    t = np.asarray(cells.t, np.int64)
    c = np.asarray(cells.centroid, np.float64)
    src, dst = np.asarray(edge_source, np.int64), np.asarray(edge_target, np.int64)
    shift = frame_translation(t, c, src, dst)
    gap = cell_spacing(t, c)
    if gap is not None:
        grow = colony_expansion(t, c, np.asarray(cells.area, np.float64))
        # where growth moves cells apart by more than their spacing, no translation fits and
        # the mode of all displacements aliases onto the colony's near-lattice
        expanding = growth_spread(t, grow) > gap
        if expanding.any():
            grown = grow + frame_translation(t, c, src, dst, base=grow, window_px=0.5 * gap)
            shift[expanding] = grown[expanding]
    nn = []
    logs = []
    for f in np.unique(t):
        a = np.flatnonzero(t == f)
        b = np.flatnonzero(t == f + 1)
        if len(b) == 0:
            continue
        d, _ = cKDTree(c[b]).query(c[a] + shift[a], k=1)
        nn.append(d)
        logs.append(np.log(cells.area[b].sum() / cells.area[a].sum()))
    sig = float(np.median(np.concatenate(nn))) / RAYLEIGH_MEDIAN if nn else 5.0
    growth = float(np.median(logs)) if logs else 0.0
    return MotionModel(
        shift=shift,
        sigma_motion=max(sig, 1.0),
        growth_mean=growth,
        growth_sigma=0.1,
        sep_sigma=0.3,
        perp_sigma=0.3,
        ratio_sigma=0.3,
        sep_mean=1.0,
    )


def estimate_motion(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    solution: Solution,
    previous: MotionModel,
    bounds: tuple[float, float] = DIV_RATE_BOUNDS,
) -> MotionModel:
    """Re-estimate the motion field and every noise scale from the selected links of ``solution``
    (the statistics of the module docstring; ``previous`` where too few links support one)."""
    src = np.asarray(edge_source, np.int64)
    dst = np.asarray(edge_target, np.int64)
    t = np.asarray(cells.t, np.int64)
    c = np.asarray(cells.centroid, np.float64)
    area = np.asarray(cells.area, np.float64)
    esel = np.asarray(solution.edge_selected, bool)
    u, has = link_displacements(t, c, area, src, dst, esel)
    shift = smooth_shift(t, c, u, has, previous.sigma_motion)
    n_out = np.bincount(src[esel], minlength=len(t))
    cont = esel & (n_out[src] == 1) & (t[dst] - t[src] == 1)
    resid = c[dst[cont]] - (c[src[cont]] + shift[src[cont]])
    sig_m = float(np.median(np.linalg.norm(resid, axis=1))) / RAYLEIGH_MEDIAN if cont.any() else previous.sigma_motion
    g = np.log(area[dst[cont]] / area[src[cont]])
    growth = float(np.median(g)) if cont.sum() >= 5 else previous.growth_mean
    sig_g = robust_sigma(g, 0.02, previous.growth_sigma)
    # division geometry from the selected divisions
    div_e = np.flatnonzero(esel & (n_out[src] == 2))
    div_e = div_e[np.argsort(src[div_e], kind="stable")]
    ea, eb = div_e[0::2], div_e[1::2]
    sep_mean, sep_sig, perp_sig, ratio_sig = (
        previous.sep_mean,
        previous.sep_sigma,
        previous.perp_sigma,
        previous.ratio_sigma,
    )
    if len(ea) >= 5:
        i, j, k = src[ea], dst[ea], dst[eb]
        sep, perp = daughter_offsets(np.asarray(cells.cov, np.float64)[i], c[j], c[k])
        sep_mean = float(np.median(sep))
        sep_sig = robust_sigma(sep, 0.05, previous.sep_sigma)
        perp_sig = max(float(np.median(perp)) / 0.6745, 0.05)  # half-normal: median = 0.6745 σ
        ratio = np.log(area[j] / area[k])
        ratio_sig = max(float(np.median(np.abs(ratio))) / 0.6745, 0.05)
    return MotionModel(
        shift=shift,
        sigma_motion=max(sig_m, 1.0),
        growth_mean=growth,
        growth_sigma=sig_g,
        sep_sigma=sep_sig,
        perp_sigma=perp_sig,
        ratio_sigma=ratio_sig,
        sep_mean=sep_mean,
        division_rate=division_rate(t, bounds, counted=solution.node_selected),
    )
