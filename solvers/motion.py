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
A sister (a cell whose track started at the same selected division, :func:`families`) closer
than the relative displacement of two cells can resolve (3 noise scales of it, 3√2 σ_m) is left
out too: its vote mirrors the pair's relative motion, ``v_a − v_b ≈ −α (u_a − u_b)``, so where
the sisters' motion apart is comparable to their distance it predicts them swapped (most of the
missed links of sparse nuclei were such swaps); sisters further apart vote as any neighbour
(in dense tissue they are each other's best predictor).

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

* σ_m = median ‖r‖ / √(2 ln 2) (Rayleigh: the median of ‖r‖ for a 2-D Gaussian of per-axis σ;
  :func:`chi_median` in D dimensions),
* μ_g = median g, σ_g = 1.4826 MAD(g) (at least 0.02),
* μ_s = median sep, σ_s = 1.4826 MAD(sep) (at least 0.05),
* σ_⊥ = median ⊥ / 0.6745, σ_r = median |log(A_j/A_k)| / 0.6745 (half-normal medians, at least
  0.05), μ_u = median u, σ_u = 1.4826 MAD(u) of the divisions' u = log((A_j + A_k)/A_i) (loose,
  0.1 about μ_g, until 5 divisions are selected),
* p_t = the selected divisions over the selected cells that could divide (not in the last
  frame), clipped to :data:`DIV_RATE_BOUNDS`; the interior start / end rates q_a, q_d from the
  selected cells without a predecessor / successor, each one's chance of having crossed the
  image edge instead taken out by EM (:func:`selected_rates`, :func:`interior_rate`), as the
  lower 97.5 % confidence bound, every round like the other scales: the first solve, priced
  with them at their floor, ends and starts only the cells it must, and the rates rise from
  below towards the movie's own (dense epidermis, 12 rounds: q_d 0.052 → 0.084 and q_a 0.0017 →
  0.0105, where its annotations give 0.096 and 0.017; read once, they stayed at the first
  solve's). Each of the three is then scaled per frame by :func:`frame_factors`: the frames'
  counts shrunk to the pooled rate by empirical Bayes, a factor 1 wherever the frames agree as
  well as binomial noise allows (divisions come in waves, a delaminating sheet ends many
  tracks at once: the epidermis's frame 10 divides at 0.24 against 0.03–0.08 elsewhere). Not
  from the cell counts: cells leaving, entering and dying move them as much as divisions do,

each falling back to the previous value when too few links support it. So the costs
re-calibrate themselves on every iteration (:mod:`solvers.refine`) instead of being tuned by
hand.

Positions are those of :func:`solvers.features.motion_space` (physical, in the finest pixel;
spanned axes dropped), and the Rayleigh median becomes the χ median of the D moving axes
(:func:`chi_median`: 3-D residuals have a larger median norm than 2-D ones of the same σ).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import betaincinv, chdtri, ndtr

from solvers.features import CellFeatures, daughter_offsets, is_frozen, motion_space
from solvers.types import Solution

RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))  # median of |r| for a unit 2-D Gaussian
DIV_RATE_BOUNDS = (0.01, 0.5)  # per-frame division rate p_t is clipped to this range
END_RATE_MAX = 0.5  # an interior start or end rate above this is not a tracking problem
# the daughters' separation and offset across the mother's axis (in half-lengths) before any
# division is selected: of the order of the mother's size in any direction, since the split's
# geometry is a property of the cells (halves of a rod: 1 and 0; nuclei apart by the next frame:
# ~2 and anything) that only the selected divisions tell
INITIAL_SPLIT_SIGMA = 1.0
SISTER_RESOLVED = 3.0 * float(np.sqrt(2.0))  # 3 noise scales of two cells' relative displacement
OUTLIER, WIDE = 0.05, 4.0  # the robust motion model: a 5 % component 4 times broader (costs.robust_nll)


def chi_median(dim: int) -> float:
    """Median of |r| for a unit ``dim``-dimensional Gaussian (2-D: the Rayleigh median 1.18)."""
    # chdtri(k, 0.5) is chi2(k).ppf(0.5) without importing scipy.stats (0.5-2 s of every CLI start)
    return float(np.sqrt(chdtri(max(dim, 1), 0.5)))


def frames_of(node_t: np.ndarray) -> dict[int, np.ndarray]:
    """Each frame's cells (ascending indices, as ``np.flatnonzero(node_t == f)``), frames in
    order: one sort instead of a scan of every cell per frame (86 scans of 27k cells cost
    3 ms a loop, and the motion model runs ~10 such loops a round)."""
    t = np.asarray(node_t)
    if len(t) == 0:
        return {}
    order = np.argsort(t, kind="stable")
    cuts = np.flatnonzero(t[order][1:] != t[order][:-1]) + 1
    return {int(t[g[0]]): g for g in np.split(order, cuts)}


