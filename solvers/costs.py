r"""Cost terms: what a continuation, a division, an appearance and a disappearance cost, given
the candidates' features (:class:`solvers.features.CellFeatures`) and a motion model
(:class:`solvers.motion.MotionModel`) → :class:`solvers.types.CandidateGraph`.

Every cost is a negative log-likelihood (nats), so the terms are commensurable and the solver can
weigh a good division against two mediocre continuations. With :math:`\hat c_i = c_i + \Delta t\,
v_i` the motion-compensated position of cell i (``v`` from :mod:`solvers.motion`),
:math:`N_k(r;\sigma) = \lVert r\rVert^2/2\sigma^2 + k\log(\sqrt{2\pi}\sigma)` a k-dimensional
Gaussian NLL and :math:`g = \log(A_j/A_i)` the log growth:

* continuation i→j over Δt frames:
  :math:`C_{ij} = -\log(1-p_t) + N_D(c_j-\hat c_i;\sigma_m\sqrt{\Delta t})
  + N_1(g-\Delta t\,\mu_g;\sigma_g\sqrt{\Delta t}) + \gamma(\Delta t-1)`;
* division i→{j,k} (one frame): with :math:`m` the centre of the daughters' union,
  :math:`s = c_k-c_j`, :math:`L_i = \sqrt{12\lambda_1}` the mother's length (rod of uniform
  density, λ₁ the largest eigenvalue of its pixel covariance) and :math:`a_i` its long axis
  (:mod:`solvers.features`):
  :math:`D_{ijk} = D\log h_i - \log p_t + N_D(m-\hat c_i;\sigma_m) + N_1(\log\tfrac{A_j+A_k}{A_i}
  -\mu_u;\sigma_u) + N_1(\tfrac{\lVert s\rVert}{L_i/2}-\mu_s;\sigma_s) + N_1(\tfrac{\lVert s-(s\cdot a_i)
  a_i\rVert}{L_i/2};\sigma_\perp) + N_1(\log\tfrac{A_j}{A_k};\sigma_r)`:
  two daughters that together resemble the mother: same total area (after growth), centred
  where the mother was going, split along its long axis, each about half its length. The
  offsets are lengths over :math:`h_i = L_i/2`, so as a density of the daughters' positions in
  the continuations' units they carry the Jacobian :math:`h_i^{-D}` (the :math:`D\log h_i`
  term; without it a division was ~5 nats too cheap against two continuations, and dense tissue
  got false divisions: a neighbour taken as a daughter, its own predecessor ended). Where the
  image edge cuts the mother or a daughter, the two area terms hold of the whole cells, not of
  what shows (:func:`division_area_nll`: the visible log area is the whole one plus log f(u),
  averaged over where the cell's far side lies): the edge hides area and never adds any, so a
  dividing cell whose daughters it cuts unequally is still a division (4 of the shallow stack's
  5 missed links were such divisions, each ~60-440 nats too dear), while a symmetric widening of
  the terms (as a continuation's growth has) made a cut cell and an entering neighbour a
  division (0 → 4-5 false division links per synthetic case). Divisions with cut cells are left
  out of the division statistics;
* end / start: a cell at t ends with :math:`P^{end}_i = p^{out}_i + (1-p^{out}_i)\,q_d` and its
  track starts with :math:`P^{start}_i = p^{in}_i + (1-p^{in}_i)\,q_a`, where
  :math:`p^{out}, p^{in}` are the chances that it leaves across the image edge before the next
  frame / came in since the last (:func:`solvers.motion.crossing_probability`: its far side's
  distance to the edge, physical, against the motion model's shift and σ_m; 0 along an axis
  the cells span) and :math:`q_d, q_a` the interior end / start rates (deaths, cells leaving
  the layer, births from nothing), estimated from each solution
  (:func:`solvers.motion.selected_rates`) and clipped to [e^{−10}, 0.5]. Disappear costs
  :math:`-\log P^{end}_i`; appear costs :math:`-\log\rho_i - \log P^{start}_i`, with
  :math:`\rho_i` the density of cells around i (:func:`solvers.motion.cell_density`): a new
  cell's position is a density like a continuation's Gaussian, so the two compare in any unit
  of length. A new cell that the edge cuts also pays for how little of it shows
  (:func:`new_area_nll`: the density of its log visible area when its far side lies anywhere
  inside the edge, relative to a whole cell's), which a continuation pays through its growth
  term; without it a sliver was cheaper to start than to continue a leaving cell. Every
  continuation and division pays :math:`-\log(1-P^{end}_i)`. 0 only in the
  movie's first / last frame: a cell at the edge that is plainly visible in both frames is
  linked, a sliver on its way out ends;
* the growth term of a continuation one of whose cells the image edge cuts is broadened by the
  spread of the visible areas of cut cells (:func:`solvers.motion.cut_growth_sigma`, per cut
  cell), since what is visible follows the edge;
* node: default −(−log ρ_i + a_i + appear + disappear) − 5 (a_i: :func:`new_area_nll`; the most
  node i can pay to start and end, plus 5: every detection of a label image is used; it reads
  only i's frame, so a re-solve window prices nodes as the whole movie does) unless the caller
  gives per-node costs (e.g. from candidate scores).

Positions, covariances and distances are physical, in units of the movie's finest pixel
(:func:`solvers.features.motion_space`: z of an anisotropic stack weighs its spacing; axes the
cells span are dropped, and D counts the others).

Every term above that is written :math:`N` is :func:`robust_nll`, a Gaussian with a 5 %
component four times broader, so one large residual costs a bounded-slope amount instead of a
quadratic one: the motion, growth and division area terms, and the split's separation and
offset (their spreads are read from the divisions the rounds selected, which are alike where
few or where the movie's halves are exact; as plain Gaussians a pair of daughters a few pixels
further apart cost 50-130 nats, and the mother ended and both started instead).
:math:`p_t` (the division rate) is estimated from the selected divisions themselves
(:func:`solvers.motion.selected_rates`), never from cell-count growth, which cells leaving,
entering and dying move as much as divisions do; before the first solve it is the geometric
centre of its bounds. All σ, μ and rates come from :class:`solvers.motion.MotionModel`: initial values
(:func:`solvers.motion.initial_motion`), then re-estimated from the selected links
(:func:`solvers.motion.estimate_motion`) by the loop of :mod:`solvers.refine`. The few fixed
parameters are in :class:`CostParams`; :class:`CostModel` keeps everything the costs read, so
the same candidates can be re-costed (perturbed features, :mod:`solvers.uncertainty`).
:func:`fold_pairs` folds the division pairs into the edges for solvers without pair variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import logsumexp

from solvers.features import CellFeatures, daughter_offsets, long_axis, motion_space
from solvers.motion import (
    DIV_RATE_BOUNDS,
    END_RATE_MAX,
    MotionModel,
    area_population,
    cell_density,
    crossing_probability,
    cut_growth_sigma,
    initial_division_rate,
    touches_edge,
)
from solvers.types import CandidateGraph

LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
Overlap = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CostParams:
    """The fixed parameters (everything else is estimated from the data)."""

    # nats; −log of the floor of the interior start / end rates q_a, q_d (their value before the
    # first estimate): an interior end never costs more than 10 nats, a start never more than
    # 10 plus the position term −log ρ
    appear: float = 10.0
    disappear: float = 10.0
    node: float | None = None  # None: −(appear + disappear) − 5, select every detection
    gap: float = 5.0  # nats per skipped frame of a gap-closing link
    pairs_per_node: int = 6  # division pairs kept per mother (cheapest first)
    div_rate_bounds: tuple[float, float] = DIV_RATE_BOUNDS
    # nats per unit of (1 − IoU after motion compensation); used only when the caller passes
    # an ``overlap`` function. 0 by default: on the bacteria GT graph the motion and shape
    # terms alone leave 10 of 3,517 links wrong; weight 5 made it 23 (17 missing, 9 wrong
    # at the 4th solve: 8 wrong, 15 missing), so overlap is left to segmentations without shape.
    iou_weight: float = 0.0


DEFAULT_COST_PARAMS = CostParams()  # the defaults, shared (frozen) by every signature that takes params


def gaussian_nll(r2: np.ndarray, sigma: float | np.ndarray, dim: int) -> np.ndarray:
    """N_dim(r; σ) for squared norms ``r2`` (see module docstring)."""
    nll: np.ndarray = r2 / (2.0 * np.square(sigma)) + dim * (np.log(sigma) + LOG_SQRT_2PI)
    return nll


def robust_nll(
    r2: np.ndarray, sigma: float | np.ndarray, dim: int, outlier: float = 0.05, wide: float = 4.0
) -> np.ndarray:
    """NLL of a Gaussian with a 5% component ``wide`` times broader.

    A link whose residual is large (a cell pushed by a neighbour dividing, a segmentation that
    changed shape) then costs a bounded-slope amount instead of a quadratic one, so it still
    beats breaking the track into an appear + disappear; the estimated σ stays tight for the
    bulk of cells. -log((1-ε) e^{-N(r;σ)} + ε e^{-N(r;wσ)}) computed with logaddexp.
    """
    a = np.log1p(-outlier) - gaussian_nll(r2, sigma, dim)
    b = np.log(outlier) - gaussian_nll(r2, np.asarray(sigma) * wide, dim)
    nll: np.ndarray = -np.logaddexp(a, b)
    return nll


def tracking_costs(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    motion: MotionModel,
    params: CostParams = CostParams(),
    node_cost: np.ndarray | None = None,
    node_hier_parent: np.ndarray | None = None,
    overlap: Overlap | None = None,
) -> CandidateGraph:
    """The candidate graph with the costs of the module docstring (edges kept as given).

    ``overlap(src, dst, offset)`` returns the mask IoU of each edge with the source moved by
    ``offset`` (e.g. ``functools.partial(inference.edges.mask_iou, bbox, masks, area)``); with
    ``params.iou_weight > 0`` it adds ``iou_weight·(1 − IoU)`` to continuations and the same
    for the union of two daughters against the mother to divisions.
    """
    src = np.asarray(edge_source, np.int64)
    dst = np.asarray(edge_target, np.int64)
    t = np.asarray(cells.t, np.int64)
    n = len(t)
    geom = motion_space(cells)
    c = geom.centroid
    area = np.asarray(cells.area, np.float64)
    dim = geom.dim
    p_div = (
        np.full(n, initial_division_rate(params.div_rate_bounds))
        if motion.division_rate is None
        else np.asarray(motion.division_rate, np.float64)
    )
    p_start, p_end = end_probabilities(cells, motion, params)
    dt = (t[dst] - t[src]).astype(np.float64)
    pred = c[src] + dt[:, None] * motion.shift[src]
    r2 = np.sum((c[dst] - pred) ** 2, axis=1)
    g = np.log(area[dst] / area[src])
    cut = touches_edge(cells)
    # each cell the edge cuts adds its visible area's own spread to the log ratio's
    n_cut = cut[src].astype(np.float64) + cut[dst]
    sig_cut = cut_growth_sigma(cells, cut) if motion.cut_sigma is None else motion.cut_sigma
    sig_g = np.sqrt(motion.growth_sigma**2 + n_cut * sig_cut**2)
    edge_cost = (
        -np.log1p(-p_div[src])
        - np.log1p(-p_end[src])
        + robust_nll(r2, motion.sigma_motion * np.sqrt(dt), dim)
        + robust_nll((g - dt * motion.growth_mean) ** 2, sig_g * np.sqrt(dt), 1)
        + params.gap * (dt - 1.0)
    )
    edge_iou = None
    if overlap is not None and params.iou_weight > 0 and len(src):
        edge_iou = np.asarray(overlap(src, dst, dt[:, None] * motion.shift[src]), np.float64)
        edge_cost = edge_cost + params.iou_weight * (1.0 - edge_iou)
    pairs, pair_total = division_pairs(
        cells,
        src,
        dst,
        motion,
        p_div,
        params.pairs_per_node,
        edge_iou=edge_iou,
        iou_weight=params.iou_weight,
        p_end=p_end,
    )
    pair_cost = pair_total - edge_cost[pairs[:, 0]] - edge_cost[pairs[:, 1]]
    roots = None if node_hier_parent is None else np.asarray(node_hier_parent) < 0
    density = cell_density(t, c, dim, roots)
    area_nll = new_area_nll(cells, motion, cut, dim)
    appear = -np.log(density) - np.log(p_start) + area_nll
    disappear = -np.log(p_end)
    if n:  # the movie's first / last frame: every cell there starts / ends for free
        appear[t == t.min()] = 0.0
        disappear[t == t.max()] = 0.0
    if node_cost is None:
        # the most node i can pay to start and end (P_start, P_end ≥ e^-10), plus 5: every detection
        # is worth selecting, and the cost reads only its own frame (windows of a re-solve agree)
        most = -np.log(density) + area_nll + params.appear + params.disappear
        node_cost = np.full(n, params.node) if params.node is not None else -most - 5.0
    return CandidateGraph(
        node_t=t,
        node_cost=node_cost,
        node_hier_parent=np.full(n, -1) if node_hier_parent is None else node_hier_parent,
        edge_source=src,
        edge_target=dst,
        edge_cost=edge_cost,
        appear_cost=appear,
        disappear_cost=disappear,
        division_cost=np.zeros(n),
        division_pairs=pairs,
        division_pair_cost=pair_cost,
    )


def visible_fraction(u: np.ndarray, dim: int) -> np.ndarray:
    """Fraction of a D-ball inside the image when its far side lies ``u`` diameters inside the
    edge (u in (0, 1]): a line segment (D = 1), a disc's circular segment (2), a ball's cap (3;
    also for D > 3)."""
    u = np.clip(np.asarray(u, np.float64), 0.0, 1.0)
    if dim <= 1:
        return u
    if dim == 2:
        x = 1.0 - 2.0 * u
        out: np.ndarray = (np.arccos(x) - x * np.sqrt(np.maximum(1.0 - x * x, 0.0))) / np.pi
        return out
    cap: np.ndarray = u * u * (3.0 - 2.0 * u)
    return cap


CUT_DEPTHS = 64  # quadrature points over the depth of a cut cell (new_area_nll)


def new_area_nll(cells: CellFeatures, motion: MotionModel, cut: np.ndarray, dim: int) -> np.ndarray:
    r"""(N,) what an appearance pays for the cell's area: 0 for a whole cell, and for a cell the
    edge cuts the NLL of its log visible area relative to a whole cell of typical size.

    A cut cell shows the fraction f(u) of a cell whose log area is a draw from the whole
    candidates' (:func:`solvers.motion.area_population`, robust like the growth term), its far
    side a uniform u ∈ (0, 1) diameters inside the edge (cells lie anywhere; f: a D-ball,
    :func:`visible_fraction`): the density of its log visible area is
    :math:`\int_0^1 p(\log A - \log f(u))\,du` (midpoint rule). A sliver is then as likely
    as the share of cut cells that show so little. Whole new cells pay nothing for their area:
    what is new inside the image (cells entering the focal plane, births) need not be sized like
    the population, and their starts were priced without it before.
    """
    if motion.area_mean is None or motion.area_sigma is None:
        mean, sigma = area_population(cells, cut)
    else:
        mean, sigma = motion.area_mean, motion.area_sigma
    la = np.log(np.maximum(np.asarray(cells.area, np.float64), 1e-12))
    cut = np.asarray(cut, bool)
    nll = np.zeros(len(la))
    if cut.any():
        lf = np.log(visible_fraction((np.arange(CUT_DEPTHS) + 0.5) / CUT_DEPTHS, dim))
        r = la[cut, None] - lf[None, :] - mean
        typical = float(robust_nll(np.zeros(1), sigma, 1)[0])
        nll[cut] = -(logsumexp(-robust_nll(r**2, sigma, 1), axis=1) - np.log(CUT_DEPTHS)) - typical
    return nll


CUT_DIVISION_DEPTHS = 12  # quadrature points per cut cell of a division (division_area_nll)


def division_area_nll(
    cells: CellFeatures, motion: MotionModel, i: np.ndarray, j: np.ndarray, k: np.ndarray, dim: int
) -> np.ndarray:
    r"""(P,) what divisions i → {j, k} pay for their areas: −log p(a_j, a_k | a_i) of the log
    visible areas, the daughters' total :math:`U = \log\tfrac{A_j+A_k}{A_i} \sim` robust
    N(μ_u, σ_u) and ratio :math:`r = \log\tfrac{A_j}{A_k} \sim` robust N(0, σ_r) (the Jacobian
    of (a_j, a_k) → (U, r) is 1). Both robust (:func:`robust_nll`) as the motion and growth
    terms are: σ_r is read from the selected whole divisions (0.05 where they halve exactly, as
    on the synthetic movies), and one unequal split (an annotation's uneven halves) then cost
    ~20-100 nats as a plain Gaussian.

    Where the image edge cuts a cell, U and r hold of its whole area, not of what shows: its
    visible log area is the whole one plus log f(u), its far side a uniform u ∈ (0, 1) diameters
    inside the edge (:func:`visible_fraction`, as in :func:`new_area_nll`), and the density is
    averaged over u (midpoint rule, :data:`CUT_DIVISION_DEPTHS` points per cut cell). A cut
    mother's whole log area m = a_i − log f(u) is weighted by the whole cells' log-area density
    (:func:`solvers.motion.area_population`), its posterior given what shows. The edge can only
    hide area, so a whole daughter much larger than half a cut mother's visible part, or a cut
    daughter larger than its whole sister, stays unlikely; a symmetric widening of the terms
    (as a continuation's growth has) made a cut cell and an entering neighbour a division.
    Pairs of whole cells pay the plain terms.
    """
    area = np.asarray(cells.area, np.float64)
    union_mean = motion.growth_mean if motion.union_mean is None else motion.union_mean
    aj, ak = area[j], area[k]
    out: np.ndarray = robust_nll((np.log((aj + ak) / area[i]) - union_mean) ** 2, motion.union_sigma, 1) + robust_nll(
        np.log(aj / ak) ** 2, motion.ratio_sigma, 1
    )
    cut = touches_edge(cells)
    pattern = cut[i].astype(np.int64) * 4 + cut[j] * 2 + cut[k]
    if not pattern.any():
        return out
    if motion.area_mean is None or motion.area_sigma is None:
        pop_mean, pop_sigma = area_population(cells, cut)
    else:
        pop_mean, pop_sigma = motion.area_mean, motion.area_sigma
    g = CUT_DIVISION_DEPTHS
    lf = np.log(visible_fraction((np.arange(g) + 0.5) / g, dim))
    la = np.log(np.maximum(area, 1e-12))
    for pat in range(1, 8):
        rows = np.flatnonzero(pattern == pat)
        if not len(rows):
            continue
        # whole log areas on a (P, g_i, g_j, g_k) grid; an uncut cell has one point, log f = 0
        fi, fj, fk = (lf if pat & bit else np.zeros(1) for bit in (4, 2, 1))
        m = la[i[rows], None] - fi[None, :]
        # a cut mother's whole area: posterior over u given its visible one, ∝ the population's density
        log_w = -robust_nll((m - pop_mean) ** 2, pop_sigma, 1)
        log_w = log_w - logsumexp(log_w, axis=1, keepdims=True)
        xj = la[j[rows], None] - fj[None, :]
        xk = la[k[rows], None] - fk[None, :]
        u = np.logaddexp(xj[:, None, :, None], xk[:, None, None, :]) - m[:, :, None, None]
        r = xj[:, None, :, None] - xk[:, None, None, :]
        log_p = (
            log_w[:, :, None, None]
            - robust_nll((u - union_mean) ** 2, motion.union_sigma, 1)
            - robust_nll(r**2, motion.ratio_sigma, 1)
        )
        n_avg = len(fj) * len(fk)  # the daughters' u are averaged; the mother's are weighted
        out[rows] = -(logsumexp(log_p.reshape(len(rows), -1), axis=1) - np.log(n_avg))
    return out


def division_pairs(
    cells: CellFeatures,
    src: np.ndarray,
    dst: np.ndarray,
    motion: MotionModel,
    p_div: np.ndarray,
    keep: int,
    edge_iou: np.ndarray | None = None,
    iou_weight: float = 0.0,
    p_end: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate daughter pairs (edge index pairs) and their division cost D (docstring).

    All pairs of one-frame out-edges of each mother are scored at once (grouped by out-degree,
    vectorised); the ``keep`` cheapest per mother are returned. ``p_end``
    (:func:`end_probabilities`; default 0): a dividing mother is one that did not end.
    """
    t = np.asarray(cells.t, np.int64)
    if p_end is None:
        p_end = np.zeros(len(t))
    geom = motion_space(cells)
    c = geom.centroid
    area = np.asarray(cells.area, np.float64)
    dim = geom.dim
    one = np.flatnonzero(t[dst] - t[src] == 1)
    one = one[np.argsort(src[one], kind="stable")]
    _mothers, start, deg = np.unique(src[one], return_index=True, return_counts=True)
    ea_parts, eb_parts = [], []
    for m in np.unique(deg[deg >= 2]):
        iu, ju = np.triu_indices(m, k=1)
        base = start[deg == m][:, None]
        ea_parts.append(one[(base + iu[None, :]).ravel()])
        eb_parts.append(one[(base + ju[None, :]).ravel()])
    if not ea_parts:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    ea = np.concatenate(ea_parts)
    eb = np.concatenate(eb_parts)
    i, j, k = src[ea], dst[ea], dst[eb]
    aj, ak = area[j], area[k]
    union = (aj[:, None] * c[j] + ak[:, None] * c[k]) / (aj + ak)[:, None]
    pred = c[i] + motion.shift[i]
    length, axis = long_axis(geom.cov)  # once per cell, not twice per pair (same values)
    sep, perp = daughter_offsets(None, c[j], c[k], axes=(length[i], axis[i]))
    # sep and ⊥ are lengths over the half-length h: as densities of the daughters' offset in
    # the units of the continuations' Gaussians they carry the Jacobian h^-D (D log h nats)
    half = np.maximum(length[i] / 2.0, 1.0)
    total = (
        dim * np.log(half)
        - np.log(p_div[i])
        - np.log1p(-p_end[i])
        + robust_nll(np.sum((union - pred) ** 2, axis=1), motion.sigma_motion, dim)
        + robust_nll((sep - motion.sep_mean) ** 2, motion.sep_sigma, 1)
        + robust_nll(perp**2, motion.perp_sigma, 1)
        + division_area_nll(cells, motion, i, j, k, dim)
    )
    if edge_iou is not None:
        # intersections from the edge IoUs: I = IoU (A_i + A_j) / (1 + IoU)
        ia = edge_iou[ea] * (area[i] + aj) / (1.0 + edge_iou[ea])
        ib = edge_iou[eb] * (area[i] + ak) / (1.0 + edge_iou[eb])
        union_iou = (ia + ib) / np.maximum(area[i] + aj + ak - ia - ib, 1.0)
        total = total + iou_weight * (1.0 - union_iou)
    # keep the cheapest `keep` pairs of every mother
    order = np.lexsort((total, i))
    i_sorted = i[order]
    first = np.searchsorted(i_sorted, i_sorted, side="left")
    rank = np.arange(len(order)) - first
    chosen = order[rank < keep]
    return np.stack([ea[chosen], eb[chosen]], axis=1), total[chosen]


def _least_per_edge(n_edges: int, pairs: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(E,) the least ``value`` of the division pairs each edge is in (+inf where none)."""
    out = np.full(n_edges, np.inf)
    np.minimum.at(out, pairs[:, 0], value)
    np.minimum.at(out, pairs[:, 1], value)
    return out


def fold_pairs(graph: CandidateGraph) -> CandidateGraph:
    """The same graph without division pairs, their costs folded into the edges.

    For solvers that have no pair variables (frame-pair LAP): an edge costs the cheaper of
    being a continuation and being half of its best division, min(C_e, min_{p∋e} D_p / 2), so
    a division into the best pair costs about D_p. An approximation: the pairing itself is
    lost (two daughters of different best pairs can be combined).
    """
    if graph.division_pairs is None:
        return graph
    pairs = graph.division_pairs
    total = graph.division_pair_cost + graph.edge_cost[pairs].sum(axis=1)
    half = _least_per_edge(graph.n_edges, pairs, total / 2.0)
    return CandidateGraph(
        node_t=graph.node_t,
        node_cost=graph.node_cost,
        node_hier_parent=graph.node_hier_parent,
        edge_source=graph.edge_source,
        edge_target=graph.edge_target,
        edge_cost=np.minimum(graph.edge_cost, half),
        appear_cost=graph.appear_cost,
        disappear_cost=graph.disappear_cost,
        division_cost=graph.division_cost,
    )


def division_slots(graph: CandidateGraph) -> CandidateGraph:
    """The same graph without division pairs, for the frame-pair LAP (:mod:`solvers.lap`): the
    edges cost what :func:`fold_pairs` gives them, f_e = min(C_e, min_p D_p / 2), and each
    edge as a mother's second daughter pays the rest of its best pair's cost,
    ``edge_division_cost`` = min_p (D_p − f_e − f_partner) ≥ 0 (+inf: in no pair, not a daughter).

    A division into a listed pair then costs D_p exactly whichever slot each daughter takes,
    where the folded edges alone made a continuation plus half a division C₁ + D/2 < D (a cut
    cell and a sliver beside it a division) and any two out-edges a division at no extra cost.
    The extras are ≥ 0, which the LAP's encoding needs (solvers.lap). Left approximate: a mother
    whose first slot holds an edge outside the second's best pair pays that pair's rest.
    """
    if graph.division_pairs is None or graph.division_pair_cost is None:
        return graph
    folded = fold_pairs(graph)
    f = folded.edge_cost
    pairs = graph.division_pairs
    rest = np.maximum(graph.division_pair_cost + graph.edge_cost[pairs].sum(axis=1) - f[pairs].sum(axis=1), 0.0)
    return replace(folded, edge_division_cost=_least_per_edge(graph.n_edges, pairs, rest))


def end_probabilities(
    cells: CellFeatures, motion: MotionModel, params: CostParams = DEFAULT_COST_PARAMS
) -> tuple[np.ndarray, np.ndarray]:
    """(P_start, P_end) per cell: the chance that its track starts here (it came in across the
    image edge, :func:`solvers.motion.crossing_probability`, or began inside at the rate q_a)
    and ends here (it leaves, or ends inside at the rate q_d): P = p + (1 − p) q.

    q_a, q_d are the motion model's estimated interior rates, clipped to
    [e^{−appear}, END_RATE_MAX] (e^{−appear}: their value before the first estimate), so an end
    never costs more than ``params.disappear`` nats and neither is ever certain or impossible.
    """
    lo_a, lo_d = np.exp(-params.appear), np.exp(-params.disappear)
    q_a = lo_a if motion.appear_rate is None else np.clip(motion.appear_rate, lo_a, END_RATE_MAX)
    q_d = lo_d if motion.disappear_rate is None else np.clip(motion.disappear_rate, lo_d, END_RATE_MAX)
    p_in, p_out = crossing_probability(cells, motion.shift, motion.sigma_motion)
    # 1 − P computed as (1 − p)(1 − q) and kept ≥ 1e-9 so that −log(1 − P) stays finite
    p_start = np.minimum(p_in + (1.0 - p_in) * q_a, 1.0 - 1e-9)
    p_end = np.minimum(p_out + (1.0 - p_out) * q_d, 1.0 - 1e-9)
    return p_start, p_end


@dataclass(frozen=True)
class CostModel:
    """Everything :func:`tracking_costs` reads, kept so the same candidates can be re-costed.

    Feature perturbation (:func:`solvers.uncertainty.feature_noise_sampler`) re-runs
    :meth:`graph` on jittered ``cells``: the costs come from perturbed *features* through this
    cost model, with the motion field and noise scales of the solve left as they were.
    """

    cells: CellFeatures
    edge_source: np.ndarray
    edge_target: np.ndarray
    motion: MotionModel
    params: CostParams = CostParams()
    node_cost: np.ndarray | None = None
    node_hier_parent: np.ndarray | None = None
    overlap: Overlap | None = None

    def graph(self, cells: CellFeatures | None = None) -> CandidateGraph:
        """The candidate graph of ``cells`` (default: the model's own features)."""
        return tracking_costs(
            self.cells if cells is None else cells,
            self.edge_source,
            self.edge_target,
            self.motion,
            self.params,
            node_cost=self.node_cost,
            node_hier_parent=self.node_hier_parent,
            overlap=self.overlap,
        )
