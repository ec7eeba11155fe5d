"""Cells the image edge cuts (issue 11): a division at the border, a sliver on its way out, the
visible fraction a new cut cell is priced by.

Known answers: hand-drawn discs in label images whose lineage is given, tracked through the
candidate → cost → refine → joint-solve path the product uses.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from inference.edges import link_candidates
from inference.regions import candidates_from_labels, mask_covariance
from inference.types import Candidates
from solvers.costs import division_area_nll, gaussian_nll, new_area_nll, robust_nll, tracking_costs, visible_fraction
from solvers.features import CellFeatures
from solvers.joint import solve_joint
from solvers.motion import MotionModel, initial_motion, touches_edge
from solvers.refine import refine_cost_model

SHAPE = (96, 96)
R = 6.0  # px, the cells' radius


def draw(frames: list[list[tuple[int, float, float, float]]], shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """(T, Y, X) labels of discs (label, y, x, radius) per frame, clipped by the image edge."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros((len(frames), *shape), np.uint16)
    for t, discs in enumerate(frames):
        for lab, y, x, r in discs:
            out[t][(yy + 0.5 - y) ** 2 + (xx + 0.5 - x) ** 2 < r * r] = lab
    return out


def background(t: int, rng: np.random.Generator) -> list[tuple[int, float, float, float]]:
    """Six interior cells drifting by (0.5, 0.5) px a frame with a little jitter: the motion
    statistics a movie gives."""
    home = [(30.0, 40.0), (30.0, 70.0), (55.0, 30.0), (55.0, 60.0), (78.0, 40.0), (78.0, 72.0)]
    return [
        (10 + i, y + 0.5 * t + rng.normal(0, 0.4), x + 0.5 * t + rng.normal(0, 0.4), R) for i, (y, x) in enumerate(home)
    ]


def cells_of(cand: Candidates, shape: tuple[int, ...], spacing: tuple[float, ...] | None = None) -> CellFeatures:
    """The features the costs read of label-image candidates (in pixels unless ``spacing``)."""
    return CellFeatures(
        t=cand.t,
        centroid=cand.centroid,
        area=cand.area.astype(float),
        cov=mask_covariance(cand),
        bbox=cand.bbox,
        image_shape=shape,
        spacing=spacing,
    )


def track(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, set[tuple[tuple[int, int], tuple[int, int]]]]:
    """(t, label, selected links as ((t, label), (t', label'))) of the default costs' solve."""
    cand = candidates_from_labels(masks)
    cells = cells_of(cand, masks.shape[1:])
    edges = link_candidates(cand, max_distance=30.0, k=6)
    ref = refine_cost_model(cells, edges.source, edges.target, lambda g: solve_joint(g, time_limit=30), n_iter=4)
    g, sol = ref.graph, ref.solution
    key = list(zip(cand.t.tolist(), cand.label.tolist()))
    links = {(key[a], key[b]) for a, b in zip(g.edge_source[sol.edge_selected], g.edge_target[sol.edge_selected])}
    return cand.t, cand.label, links


def test_a_cell_that_divides_at_the_border_is_a_division() -> None:
    # mother (label 1) against the left edge, its box cut there; at frame 4 it splits along x into
    # daughters 2 (its visible part a third of a disc, the rest outside) and 3 (whole, inside)
    rng = np.random.default_rng(0)
    frames = []
    for t in range(8):
        discs = background(t, rng)
        if t < 4:
            discs.append((1, 20.0 + 0.5 * t, 5.0 + 0.3 * t, R))
        else:
            s = t - 4
            discs += [
                (2, 22.0 + 0.5 * s, -0.5 + 0.3 * s, R / np.sqrt(2)),
                (3, 22.0 + 0.5 * s, 12.0 + 0.3 * s, R / np.sqrt(2)),
            ]
        frames.append(discs)
    masks = draw(frames)
    _, _, links = track(masks)
    mother = (3, 1)
    assert {b for a, b in links if a == mother} == {(4, 2), (4, 3)}  # both daughters, so a division
    for f in range(7):  # and every other cell continues
        for lab in range(10, 16):
            assert ((f, lab), (f + 1, lab)) in links