def initial_division_rate(bounds: tuple[float, float]) -> float:
    """Division rate before any link: the geometric centre of ``bounds`` (0.07 by default).

    Not the growth of the cell count, which entering, leaving and dying cells move as much as
    divisions do; the selected divisions re-estimate it from the first solve on.
    """
    return float(np.sqrt(bounds[0] * bounds[1]))


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
    # per-node division rate; None: initial_division_rate of the cost parameters' bounds
    division_rate: np.ndarray | None = None
    # per-cell, per-frame rate of starting / ending away from the image edge (births from
    # nothing, deaths, cells leaving the focal plane or layer); None: the cost parameters' floor
    appear_rate: float | np.ndarray | None = None  # per cell (its frame's), or one for all
    disappear_rate: float | np.ndarray | None = None
    # log((A_j + A_k) / A_i) of a division: its own mean (None: growth_mean) and spread, loose
    # until the selected divisions give them (a cell's area at the frame it splits need not
    # follow a continuation's growth)
    union_mean: float | None = None
    union_sigma: float = 0.1
    # spread of the log visible area of cells the image edge cuts (cut_growth_sigma), read from
    # all candidates when the model is made, so that a window's costs are the movie's; None:
    # read from the cells being costed
    cut_sigma: float | None = None
    # median and spread of the log areas of the candidates the image edge does not cut
    # (:func:`area_population`): the whole cell a new cut cell shows a fraction of, which its
    # appearance pays for (costs.new_area_nll), as a continuation pays for its area through its
    # growth term; read once like cut_sigma (None: from the cells being costed)
    area_mean: float | None = None
    area_sigma: float | None = None
    # the fit behind the persistence in ``shift`` (:func:`persistence`); None before any solution
    persistence: Persistence | None = None


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
    family: np.ndarray | None = None,
) -> np.ndarray:
    """Leave-one-out neighbourhood prediction ``v`` of every node's displacement (docstring).

    ``family`` (N,): the division each node's track started from (-1: none, :func:`families`).
    The neighbours come from :func:`_neighbours`; the weights and medians of all frames with
    the full ``k`` + 1 neighbours are computed at once (:func:`_field`).
    """
    n, dim = centroid.shape
    v = np.zeros((n, dim))
    nb = _neighbours(node_t, centroid, has_u, k)
    for here, first in nb.single:
        v[here] = u[first]
    for here, dist, nb_idx, h in nb.few:
        v[here] = _field(here, dist, nb_idx, u, has_u, sigma, family, h)
    if nb.full is not None:
        here, dist, nb_idx, h = nb.full
        v[here] = _field(here, dist, nb_idx, u, has_u, sigma, family, h)
    return v


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # cells, (H, kk) distances, neighbours, h


@dataclass(frozen=True)
class _Neighbours:
    """The cells with a ``u`` nearest each cell of its frame, for :func:`smooth_shift`."""

    single: list[tuple[np.ndarray, int]]  # frames with one known cell: their cells, that cell
    few: list[_Rows]  # frames with fewer than k + 1 known cells, one by one
    full: _Rows | None  # every other frame's cells, with k + 1 neighbours each


def _neighbours(node_t: np.ndarray, centroid: np.ndarray, has_u: np.ndarray, k: int) -> _Neighbours:
    """Per frame, the ``k`` + 1 (or all) cells with a ``u`` nearest each cell (distances,
    indices; the cell itself among them when it has a ``u``) and the frame's kernel width
    ``h`` = 1.5 × the median distance between those cells and their nearest of them.

    One k-d tree and query per frame (small trees are the fast ones). The positions stay and
    the cells with a ``u`` (those with a selected successor) rarely change between a solve's
    rounds, so the last answer is kept for a read-only ``centroid`` that owns its data (the
    cached :func:`solvers.features.motion_space` geometry) with the same frames, ``has_u`` and ``k``:
    the queries were 30 ms of each of the 3 re-estimations on 27k cells."""
    t = np.asarray(node_t)
    has = np.asarray(has_u, bool)
    cache = is_frozen(centroid)
    if cache and _LAST_NEIGHBOURS_KNOWN:
        ref, t_was, has_was, k_was, out_was = _LAST_NEIGHBOURS_KNOWN[0]
        if ref() is centroid and k_was == k and np.array_equal(t, t_was) and np.array_equal(has, has_was):
            return out_was
    full = k + 1
    single: list[tuple[np.ndarray, int]] = []
    few: list[_Rows] = []
    rows: list[_Rows] = []
    for here in frames_of(t).values():
        has_here = has[here]
        known = here[has_here]
        if len(known) == 0:
            continue
        if len(known) == 1:
            single.append((here, int(known[0])))
            continue
        kk = min(full, len(known))
        query_d, query_nb = cKDTree(centroid[known]).query(centroid[here], k=kk)
        dist = np.asarray(query_d).reshape(len(here), kk)
        nb_idx = known[np.asarray(query_nb).reshape(len(here), kk)]
        # a known cell's first neighbour is itself, its second the nearest other known cell
        h = np.full(len(here), 1.5 * max(float(np.median(dist[has_here, 1])), 1.0))
        (rows if kk == full else few).append((here, dist, nb_idx, h))
    joined = None
    if rows:
        joined = (
            np.concatenate([r[0] for r in rows]),
            np.concatenate([r[1] for r in rows]),
            np.concatenate([r[2] for r in rows]),
            np.concatenate([r[3] for r in rows]),
        )
        for a in joined:
            a.setflags(write=False)
    out = _Neighbours(single, few, joined)
    if cache:
        _LAST_NEIGHBOURS_KNOWN[:] = [(weakref.ref(centroid), t.copy(), has.copy(), k, out)]
    return out


