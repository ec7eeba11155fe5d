"""Tracking costs: monotonic where they should be, division shape scoring, iterated motion."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from solvers.costs import CostParams, division_pairs, fold_pairs, tracking_costs
from solvers.features import CellFeatures
from solvers.joint import solve_joint
from solvers.motion import MotionModel, colony_expansion, frame_translation, initial_motion
from solvers.refine import refine_cost_model


def rod_cov(length: float, angle: float = 0.0, width: float = 6.0) -> np.ndarray:
    """Pixel covariance of a rod along ``angle`` (radians from the x axis), (y, x) order."""
    a = np.array([np.sin(angle), np.cos(angle)])
    b = np.array([np.cos(angle), -np.sin(angle)])
    return length**2 / 12 * np.outer(a, a) + width**2 / 12 * np.outer(b, b)


def cells_of(
    t: npt.ArrayLike,
    cen: npt.ArrayLike,
    area: npt.ArrayLike,
    cov: npt.ArrayLike | None = None,
    shape: tuple[int, int] = (500, 500),
) -> CellFeatures:
    centroid = np.asarray(cen, float)
    n = len(centroid)
    lo = np.floor(centroid - 8).astype(int)
    return CellFeatures(
        t=np.asarray(t),
        centroid=centroid,
        area=np.asarray(area, float),
        cov=np.stack([rod_cov(20.0)] * n) if cov is None else np.asarray(cov),
        bbox=np.concatenate([lo, lo + 16], axis=1),
        image_shape=shape,
    )


def still_motion(n: int, sigma: float = 3.0) -> MotionModel:
    return MotionModel(
        shift=np.zeros((n, 2)),
        sigma_motion=sigma,
        growth_mean=0.0,
        growth_sigma=0.1,
        sep_sigma=0.2,
        perp_sigma=0.2,
        ratio_sigma=0.2,
    )


def test_continuation_cost_grows_with_residual_and_area_change() -> None:
    # source 0 at t0; targets at increasing distance, then with increasing area mismatch
    cen = [[100, 100], [100, 101], [100, 105], [100, 115], [100, 140], [100, 101], [100, 101], [100, 101]]
    area = [100, 100, 100, 100, 100, 110, 150, 300]
    t = [0, 1, 1, 1, 1, 1, 1, 1]
    cells = cells_of(t, cen, area)
    g = tracking_costs(cells, np.zeros(7, int), np.arange(1, 8), still_motion(8))
    by_dist = g.edge_cost[:4]
    by_area = g.edge_cost[[0, 4, 5, 6]]
    assert np.all(np.diff(by_dist) > 0)
    assert np.all(np.diff(by_area) > 0)


def test_motion_shift_moves_the_cheapest_target() -> None:
    cells = cells_of([0, 1, 1], [[100, 100], [100, 102], [100, 130]], [100, 100, 100])
    m = still_motion(3)
    src, dst = np.array([0, 0]), np.array([1, 2])
    near = tracking_costs(cells, src, dst, m).edge_cost
    shifted = replace(m, shift=np.array([[0.0, 30.0]] * 3))
    far = tracking_costs(cells, src, dst, shifted).edge_cost
    assert near[0] < near[1]
    assert far[1] < far[0]


def test_division_prefers_daughters_that_resemble_the_mother() -> None:
    # mother: horizontal rod of length 40 at (100, 100), area 200
    # a/b: halves along the long axis; c/d: halves across it; e: a too-large partner of a
    cen = [[100, 100], [100, 90], [100, 110], [90, 100], [110, 100], [100, 110]]
    area = [200, 100, 100, 100, 100, 400]
    t = [0, 1, 1, 1, 1, 1]
    cov = [rod_cov(40.0)] + [rod_cov(20.0)] * 5
    cells = cells_of(t, cen, area, cov)
    src = np.zeros(5, int)
    dst = np.arange(1, 6)
    pairs, total = division_pairs(cells, src, dst, still_motion(6), np.full(6, 0.1), keep=10)
    cost = {tuple(sorted(dst[p].tolist())): c for p, c in zip(pairs, total)}
    assert cost[(1, 2)] < cost[(3, 4)]  # split along the long axis
    assert cost[(1, 2)] < cost[(1, 5)]  # summed area matches the mother
    assert min(cost, key=lambda daughters: cost[daughters]) == (1, 2)
    g = tracking_costs(cells, src, dst, still_motion(6), CostParams(pairs_per_node=2))
    assert g.division_pairs is not None
    assert len(g.division_pairs) == 2  # only the cheapest pairs per mother are kept
    sol = solve_joint(g)
    assert sorted(g.edge_target[sol.edge_selected].tolist()) == [1, 2]


def test_appear_disappear_free_only_at_first_last_frame() -> None:
    # cell 2 reaches past the top edge: it may have come in or may leave, at a cost (not free)
    cells = cells_of([0, 1, 1, 2], [[100, 100], [100, 100], [3, 250], [100, 100]], [100] * 4, shape=(500, 500))
    g = tracking_costs(cells, np.array([0, 1]), np.array([1, 3]), still_motion(4))
    assert g.appear_cost[0] == 0.0
    assert g.disappear_cost[3] == 0.0
    assert g.disappear_cost[1] == pytest.approx(10.0)  # interior: the rate's floor e^-10
    assert 0.0 < g.disappear_cost[2] < g.disappear_cost[1]
    assert 0.0 < g.appear_cost[2] < g.appear_cost[1]
    assert np.all(g.node_cost < -(g.appear_cost.max() + g.disappear_cost.max()))


def test_frame_translation_recovers_a_shift_larger_than_the_spacing() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:8, 0:8]
    p0 = np.stack([yy.ravel(), xx.ravel()], 1) * 25.0 + 50
    p1 = p0 + [5.0, 32.0] + rng.normal(0, 1.0, p0.shape)
    cen = np.concatenate([p0, p1])
    t = np.repeat([0, 1], 64)
    src, dst = np.nonzero(np.linalg.norm(cen[:64, None] - cen[None, 64:], axis=2) < 60)
    shift = frame_translation(t, cen, src, dst + 64)
    assert np.allclose(shift[:64], [5.0, 32.0], atol=1.0)


def expanding_colony(
    scale: float = 1.4, drift: tuple[float, float] = (7.0, -4.0), seed: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A jittered 10 x 10 grid (20 px) grown uniformly by ``scale`` about an off-centre point
    and drifted: cells move up to ~50 px, more than their spacing, in every direction."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:10, 0:10]
    p0 = np.stack([yy.ravel(), xx.ravel()], 1) * 20.0 + 100 + rng.normal(0, 2.0, (100, 2))
    area0 = rng.uniform(80.0, 160.0, 100)
    p1 = np.asarray(drift) + [150.0, 140.0] + scale * (p0 - [150.0, 140.0])
    return p0, p1, area0, area0 * scale**2


def test_colony_expansion_is_the_displacement_of_uniform_growth() -> None:
    p0, p1, a0, a1 = expanding_colony()
    t = np.repeat([0, 1], 100)
    grow = colony_expansion(t, np.concatenate([p0, p1]), np.concatenate([a0, a1]))
    assert np.allclose(grow[:100], p1 - p0, atol=1e-9)  # exact for uniform growth
    assert np.abs(p1 - p0).max() > 25.0  # larger than the spacing: no single translation fits
    assert np.all(grow[100:] == 0.0)  # the last frame has no successor


def test_initial_motion_starts_an_expanding_colony_at_its_true_links() -> None:
    """With the expansion, the nearest cell to every shifted cell is its true successor; the
    translation mode alone (the start before colony_expansion) gets most of them wrong."""
    p0, p1, a0, a1 = expanding_colony()
    rng = np.random.default_rng(3)
    p1 = p1 + rng.normal(0, 1.5, p1.shape)
    cen = np.concatenate([p0, p1])
    t = np.repeat([0, 1], 100)
    src, dst = np.nonzero(np.linalg.norm(p0[:, None] - p1[None], axis=2) < 90)
    cells = cells_of(t, cen, np.concatenate([a0, a1]), shape=(600, 600))
    motion = initial_motion(cells, src, dst + 100)
    nearest = np.argmin(np.linalg.norm(p0[:, None] + motion.shift[:100, None] - p1[None], axis=2), 1)
    assert np.mean(nearest == np.arange(100)) == 1.0
    mode_only = frame_translation(t, cen, src, dst + 100)
    nearest = np.argmin(np.linalg.norm(p0[:, None] + mode_only[:100, None] - p1[None], axis=2), 1)
    assert np.mean(nearest == np.arange(100)) < 0.5


def test_initial_motion_keeps_the_translation_mode_where_growth_is_small() -> None:
    """At fine frame rates (growth moves cells less than a spacing) the start is the plain
    mode, which also finds stage jumps larger than the spacing."""
    p0, p1, a0, a1 = expanding_colony(scale=1.02, drift=(5.0, 32.0))
    cen = np.concatenate([p0, p1])
    t = np.repeat([0, 1], 100)
    src, dst = np.nonzero(np.linalg.norm(p0[:, None] - p1[None], axis=2) < 60)
    motion = initial_motion(cells_of(t, cen, np.concatenate([a0, a1]), shape=(600, 600)), src, dst + 100)
    assert np.allclose(motion.shift[:100], frame_translation(t, cen, src, dst + 100)[:100])


def test_frame_translation_window_corrects_around_the_base() -> None:
    p0, p1, _, _ = expanding_colony(scale=1.0, drift=(0.0, 0.0))
    cen = np.concatenate([p0, p1 + [3.0, -2.0]])  # a small residual drift on top of the base
    t = np.repeat([0, 1], 100)
    src, dst = np.nonzero(np.linalg.norm(p0[:, None] - p1[None], axis=2) < 60)
    base = np.zeros_like(cen)
    got = frame_translation(t, cen, src, dst + 100, base=base, window_px=8.0)
    assert np.allclose(got[:100], [3.0, -2.0], atol=0.5)
    far = frame_translation(t, cen, src, dst + 100, base=base - [40.0, 0.0], window_px=8.0)
    assert np.linalg.norm(far[0]) <= 8.0  # never further from the base than the window


def colony(n_frames: int = 4, seed: int = 0) -> tuple[CellFeatures, np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """Rods on a 25 px grid drifting 30 px/frame with local jitter; the two longest divide."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:6, 0:6]
    pos = np.stack([yy.ravel(), xx.ravel()], 1) * 25.0 + 60
    length = rng.uniform(14.0, 22.0, len(pos))
    t: list[int] = []
    cen: list[np.ndarray] = []
    area: list[float] = []
    cov: list[np.ndarray] = []
    truth: list[tuple[int, int]] = []
    prev = None
    parent_of: list[int] = []
    for f in range(n_frames):
        idx0 = len(t)
        for k in range(len(pos)):
            t.append(f)
            cen.append(pos[k].copy())
            area.append(length[k] * 6)
            cov.append(rod_cov(length[k]))
        cur = np.arange(idx0, len(t))
        if prev is not None:
            truth += [(int(prev[parent_of[k]]), int(cur[k])) for k in range(len(pos))]
        # next frame: drift, jitter, 5% growth; the two longest cells divide
        parent_of = []
        new_pos: list[np.ndarray] = []
        new_len: list[float] = []
        dividing = set(np.argsort(-length)[:2].tolist())
        for k in range(len(pos)):
            p = pos[k] + [0.0, 30.0] + rng.normal(0, 1.5, 2)
            if k in dividing:
                h = length[k] * 1.05 / 4
                new_pos += [p - [0, h], p + [0, h]]
                new_len += [length[k] * 1.05 / 2] * 2
                parent_of += [k, k]
            else:
                new_pos.append(p)
                new_len.append(length[k] * 1.05)
                parent_of.append(k)
        prev = cur
        pos, length = np.array(new_pos), np.array(new_len)
    centres = np.array(cen)
    cells = cells_of(t, centres, area, np.array(cov), shape=(400, 600))
    tt = np.asarray(t)
    src, dst = np.nonzero(
        (np.abs(tt[:, None] - tt[None, :] + 1) == 0)
        & (np.linalg.norm(centres[:, None] - centres[None, :], axis=2) < 70)
    )
    return cells, src, dst, set(truth)


def test_refine_cost_model_recovers_a_drifting_dividing_colony() -> None:
    cells, src, dst, truth = colony()
    refined = refine_cost_model(cells, src, dst, lambda g: solve_joint(g), n_iter=3)
    graph, sol, hist = refined.graph, refined.solution, refined.history
    chosen = set(zip(graph.edge_source[sol.edge_selected].tolist(), graph.edge_target[sol.edge_selected].tolist()))
    assert chosen == truth
    assert float(hist[0]["sigma_motion"]) > 0
    m = initial_motion(cells, src, dst)
    assert np.allclose(m.shift[cells.t == 0].mean(axis=0), [0, 30], atol=2)


def test_fold_pairs_keeps_edges_and_lowers_daughter_costs() -> None:
    cells, src, dst, _ = colony(n_frames=2)
    g = tracking_costs(cells, src, dst, initial_motion(cells, src, dst))
    f = fold_pairs(g)
    assert f.division_pairs is None
    assert f.n_edges == g.n_edges
    assert np.all(f.edge_cost <= g.edge_cost)
