"""Uncertainty methods SM, FP, FP+A, AS on small graphs with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvers.lap import APPEAR, frame_pairs, parent_map_cost, solve_lap
from solvers.types import CandidateGraph
from solvers.uncertainty import (
    Method,
    assignment_sampling,
    cost_noise_sampler,
    edge_probabilities,
    option_groups,
    softmax_probabilities,
    with_temperature,
)


def small_graph(seed: int = 0, sizes=(3, 4, 4)) -> CandidateGraph:
    rng = np.random.default_rng(seed)
    node_t = np.repeat(np.arange(len(sizes)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)])
    src, dst = [], []
    for t in range(len(sizes) - 1):
        for a in range(first[t], first[t + 1]):
            for b in range(first[t + 1], first[t + 2]):
                if rng.random() < 0.7:
                    src.append(a)
                    dst.append(b)
    n = len(node_t)
    return CandidateGraph(
        node_t=node_t, node_cost=np.zeros(n), node_hier_parent=np.full(n, -1),
        edge_source=np.array(src), edge_target=np.array(dst),
        edge_cost=rng.uniform(0, 3, len(src)), appear_cost=np.full(n, 2.5),
        disappear_cost=np.full(n, 2.5), division_cost=np.full(n, 1.0),
    )


def incoming_sums(graph: CandidateGraph, unc) -> np.ndarray:
    return np.bincount(graph.edge_target, weights=unc.edge_p, minlength=graph.n_nodes)


@pytest.mark.parametrize("method", list(Method))
def test_incoming_options_sum_to_at_most_one(method: Method) -> None:
    graph = small_graph(1)
    unc = edge_probabilities(graph, method, k=6, temperature=1.7, noise=0.5)
    edge_in = incoming_sums(graph, unc)
    assert np.all(edge_in <= 1 + 1e-9)
    assert np.allclose(edge_in + unc.appear_p, 1.0)
    assert np.all((unc.edge_p >= 0) & (unc.edge_p <= 1))
    assert np.all(unc.entropy >= -1e-12)
    assert np.allclose(unc.node_p, 1.0)
    # entropy is the entropy of the options
    p = np.concatenate([unc.edge_p, unc.appear_p])
    h = np.bincount(option_groups(graph), weights=np.where(p > 0, -p * np.log(p + 1e-300), 0),
                    minlength=graph.n_nodes)
    assert np.allclose(h, unc.entropy)


def test_softmax_by_hand() -> None:
    # cell 2 has mothers 0 (cost 1) and 1 (cost 2), and appears at cost 3
    graph = CandidateGraph(
        node_t=[0, 0, 1], node_cost=np.zeros(3), node_hier_parent=[-1, -1, -1],
        edge_source=[0, 1], edge_target=[2, 2], edge_cost=[1.0, 2.0],
        appear_cost=[0.0, 0.0, 3.0], disappear_cost=[5.0, 5.0, 0.0], division_cost=np.ones(3),
    )
    z = np.exp(-1) + np.exp(-2) + np.exp(-3)
    unc = softmax_probabilities(graph)
    assert unc.edge_p == pytest.approx([np.exp(-1) / z, np.exp(-2) / z])
    assert unc.appear_p[2] == pytest.approx(np.exp(-3) / z)
    assert unc.appear_p[:2] == pytest.approx([1.0, 1.0])  # first frame: no options but "appear"
    hot = softmax_probabilities(graph, temperature=2.0)
    z2 = np.exp(-0.5) + np.exp(-1) + np.exp(-1.5)
    assert hot.edge_p[0] == pytest.approx(np.exp(-0.5) / z2)
    assert with_temperature(unc, graph, 2.0).edge_p == pytest.approx(hot.edge_p)
    assert with_temperature(unc, graph, 1e6).edge_p == pytest.approx([1 / 3, 1 / 3], rel=1e-4)


def exact_posterior(graph: CandidateGraph) -> tuple[np.ndarray, np.ndarray]:
    """P(edge) and P(appear) under p(A) ∝ exp(−cost(A)) by enumerating every solution."""
    edge_p = np.zeros(graph.n_edges)
    appear_p = np.zeros(graph.n_nodes)
    appear_p[graph.node_t == 0] = 1.0
    for pair in frame_pairs(graph):
        options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]]
                   for b in pair.targets]
        sols, costs = [], []
        for combo in itertools.product(*options):
            parent = np.array(combo, np.int64)
            mothers = graph.edge_source[parent[parent >= 0]]
            if len(mothers) and np.bincount(mothers).max() > 2:
                continue
            sols.append(parent)
            costs.append(parent_map_cost(graph, pair, parent))
        w = np.exp(-(np.array(costs) - min(costs)))
        w /= w.sum()
        for wk, parent in zip(w, sols):
            edge_p[parent[parent >= 0]] += wk
            appear_p[pair.targets[parent < 0]] += wk
    return edge_p, appear_p


def test_assignment_sampling_with_every_solution_is_the_exact_posterior() -> None:
    graph = small_graph(3, sizes=(2, 3, 3))
    edge_p, appear_p = exact_posterior(graph)
    unc = assignment_sampling(graph, k=10_000, floor=0.0)
    assert unc.edge_p == pytest.approx(edge_p, abs=1e-9)
    assert unc.appear_p == pytest.approx(appear_p, abs=1e-9)


def test_assignment_sampling_k1_is_the_map() -> None:
    graph = small_graph(4)
    best = solve_lap(graph)
    unc = assignment_sampling(graph, k=1, floor=0.0)
    assert np.array_equal(unc.edge_p > 0.5, best.edge_selected)


def test_perturbation_methods_and_solutions_given() -> None:
    graph = small_graph(5)
    fpa = edge_probabilities(graph, "fpa", k=8, noise=0.0, temperature=1.0)
    best = solve_lap(graph)
    # no noise: every perturbed optimum is the MAP, so the MAP links get 1 − floor mass
    assert np.all(fpa.edge_p[best.edge_selected] > 0.99)
    fp = edge_probabilities(graph, "fp", k=4, noise=0.0)
    assert fp.edge_p == pytest.approx(softmax_probabilities(graph).edge_p)
    given = assignment_sampling(graph, solutions=[best], floor=0.0)
    assert np.array_equal(given.edge_p > 0.5, best.edge_selected)


def test_bad_parameters_are_rejected() -> None:
    graph = small_graph(0)
    for method in Method:
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            edge_probabilities(graph, method, temperature=0.0)
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            edge_probabilities(graph, method, temperature=-2.0)
    for method in (Method.FP, Method.FPA, Method.AS):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            edge_probabilities(graph, method, k=0)
    with pytest.raises(ValueError):
        edge_probabilities(graph, "nonsense")
    with pytest.raises(ValueError, match="noise"):
        cost_noise_sampler(graph, -1.0)


def brute_force_deltas(graph: CandidateGraph) -> tuple[np.ndarray, np.ndarray]:
    """Δ of every option by enumerating every parent map of every frame pair."""
    edge_d = np.full(graph.n_edges, np.inf)
    appear_d = np.zeros(graph.n_nodes)
    for pair in frame_pairs(graph):
        options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]]
                   for b in pair.targets]
        best_by_option: dict[tuple[int, int], float] = {}
        for combo in itertools.product(*options):
            parent = np.array(combo, np.int64)
            mothers = graph.edge_source[parent[parent >= 0]]
            if len(mothers) and np.bincount(mothers).max() > 2:
                continue
            c = parent_map_cost(graph, pair, parent)
            for j, o in enumerate(combo):
                key = (j, o)
                best_by_option[key] = min(best_by_option.get(key, np.inf), c)
        best = min(best_by_option.values())
        for (j, o), c in best_by_option.items():
            if o == APPEAR:
                appear_d[pair.targets[j]] = c - best
            else:
                edge_d[o] = c - best
    return edge_d, appear_d


@pytest.mark.parametrize("seed", range(6))
def test_max_marginals_match_brute_force(seed: int) -> None:
    from solvers.uncertainty import max_marginal_probabilities

    graph = small_graph(seed, sizes=(3, 3, 3))
    edge_d, appear_d = brute_force_deltas(graph)
    unc = max_marginal_probabilities(graph)
    assert -unc.edge_score == pytest.approx(edge_d, abs=1e-8)
    assert -unc.appear_score == pytest.approx(appear_d, abs=1e-8)
    best = solve_lap(graph)
    assert np.allclose(unc.edge_score[best.edge_selected], 0.0, atol=1e-8)


def test_graph_with_division_pairs_is_folded() -> None:
    from dataclasses import replace

    graph = small_graph(2, sizes=(2, 3))
    src = graph.edge_source
    firsts = [e for e in range(graph.n_edges) if src[e] == 0]
    assert len(firsts) >= 2
    paired = replace(graph, division_pairs=np.array([[firsts[0], firsts[1]]]),
                     division_pair_cost=np.array([-1.0]))
    for method in (Method.SM, Method.AS, Method.MM):
        unc = edge_probabilities(paired, method, k=3)
        assert np.allclose(incoming_sums(paired, unc) + unc.appear_p, 1.0)
