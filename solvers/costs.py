r"""Tracking costs: candidate cells and links → :class:`solvers.types.CandidateGraph`.

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
  density, λ₁ the largest eigenvalue of its pixel covariance) and :math:`a_i` its long axis:
  :math:`D_{ijk} = -\log p_t + N_D(m-\hat c_i;\sigma_m) + N_1(\log\tfrac{A_j+A_k}{A_i}-\mu_g;
  \sigma_g) + N_1(\tfrac{\lVert s\rVert}{L_i/2}-\mu_s;\sigma_s) + N_1(\tfrac{\lVert s-(s\cdot a_i)
  a_i\rVert}{L_i/2};\sigma_\perp) + N_1(\log\tfrac{A_j}{A_k};\sigma_r)`:
  two daughters that together resemble the mother: same total area (after growth), centred
  where the mother was going, split along its long axis, each about half its length;
* appear / disappear: constants (default 10 nats, about a 4σ motion residual), 0 in the first
  / last frame and for cells whose box touches the image border (they may enter or leave);
* node: a constant (default −(appear + disappear) − 5, i.e. every detection of a label image is
  used) unless the caller gives per-node costs (e.g. from candidate scores).

:math:`p_t` (the division rate of frame t) comes from the counts,
:math:`(N_{t+1}-N_t)/N_t` clipped to [0.01, 0.5], so it needs no links: of all candidates at
first, of the selected ones after each solve (a forest has more candidates than cells). All σ, μ come from
:class:`solvers.motion.MotionModel`: initial values (documented in :func:`initial_motion`), then
re-estimated from the selected links by :func:`refine_cost_model`. The few fixed parameters are in
:class:`CostParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from solvers.motion import (
    RAYLEIGH_MEDIAN,
    MotionModel,
    cell_spacing,
    colony_expansion,
    frame_translation,
    growth_spread,
    link_displacements,
    robust_sigma,
    smooth_shift,
)
from solvers.types import CandidateGraph, Solution

LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
Overlap = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CellFeatures:
    """Per-candidate geometry the costs use (plain arrays, aligned, length N)."""

    t: np.ndarray  # (N,) int
    centroid: np.ndarray  # (N, D) float, (z,) y, x
    area: np.ndarray  # (N,) float
    cov: np.ndarray  # (N, D, D) covariance of the pixel coordinates (second central moments)
    bbox: np.ndarray  # (N, 2D) mins then exclusive maxes
    image_shape: tuple[int, ...]  # (Z,) Y, X

    def __post_init__(self) -> None:
        n, d = np.shape(self.centroid)
        if np.shape(self.cov) != (n, d, d) or np.shape(self.bbox) != (n, 2 * d):
            raise ValueError("cov must be (N, D, D) and bbox (N, 2D)")
        if len(self.image_shape) != d:
            raise ValueError("image_shape must have one entry per spatial axis")


@dataclass(frozen=True)
class CostParams:
    """The fixed parameters (everything else is estimated from the data)."""

    appear: float = 10.0  # nats; an interior cell appearing from nothing
    disappear: float = 10.0  # nats; an interior cell vanishing
    node: float | None = None  # None: −(appear + disappear) − 5, select every detection
    gap: float = 5.0  # nats per skipped frame of a gap-closing link
    border: int = 2  # px; boxes this close to the image edge may enter/leave for free
    pairs_per_node: int = 6  # division pairs kept per mother (cheapest first)
    div_rate_bounds: tuple[float, float] = (0.01, 0.5)
    # nats per unit of (1 − IoU after motion compensation); used only when the caller passes
    # an ``overlap`` function. 0 by default: on the bacteria GT graph the motion and shape
    # terms alone leave 10 of 3,517 links wrong; weight 5 made it 23 (17 missing, 9 wrong
    # at the 4th solve: 8 wrong, 15 missing), so overlap is left to segmentations without shape.
    iou_weight: float = 0.0


def gaussian_nll(r2: np.ndarray, sigma: float | np.ndarray, dim: int) -> np.ndarray:
    """N_dim(r; σ) for squared norms ``r2`` (see module docstring)."""
    return r2 / (2.0 * np.square(sigma)) + dim * (np.log(sigma) + LOG_SQRT_2PI)


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
    return -np.logaddexp(a, b)


def long_axis(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length, unit long axis) of each cell from its pixel covariance (rod: L = √(12 λ₁))."""
    w, vec = np.linalg.eigh(cov)
    return np.sqrt(12.0 * np.maximum(w[:, -1], 0.0)), vec[:, :, -1]


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
    return r[node_t - t0]