# _neighbours' last answer: (centroid, frames, has_u, k, neighbours)
_LAST_NEIGHBOURS_KNOWN: list[tuple[weakref.ref[np.ndarray], np.ndarray, np.ndarray, int, _Neighbours]] = []


def _field(
    here: np.ndarray,
    dist: np.ndarray,
    nb_idx: np.ndarray,
    u: np.ndarray,
    has_u: np.ndarray,
    sigma: float,
    family: np.ndarray | None,
    h: np.ndarray,
) -> np.ndarray:
    """:func:`smooth_shift` at the cells ``here`` from their nearest cells with a ``u``
    (``dist``, ``nb_idx``: (H, kk), nearest first), ``h`` (H,) the kernel width of each."""
    own = nb_idx == here[:, None]
    if family is not None:
        fam = family[here][:, None]
        own |= (fam >= 0) & (family[nb_idx] == fam) & (dist < SISTER_RESOLVED * max(sigma, 1.0))
    un = u[nb_idx]  # (H, kk, D)
    med = _median_without(un, own)
    med = np.where(np.isnan(med), un[:, 0], med)
    far = _norm_from(un, med) > 3.0 * max(sigma, 1.0)
    w = np.where(own | far, 0.0, np.exp(-0.5 * (dist / h[:, None]) ** 2))
    wsum = w.sum(axis=1)
    ok = wsum > 1e-6
    out: np.ndarray = np.where(
        ok[:, None],
        np.einsum("hk,hkd->hd", w, un) / np.maximum(wsum, 1e-12)[:, None],
        np.where(has_u[here, None], u[here], med),
    )
    return out


