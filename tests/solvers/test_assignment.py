"""The fixed-segmentation assignment: same optimum as the joint program on random movies with
divisions (listed pairs and any-two-links), gaps, border-free ends and pins; when it refuses;
edge cases (no nodes, one frame, no links, empty frames)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solvers.assignment import not_fixed_reason, solve_fixed
from solvers.joint import solve_joint
from solvers.model import build_program, completion, is_feasible, objective
from solvers.types import CandidateGraph, Pins, SolveStatus


def random_movie(seed: int, *, pairs: bool, n_frames: int = 6, max_cells: int = 9, dt_max: int = 2) -> CandidateGraph:
    """Cells on a line per frame (some frames empty), links to the next ``dt_max`` frames among
    neighbours, noisy costs, cheap ends for some cells, divisions that sometimes pay."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_cells + 1, n_frames)
    counts[rng.random(n_frames) < 0.15] = 0  # empty frames
    t = np.repeat(np.arange(n_frames), counts)
    x = rng.random(len(t)) * 10
    src, dst, cost = [], [], []
    for i in range(len(t)):
        for j in np.flatnonzero((t > t[i]) & (t <= t[i] + dt_max)):
            if abs(x[i] - x[j]) < 3.0:
                src.append(i)
                dst.append(j)
                cost.append(abs(x[i] - x[j]) * 3 + rng.normal(0, 1) + 2.0 * (t[j] - t[i] - 1))
    n = len(t)
    src_a = np.asarray(src, np.int64)
    appear = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(2, 8, n))
    disappear = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(2, 8, n))
    division = rng.uniform(-3, 3, n)
    node = -(appear + disappear) - rng.uniform(0, 3, n)
    pair_list = pair_cost = None
    if pairs:
        pl = []
        for m in np.unique(src_a):
            out = np.flatnonzero(src_a == m)
            for a in range(len(out)):
                for b in range(a + 1, len(out)):
                    if rng.random() < 0.7:
                        pl.append((out[a], out[b]))
        pair_list = np.asarray(pl, np.int64).reshape(-1, 2)
        pair_cost = rng.uniform(-6, 2, len(pair_list))
    return CandidateGraph(
        node_t=t,
        node_cost=node,
        node_hier_parent=np.full(n, -1),
        edge_source=src_a,
        edge_target=np.asarray(dst, np.int64),
        edge_cost=np.asarray(cost, np.float64),
        appear_cost=appear,
        disappear_cost=disappear,
        division_cost=division,
        division_pairs=pair_list,
        division_pair_cost=pair_cost,
    )


