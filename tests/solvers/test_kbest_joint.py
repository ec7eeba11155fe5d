"""K best of the joint model: the frame-pair scheme against whole-movie no-good re-solves, and
the report of what was found (exhausted lists, re-solves stopped by their time limit)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy.optimize import milp

import solvers.kbest_joint as kbest_module
from solvers.kbest_joint import fixed_segmentation, kbest_joint, lap_applies
from solvers.lap import frame_pairs
from solvers.model import objective
from solvers.types import CandidateGraph, Pins

from .test_murty import random_graph


def with_division_pairs(graph: CandidateGraph, rng: np.random.Generator) -> CandidateGraph:
    """Every two out-links of a node become a division pair with its own cost."""
    pairs = []
    for a in np.unique(graph.edge_source).tolist():
        out = np.flatnonzero(graph.edge_source == a).tolist()
        pairs += list(itertools.combinations(out, 2))
    arr = np.array(pairs, np.int64).reshape(-1, 2)
    return replace(graph, division_pairs=arr, division_pair_cost=rng.normal(0, 1.5, len(arr)))


@pytest.mark.parametrize("seed", range(8))
def test_frame_pairs_match_nogood_with_every_node_pinned(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.integers(2, 4, size=int(rng.integers(2, 5)))]
    graph = with_division_pairs(random_graph(rng, sizes, density=0.7), rng)
    assert fixed_segmentation(graph)
    assert not lap_applies(graph)  # division pairs: Murty on parent maps does not apply
    k = 12
    pairs = kbest_joint(graph, k)
    nogood = kbest_joint(graph, k, method="nogood", pins=Pins(must_nodes=np.arange(graph.n_nodes)))
    assert pairs.scheme == "pairs"
    assert pairs.complete
    assert nogood.complete
    assert len(pairs.solutions) == len(nogood.solutions)
    got = [s.objective for s in pairs.solutions]
    assert got == pytest.approx([s.objective for s in nogood.solutions])
    assert got == sorted(got)
    assert len({s.edge_selected.tobytes() for s in pairs.solutions}) == len(got)
    for s in pairs.solutions:  # each reported objective is that of the reported selection
        assert s.node_selected.all()
        assert objective(graph, s.node_selected, s.edge_selected) == pytest.approx(s.objective)


def test_fewer_solutions_than_asked_is_exhausted_not_stopped() -> None:
    rng = np.random.default_rng(2)
    graph = with_division_pairs(random_graph(rng, [1, 2], density=1.0), rng)
    # one mother, two daughters: each daughter has her or appears, or she divides
    got = kbest_joint(graph, 50)
    assert 1 < len(got.solutions) < 50
    assert got.exhausted
    assert got.complete
    assert got.stopped is None
    assert got.summary()["found"] == len(got.solutions)


@pytest.mark.parametrize("method", ["pairs", "nogood"])
def test_a_time_capped_resolve_ends_the_list_and_says_why(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-solve that hits its time limit is not a proof: the list stops before it, with the
    reason, instead of passing its solution off as the next best."""
    rng = np.random.default_rng(4)
    graph = with_division_pairs(random_graph(rng, [3, 3, 3], density=0.7), rng)
    calls = {"n": 0}
    first_calls = 1 if method == "nogood" else 0  # pairs: the optimum comes from solvers.assignment

    def capped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        res = milp(*args, **kwargs)
        if calls["n"] <= first_calls:
            return res
        return SimpleNamespace(status=1, x=res.x, fun=res.fun, message="Time limit reached")

    monkeypatch.setattr(kbest_module, "milp", capped)
    pins = Pins(must_nodes=np.arange(graph.n_nodes)) if method == "nogood" else None
    got = kbest_joint(graph, 5, method=method, pins=pins, time_limit=7.0)
    assert len(got.solutions) == 1  # the optimum, proven
    assert not got.complete
    assert not got.exhausted
    assert got.stopped is not None
    assert "time limit of 7 s" in got.stopped


def test_progress_reaches_its_total() -> None:
    rng = np.random.default_rng(1)
    graph = with_division_pairs(random_graph(rng, [3, 3, 3], density=0.7), rng)
    seen: list[tuple[int, int]] = []
    kbest_joint(graph, 4, progress=lambda done, total: seen.append((done, total)))
    assert seen
    assert seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_bad_arguments_are_refused() -> None:
    graph = random_graph(np.random.default_rng(0), [2, 2])
    with pytest.raises(ValueError, match="k must be"):
        kbest_joint(graph, 0)
    with pytest.raises(ValueError, match="time_limit"):
        kbest_joint(graph, 2, time_limit=-1.0)
    with pytest.raises(ValueError, match="takes no pins"):
        kbest_joint(graph, 2, method="pairs", pins=Pins())