def test_a_sliver_on_its_way_out_is_linked() -> None:
    # a cell (label 1) leaving across the left edge: whole, half, then a 2-3 px sliver, then gone
    rng = np.random.default_rng(1)
    xs = [14.0, 8.0, 2.5, -4.5]
    frames = []
    for t in range(7):
        discs = background(t, rng)
        if 1 <= t <= 4:
            discs.append((1, 20.0, xs[t - 1], R))
        frames.append(discs)
    masks = draw(frames)
    assert 0 < (masks[4] == 1).sum() <= 6  # a sliver
    _, _, links = track(masks)
    assert ((3, 1), (4, 1)) in links
    assert {(f, 1) for f in (1, 2, 3)} <= {a for a, b in links if b[1] == 1}


def test_a_new_cut_cell_pays_for_how_little_of_it_shows() -> None:
    # the visible fraction of a D-ball is 0 at u = 0, 1/2 at u = 1/2 and 1 at u = 1
    for dim in (1, 2, 3):
        f = visible_fraction(np.array([0.0, 0.5, 1.0]), dim)
        assert f == pytest.approx([0.0, 0.5, 1.0], abs=1e-9)
    # whole cells pay nothing; of cut cells a sliver pays more than a half cell, and a half cell
    # about what the chance of showing half or more (1/2 of the depths) says
    area = np.array([100.0, 100.0, 50.0, 3.0])
    cut = np.array([False, True, True, True])
    n = len(area)
    cells = CellFeatures(
        t=np.zeros(n, np.int64),
        centroid=np.zeros((n, 2)),
        area=area,
        cov=np.tile(np.eye(2), (n, 1, 1)),
        bbox=np.tile([0, 0, 10, 10], (n, 1)),
        image_shape=(100, 100),
    )
    m = MotionModel(np.zeros((n, 2)), 2.0, 0.0, 0.05, 0.3, 0.3, 0.3, area_mean=np.log(100.0), area_sigma=0.1)
    nll = new_area_nll(cells, m, cut, 2)
    assert nll[0] == 0.0
    assert nll[3] > nll[2] > 0.0
    assert nll[3] < 12.0  # a sliver is rare, not impossible


def test_touching_the_edge_is_being_cut() -> None:
    masks = draw([[(1, 20.0, 3.0, R), (2, 50.0, 50.0, R)]])
    cand = candidates_from_labels(masks)
    cells = cells_of(cand, SHAPE)
    assert touches_edge(cells)[cand.label == 1].all()
    assert not touches_edge(cells)[cand.label == 2].any()


def test_border_nuclei_keep_every_continuation_across_the_edge() -> None:
    # the full border case: cells cut by the edge, slivers among them, continue as whole cells do
    from synthetic.cases import case
    from synthetic.movies import generate
    from trackdb.stages.link import choose_link

    movie = generate(case("nuclei_border"))
    cand = candidates_from_labels(movie.masks)
    cells = cells_of(cand, movie.masks.shape[1:])
    choice = choose_link(cand.t, cand.centroid, cand.area, (1.0, 1.0))
    edges = link_candidates(cand, max_distance=choice.max_distance, k=choice.k)
    ref = refine_cost_model(cells, edges.source, edges.target, lambda g: solve_joint(g, time_limit=60), n_iter=4)
    g, sol = ref.graph, ref.solution
    chosen = set(zip(g.edge_source[sol.edge_selected].tolist(), g.edge_target[sol.edge_selected].tolist()))
    key = {(int(f), int(lab)): i for i, (f, lab) in enumerate(zip(cand.t, cand.label))}
    cut = touches_edge(cells)
    across = [
        (key[(f, lab)], key[(f + 1, lab)])
        for lab, s, e, _ in movie.tracks.tolist()
        for f in range(s, e)
        if (f, lab) in key and (f + 1, lab) in key and (cut[key[(f, lab)]] or cut[key[(f + 1, lab)]])
    ]
    small = [p for p in across if min(cand.area[p[0]], cand.area[p[1]]) < 40]
    assert len(small) >= 10
    assert set(small) <= chosen  # every sliver's continuation
    assert len(set(across) - chosen) <= 1  # of the cut cells' continuations, at most one swap