def random_pins(g: CandidateGraph, seed: int) -> Pins:
    rng = np.random.default_rng(seed + 1000)
    nodes = rng.permutation(g.n_nodes)
    k = g.n_nodes // 6
    return Pins(
        must_nodes=nodes[:k],
        forbid_nodes=nodes[k : 2 * k],
        forbid_edges=rng.choice(g.n_edges, g.n_edges // 5, replace=False) if g.n_edges else np.zeros(0, np.int64),
    )


def assert_same_optimum(g: CandidateGraph, pins: Pins | None = None) -> None:
    assert not_fixed_reason(g, pins) is None
    fast = solve_fixed(g, pins)
    ref = solve_joint(g, pins=pins, gap=0.0)
    assert ref.status is SolveStatus.OPTIMAL
    assert fast.status is SolveStatus.OPTIMAL
    assert fast.objective == pytest.approx(ref.objective, abs=1e-6)
    assert fast.objective == pytest.approx(objective(g, fast.node_selected, fast.edge_selected))
    assert fast.bound == pytest.approx(fast.objective, abs=1e-6)
    assert is_feasible(build_program(g, pins), completion(g, fast.node_selected, fast.edge_selected))
    assert fast.info["solver"] == "assignment"


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("pairs", [False, True])
def test_same_objective_as_the_joint_program(seed: int, pairs: bool) -> None:
    assert_same_optimum(random_movie(seed, pairs=pairs))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("pairs", [False, True])
def test_same_objective_with_pins(seed: int, pairs: bool) -> None:
    g = random_movie(seed, pairs=pairs)
    assert_same_optimum(g, random_pins(g, seed))


def random_link_pins(g: CandidateGraph, seed: int) -> Pins:
    """Pinned links (at most one into a cell, two out of one: a pinned division), pinned and
    forbidden divisions and endings at random, on top of :func:`random_pins`; sometimes
    contradictory (then both solvers must say infeasible)."""
    rng = np.random.default_rng(seed + 2000)
    base = random_pins(g, seed)
    gone = np.zeros(g.n_nodes, bool)
    gone[base.forbid_nodes] = True
    n_in, n_out = np.zeros(g.n_nodes, int), np.zeros(g.n_nodes, int)
    must_e = []
    for e in rng.permutation(g.n_edges)[: max(1, g.n_edges // 6)]:
        u, v = g.edge_source[e], g.edge_target[e]
        if e in base.forbid_edges or gone[u] or gone[v] or n_in[v] or n_out[u] == 2:
            continue
        must_e.append(e)
        n_in[v] += 1
        n_out[u] += 1
    nodes = rng.permutation(np.flatnonzero(~gone))
    m = max(1, g.n_nodes // 40)
    ev = [nodes[:m], nodes[m : 2 * m], nodes[2 * m : 3 * m]]
    return replace(
        base, must_edges=np.asarray(must_e, np.int64), must_divide=ev[0], forbid_divide=ev[1], must_end=ev[2]
    )


def assert_same_or_both_infeasible(g: CandidateGraph, pins: Pins) -> bool:
    """Same optimum as the joint program (True), or both infeasible (False)."""
    ref = solve_joint(g, pins=pins, gap=0.0)
    fast = solve_fixed(g, pins)
    if ref.status is SolveStatus.INFEASIBLE:
        assert fast.status is SolveStatus.INFEASIBLE
        assert not fast.edge_selected.any()
        return False
    assert_same_optimum(g, pins)
    return True


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("pairs", [False, True])
def test_same_objective_with_pinned_links_and_events(seed: int, pairs: bool) -> None:
    g = random_movie(300 + seed, pairs=pairs, max_cells=12)
    feasible = 0
    for variant in range(4):
        pins = random_link_pins(g, 31 * seed + variant)
        if variant % 2:  # one pinned link per cell, no events: mostly feasible
            _, first = np.unique(g.edge_source[pins.must_edges], return_index=True)
            pins = replace(pins, must_edges=pins.must_edges[first])
            pins = replace(pins, must_divide=np.zeros(0, np.int64), forbid_divide=pins.forbid_divide[:1])
            pins = replace(pins, must_end=np.zeros(0, np.int64), forbid_nodes=np.zeros(0, np.int64))
        feasible += assert_same_or_both_infeasible(g, pins)
    assert feasible >= 1 or g.n_edges < 4


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("pairs", [False, True])
def test_one_pinned_link_or_event_at_a_time(seed: int, pairs: bool) -> None:
    """What the review page does: one pinned link, division or ending on a plain movie."""
    g = random_movie(400 + seed, pairs=pairs, max_cells=10)
    rng = np.random.default_rng(seed)
    if g.n_edges == 0:
        return
    e = int(rng.integers(g.n_edges))
    u = int(g.edge_source[e])
    for pins in (
        Pins(must_edges=np.array([e])),
        Pins(must_edges=np.array([e]), must_divide=np.array([u])),
        Pins(must_edges=np.array([e]), forbid_divide=np.array([u])),
        Pins(must_divide=np.array([u])),
        Pins(forbid_divide=np.array([u])),
        Pins(must_end=np.array([u])),
        Pins(must_end=np.array([int(g.edge_target[e])]), must_edges=np.array([e])),
    ):
        assert_same_or_both_infeasible(g, pins)


def test_pinned_division_and_contradictions() -> None:
    # 0 (t0) -> 1, 2 (t1); the division costs a lot, so only pins make it
    g = CandidateGraph(
        node_t=np.array([0, 1, 1]),
        node_cost=np.full(3, -20.0),
        node_hier_parent=np.full(3, -1),
        edge_source=np.array([0, 0]),
        edge_target=np.array([1, 2]),
        edge_cost=np.array([1.0, 1.0]),
        appear_cost=np.full(3, 5.0),
        disappear_cost=np.full(3, 5.0),
        division_cost=np.full(3, 50.0),
    )
    assert solve_fixed(g).edge_selected.sum() == 1
    for pins in (
        Pins(must_divide=np.array([0])),
        Pins(must_edges=np.array([0, 1])),
        Pins(must_edges=np.array([1]), must_divide=np.array([0])),
    ):
        sol = solve_fixed(g, pins)
        assert sol.edge_selected.tolist() == [True, True]
        assert sol.objective == pytest.approx(-60 + 2 + 50 + 5 + 10)
    assert solve_fixed(g, Pins(must_edges=np.array([0]), must_end=np.array([0]))).status is SolveStatus.INFEASIBLE
    assert (
        solve_fixed(g, Pins(must_edges=np.array([0, 1]), forbid_divide=np.array([0]))).status is SolveStatus.INFEASIBLE
    )
    assert solve_fixed(g, Pins(must_divide=np.array([0]), forbid_edges=np.array([1]))).status is SolveStatus.INFEASIBLE
    assert solve_fixed(g, Pins(must_edges=np.array([0]), forbid_nodes=np.array([1]))).status is SolveStatus.INFEASIBLE
    with pytest.raises(ValueError, match="require and forbid"):
        solve_fixed(g, Pins(must_divide=np.array([0]), forbid_divide=np.array([0])))


@pytest.mark.parametrize("seed", range(5))
def test_dense_movie_with_long_gaps(seed: int) -> None:
    g = random_movie(100 + seed, pairs=True, n_frames=8, max_cells=14, dt_max=3)
    assert g.n_edges > 50
    assert_same_optimum(g)


def test_components_the_lp_leaves_fractional_go_to_the_mip() -> None:
    mip_used = 0
    for seed in range(40):
        g = random_movie(200 + seed, pairs=True, n_frames=5, max_cells=12)
        assert_same_optimum(g)
        mip_used += solve_fixed(g).info.get("packing_mip_options", 0) > 0
    assert mip_used >= 3


def test_costed_colony_matches_the_joint_program() -> None:
    from solvers.costs import tracking_costs
    from solvers.motion import initial_motion
    from tests.solvers.test_costs import colony

    cells, src, dst, _ = colony(n_frames=6)
    g = tracking_costs(cells, src, dst, initial_motion(cells, src, dst))
    assert g.division_pairs is not None
    assert len(g.division_pairs)
    fast = solve_fixed(g)
    ref = solve_joint(g, gap=0.0)
    assert fast.objective == pytest.approx(ref.objective, abs=1e-6)
    assert fast.info["divisions_kept"] > 0


def test_a_division_is_chosen() -> None:
    # 0 (t0) -> 1, 2 (t1): two cheap links, a cheap division; appearing/ending costs 5
    g = CandidateGraph(
        node_t=np.array([0, 1, 1]),
        node_cost=np.full(3, -20.0),
        node_hier_parent=np.full(3, -1),
        edge_source=np.array([0, 0]),
        edge_target=np.array([1, 2]),
        edge_cost=np.array([1.0, 1.0]),
        appear_cost=np.full(3, 5.0),
        disappear_cost=np.full(3, 5.0),
        division_cost=np.zeros(3),
    )
    sol = solve_fixed(g)
    assert sol.edge_selected.tolist() == [True, True]
    assert sol.objective == pytest.approx(-60 + 2 + 5 + 10)
    assert sol.info["components_with_divisions"] == 1


def test_edge_cases() -> None:
    def g(t: list[int], src: list[int], dst: list[int]) -> CandidateGraph:
        n = len(t)
        return CandidateGraph(
            node_t=np.asarray(t, np.int64),
            node_cost=np.full(n, -30.0),
            node_hier_parent=np.full(n, -1),
            edge_source=np.asarray(src, np.int64),
            edge_target=np.asarray(dst, np.int64),
            edge_cost=np.ones(len(src)),
            appear_cost=np.full(n, 5.0),
            disappear_cost=np.full(n, 5.0),
            division_cost=np.zeros(n),
        )

    empty = solve_fixed(g([], [], []))
    assert empty.status is SolveStatus.OPTIMAL
    assert empty.objective == 0.0
    assert empty.node_selected.shape == (0,)
    assert empty.edge_selected.shape == (0,)
    one_frame = solve_fixed(g([0, 0, 0], [], []))
    assert one_frame.node_selected.all()
    assert one_frame.objective == pytest.approx(3 * (-30 + 10))
    gap = solve_fixed(g([0, 3], [0], [1]))  # frames 1 and 2 empty, one Δt = 3 link
    assert gap.edge_selected.tolist() == [True]
    assert gap.objective == pytest.approx(-60 + 1 + 10)


def test_refusals() -> None:
    g = random_movie(3, pairs=True)
    assert g.n_edges
    forest = replace(g, node_hier_parent=np.r_[-1, np.zeros(g.n_nodes - 1, np.int64)])
    assert "compete" in str(not_fixed_reason(forest))
    costly = replace(g, node_cost=np.full(g.n_nodes, 100.0))
    assert "left out" in str(not_fixed_reason(costly))
    # a costly cell that is forbidden anyway does not matter
    one_costly = g.node_cost.copy()
    one_costly[0] = 100.0
    g1 = replace(g, node_cost=one_costly)
    assert not_fixed_reason(g1) is not None
    assert not_fixed_reason(g1, Pins(forbid_nodes=np.array([0]))) is None
    assert not_fixed_reason(g, Pins(must_edges=np.array([0]), must_divide=np.array([1]))) is None
    with pytest.raises(ValueError, match="joint solver"):
        solve_fixed(forest)
    with pytest.raises(ValueError, match="outside"):
        solve_fixed(g, Pins(forbid_nodes=np.array([g.n_nodes])))
    with pytest.raises(ValueError, match="require and forbid"):
        solve_fixed(g, Pins(must_nodes=np.array([0]), forbid_nodes=np.array([0])))


def test_a_packing_that_hits_its_time_limit_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import solvers.assignment as assignment

    g = random_movie(1, pairs=True)
    assert solve_fixed(g).info["divisions_kept"] > 0  # the packing runs on this movie
    monkeypatch.setattr(assignment, "milp", lambda *a, **k: SimpleNamespace(status=1, x=None, fun=None))
    sol = solve_fixed(g)
    assert sol.status is SolveStatus.TIMEOUT
    assert not sol.node_selected.any()
    assert not sol.edge_selected.any()


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("pairs", [False, True])
def test_a_window_with_fixed_frames_around_it_matches_the_joint_program(seed: int, pairs: bool) -> None:
    """What ``trackdb resolve`` solves: frames [t0, t1) with the frames around them pinned to the
    current solution (``solve_joint(window=, warm_start=)``); the assignment on that sub-problem
    (``solve_window``) reaches the same objective, with pinned links and events as edits make."""
    from solvers.joint import solve_window

    g = random_movie(500 + seed, pairs=pairs, n_frames=8, max_cells=10)
    rng = np.random.default_rng(seed)
    current = solve_fixed(g)
    t0 = int(rng.integers(1, 5))
    window = (t0, t0 + int(rng.integers(1, 3)))
    inside = (g.node_t[g.edge_target] >= window[0]) & (g.node_t[g.edge_target] < window[1])
    one = np.flatnonzero(~current.edge_selected & inside)[:1]  # relink a cell of the window
    pins = random_link_pins(g, seed) if seed % 3 == 0 else Pins(must_edges=one)
    pins = replace(pins, forbid_nodes=np.zeros(0, np.int64))
    try:
        ref = solve_joint(g, gap=0.0, pins=pins, window=window, warm_start=current)
    except ValueError:  # a pin against the fixed frames: both refuse it alike
        with pytest.raises(ValueError, match="require and forbid"):
            solve_window(g, window, current, lambda sub, p: solve_fixed(sub, p), pins)
        return
    fast = solve_window(g, window, current, lambda sub, p: solve_fixed(sub, p), pins)
    assert fast.info["solver"] == "assignment"
    assert fast.status is ref.status
    if ref.status is SolveStatus.OPTIMAL:
        assert fast.info["window_objective"] == pytest.approx(ref.info["window_objective"], abs=1e-6)
        assert fast.objective == pytest.approx(ref.objective, abs=1e-6)
        outside = (g.node_t < window[0] - 2) | (g.node_t >= window[1] + 2)
        assert np.array_equal(fast.node_selected[outside], current.node_selected[outside])