@pytest.mark.parametrize("seed", range(6))
def test_frame_pairs_without_division_pairs_match_nogood(seed: int) -> None:
    """Any two out-links may be daughters (no listed pairs), and a division can pay for itself
    (disappear + division < 0, so Murty does not apply): the second bests found without a
    program (one source's cheapest addition) agree with the no-good re-solves."""
    rng = np.random.default_rng(100 + seed)
    sizes = [int(x) for x in rng.integers(2, 4, size=int(rng.integers(2, 5)))]
    graph = random_graph(rng, sizes, density=0.7)
    graph = replace(graph, division_cost=-graph.disappear_cost - rng.uniform(0, 1, graph.n_nodes))
    assert fixed_segmentation(graph)
    assert not lap_applies(graph)
    got = kbest_joint(graph, 10)
    assert got.scheme == "pairs"
    want = kbest_joint(graph, 10, method="nogood", pins=Pins(must_nodes=np.arange(graph.n_nodes)))
    assert len(got.solutions) == len(want.solutions)
    np.testing.assert_allclose([s.objective for s in got.solutions], [s.objective for s in want.solutions], atol=1e-7)
    for s in got.solutions:
        assert objective(graph, s.node_selected, s.edge_selected) == pytest.approx(s.objective)


@pytest.mark.parametrize("seed", range(6))
def test_drop_bounds_are_below_the_solved_drop_child(seed: int) -> None:
    """The folded max-marginal bound that lets a pair's "drop a link" program wait is never
    above that program's optimum, and handing over precomputed max-marginals (as per-pair AS
    does) changes nothing."""
    rng = np.random.default_rng(200 + seed)
    sizes = [int(x) for x in rng.integers(2, 5, size=3)]
    graph = with_division_pairs(random_graph(rng, sizes, density=0.8), rng)
    pairs = frame_pairs(graph)
    optimum = kbest_module._fixed_optimum(graph, 60.0)
    assert optimum is not None
    bounds = kbest_module._drop_bounds(graph, pairs, optimum)
    assert bounds is not None
    for pair, bound in zip(pairs, bounds):
        ranking = kbest_module._PairRanking(graph, pair, 60.0, optimum[pair.edges])
        x = ranking.ranked[0]
        kept = np.flatnonzero(x.selected)
        if len(kept) == 0:
            continue
        child = ranking._solve(x.lb, ((kept, -np.inf, len(kept) - 1.0),))
        if child is not None:
            assert bound <= child.objective + 1e-9
    deltas = kbest_module.pair_max_marginals(graph)
    plain, shared = kbest_joint(graph, 8), kbest_joint(graph, 8, pair_deltas=deltas)
    assert [s.objective for s in plain.solutions] == [s.objective for s in shared.solutions]
    from solvers.uncertainty import assignment_sampling

    own, given = assignment_sampling(graph, k=5), assignment_sampling(graph, k=5, pair_deltas=deltas)
    np.testing.assert_array_equal(own.edge_score, given.edge_score)
    np.testing.assert_array_equal(own.appear_score, given.appear_score)


@pytest.mark.parametrize("seed", range(6))
def test_pruned_drop_children_change_nothing(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting "drop one" child solved without the options only dearer solutions can use
    (once k solutions bound the k-th best) gives the same K best as the full programs, and
    as the no-good re-solves."""
    rng = np.random.default_rng(300 + seed)
    sizes = [int(x) for x in rng.integers(3, 6, size=7)]
    graph = with_division_pairs(random_graph(rng, sizes, density=0.8), rng)
    pruned = kbest_joint(graph, 3)
    calls: list[float] = []
    original = kbest_module._PairRanking._pruned_ub

    def counted(self: Any, within: float) -> Any:
        calls.append(within)
        return original(self, within)

    monkeypatch.setattr(kbest_module._PairRanking, "_pruned_ub", counted)
    kbest_joint(graph, 3)
    monkeypatch.setattr(kbest_module._PairRanking, "_pruned_ub", lambda self, within: None)
    full = kbest_joint(graph, 3)
    want = kbest_joint(graph, 3, method="nogood", pins=Pins(must_nodes=np.arange(graph.n_nodes)))
    got = [s.objective for s in pruned.solutions]
    np.testing.assert_allclose(got, [s.objective for s in full.solutions], atol=1e-7)
    np.testing.assert_allclose(got, [s.objective for s in want.solutions], atol=1e-7)
    assert calls  # the pruned path ran