def test_a_division_whose_daughters_the_edge_cuts_is_a_division() -> None:
    # mother (label 1) straddling the top edge splits along it at frame 4 into daughters 2 and 3,
    # both cut, one more than the other: what shows of them is neither half of what showed of
    # the mother nor equal, but the edge hides area, it never adds any. Priced with division
    # statistics as tight as symmetric whole divisions give (σ_r = 0.05, σ_u = 0.02), as a
    # movie's refinement estimates them (the shallow stack of the generalise benchmark)
    rng = np.random.default_rng(2)
    frames = []
    for t in range(8):
        discs = background(t, rng)
        if t < 4:
            discs.append((1, 2.0, 40.0 + 0.5 * t, R))
        else:
            s = t - 4
            discs += [(2, 0.5, 36.0 + 0.5 * s, R / np.sqrt(2)), (3, 3.0, 46.0 + 0.5 * s, R / np.sqrt(2))]
        frames.append(discs)
    masks = draw(frames)
    cand = candidates_from_labels(masks)
    cells = cells_of(cand, SHAPE)
    edges = link_candidates(cand, max_distance=30.0, k=6)
    motion = replace(
        initial_motion(cells, edges.source, edges.target),
        ratio_sigma=0.05,
        union_mean=0.0,
        union_sigma=0.02,
        division_rate=np.full(len(cand.t), 0.01),
    )
    g = tracking_costs(cells, edges.source, edges.target, motion)
    sol = solve_joint(g, time_limit=30)
    key = list(zip(cand.t.tolist(), cand.label.tolist()))
    links = {(key[a], key[b]) for a, b in zip(g.edge_source[sol.edge_selected], g.edge_target[sol.edge_selected])}
    two = [(cand.area[key.index((4, lab))]) for lab in (2, 3)]
    assert abs(np.log(two[0] / two[1])) > 0.3  # the visible daughters are far from equal
    assert {b for a, b in links if a == (3, 1)} == {(4, 2), (4, 3)}


def test_division_area_terms_hold_of_whole_cells() -> None:
    # mother 0 (area 100) into daughters of 50: whole (1), cut showing 20 (2), cut showing 80 (3);
    # a cut mother showing 40 (4)
    area = np.array([100.0, 50.0, 20.0, 80.0, 40.0, 50.0])
    cut = np.array([False, False, True, True, True, False])
    n = len(area)
    bbox = np.tile([20, 20, 30, 30], (n, 1))
    bbox[cut, 0] = 0  # the edge cuts these
    cells = CellFeatures(
        t=np.array([0, 1, 1, 1, 0, 1]),
        centroid=np.full((n, 2), 25.0),
        area=area,
        cov=np.tile(np.eye(2), (n, 1, 1)),
        bbox=bbox,
        image_shape=(100, 100),
    )
    assert np.array_equal(touches_edge(cells), cut)
    m = MotionModel(
        np.zeros((n, 2)), 2.0, 0.0, 0.05, 0.3, 0.3, 0.05, union_mean=0.0, union_sigma=0.05,
        area_mean=np.log(100.0), area_sigma=0.1,
    )  # fmt: skip
    i, j, k = (np.array(x) for x in ([0, 0, 0, 4], [1, 1, 1, 1], [5, 2, 3, 5]))
    nll = division_area_nll(cells, m, i, j, k, 2)
    # whole cells: the plain terms, log((A_j + A_k) / A_i) about μ_u and log(A_j / A_k) about 0
    assert nll[0] == pytest.approx(2.0 * float(robust_nll(np.zeros(1), 0.05, 1)[0]), abs=1e-9)
    plain_cut = float(gaussian_nll(np.array([np.log(50.0 / 20.0) ** 2]), 0.05, 1)[0])
    assert plain_cut > 100.0  # what the visible areas alone would cost
    assert nll[1] < nll[0] + 8.0  # a daughter that shows 2/5 of itself: the edge hid the rest
    assert nll[2] > nll[1] + 5.0  # one that shows more than its whole sister: the edge cannot add
    assert nll[3] < nll[0] + 8.0  # a cut mother showing 40 of a whole 100
    # whole daughters of 60 and 40: an uneven split is unlikely, not impossible (robust, as the
    # motion and growth terms are: bounded slope instead of 33 nats as a plain Gaussian)
    uneven = CellFeatures(
        t=np.array([0, 1, 1]),
        centroid=np.full((3, 2), 25.0),
        area=np.array([100.0, 60.0, 40.0]),
        cov=np.tile(np.eye(2), (3, 1, 1)),
        bbox=np.tile([20, 20, 30, 30], (3, 1)),
        image_shape=(100, 100),
    )
    m3 = replace(m, shift=np.zeros((3, 2)))
    odd = division_area_nll(uneven, m3, np.array([0]), np.array([1]), np.array([2]), 2)[0]
    plain = float(gaussian_nll(np.array([np.log(1.5) ** 2]), 0.05, 1)[0])
    assert nll[0] + 5.0 < odd < plain - 10.0