def initial_motion(cells: CellFeatures, edge_source: np.ndarray, edge_target: np.ndarray) -> MotionModel:
    """Starting point before any link is chosen: colony growth and drift per frame, loose scales.

    shift: :func:`solvers.motion.frame_translation` (the mode of all candidate displacements:
    drift and stage jumps) where a translation can describe the frame pair, i.e. where uniform
    growth of the colony (:func:`solvers.motion.colony_expansion`) moves the median cell less
    than one cell spacing relative to the centre's move; elsewhere (coarse frame rates: late
    pairs at every 4th bacteria frame, where the unrestricted mode is a spurious peak of the
    colony's near-lattice) that expansion, corrected by the mode of what remains within half a
    spacing;
    σ_m: the median distance from each shifted cell to the nearest cell of the next frame / 1.18
    (Rayleigh median), so the first solve behaves like a registered nearest-neighbour tracker;
    μ_g: the log ratio of the total
    area of consecutive frames (growth needs no links); σ_g = 0.1, μ_s = 1, σ_s = σ_⊥ = 0.3,
    σ_r = 0.3 (loose: refined from the selected divisions).
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
    c = np.asarray(cells.centroid, np.float64)
    area = np.asarray(cells.area, np.float64)
    dim = c.shape[1]
    p_div = (
        division_rate(t, params.div_rate_bounds)
        if motion.division_rate is None
        else np.asarray(motion.division_rate, np.float64)
    )
    dt = (t[dst] - t[src]).astype(np.float64)
    pred = c[src] + dt[:, None] * motion.shift[src]
    r2 = np.sum((c[dst] - pred) ** 2, axis=1)
    g = np.log(area[dst] / area[src])
    edge_cost = (
        -np.log1p(-p_div[src])
        + robust_nll(r2, motion.sigma_motion * np.sqrt(dt), dim)
        + robust_nll((g - dt * motion.growth_mean) ** 2, motion.growth_sigma * np.sqrt(dt), 1)
        + params.gap * (dt - 1.0)
    )
    edge_iou = None
    if overlap is not None and params.iou_weight > 0 and len(src):
        edge_iou = np.asarray(overlap(src, dst, dt[:, None] * motion.shift[src]), np.float64)
        edge_cost = edge_cost + params.iou_weight * (1.0 - edge_iou)
    pairs, pair_total = division_pairs(
        cells, src, dst, motion, p_div, params.pairs_per_node, edge_iou=edge_iou, iou_weight=params.iou_weight
    )
    pair_cost = pair_total - edge_cost[pairs[:, 0]] - edge_cost[pairs[:, 1]]
    free_in, free_out = _free_ends(cells, params.border)
    appear = np.where(free_in, 0.0, params.appear)
    disappear = np.where(free_out, 0.0, params.disappear)
    if node_cost is None:
        base = params.node if params.node is not None else -(params.appear + params.disappear) - 5
        node_cost = np.full(n, base)
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


def division_pairs(
    cells: CellFeatures,
    src: np.ndarray,
    dst: np.ndarray,
    motion: MotionModel,
    p_div: np.ndarray,
    keep: int,
    edge_iou: np.ndarray | None = None,
    iou_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate daughter pairs (edge index pairs) and their division cost D (docstring).

    All pairs of one-frame out-edges of each mother are scored at once (grouped by out-degree,
    vectorised); the ``keep`` cheapest per mother are returned.
    """
    t = np.asarray(cells.t, np.int64)
    c = np.asarray(cells.centroid, np.float64)
    area = np.asarray(cells.area, np.float64)
    dim = c.shape[1]
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
    length, axis = long_axis(np.asarray(cells.cov, np.float64)[i])
    half = np.maximum(length / 2.0, 1.0)
    s = c[k] - c[j]
    sep = np.linalg.norm(s, axis=1) / half
    along = np.einsum("pd,pd->p", s, axis)
    perp = np.linalg.norm(s - along[:, None] * axis, axis=1) / half
    total = (
        -np.log(p_div[i])
        + robust_nll(np.sum((union - pred) ** 2, axis=1), motion.sigma_motion, dim)
        + robust_nll((np.log((aj + ak) / area[i]) - motion.growth_mean) ** 2, motion.growth_sigma, 1)
        + gaussian_nll((sep - motion.sep_mean) ** 2, motion.sep_sigma, 1)
        + gaussian_nll(perp**2, motion.perp_sigma, 1)
        + gaussian_nll(np.log(aj / ak) ** 2, motion.ratio_sigma, 1)
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
    half = np.full(graph.n_edges, np.inf)
    np.minimum.at(half, pairs[:, 0], total / 2.0)
    np.minimum.at(half, pairs[:, 1], total / 2.0)
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


def _free_ends(cells: CellFeatures, border: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(cells.t)
    dim = len(cells.image_shape)
    bbox = np.asarray(cells.bbox)
    at_border = np.any(bbox[:, :dim] <= border, axis=1) | np.any(
        bbox[:, dim:] >= np.asarray(cells.image_shape) - border, axis=1
    )
    if len(t) == 0:
        return at_border, at_border
    return at_border | (t == t.min()), at_border | (t == t.max())


def estimate_motion(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    solution: Solution,
    previous: MotionModel,
    bounds: tuple[float, float] = CostParams().div_rate_bounds,
) -> MotionModel:
    """Re-estimate the motion field and every noise scale from the selected links."""
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
        length, axis = long_axis(np.asarray(cells.cov, np.float64)[i])
        half = np.maximum(length / 2.0, 1.0)
        s = c[k] - c[j]
        sep = np.linalg.norm(s, axis=1) / half
        along = np.einsum("pd,pd->p", s, axis)
        perp = np.linalg.norm(s - along[:, None] * axis, axis=1) / half
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


@dataclass(frozen=True)
class Refined:
    """What :func:`refine_cost_model` ends with: the cost model of the last solve, its graph,
    its solution and per-iteration diagnostics (scales, changed links)."""

    model: CostModel
    graph: CandidateGraph
    solution: Solution
    history: list[dict[str, float]]


def refine_cost_model(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    solve: Callable[[CandidateGraph], Solution],
    n_iter: int = 4,
    params: CostParams = CostParams(),
    node_cost: np.ndarray | None = None,
    node_hier_parent: np.ndarray | None = None,
    overlap: Overlap | None = None,
) -> Refined:
    """Solve, re-estimate motion and scales from the solution, re-cost, re-solve (n_iter solves).

    Stops early when the selected links no longer change. Returns the last graph, its solution,
    the :class:`CostModel` it was built from and per-iteration diagnostics.
    """
    motion = initial_motion(cells, edge_source, edge_target)
    history: list[dict[str, float]] = []
    sol: Solution | None = None
    graph: CandidateGraph | None = None
    model: CostModel | None = None
    for it in range(max(1, n_iter)):
        model = CostModel(
            cells,
            np.asarray(edge_source, np.int64),
            np.asarray(edge_target, np.int64),
            motion,
            params,
            node_cost,
            node_hier_parent,
            overlap,
        )
        graph = model.graph()
        new = solve(graph)
        changed = int(np.sum(new.edge_selected != sol.edge_selected)) if sol is not None else -1
        history.append(
            {
                "iteration": it,
                "sigma_motion": motion.sigma_motion,
                "growth_mean": motion.growth_mean,
                "growth_sigma": motion.growth_sigma,
                "sep_mean": motion.sep_mean,
                "sep_sigma": motion.sep_sigma,
                "perp_sigma": motion.perp_sigma,
                "ratio_sigma": motion.ratio_sigma,
                "changed_links": changed,
                "status": new.status.value,
                "seconds": new.seconds,
            }
        )
        sol = new
        if changed == 0 or new.status.value not in ("optimal", "feasible"):
            break
        motion = estimate_motion(cells, edge_source, edge_target, sol, motion, params.div_rate_bounds)
    assert graph is not None and sol is not None and model is not None
    return Refined(model, graph, sol, history)