def _norm_from(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(x - centre[:, None, :], axis=-1)`` of ``x`` (H, K, D) to the bit (the
    squares summed in axis order), one axis at a time: without the (H, K, D) difference and
    the reduction over its short strided axis (6 ms of every smooth_shift on 27k cells)."""
    e = x[:, :, 0] - centre[:, 0, None]
    s = e * e
    for d in range(1, x.shape[-1]):
        e = x[:, :, d] - centre[:, d, None]
        s = s + e * e
    out: np.ndarray = np.sqrt(s)
    return out


def families(node_t: np.ndarray, src: np.ndarray, dst: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    """(N,) the dividing node each node's track started from, along the selected links
    ``src`` → ``dst`` (-1: a track that did not start at a division)."""
    family = np.full(len(node_t), -1, np.int64)
    order = np.argsort(node_t[dst], kind="stable")
    src, dst = src[order], dst[order]
    tt = node_t[dst]
    for f in np.unique(tt):
        at = tt == f
        s_, d_ = src[at], dst[at]
        family[d_] = np.where(n_out[s_] >= 2, s_, family[s_])
    return family


def _median_without(values: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, axis=1)`` with ``values[drop]`` left out (NaN where a row keeps
    nothing): one sort per axis of the last dimension, where nanmedian's masked-array path cost
    0.3 s per solve on 27k cells."""
    m = (~drop).sum(axis=1)  # (H,) kept per row
    rows = np.arange(len(values))
    lo = np.maximum((m - 1) // 2, 0)
    hi = np.maximum(m // 2, 0)
    med = np.empty((values.shape[0], values.shape[2]))
    for d in range(values.shape[2]):
        x = np.sort(np.where(drop, np.inf, values[:, :, d]), axis=1)  # dropped entries sort last
        med[:, d] = (x[rows, lo] + x[rows, hi]) / 2.0
    out: np.ndarray = np.where((m > 0)[:, None], med, np.nan)
    return out


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
    cells_at = frames_of(node_t)
    for f, votes in frames_of(node_t[src]).items():
        dv = disp[votes]
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
        shift[cells_at[f]] = peak
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
    frames = frames_of(node_t)
    for f, i in frames.items():
        j = frames.get(f + 1, np.zeros(0, np.int64))
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
    near = neighbour_distance(node_t, centroid)
    near = near[~np.isnan(near)]
    return float(np.median(near)) if len(near) else None


def neighbour_distance(node_t: np.ndarray, centroid: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """(N,) distance from each ``counted`` cell (default: all) to the nearest other counted cell
    of its frame (NaN: none, or not counted).

    The positions do not change over a solve's rounds, so the last answer is kept for a
    read-only ``centroid`` that owns its data (:func:`solvers.features.motion_space`'s) with
    the same frames and ``counted``: every pricing round asks again (:func:`cell_density`),
    15 ms on 27k cells."""
    t = np.asarray(node_t, np.int64)
    centroid = np.asarray(centroid)
    keep = None if counted is None else np.asarray(counted, bool).copy()
    if keep is not None and keep.all():
        keep = None  # every cell counted: the same answer as for all cells
    cache = is_frozen(centroid)
    if cache and _LAST_NEIGHBOURS:
        ref, t_was, keep_was, out_was = _LAST_NEIGHBOURS[0]
        same_keep = (keep is None and keep_was is None) or (
            keep is not None and keep_was is not None and np.array_equal(keep, keep_was)
        )
        if ref() is centroid and same_keep and np.array_equal(t, t_was):
            return out_was.copy()
    out = np.full(len(t), np.nan)
    for here in frames_of(t).values():
        if keep is not None:
            here = here[keep[here]]
        if len(here) >= 2:
            pts = centroid[here]
            out[here] = np.asarray(cKDTree(pts).query(pts, k=2)[0])[:, 1]
    if cache:
        _LAST_NEIGHBOURS[:] = [(weakref.ref(centroid), t.copy(), keep, out.copy())]
    return out


# neighbour_distance's last answer: (centroid, frames, counted, distances)
_LAST_NEIGHBOURS: list[tuple[weakref.ref[np.ndarray], np.ndarray, np.ndarray | None, np.ndarray]] = []


def growth_spread(node_t: np.ndarray, expansion: np.ndarray) -> np.ndarray:
    """Per cell: how far ``expansion`` (:func:`colony_expansion`) moves the median cell of its
    frame relative to the frame's mean move. Above the cell spacing, no translation describes
    the frame pair."""
    out = np.zeros(len(node_t))
    for i in frames_of(node_t).values():
        out[i] = np.median(np.linalg.norm(expansion[i] - expansion[i].mean(axis=0), axis=1))
    return out


def cut_growth_sigma(cells: CellFeatures, cut: np.ndarray) -> float:
    """Spread of the log visible area of a cell that the image edge cuts: what is visible
    follows the edge, not growth, so a continuation's log area ratio gains this much spread per
    cut cell (costs). 1.4826 MAD of the log areas of all cut cells: a statistic of the
    candidates, not of a selection, which would keep only the links it already liked."""
    la = np.log(np.asarray(cells.area, np.float64)[np.asarray(cut, bool)])
    return robust_sigma(la, 0.02, 1.0)


def area_population(cells: CellFeatures, cut: np.ndarray) -> tuple[float, float]:
    """(median, spread) of the log areas of the candidates the image edge does not cut (all of
    them where the edge cuts every one): the sizes of whole cells, a statistic of the candidates,
    not of a selection."""
    la = np.log(np.maximum(np.asarray(cells.area, np.float64), 1e-12))
    whole = la[~np.asarray(cut, bool)]
    whole = whole if len(whole) else la
    return (float(np.median(whole)) if len(whole) else 0.0), robust_sigma(whole, 0.02, 1.0)


def touches_edge(cells: CellFeatures) -> np.ndarray:
    """(N,) bool: the cell's box reaches the image edge on an axis cells move along (the edge
    cuts it, so its visible area and centre follow the edge as well as the cell)."""
    g = motion_space(cells)
    d = len(cells.image_shape)
    bbox = np.asarray(cells.bbox, np.int64)
    shape = np.asarray(cells.image_shape, np.int64)
    cut = (bbox[:, :d] <= 0) | (bbox[:, d:] >= shape)
    out: np.ndarray = np.any(cut & g.active, axis=1)
    return out


def cell_density(node_t: np.ndarray, centroid: np.ndarray, dim: int, counted: np.ndarray | None = None) -> np.ndarray:
    """(N,) cells per unit volume around each cell, from its frame's median nearest-neighbour
    distance r: a Poisson scatter has P(nn > r) = exp(−ρ V_D r^D), so ρ = ln 2 / (V_D r^D)
    (V_D the unit ball's volume, D = ``dim``, the axes cells move along).

    The density of new cells at x is ρ(x) times the chance that a cell there is new, so it is
    what an appearance's position costs against a continuation's Gaussian density (both per
    unit volume: the costs do not depend on the unit of length). ``counted``: the candidates
    that are cells (a forest's roots; nested candidates are not neighbours).
    """
    from scipy.special import gamma

    t = np.asarray(node_t, np.int64)
    n = len(t)
    keep = np.ones(n, bool) if counted is None else np.asarray(counted, bool)
    dim = max(dim, 1)
    r_med = np.full(n, np.nan)
    near = neighbour_distance(t, centroid, None if counted is None else keep)
    for here in frames_of(t).values():
        d = near[here[keep[here]]]
        if len(d) >= 2:
            r_med[here] = max(float(np.median(d)), 1.0)
    if np.all(np.isnan(r_med)):
        r_med[:] = 1.0
    r_med = np.where(np.isnan(r_med), np.nanmedian(r_med), r_med)
    ball = np.pi ** (dim / 2.0) / gamma(dim / 2.0 + 1.0)
    out: np.ndarray = np.log(2.0) / (ball * r_med**dim)
    return out


def _tail(z: np.ndarray, sigma: float) -> np.ndarray:
    """P(displacement along one axis > z) under the robust motion model (costs.robust_nll)."""
    p: np.ndarray = (1.0 - OUTLIER) * ndtr(-z / sigma) + OUTLIER * ndtr(-z / (WIDE * sigma))
    return p


def crossing_probability(cells: CellFeatures, shift: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(p_enter, p_exit) per cell: the chance that it came in across the image edge since the
    previous frame, and that it leaves the image before the next.

    A cell is in view while any part of it is, so it leaves when its far side (the side of its
    box away from the edge, at distance ``inner`` from the edge, physical) crosses the edge: the
    displacement toward that edge, N(v_out, σ²) under the motion model (``shift`` v, ``sigma``
    σ, with the 5 % broad tail of the link costs), exceeds ``inner``. A cell cut by the edge
    (a sliver) is likely to go, one that touches it with its whole body is not. It entered when
    the same held for the motion from the previous frame (v the same shift). Summed over the
    2 sides of every axis cells move along (spanned axes are never crossed).
    """
    g = motion_space(cells)
    d = len(cells.image_shape)
    bbox = np.asarray(cells.bbox, np.float64)
    n = len(bbox)
    v = np.asarray(shift, np.float64).reshape(n, d)
    shape = np.asarray(cells.image_shape, np.float64)
    stay_in = np.ones(n)
    stay_out = np.ones(n)
    for a in np.flatnonzero(g.active):
        lo = bbox[:, d + a] * g.unit[a]  # far side from the low edge
        hi = (shape[a] - bbox[:, a]) * g.unit[a]  # far side from the high edge
        stay_out *= (1.0 - _tail(lo + v[:, a], sigma)) * (1.0 - _tail(hi - v[:, a], sigma))
        stay_in *= (1.0 - _tail(lo - v[:, a], sigma)) * (1.0 - _tail(hi + v[:, a], sigma))
    return 1.0 - stay_in, 1.0 - stay_out


def _interior_weights(ended: np.ndarray, p_cross: np.ndarray, floor: float, n_iter: int = 50) -> np.ndarray:
    """Each cell's weight as an interior end by the EM of :func:`interior_rate`: the
    responsibility r of an ended cell at the rate's maximum-likelihood value, 0 for the others."""
    e = np.asarray(ended, bool)
    p = np.clip(np.asarray(p_cross, np.float64), 0.0, 1.0)
    q = max(float(e.mean()), floor) if len(e) else floor
    stay = float((~e).sum())
    pe = p[e]
    r = np.zeros(0)
    for _ in range(n_iter):
        r = (1.0 - pe) * q / np.maximum(pe + (1.0 - pe) * q, 1e-300)
        q_new = float(r.sum()) / max(stay + float(r.sum()), 1e-12)
        if abs(q_new - q) <= 1e-6 * q:
            break
        q = q_new
    w = np.zeros(len(e))
    w[e] = r
    return w


def _interior_bound(ended: np.ndarray, weights: np.ndarray, floor: float) -> float:
    """The lower 97.5 % Clopper–Pearson bound of k = Σ ``weights`` interior ends in
    #not ended + k cells, clipped to [floor, END_RATE_MAX]."""
    k = float(np.sum(weights))
    if k <= 0.0:
        return floor
    lower = float(betaincinv(k, float((~np.asarray(ended, bool)).sum()) + 1.0, 0.025))
    return float(np.clip(lower, floor, END_RATE_MAX))


def interior_rate(ended: np.ndarray, p_cross: np.ndarray, floor: float, n_iter: int = 50) -> float:
    """Maximum-likelihood rate q of ending (or starting) away from the edge, given which cells
    ended and each one's chance of having crossed the edge instead.

    A cell ends with probability p + (1 − p) q (it crossed, or it did not and ended anyway);
    EM over "crossed or not": an ended cell did not cross with responsibility
    r = (1 − p) q / (p + (1 − p) q), and q = Σ r / (#not ended + Σ r). Clipped to
    [floor, END_RATE_MAX]; returned as the lower 97.5 % confidence bound of q (Clopper–Pearson
    with k = Σ r ends in #not ended + k cells), so a rate is believed only as far as the
    number of ends supports it: one or two ends in a small movie do not make ends cheap.
    """
    e = np.asarray(ended, bool)
    if len(e) == 0:
        return floor
    return _interior_bound(e, _interior_weights(e, p_cross, floor, n_iter), floor)


def frame_factors(events: np.ndarray, trials: np.ndarray, frame: np.ndarray) -> dict[int, float]:
    """How much more (or less) often than the movie's pooled rate an event happens at each
    frame: the frame's empirical-Bayes rate over the pooled one.

    Divisions come in waves, a focus drift or a delaminating sheet ends many tracks at once:
    one rate for every frame prices those frames' events as rare. The frames' rates are taken
    as draws from a beta distribution about the pooled rate p, whose spread τ² is the
    between-frame variance left after binomial noise (method of moments: the weighted sum of
    squares S = Σ n_f (p_f − p)² has mean (F − 1) p (1 − p) + τ² (N − Σ n_f² / N)); each frame's
    rate is its posterior mean (k_f + m p) / (n_f + m), m = p (1 − p) / τ² − 1. Where the frames
    agree as well as their counts allow (τ² ≤ 0, as in a movie of constant rates) every factor
    is 1, so a movie whose rates do not vary is priced as before. ``events`` and ``trials``
    are per cell (weights: an interior end counts its responsibility).
    """
    f = np.asarray(frame, np.int64)
    frames, inv = np.unique(f, return_inverse=True)
    n = np.bincount(inv, weights=np.asarray(trials, np.float64), minlength=len(frames))
    k = np.bincount(inv, weights=np.asarray(events, np.float64), minlength=len(frames))
    live = n > 0
    big_n, big_k = float(n.sum()), float(k.sum())
    ones = {int(x): 1.0 for x in frames}
    if live.sum() < 2 or big_k <= 0.0 or big_k >= big_n:
        return ones
    p = big_k / big_n
    s = float(np.sum(n[live] * (k[live] / n[live] - p) ** 2))
    denom = big_n - float(np.sum(n[live] ** 2)) / big_n
    tau2 = (s - (live.sum() - 1) * p * (1.0 - p)) / max(denom, 1e-12)
    if tau2 <= 0.0:
        return ones
    m = max(p * (1.0 - p) / tau2 - 1.0, 0.0)
    post = (k + m * p) / np.maximum(n + m, 1e-12)
    return {int(x): float(post[i] / p) if live[i] else 1.0 for i, x in enumerate(frames)}


def _by_frame(base: float, factors: dict[int, float], t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Per-cell rate: ``base`` times its frame's factor (1 for frames without one), clipped to
    [lo, hi]."""
    scale = np.ones(len(t))
    if factors:
        keys = np.fromiter(factors, np.int64, len(factors))
        vals = np.fromiter(factors.values(), np.float64, len(factors))
        order = np.argsort(keys)
        keys, vals = keys[order], vals[order]
        pos = np.minimum(np.searchsorted(keys, t), len(keys) - 1)
        hit = keys[pos] == t
        scale[hit] = vals[pos[hit]]
    out: np.ndarray = np.clip(base * scale, lo, hi)
    return out


def selected_rates(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    solution: Solution,
    p_enter: np.ndarray,
    p_exit: np.ndarray,
    bounds: tuple[float, float],
    floor: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(division, appear, disappear) rates per cell from a solution's selection.

    Division: the selected cells (not in the last frame) with two selected successors over all
    of them, clipped to ``bounds``: read from the divisions themselves, so cells that leave, die
    or enter do not move it. Appear / disappear: :func:`interior_rate` over the selected cells
    without a predecessor (not in the first frame) / successor (not in the last), each one's
    chance of an edge crossing taken out. Each rate is then scaled by its frame's
    :func:`frame_factors` (1 where the frames' counts agree with one rate).
    """
    t = np.asarray(cells.t, np.int64)
    src = np.asarray(edge_source, np.int64)
    dst = np.asarray(edge_target, np.int64)
    nsel = np.asarray(solution.node_selected, bool)
    esel = np.asarray(solution.edge_selected, bool)
    n = len(t)
    if n == 0 or not nsel.any():
        return np.full(n, initial_division_rate(bounds)), np.full(n, floor), np.full(n, floor)
    n_out = np.bincount(src[esel], minlength=n)
    n_in = np.bincount(dst[esel], minlength=n)
    first, last = int(t[nsel].min()), int(t[nsel].max())
    can_go = nsel & (t < last)
    can_come = nsel & (t > first)
    divides = n_out[can_go] >= 2
    div = float(np.clip(divides.sum() / max(int(can_go.sum()), 1), *bounds))
    went, came = n_out[can_go] == 0, n_in[can_come] == 0
    w_app = _interior_weights(came, p_enter[can_come], floor)
    w_dis = _interior_weights(went, p_exit[can_go], floor)
    app, dis = _interior_bound(came, w_app, floor), _interior_bound(went, w_dis, floor)
    f_div = frame_factors(divides, np.ones(len(divides)), t[can_go])
    f_app = frame_factors(w_app, np.where(came, w_app, 1.0), t[can_come])
    f_dis = frame_factors(w_dis, np.where(went, w_dis, 1.0), t[can_go])
    return (
        _by_frame(div, f_div, t, *bounds),
        _by_frame(app, f_app, t, floor, END_RATE_MAX),
        _by_frame(dis, f_dis, t, floor, END_RATE_MAX),
    )


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
    σ_g = 0.1, μ_s = 1, σ_s = σ_⊥ = :data:`INITIAL_SPLIT_SIGMA`, σ_r = 0.3 (loose: refined from the
    selected divisions, those the image edge does not cut); the whole cells' log-area median and
    spread (:func:`area_population`).
    """
    t = np.asarray(cells.t, np.int64)
    geom = motion_space(cells)
    c = geom.centroid
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
    frames = frames_of(t)
    for f, a in frames.items():
        b = frames.get(f + 1, np.zeros(0, np.int64))
        if len(b) == 0:
            continue
        d, _ = cKDTree(c[b]).query(c[a] + shift[a], k=1)
        nn.append(d)
        logs.append(np.log(cells.area[b].sum() / cells.area[a].sum()))
    sig = float(np.median(np.concatenate(nn))) / chi_median(geom.dim) if nn else 5.0
    cut = touches_edge(cells)
    area_mean, area_sigma = area_population(cells, cut)
    growth = float(np.median(logs)) if logs else 0.0
    return MotionModel(
        shift=shift,
        sigma_motion=max(sig, 1.0),
        growth_mean=growth,
        growth_sigma=0.1,
        sep_sigma=INITIAL_SPLIT_SIGMA,
        perp_sigma=INITIAL_SPLIT_SIGMA,
        ratio_sigma=0.3,
        sep_mean=1.0,
        cut_sigma=cut_growth_sigma(cells, cut),
        area_mean=area_mean,
        area_sigma=area_sigma,
    )


@dataclass(frozen=True)
class Persistence:
    """How much of a cell's own last residual motion its next one repeats (:func:`persistence`).

    ``alpha``: the coefficient used (the lower 97.5 % confidence bound of the least-squares
    regression, at least 0), ``estimate`` and ``se`` the regression's, ``n`` its pairs, for
    cells that continued; the same ``*_d`` for daughters whose last link was their division.
    """

    alpha: float
    estimate: float
    se: float
    n: int
    alpha_d: float
    estimate_d: float
    se_d: float
    n_d: int


MIN_PAIRS = 20  # fewer consecutive link pairs than this: no persistence


def _regress(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(used, estimate, se) of ``b`` ≈ α ``a`` (rows: D-vectors, one α): least squares with
    the standard error of α from the residual variance; used = the lower 97.5 % confidence
    bound, clipped to [0, 1] (a motion repeated more than whole is not persistence)."""
    if len(a) < MIN_PAIRS:
        return 0.0, 0.0, float("inf")
    saa = float(np.sum(a * a))
    if saa <= 1e-12:
        return 0.0, 0.0, float("inf")
    est = float(np.sum(a * b)) / saa
    dof = max(a.size - 1, 1)
    s2 = float(np.sum((b - est * a) ** 2)) / dof
    se = float(np.sqrt(s2 / saa))
    return float(np.clip(est - 1.96 * se, 0.0, 1.0)), est, se


def persistence(
    c: np.ndarray,
    t: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    esel: np.ndarray,
    n_out: np.ndarray,
    shift: np.ndarray,
    sigma: float,
    inner: np.ndarray,
) -> tuple[np.ndarray, Persistence]:
    """(N, D) the part of each cell's next residual its own last one predicts, and the fit.

    A cell's last residual ρ is c − (c_prev + v_prev) along its selected one-frame incoming
    link (v the field, :func:`smooth_shift`). Over the selected pairs (incoming link, outgoing
    one-frame continuation) of cells the edge does not cut, the next residual is regressed on
    ρ (:func:`_regress`): where the movie's cells keep their own heading (sparse migrating
    nuclei) the coefficient is clearly above 0, where they do not (random walks, coarse frame
    rates) its confidence bound is 0 and the prediction is the field's alone. Daughters after
    their division have a residual of the division link (their half of the separation
    included), so they get their own coefficient: whether sisters keep moving apart is the
    movie's to say. Each ρ is weighted by its chance of being an inlier of the robust motion
    model (a wrong or outlying link predicts nothing).
    """
    n, dim = c.shape
    d = max(dim, 1)
    one = esel & (t[dst] - t[src] == 1) & inner[src] & inner[dst]
    rho = np.zeros((n, dim))
    has = np.zeros(n, bool)
    daughter = np.zeros(n, bool)
    e = np.flatnonzero(one & (n_out[src] <= 2))
    rho[dst[e]] = c[dst[e]] - c[src[e]] - shift[src[e]]
    has[dst[e]] = True
    daughter[dst[e]] = n_out[src[e]] == 2
    nxt = np.flatnonzero(one & (n_out[src] == 1) & has[src])
    i = src[nxt]
    a = rho[i]
    b = c[dst[nxt]] - c[i] - shift[i]
    lim = 3.0 * sigma * np.sqrt(d)
    ok_b = np.linalg.norm(b, axis=1) < lim
    na = np.linalg.norm(a, axis=1)
    cont = ~daughter[i]
    use_c = cont & ok_b & (na < lim)
    alpha, est, se = _regress(a[use_c], b[use_c])
    # a daughter's last residual holds its half of the separation: trimmed on its own scale
    dau = daughter[i] & ok_b
    if dau.any():
        lim_d = 3.0 * float(np.median(na[dau])) / chi_median(d) * np.sqrt(d)
        dau &= na < max(lim_d, lim)
    alpha_d, est_d, se_d = _regress(a[dau], b[dau])
    r2 = np.sum(rho**2, axis=1)
    li = np.log1p(-OUTLIER) - r2 / (2 * sigma**2) - d * np.log(sigma)
    lo = np.log(OUTLIER) - r2 / (2 * (WIDE * sigma) ** 2) - d * np.log(WIDE * sigma)
    w = np.exp(li - np.logaddexp(li, lo))
    coef = np.where(daughter, alpha_d, alpha) * has
    if alpha_d > 0:
        # the daughters' coefficient already prices their separation's size
        w = np.where(daughter, 1.0, w)
    fit = Persistence(alpha, est, se, int(use_c.sum()), alpha_d, est_d, se_d, int(dau.sum()))
    return rho * (coef * w)[:, None], fit


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
    geom = motion_space(cells)
    c = geom.centroid
    area = np.asarray(cells.area, np.float64)
    esel = np.asarray(solution.edge_selected, bool)
    u, has = link_displacements(t, c, area, src, dst, esel)
    n_out = np.bincount(src[esel], minlength=len(t))
    shift = smooth_shift(t, c, u, has, previous.sigma_motion, family=families(t, src[esel], dst[esel], n_out))
    cut = touches_edge(cells)
    extra, fit = persistence(c, t, src, dst, esel, n_out, shift, previous.sigma_motion, ~cut)
    shift = shift + extra
    cont = esel & (n_out[src] == 1) & (t[dst] - t[src] == 1)
    resid = c[dst[cont]] - (c[src[cont]] + shift[src[cont]])
    sig_m = (
        float(np.median(np.linalg.norm(resid, axis=1))) / chi_median(geom.dim) if cont.any() else previous.sigma_motion
    )
    inner = cont & ~cut[src] & ~cut[dst]
    g = np.log(area[dst[inner]] / area[src[inner]])
    growth = float(np.median(g)) if inner.sum() >= 5 else previous.growth_mean
    sig_g = robust_sigma(g, 0.02, previous.growth_sigma)

    # division geometry from the selected divisions
    div_e = np.flatnonzero(esel & (n_out[src] == 2))
    div_e = div_e[np.argsort(src[div_e], kind="stable")]
    ea, eb = div_e[0::2], div_e[1::2]
    # divisions the image edge cuts say nothing of the split's geometry or areas (their cost
    # terms widen by the cut spread instead), as cut links say nothing of growth
    whole = ~cut[src[ea]] & ~cut[dst[ea]] & ~cut[dst[eb]]
    ea, eb = ea[whole], eb[whole]
    sep_mean, sep_sig, perp_sig, ratio_sig = (
        previous.sep_mean,
        previous.sep_sigma,
        previous.perp_sigma,
        previous.ratio_sigma,
    )
    union_mean, union_sig = previous.union_mean, previous.union_sigma
    if len(ea) >= 5:
        i, j, k = src[ea], dst[ea], dst[eb]
        sep, perp = daughter_offsets(geom.cov[i], c[j], c[k])
        sep_mean = float(np.median(sep))
        sep_sig = robust_sigma(sep, 0.05, previous.sep_sigma)
        perp_sig = max(float(np.median(perp)) / 0.6745, 0.05)  # half-normal: median = 0.6745 σ
        ratio = np.log(area[j] / area[k])
        ratio_sig = max(float(np.median(np.abs(ratio))) / 0.6745, 0.05)
        union = np.log((area[j] + area[k]) / area[i])
        union_mean = float(np.median(union))
        union_sig = robust_sigma(union, 0.02, previous.union_sigma)
    sigma = max(sig_m, 1.0)
    p_enter, p_exit = crossing_probability(cells, shift, sigma)
    p_div, app, dis = selected_rates(cells, src, dst, solution, p_enter, p_exit, bounds)
    return MotionModel(
        shift=shift,
        sigma_motion=sigma,
        growth_mean=growth,
        growth_sigma=sig_g,
        sep_sigma=sep_sig,
        perp_sigma=perp_sig,
        ratio_sigma=ratio_sig,
        sep_mean=sep_mean,
        division_rate=p_div,
        appear_rate=app,
        disappear_rate=dis,
        union_mean=union_mean,
        union_sigma=union_sig,
        cut_sigma=cut_growth_sigma(cells, cut) if previous.cut_sigma is None else previous.cut_sigma,
        area_mean=previous.area_mean,
        area_sigma=previous.area_sigma,
        persistence=fit,
    )
