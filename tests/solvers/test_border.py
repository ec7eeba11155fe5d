"""Entering and leaving as likelihoods, spanned axes, physical spacing and estimated rates (issue 11).

Known answers: hand-made cells at the image edge, and the synthetic movies of
:mod:`synthetic.cases` tracked from their ground-truth masks, whose true links are known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from scipy.special import betaincinv

from inference.edges import link_candidates
from inference.regions import candidates_from_labels
from solvers.assignment import solve_fixed_or_joint
from solvers.costs import tracking_costs
from solvers.features import CellFeatures, motion_space, spanned_axes
from solvers.joint import solve_joint
from solvers.motion import MotionModel, crossing_probability, frame_factors, interior_rate, selected_rates
from solvers.refine import refine_cost_model
from solvers.types import Solution, SolveStatus
from synthetic.cases import case
from synthetic.movies import SyntheticMovie, generate
from tests.solvers.test_cut_cells import cells_of
from trackdb.stages.link import choose_link


def boxes(
    t: npt.ArrayLike, bbox: npt.ArrayLike, shape: tuple[int, ...], spacing: tuple[float, ...] | None = None
) -> CellFeatures:
    """Cells given by their boxes (centre = box centre, area = box area, round covariance)."""
    b = np.asarray(bbox, np.int64)
    d = b.shape[1] // 2
    ext = (b[:, d:] - b[:, :d]).astype(float)
    return CellFeatures(
        t=np.asarray(t),
        centroid=(b[:, :d] + b[:, d:] - 1) / 2.0,
        area=ext.prod(axis=1),
        cov=np.stack([np.diag(e**2 / 12) for e in ext]),
        bbox=b,
        image_shape=shape,
        spacing=spacing,
    )


def still(n: int, dim: int = 2, sigma: float = 2.0, drift: npt.ArrayLike | None = None) -> MotionModel:
    shift = np.zeros((n, dim)) if drift is None else np.tile(np.asarray(drift, float), (n, 1))
    return MotionModel(shift, sigma, 0.0, 0.05, 0.3, 0.3, 0.3)


def test_a_cell_that_touches_the_border_and_stays_is_linked() -> None:
    # a 16 px cell against the left edge in frames 1 and 2 (frames 0 and 3 hold a far cell, so
    # neither is the movie's first or last frame), 1 px apart: plainly the same cell
    cells = boxes(
        [0, 1, 2, 3],
        [[200, 200, 216, 216], [100, 0, 116, 16], [101, 0, 117, 16], [200, 200, 216, 216]],
        (500, 500),
    )
    g = tracking_costs(cells, np.array([1]), np.array([2]), still(4))
    assert g.disappear_cost[1] > 5.0
    assert g.appear_cost[2] > 5.0
    assert g.edge_cost[0] < g.disappear_cost[1] + g.appear_cost[2]
    assert solve_joint(g).edge_selected.tolist() == [True]


def test_a_cell_that_leaves_ends() -> None:
    # frame 1: a sliver leaving across the right edge (drift +6 px/frame); frame 2: a new sliver
    # entering across the top edge, 25 px away. Ending the one and starting the other is cheap,
    # linking them is not.
    cells = boxes(
        [0, 1, 2, 3],
        [[200, 200, 216, 216], [20, 497, 36, 500], [0, 478, 3, 494], [200, 200, 216, 216]],
        (500, 500),
    )
    m = still(4, drift=[0.0, 6.0])
    p_in, p_out = crossing_probability(cells, m.shift, m.sigma_motion)
    assert p_out[1] > 0.5
    assert p_in[2] > 0.05
    assert p_out[0] < 1e-6
    assert p_in[0] < 1e-6
    g = tracking_costs(cells, np.array([1]), np.array([2]), m)
    assert g.disappear_cost[1] < 1.0
    assert solve_joint(g).edge_selected.tolist() == [False]


def test_ends_are_never_free_inside_and_free_in_the_first_and_last_frame() -> None:
    cells = boxes([0, 1, 1, 2], [[0, 0, 16, 16], [100, 100, 116, 116], [0, 200, 16, 216], [0, 0, 16, 16]], (500, 500))
    g = tracking_costs(cells, np.array([0, 1]), np.array([1, 3]), still(4))
    assert g.appear_cost[0] == 0.0
    assert g.disappear_cost[3] == 0.0
    assert g.disappear_cost[1] == pytest.approx(10.0)  # interior, rate at its floor e^-10
    assert 0.0 < g.disappear_cost[2] < g.disappear_cost[1]  # touches the top edge: may leave, at a cost
    assert np.all(g.node_cost + g.appear_cost + g.disappear_cost < 0)  # every detection kept


def test_a_spanned_axis_is_never_crossed() -> None:
    # a 5-slice stack: every cell touches the first and the last slice
    shape = (5, 200, 200)
    cells = boxes([0, 1], [[0, 80, 80, 5, 110, 110], [0, 81, 80, 5, 111, 110]], shape, spacing=(3.0, 0.5, 0.5))
    assert spanned_axes(cells).tolist() == [True, False, False]
    geom = motion_space(cells)
    assert geom.dim == 2
    assert np.all(geom.centroid[:, 0] == 0)
    p_in, p_out = crossing_probability(cells, np.zeros((2, 3)), 2.0)
    assert p_in.max() < 1e-6
    assert p_out.max() < 1e-6
    # a deep stack: z is an axis like the others
    deep = boxes([0, 1], [[10, 80, 80, 15, 110, 110], [10, 81, 80, 15, 111, 110]], (40, 200, 200), (2.0, 0.5, 0.5))
    assert not spanned_axes(deep).any()


def test_anisotropic_spacing_weighs_a_z_step_in_physical_units() -> None:
    # from (z, y, x) = (10, 100, 100): candidate a one slice up, candidate b 3 px along x
    cells = boxes(
        [0, 1, 1],
        [[8, 92, 92, 13, 108, 108], [9, 92, 92, 14, 108, 108], [8, 92, 95, 13, 108, 111]],
        (40, 300, 300),
    )
    src, dst = np.array([0, 0]), np.array([1, 2])
    iso = tracking_costs(cells, src, dst, still(3, dim=3)).edge_cost
    assert iso[0] < iso[1]  # in pixels the z step (1) is the shorter
    aniso = CellFeatures(**{**cells.__dict__, "spacing": (6.0, 1.0, 1.0)})
    assert np.allclose(motion_space(aniso).unit, [6.0, 1.0, 1.0])
    phys = tracking_costs(aniso, src, dst, still(3, dim=3)).edge_cost
    assert phys[1] < phys[0]  # one z step of 6 µm is farther than 3 µm along x
    # the unit of length does not matter: spacing in µm or in nm costs the same
    nm = CellFeatures(**{**cells.__dict__, "spacing": (6000.0, 1000.0, 1000.0)})
    assert np.allclose(tracking_costs(nm, src, dst, still(3, dim=3)).edge_cost, phys)


def test_rates_come_from_the_selection_not_from_the_counts() -> None:
    # 10 cells per frame, 3 frames; frame 0 → 1: 2 divide, 2 die (the count stays 10: a count
    # rule reads 0 divisions); frame 1 → 2: all continue
    t = np.repeat([0, 1, 2], 10)
    cells = boxes(t, [[20 * i + 100, 100, 20 * i + 110, 110] for i in range(10)] * 3, (600, 600))
    src = [0, 0, 1, 1, 2, 3, 4, 5] + list(range(10, 20))
    dst = [10, 11, 12, 13, 14, 15, 16, 17] + list(range(20, 30))
    sol = Solution(np.ones(30, bool), np.ones(len(src), bool), 0.0, SolveStatus.OPTIMAL)
    zeros = np.zeros(30)
    div, app, dis = selected_rates(cells, np.array(src), np.array(dst), sol, zeros, zeros, (0.01, 0.5))
    f0, f1, f2 = (t == 0), (t == 1), (t == 2)
    # 2 divisions among the 20 cells that could divide, both at frame 0: the frames disagree
    # beyond binomial noise (beta-binomial moments: tau^2 = 0.011, prior strength m = 7.18),
    # so frame 0's rate is (2 + 0.1 m) / (10 + m) and frame 1's 0.1 m / (10 + m)
    m = 0.09 / 0.011 - 1
    assert div[f0] == pytest.approx((2 + 0.1 * m) / (10 + m))
    assert div[f1] == pytest.approx(0.1 * m / (10 + m))
    assert div[f0 | f1].mean() == pytest.approx(2 / 20)  # equal frames: the pooled rate is kept
    # interior rates: the lower 97.5 % bound of k ends among the cells at risk (4 of 20, 2 of 20),
    # times each frame's factor (ends: all 4 at frame 0, m = 1.5; starts: both at frame 1)
    lo_d, lo_a = betaincinv(4, 17, 0.025), betaincinv(2, 19, 0.025)
    assert dis[f0] == pytest.approx(lo_d * (4 + 0.3) / 11.5 / 0.2)
    assert dis[f1] == pytest.approx(lo_d * 0.3 / 11.5 / 0.2)
    assert dis[f2] == pytest.approx(lo_d)  # the last frame ends nothing: no factor of its own
    assert app[f1] == pytest.approx(lo_a * (2 + 0.1 * m) / (10 + m) / 0.1)
    assert app[f2] == pytest.approx(lo_a * 0.1 * m / (10 + m) / 0.1)
    # ends explained by the edge are not interior ends
    ended = np.array([True] * 4 + [False] * 16)
    assert interior_rate(ended, np.r_[np.ones(4), np.zeros(16)], 1e-9) == pytest.approx(1e-9)
    assert interior_rate(ended, np.zeros(20), 1e-9) == pytest.approx(betaincinv(4, 17, 0.025))
    # one end in a small movie does not make ends cheap; 400 of 4000 give about 0.1
    assert interior_rate(np.r_[True, np.zeros(19, bool)], np.zeros(20), 1e-9) < 0.002
    assert 0.09 < interior_rate(np.arange(4000) < 400, np.zeros(4000), 1e-9) < 0.1


def test_frame_factors_are_one_where_frames_agree_and_shrink_a_burst() -> None:
    # 10 frames of 100 cells with 5 events each: no variation beyond what counts allow
    frame = np.repeat(np.arange(10), 100)
    events = np.zeros(1000)
    events[(np.arange(1000) % 100) < 5] = 1.0
    assert set(frame_factors(events, np.ones(1000), frame).values()) == {1.0}
    # one frame with 40 events (a wave of divisions, a sheet leaving): its factor rises, shrunk
    # towards the pooled rate (below its raw 40 / 8.5 = 4.7), and the quiet frames' fall below 1
    burst = events.copy()
    burst[(frame == 3) & ((np.arange(1000) % 100) < 40)] = 1.0
    f = frame_factors(burst, np.ones(1000), frame)
    raw = 0.40 / (burst.sum() / 1000)
    assert 1.0 < f[3] < raw
    assert f[3] > 0.9 * raw  # 100 cells say a lot: little shrinkage
    assert all(0.5 < f[k] < 1.0 for k in f if k != 3)
    # a frame with few cells is believed less than one with many
    small = np.r_[burst, np.ones(4)]
    f_small = frame_factors(small, np.ones(len(small)), np.r_[frame, np.full(4, 10)])
    assert 1.0 < f_small[10] < 1.0 / (small.sum() / len(small))


# --- synthetic movies with known lineages, from their ground-truth masks ----------------------


def true_links(movie: SyntheticMovie, t: np.ndarray, label: np.ndarray) -> set[tuple[int, int]]:
    """(source, target) candidate indices of every true continuation and mother→daughter link."""
    key = {(int(f), int(lab)): i for i, (f, lab) in enumerate(zip(t, label))}
    end = {int(r[0]): int(r[2]) for r in movie.tracks}
    out = set()
    for lab, s, e, p in movie.tracks.tolist():
        out |= {(key[(f, lab)], key[(f + 1, lab)]) for f in range(s, e) if (f, lab) in key and (f + 1, lab) in key}
        if p > 0 and (end[p], p) in key and (s, lab) in key:
            out.add((key[(end[p], p)], key[(s, lab)]))
    return out


def track_case(name: str, spacing: bool = True) -> tuple[set[tuple[int, int]], set[tuple[int, int]], np.ndarray]:
    """(chosen, true links, selected division mothers) of a quick synthetic case."""
    movie = generate(case(name, quick=True))
    cand = candidates_from_labels(movie.masks)
    cells = cells_of(cand, movie.masks.shape[1:], tuple(movie.spacing) if spacing else None)
    radius = 4.0 * float(np.median(np.sqrt(cand.area)))  # px, generous
    edges = link_candidates(cand, max_distance=radius, k=8)
    ref = refine_cost_model(cells, edges.source, edges.target, lambda g: solve_joint(g, time_limit=60), n_iter=4)
    g, sol = ref.graph, ref.solution
    chosen = set(zip(g.edge_source[sol.edge_selected].tolist(), g.edge_target[sol.edge_selected].tolist()))
    n_out = np.bincount(g.edge_source[sol.edge_selected], minlength=g.n_nodes)
    return chosen, true_links(movie, cand.t, cand.label), np.flatnonzero(n_out == 2)


def test_border_crossing_nuclei_are_linked() -> None:
    chosen, truth, _ = track_case("nuclei_border")
    # before issue 11 the free border ends left 24 % of these links out
    assert len(chosen & truth) / len(truth) >= 0.98
    assert len(chosen & truth) / len(chosen) >= 0.98


def test_a_shallow_stack_links_its_cells() -> None:
    chosen, truth, _ = track_case("stack_shallow")
    # every cell spans all five slices; before issue 11 nothing was linked at all, then slivers
    # at the xy corners and divisions were missed (0.96). Every true link now
    assert truth <= chosen
    assert len(chosen & truth) / len(chosen) >= 0.98


def test_a_deep_anisotropic_stack_is_tracked_in_physical_units() -> None:
    chosen, truth, _ = track_case("stack_deep")
    # before issue 11: 11 % of the links (free ends on every z-touching cell)
    assert len(chosen & truth) / len(truth) >= 0.97
    assert len(chosen & truth) / len(chosen) >= 0.97


def test_dying_and_leaving_cells_are_not_divisions() -> None:
    movie = generate(case("enter_leave_die", quick=True))
    chosen, truth, mothers = track_case("enter_leave_die")
    assert chosen == truth  # every link right, deaths and exits ended
    assert len(mothers) == movie.n_divisions


EPIDERMIS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mouse-epidermis-area1" / "01_GT" / "TRA"


@pytest.mark.skipif(not (EPIDERMIS / "man_track.txt").exists(), reason="needs ../shared/data/mouse-epidermis-area1")
def test_interior_rates_follow_the_rounds_up_to_the_movies_own() -> None:
    # dense epidermis, cells leaving the layer: its annotations end 428 of 4,453 cells inside the
    # movie (0.096) and start 77 (0.017). The first solve, priced with ends at their floor, ends
    # only those it must (0.05 / 0.0017); re-read every round as the other scales are, the rates
    # approach the movie's own from below (the lower confidence bound) and do not run away
    masks = np.stack([tifffile.imread(p) for p in sorted(EPIDERMIS.glob("man_track*.tif"))])
    cand = candidates_from_labels(masks)
    cells = cells_of(cand, masks.shape[1:])
    choice = choose_link(cand.t, cand.centroid, cand.area, (1.0, 1.0))
    edges = link_candidates(cand, max_distance=choice.max_distance, k=choice.k)
    ref = refine_cost_model(
        cells, edges.source, edges.target, lambda g: solve_fixed_or_joint(g, time_limit=60), n_iter=4
    )
    first, last = ref.history[1], ref.history[-1]  # the rates the second and the last solve priced with
    assert float(first["disappear_rate"]) < 0.06
    assert float(first["appear_rate"]) < 0.003
    assert 0.07 < float(last["disappear_rate"]) < 0.096
    assert 0.005 < float(last["appear_rate"]) < 0.017
