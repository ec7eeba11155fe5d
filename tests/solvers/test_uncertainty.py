"""Uncertainty methods SM, FP, FP+A, AS on small graphs with known answers."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from solvers.costs import CostModel, fold_pairs
from solvers.lap import APPEAR, frame_pairs, parent_map_cost, solve_lap
from solvers.model import objective
from solvers.murty import kbest_lap
from solvers.types import CandidateGraph
from solvers.uncertainty import (
    Method,
    Uncertainty,
    assignment_sampling,
    cost_noise_sampler,
    edge_probabilities,
    feature_noise_sampler,
    option_groups,
    ranked_solutions,
    softmax_probabilities,
    with_temperature,
)


def small_graph(seed: int = 0, sizes: tuple[int, ...] = (3, 4, 4)) -> CandidateGraph:
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
        node_t=node_t,
        node_cost=np.zeros(n),
        node_hier_parent=np.full(n, -1),
        edge_source=np.array(src),
        edge_target=np.array(dst),
        edge_cost=rng.uniform(0, 3, len(src)),
        appear_cost=np.full(n, 2.5),
        disappear_cost=np.full(n, 2.5),
        division_cost=np.full(n, 1.0),
    )


def incoming_sums(graph: CandidateGraph, unc: Uncertainty) -> np.ndarray:
    sums: np.ndarray = np.bincount(graph.edge_target, weights=unc.edge_p, minlength=graph.n_nodes)
    return sums


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
    h = np.bincount(option_groups(graph), weights=np.where(p > 0, -p * np.log(p + 1e-300), 0), minlength=graph.n_nodes)
    assert np.allclose(h, unc.entropy)


def test_softmax_by_hand() -> None:
    # cell 2 has mothers 0 (cost 1) and 1 (cost 2), and appears at cost 3
    graph = CandidateGraph(
        node_t=np.array([0, 0, 1]),
        node_cost=np.zeros(3),
        node_hier_parent=np.array([-1, -1, -1]),
        edge_source=np.array([0, 1]),
        edge_target=np.array([2, 2]),
        edge_cost=np.array([1.0, 2.0]),
        appear_cost=np.array([0.0, 0.0, 3.0]),
        disappear_cost=np.array([5.0, 5.0, 0.0]),
        division_cost=np.ones(3),
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
        options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]] for b in pair.targets]
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
        options = [[APPEAR, *[int(e) for e in pair.edges if graph.edge_target[e] == b]] for b in pair.targets]
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


def test_graph_with_division_pairs() -> None:
    from dataclasses import replace

    graph = small_graph(2, sizes=(2, 3))
    src = graph.edge_source
    firsts = [e for e in range(graph.n_edges) if src[e] == 0]
    assert len(firsts) >= 2
    paired = replace(graph, division_pairs=np.array([[firsts[0], firsts[1]]]), division_pair_cost=np.array([-1.0]))
    for method in (Method.SM, Method.AS, Method.MM):
        unc = edge_probabilities(paired, method, k=3)
        assert np.allclose(incoming_sums(paired, unc) + unc.appear_p, 1.0)


def colony_model(seed: int = 0) -> tuple[CostModel, CandidateGraph]:
    """The drifting, dividing colony of ``test_costs`` with the cost model of its LAP solves."""
    from solvers.refine import refine_cost_model

    from .test_costs import colony

    cells, src, dst, _ = colony(seed=seed)
    refined = refine_cost_model(cells, src, dst, lambda g: solve_lap(fold_pairs(g)), n_iter=3)
    return refined.model, fold_pairs(refined.graph)


def test_feature_perturbation_jitters_features_and_recosts_them() -> None:
    """FP's noise is on the features: each sample is exactly the cost model re-run on jittered
    centres and areas (all links of a cell move together), never noise added to the costs."""
    model, graph = colony_model()
    sample = feature_noise_sampler(model, sigma_px=1.5, sigma_area=0.1)
    got = sample(np.random.default_rng(7))
    rng = np.random.default_rng(7)
    cells = model.cells
    jittered = replace(
        cells,
        centroid=cells.centroid + rng.normal(0, 1.5, cells.centroid.shape),
        area=cells.area * np.exp(rng.normal(0, 0.1, len(cells.area))),
    )
    want = fold_pairs(model.graph(jittered))
    assert np.array_equal(got.edge_cost, want.edge_cost)
    assert not np.allclose(got.edge_cost, graph.edge_cost)
    # appear / disappear costs come from the jittered features too (edge distance, density),
    # not from noise added to the costs
    assert np.array_equal(got.appear_cost, want.appear_cost)
    assert np.array_equal(got.disappear_cost, want.disappear_cost)
    # no jitter: the model's own graph
    still = feature_noise_sampler(model, 0.0, 0.0)(np.random.default_rng(1))
    assert np.allclose(still.edge_cost, graph.edge_cost)
    # a cell moved alone changes the costs of its own links only
    moved = replace(cells, centroid=cells.centroid + np.where(np.arange(len(cells.t)) == 40, 3.0, 0.0)[:, None])
    delta = fold_pairs(model.graph(moved)).edge_cost - graph.edge_cost
    touches = (graph.edge_source == 40) | (graph.edge_target == 40)
    assert np.all(delta[~touches & ~np.isin(graph.edge_source, graph.edge_source[touches])] == 0)
    assert np.any(delta[touches] != 0)


def test_methods_with_features_report_their_perturbation() -> None:
    model, graph = colony_model()
    fp = edge_probabilities(graph, "fp", k=4, features=model, sigma_px=1.0, sigma_area=0.05)
    assert fp.info is not None
    assert fp.info["perturbation"] == {"kind": "features", "sigma_px": 1.0, "sigma_area": 0.05}
    # FP scores the averaged costs: its cost graph is the mean of the K samples
    sample = feature_noise_sampler(model, 1.0, 0.05)
    rng = np.random.default_rng(0)
    mean = np.mean([sample(rng).edge_cost for _ in range(4)], axis=0)
    assert fp.cost_graph is not None
    assert np.allclose(fp.cost_graph.edge_cost, mean)
    assert np.allclose(fp.edge_score, -mean)
    fpa = edge_probabilities(graph, "fpa", k=6, features=model)
    assert fpa.info is not None
    assert fpa.info["perturbation"]["kind"] == "features"
    assert len(fpa.solutions) == 6
    by_costs = edge_probabilities(graph, "fpa", k=2).info
    assert by_costs is not None
    assert by_costs["perturbation"]["kind"] == "costs"


def test_ranked_solutions_of_every_method() -> None:
    graph = small_graph(3)
    best = solve_lap(graph)
    top = kbest_lap(graph, 4)
    for method in ("sm", "mm", "as"):
        ranked = ranked_solutions(graph, edge_probabilities(graph, method, k=4), 4)
        assert [r.solution.objective for r in ranked] == pytest.approx([s.objective for s in top])
        assert np.array_equal(ranked[0].solution.edge_selected, best.edge_selected)
        w = np.array([r.weight for r in ranked])
        assert w.sum() == pytest.approx(1.0)
        assert np.all(np.diff(w) <= 1e-12)
        assert w[1] / w[0] == pytest.approx(np.exp(-(top[1].objective - top[0].objective)))
    # FP: the K best of its averaged costs, first = the optimum of those costs
    fp = edge_probabilities(graph, "fp", k=5, noise=0.7)
    ranked = ranked_solutions(graph, fp, 3)
    assert fp.cost_graph is not None
    assert np.array_equal(ranked[0].solution.edge_selected, solve_lap(fp.cost_graph).edge_selected)
    assert ranked[0].solution.objective == pytest.approx(solve_lap(fp.cost_graph).objective)
    # FP+A: distinct perturbed optima by frequency, weight = frequency, objective on ``graph``
    fpa = edge_probabilities(graph, "fpa", k=20, noise=1.5, seed=2)
    ranked = ranked_solutions(graph, fpa, 20)
    keys = [r.solution.edge_selected.tobytes() for r in ranked]
    assert len(set(keys)) == len(keys) >= 2
    counts = [sum(s.edge_selected.tobytes() == key for s in fpa.solutions) for key in keys]
    assert [r.weight for r in ranked] == pytest.approx([c / 20 for c in counts])
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == 20
    for r in ranked:
        assert r.solution.objective == pytest.approx(
            objective(graph, r.solution.node_selected, r.solution.edge_selected)
        )
    assert len(ranked_solutions(graph, fpa, 1)) == 1


def test_assignment_sampling_scores_unsampled_options_by_their_cost_gap() -> None:
    """With K = 1 (the MAP alone) every other option is in no proposal: it gets the weight of its
    best completion, so AS is the max-marginal softmax, not 1 − floor for every MAP link."""
    from solvers.uncertainty import max_marginal_probabilities

    for seed in range(4):
        graph = small_graph(seed, sizes=(3, 4, 4))
        unc = assignment_sampling(graph, k=1, floor=0.0)
        mm = max_marginal_probabilities(graph)
        assert unc.edge_p == pytest.approx(mm.edge_p, abs=1e-9)
        assert unc.appear_p == pytest.approx(mm.appear_p, abs=1e-9)
        assert np.any((unc.edge_p > 0.05) & (unc.edge_p < 0.95))  # not all sure


def paired_graph(seed: int) -> CandidateGraph:
    """Two frames, every source may divide into some of its daughter pairs only (joint model)."""
    rng = np.random.default_rng(seed)
    graph = small_graph(seed, sizes=(3, 4))
    pairs, price = [], []
    for m in range(3):
        out = np.flatnonzero(graph.edge_source == m)
        for a, b in itertools.combinations(out.tolist(), 2):
            if rng.random() < 0.6:
                pairs.append((a, b))
                price.append(rng.uniform(-2.0, 1.0))
    assert pairs
    return replace(
        graph, division_pairs=np.array(pairs, np.int64).reshape(-1, 2), division_pair_cost=np.array(price, np.float64)
    )


def joint_posterior(graph: CandidateGraph) -> tuple[np.ndarray, np.ndarray]:
    """P(edge), P(appear) under p(A) ∝ exp(−joint objective(A)), every feasible A enumerated
    (a mother divides only into a listed daughter pair)."""
    listed = {tuple(sorted(p)) for p in graph.division_pairs.tolist()}  # type: ignore[union-attr]
    everyone = np.ones(graph.n_nodes, bool)
    targets = np.flatnonzero(graph.node_t == 1)
    options = [[APPEAR, *np.flatnonzero(graph.edge_target == b).tolist()] for b in targets]
    sols, costs = [], []
    for combo in itertools.product(*options):
        chosen = [e for e in combo if e >= 0]
        by_mother: dict[int, list[int]] = {}
        for e in chosen:
            by_mother.setdefault(int(graph.edge_source[e]), []).append(e)
        if any(len(v) > 2 or (len(v) == 2 and tuple(sorted(v)) not in listed) for v in by_mother.values()):
            continue
        sel = np.zeros(graph.n_edges, bool)
        sel[chosen] = True
        sols.append(sel)
        costs.append(objective(graph, everyone, sel))
    w = np.exp(-(np.array(costs) - min(costs)))
    w /= w.sum()
    edge_p = sum(wk * s for wk, s in zip(w, sols))
    appear_p = np.zeros(graph.n_nodes)
    appear_p[graph.node_t == 0] = 1.0
    appear_p[targets] = 1.0 - np.bincount(graph.edge_target, weights=edge_p, minlength=graph.n_nodes)[targets]
    return np.asarray(edge_p, np.float64), appear_p


@pytest.mark.parametrize("seed", range(4))
def test_assignment_sampling_weighs_proposals_by_the_joint_model(seed: int) -> None:
    """On a joint model (division pairs) AS proposes with the folded LAP but weighs by the joint
    cost and drops divisions into unlisted pairs: with every solution it is the joint posterior,
    not the folded one; the MAP given as ``solution`` is one of the proposals."""
    graph = paired_graph(seed)
    edge_p, appear_p = joint_posterior(graph)
    unc = assignment_sampling(graph, k=10_000, floor=0.0)
    assert unc.edge_p == pytest.approx(edge_p, abs=1e-9)
    assert unc.appear_p == pytest.approx(appear_p, abs=1e-9)
    assert unc.info is not None
    assert unc.info["model"] == "joint"
    folded = assignment_sampling(fold_pairs(graph), k=10_000, floor=0.0)
    assert unc.info["infeasible_proposals"] > 0 or folded.edge_p == pytest.approx(edge_p, abs=1e-9)
    # few proposals: the joint MAP's links are still the most probable option of their cells
    from solvers.joint import solve_joint

    best = solve_joint(graph, gap=0.0)
    few = assignment_sampling(graph, k=2, floor=0.0, solution=best)
    n_in = np.bincount(graph.edge_target, weights=few.edge_p, minlength=graph.n_nodes)
    assert np.allclose(n_in + few.appear_p, 1.0)
    for e in np.flatnonzero(best.edge_selected):
        rivals = few.edge_p[graph.edge_target == graph.edge_target[e]]
        assert few.edge_p[e] >= rivals.max() - 1e-12
        assert few.edge_p[e] >= few.appear_p[graph.edge_target[e]]


def test_well_separated_links_are_sure() -> None:
    """Every alternative 12 nats dearer: every MAP link above 0.999, whatever K (a well-tracked
    movie is not under-confident)."""
    n_a = 5
    node_t = np.repeat([0, 1], n_a)
    src = np.repeat(np.arange(n_a), n_a)
    dst = n_a + np.tile(np.arange(n_a), n_a)
    cost = np.where(src + n_a == dst, 0.0, 12.0)
    graph = CandidateGraph(
        node_t=node_t,
        node_cost=np.zeros(2 * n_a),
        node_hier_parent=np.full(2 * n_a, -1),
        edge_source=src,
        edge_target=dst,
        edge_cost=cost,
        appear_cost=np.full(2 * n_a, 6.0),
        disappear_cost=np.full(2 * n_a, 6.0),
        division_cost=np.full(2 * n_a, 6.0),
    )
    for k in (1, 3, 10, 50):
        unc = assignment_sampling(graph, k=k)
        assert np.all(unc.edge_p[cost == 0] > 0.999)
