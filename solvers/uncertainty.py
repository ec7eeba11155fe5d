r"""Edge and node probabilities, and daughter-wise entropy, from a tracking problem.

The four methods of Paul et al., "How to make your cell tracker say 'I dunno!'" (ICCV 2025,
``shared/papers/004``), on our cost model (costs are negative log-likelihoods in nats, so
``exp(−cost)`` is the likelihood the paper's weight function ``w`` stands for). Every cell ``j``
after the first frame has *options*: each candidate mother (an incoming edge) and "no mother"
(it appears, scored by its appear cost). A method gives every option a log-score ``s``; the
daughter-based mother classification (DBMC, Eq. 15/17) is the softmax of the scores over the
options of ``j``, and temperature scaling (Eq. 20) divides the scores by ``T`` first::

    P(o | j) = exp(s_o / T) / Σ_{o' ∈ options(j)} exp(s_{o'} / T)

* **SM** (parental softmax, Eq. 15–16): ``s = −cost`` of the edge, ``−appear_cost`` for "no
  mother" (the quiet-softmax class of Trackastra, priced by our own appear cost).
* **FP** (Eq. 13): ``s = −mean cost`` over K graphs with perturbed features, then as SM.
* **FP+A** (Eq. 12): ``s = log`` of the frequency of the option among the MAP solutions of the
  K perturbed graphs.

  Perturbed graphs come from perturbed *features* re-costed by the real cost model
  (:func:`feature_noise_sampler` over a :class:`solvers.costs.CostModel`: Gaussian jitter of
  the centres, log-normal jitter of the areas, motion field and noise scales of the solve
  kept), the paper's noise distribution ``Q(x̂ | x)``. Only a graph that comes without its
  features falls back to Gaussian noise on the costs (:func:`cost_noise_sampler`); ``info``
  says which was used.
* **MM** (ours, beside the paper's four): ``s = −Δ_j(o)``, the extra cost of the best
  assignment that gives j the option o (:mod:`solvers.max_marginals`): an assignment-aware
  parental softmax, exact over the frame pair, at the price of one Dijkstra per cell.
* **AS** (Eq. 10–11): ``s = log Σ_k p_k 1[o ∈ A_k]`` over the K best assignments of each
  frame pair (Murty, :mod:`solvers.murty`), ``p_k ∝ exp(−cost_k / T_s)``; ``T_s = 1`` is the
  posterior of the paper's Eq. 6. Frame pairs are independent (the paper's Markov assumption,
  exact for our LAP model), so per-pair K best give K alternatives for *every* pair instead of
  the few local changes that the K best of the whole movie would spread over the movie.
  Two choices of ours make it describe the model that was solved, on movies of any density
  (``benchmarks/calibration_generalise.py``): every proposal is weighed by its cost in the
  model itself (a joint model's division pairs included, the solve's own solution one of the
  proposals; the folded LAP only proposes), and an option that no proposal takes scores the
  weight of its best completion, ``−Δ/T_s`` (its max-marginal, as MM), not a constant. With a
  constant, K alternatives per pair leave most cells of a dense pair in none of them and so
  equally sure whatever their cost gap (the epidermis: 3,830 links at 0.999, 4% of them
  wrong), and a temperature fitted on cells whose true option sat at that constant spread
  every probability (simulated nuclei with free border ends: T 2.5, ECE 0.002 → 0.13).

Frequencies can be 0; a log of 0 would make temperature fitting infinite, so FP+A and AS mix in
``floor`` (default 1e-3) of the uniform distribution over the options of ``j`` before the log —
a deviation from the paper, which does not say how it scores options never sampled.

``P(edge)`` is ``P(o | j)`` (each cell of a fixed segmentation has exactly one option taken, so
the column normalisation of Eq. 17 is the identity); ``P(node)`` is 1 for a fixed segmentation
and ``Σ_k p_k x_k`` when AS runs over solutions of the joint model with competing candidates.
The daughter-wise entropy (Eq. 21) is ``H_j = −Σ_o P(o|j) log P(o|j)`` in nats.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solvers.costs import CostModel, fold_pairs
from solvers.kbest_joint import PairDeltas, kbest_joint
from solvers.lap import APPEAR, FramePair, check_lap_graph, frame_pairs, solve_lap
from solvers.max_marginals import option_deltas
from solvers.model import objective
from solvers.murty import kbest_frame_pair
from solvers.types import CandidateGraph, Solution, SolveStatus

GraphSampler = Callable[[np.random.Generator], CandidateGraph]
SIGMA_PX = 2.0  # px, FP's default jitter of cell centres (per axis)
SIGMA_AREA = 0.05  # FP's default log-normal jitter of cell areas


class Method(enum.Enum):
    """Uncertainty methods of the paper (Table 1); values are the CLI spellings."""

    SM = "sm"
    FP = "fp"
    FPA = "fpa"
    AS = "as"
    MM = "mm"  # ours, not the paper's: softmax of max-marginals (solvers.max_marginals)


@dataclass(frozen=True)
class Uncertainty:
    """Per-option log-scores and the probabilities they give at ``temperature``.

    ``edge_score``/``appear_score`` are the untempered scores; :func:`with_temperature`
    re-derives the probabilities for another temperature without re-running the method.
    ``appear_p[j]`` is P(j has no mother); for first-frame cells it is 1.
    """

    method: Method
    temperature: float
    edge_score: np.ndarray  # (E,)
    appear_score: np.ndarray  # (N,)
    edge_p: np.ndarray  # (E,)
    appear_p: np.ndarray  # (N,)
    node_p: np.ndarray  # (N,)
    entropy: np.ndarray  # (N,) daughter-wise entropy, nats
    seconds: float = 0.0
    info: dict[str, Any] | None = None
    # what the method drew or solved, for :func:`ranked_solutions`: FP+A its K perturbed
    # optima; FP the graph of averaged costs it scored (None: ``graph`` itself)
    solutions: tuple[Solution, ...] = ()
    cost_graph: CandidateGraph | None = None


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as float, or raise ValueError unless it is finite and > 0."""
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def option_groups(graph: CandidateGraph) -> np.ndarray:
    """Group (cell) of every option: edges by their target, then one appear option per node."""
    return np.concatenate([graph.edge_target, np.arange(graph.n_nodes)])


def group_softmax(score: np.ndarray, group: np.ndarray, n_groups: int, temperature: float) -> np.ndarray:
    """Softmax of ``score / temperature`` within each group (−inf scores get probability 0)."""
    s = np.asarray(score, np.float64) / check_temperature(temperature)
    top = np.full(n_groups, -np.inf)
    np.maximum.at(top, group, s)
    e = np.exp(s - top[group])
    e[~np.isfinite(s)] = 0.0
    z = np.bincount(group, weights=e, minlength=n_groups)
    p: np.ndarray = e / z[group]
    return p


def group_entropy(p: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """−Σ p log p per group, nats."""
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.bincount(group, weights=terms, minlength=n_groups)


def with_temperature(unc: Uncertainty, graph: CandidateGraph, temperature: float) -> Uncertainty:
    """The same scores at another temperature (temperature scaling, Eq. 20)."""
    group = option_groups(graph)
    score = np.concatenate([unc.edge_score, unc.appear_score])
    p = group_softmax(score, group, graph.n_nodes, temperature)
    return replace(
        unc,
        temperature=check_temperature(temperature),
        edge_p=p[: graph.n_edges],
        appear_p=p[graph.n_edges :],
        entropy=group_entropy(p, group, graph.n_nodes),
    )


def _finish(
    method: Method,
    graph: CandidateGraph,
    edge_score: np.ndarray,
    appear_score: np.ndarray,
    temperature: float,
    start: float,
    node_p: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
    solutions: Sequence[Solution] = (),
    cost_graph: CandidateGraph | None = None,
) -> Uncertainty:
    unc = Uncertainty(
        method=method,
        temperature=1.0,
        edge_score=edge_score,
        appear_score=appear_score,
        edge_p=np.zeros(graph.n_edges),
        appear_p=np.zeros(graph.n_nodes),
        node_p=np.ones(graph.n_nodes) if node_p is None else node_p,
        entropy=np.zeros(graph.n_nodes),
        info=info,
        solutions=tuple(solutions),
        cost_graph=cost_graph,
    )
    unc = with_temperature(unc, graph, temperature)
    return replace(unc, seconds=time.perf_counter() - start)


def _log_frequency(
    graph: CandidateGraph, edge_freq: np.ndarray, appear_freq: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """log((1 − floor)·freq + floor/|options(j)|): frequencies to scores without −inf."""
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    n_opt = np.bincount(graph.edge_target, minlength=graph.n_nodes) + 1.0
    with np.errstate(divide="ignore"):
        e = np.log((1 - floor) * edge_freq + floor / n_opt[graph.edge_target])
        a = np.log((1 - floor) * appear_freq + floor / n_opt)
    return e, a


def _option_frequency(
    graph: CandidateGraph, solutions: Sequence[Solution], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted frequency of every edge, of "selected without mother", and of selection."""
    edge_f = np.zeros(graph.n_edges)
    appear_f = np.zeros(graph.n_nodes)
    node_f = np.zeros(graph.n_nodes)
    for w, sol in zip(weights, solutions):
        n_in = np.bincount(graph.edge_target[sol.edge_selected], minlength=graph.n_nodes)
        edge_f += w * sol.edge_selected
        appear_f += w * (sol.node_selected & (n_in == 0))
        node_f += w * sol.node_selected
    return edge_f, appear_f, node_f


def softmax_probabilities(graph: CandidateGraph, *, temperature: float = 1.0) -> Uncertainty:
    """SM: parental softmax over candidate mothers and "no mother" (Eq. 15–16)."""
    start = time.perf_counter()
    return _finish(Method.SM, graph, -graph.edge_cost, -graph.appear_cost, temperature, start)


def max_marginal_probabilities(graph: CandidateGraph, *, temperature: float = 1.0) -> Uncertainty:
    """MM: softmax of −Δ over the options of each cell (fixed segmentation, LAP model)."""
    start = time.perf_counter()
    check_lap_graph(graph)
    edge_score = np.full(graph.n_edges, -np.inf)
    appear_score = np.zeros(graph.n_nodes)  # first frame: "appears" is the only option
    for pair in frame_pairs(graph):
        e_delta, a_delta = option_deltas(graph, pair)
        edge_score[pair.edges] = -e_delta
        appear_score[pair.targets] = -a_delta
    return _finish(Method.MM, graph, edge_score, appear_score, temperature, start)


def feature_perturbation(
    graph: CandidateGraph, sample_graph: GraphSampler, *, k: int = 10, temperature: float = 1.0, seed: int = 0
) -> Uncertainty:
    """FP: parental softmax of the costs averaged over ``k`` perturbed graphs (Eq. 13).

    The graph of averaged costs (edge, appear, disappear, division) is kept as ``cost_graph``:
    its optimum is FP's solution and its K best are FP's ranked alternatives.
    """
    start = time.perf_counter()
    k = check_k(k)
    rng = np.random.default_rng(seed)
    sums = [np.zeros(graph.n_edges), np.zeros(graph.n_nodes), np.zeros(graph.n_nodes), np.zeros(graph.n_nodes)]
    for _ in range(k):
        g = _same_structure(graph, sample_graph(rng))
        for acc, c in zip(sums, (g.edge_cost, g.appear_cost, g.disappear_cost, g.division_cost)):
            acc += c
    edge, appear, disappear, division = (a / k for a in sums)
    mean = replace(graph, edge_cost=edge, appear_cost=appear, disappear_cost=disappear, division_cost=division)
    return _finish(Method.FP, graph, -edge, -appear, temperature, start, info={"k": k}, cost_graph=mean)


def perturbed_assignments(
    graph: CandidateGraph,
    sample_graph: GraphSampler,
    *,
    k: int = 10,
    temperature: float = 1.0,
    seed: int = 0,
    solve: Callable[[CandidateGraph], Solution] | None = None,
    floor: float = 1e-3,
    progress: Callable[[int, int], None] | None = None,
) -> Uncertainty:
    """FP+A: frequency of each option among the optima of ``k`` perturbed graphs (Eq. 12).

    ``solve`` defaults to :func:`solvers.lap.solve_lap` (fixed segmentation); a solve that
    stops before optimality (its time limit) still counts, and ``info["not_optimal"]`` says
    how many did. ``progress(done, k)`` is called after each solve.
    """
    start = time.perf_counter()
    k = check_k(k)
    solve = solve or solve_lap
    rng = np.random.default_rng(seed)
    sols = []
    for i in range(k):
        sols.append(solve(_same_structure(graph, sample_graph(rng))))
        if progress is not None:
            progress(i + 1, k)
    edge_f, appear_f, node_f = _option_frequency(graph, sols, np.full(k, 1.0 / k))
    e, a = _log_frequency(graph, edge_f, appear_f, floor)
    not_optimal = sum(s.status is not SolveStatus.OPTIMAL for s in sols)
    return _finish(
        Method.FPA,
        graph,
        e,
        a,
        temperature,
        start,
        node_p=node_f,
        info={"k": k, "floor": floor, "not_optimal": not_optimal},
        solutions=sols,
    )


def assignment_sampling(
    graph: CandidateGraph,
    *,
    k: int = 10,
    temperature: float = 1.0,
    sample_temperature: float = 1.0,
    solutions: Sequence[Solution] | None = None,
    solution: Solution | None = None,
    floor: float = 1e-3,
    pair_deltas: PairDeltas | None = None,
) -> Uncertainty:
    """AS: self-normalised weights ``p_k ∝ exp(−cost_k / T_s)`` over the top-K (Eq. 10–11).

    Without ``solutions`` each frame pair is enumerated on its own (fixed segmentation): its
    proposals are the K best assignments of the pair (:func:`solvers.murty.kbest_frame_pair`
    on the pair-folded graph) and the pair's part of ``solution`` (the model's MAP, e.g. the
    current solution of a joint solve), each weighed by its exact cost **in ``graph``** (with
    division pairs: the joint model's cost; a proposal dividing into an unlisted pair is
    infeasible there and dropped). An option that no proposal takes gets the weight of its
    best completion, ``exp(−Δ/T_s)`` with Δ its max-marginal (:mod:`solvers.max_marginals`, on
    the folded graph), instead of a constant (see the module docstring: with K alternatives
    per pair and hundreds of cells most cells are in no alternative, and a constant made them
    all equally sure whatever their cost gap). With ``solutions`` (e.g. the output of
    :func:`solvers.kbest_joint.kbest_joint`) the weights are computed over those solutions.
    ``pair_deltas``: the max-marginals, when the caller has them already
    (:func:`solvers.kbest_joint.pair_max_marginals`, also used by the K best).
    """
    start = time.perf_counter()
    k = check_k(k)
    t_s = check_temperature(sample_temperature)
    if solutions is not None:
        if not solutions:
            raise ValueError("assignment sampling needs at least one solution")
        obj = np.array([s.objective for s in solutions], np.float64)
        w = np.exp(-(obj - obj.min()) / t_s)
        edge_f, appear_f, node_f = _option_frequency(graph, solutions, w / w.sum())
        e, a = _log_frequency(graph, edge_f, appear_f, floor)
        return _finish(
            Method.AS,
            graph,
            e,
            a,
            temperature,
            start,
            node_p=node_f,
            info={"k": len(solutions), "scope": "given", "floor": floor},
        )
    check_lap_graph(graph, ignore_division_pairs=True)
    folded = fold_pairs(graph)
    pair_price = _division_pair_prices(graph)
    edge_m = np.zeros(graph.n_edges)
    appear_m = np.zeros(graph.n_nodes)
    first = graph.node_t == graph.node_t.min() if graph.n_nodes else np.zeros(0, bool)
    appear_m[first] = 1.0
    edge_seen = np.zeros(graph.n_edges, bool)
    appear_seen = first.copy()
    found, proposals, dropped = [], 0, 0
    pairs = frame_pairs(folded)
    if pair_deltas is not None and len(pair_deltas) != len(pairs):
        raise ValueError(f"pair_deltas holds {len(pair_deltas)} frame pairs, the graph has {len(pairs)}")
    for q, pair in enumerate(pairs):
        ranked = kbest_frame_pair(folded, pair, k)
        found.append(len(ranked))
        local = {}
        if solution is not None:
            sel = np.asarray(solution.edge_selected, bool)[pair.edges]
            local[sel.tobytes()] = sel
        for _, parent in ranked:
            sel = np.zeros(len(pair.edges), bool)
            sel[np.searchsorted(pair.edges, parent[parent >= 0])] = True
            local.setdefault(sel.tobytes(), sel)
        sels, costs = [], []
        for sel in local.values():
            c = _pair_objective(graph, pair, sel, pair_price)
            if np.isfinite(c):
                sels.append(sel)
                costs.append(c)
        dropped += len(local) - len(sels)
        proposals += len(sels)
        cost = np.array(costs)
        w = np.exp(-(cost - cost.min()) / t_s) if sels else cost
        for wk, sel in zip(w, sels):
            chosen = pair.edges[sel]
            edge_m[chosen] += wk
            edge_seen[chosen] = True
            linked = np.zeros(len(pair.targets), bool)  # by the pair's local target positions
            linked[pair.edge_col[sel]] = True
            alone = pair.targets[~linked]
            appear_m[alone] += wk
            appear_seen[alone] = True
        # options no proposal takes: their best completion, Δ nats above the best (the folded
        # graph's max-marginal; exact without division pairs)
        e_delta, a_delta = option_deltas(folded, pair) if pair_deltas is None else pair_deltas[q][:2]
        unseen = ~edge_seen[pair.edges]
        edge_m[pair.edges[unseen]] = np.exp(-e_delta[unseen] / t_s)
        unseen = ~appear_seen[pair.targets]
        appear_m[pair.targets[unseen]] = np.exp(-a_delta[unseen] / t_s)
    total = np.bincount(graph.edge_target, weights=edge_m, minlength=graph.n_nodes) + appear_m
    total[total == 0] = 1.0
    e, a = _log_frequency(graph, edge_m / total[graph.edge_target], appear_m / total, floor)
    return _finish(
        Method.AS,
        graph,
        e,
        a,
        temperature,
        start,
        info={
            "k": k,
            "scope": "frame_pair",
            "model": "joint" if graph.division_pairs is not None else "lap",
            "floor": floor,
            "min_alternatives": int(min(found)) if found else 0,
            "proposals": proposals,
            "infeasible_proposals": dropped,
            "unsampled_options": "max-marginal",
        },
    )


def _division_pair_prices(graph: CandidateGraph) -> dict[tuple[int, int], float]:
    """Extra cost of dividing into each listed daughter pair (edge pair, smaller edge first)."""
    if graph.division_pairs is None or graph.division_pair_cost is None:
        return {}
    pairs = np.sort(np.asarray(graph.division_pairs, np.int64), axis=1)
    return {(int(a), int(b)): float(c) for (a, b), c in zip(pairs.tolist(), graph.division_pair_cost.tolist())}


def _pair_objective(
    graph: CandidateGraph, pair: FramePair, sel: np.ndarray, pair_price: dict[tuple[int, int], float]
) -> float:
    """Cost in ``graph`` of one frame pair's links ``sel`` (bool over ``pair.edges``), every node
    selected: links, appearing targets, vanishing and dividing sources (a listed daughter pair's
    price with division pairs; inf for an unlisted one or more than two daughters)."""
    chosen = pair.edges[sel]
    # counted by the pair's local positions (a bincount over the whole graph per proposal was
    # most of the cost on a large movie)
    n_in = np.bincount(pair.edge_col[sel], minlength=len(pair.targets))
    n_out = np.bincount(pair.edge_row[sel], minlength=len(pair.sources))
    if np.any(n_out > 2) or np.any(n_in > 1):
        return float("inf")
    cost = float(graph.edge_cost[chosen].sum() + graph.appear_cost[pair.targets[n_in == 0]].sum())
    cost += float(graph.disappear_cost[pair.sources[n_out == 0]].sum())
    dividing = pair.sources[n_out == 2]
    cost += float(graph.division_cost[dividing].sum())
    if graph.edge_division_cost is not None and len(dividing):
        # the cheaper daughter of each division takes its mother's second slot (solvers.lap)
        two = np.isin(graph.edge_source[chosen], dividing)
        extra = np.full(graph.n_nodes, np.inf)
        np.minimum.at(extra, graph.edge_source[chosen[two]], graph.edge_division_cost[chosen[two]])
        cost += float(extra[dividing].sum())
    if graph.division_pairs is not None:
        for m in dividing.tolist():
            a, b = sorted(chosen[graph.edge_source[chosen] == m].tolist())
            price = pair_price.get((a, b))
            if price is None:
                return float("inf")
            cost += price
    return cost


def edge_probabilities(
    graph: CandidateGraph,
    method: Method | str,
    *,
    k: int = 10,
    temperature: float = 1.0,
    sample_graph: GraphSampler | None = None,
    features: CostModel | None = None,
    sigma_px: float = SIGMA_PX,
    sigma_area: float = SIGMA_AREA,
    seed: int = 0,
    noise: float = 1.0,
    solution: Solution | None = None,
    pair_deltas: PairDeltas | None = None,
) -> Uncertainty:
    """One entry point for every method (what ``trackdb uncertainty --method`` calls).

    FP and FP+A need perturbed graphs, in this order of preference: ``sample_graph(rng)``
    (it must return graphs without division pairs, e.g. through ``fold_pairs``); the cost model
    ``features`` that built ``graph``, whose features are jittered by ``sigma_px`` /
    ``sigma_area`` and re-costed (:func:`feature_noise_sampler`, the paper's choice); else the
    edge, appear and disappear costs get Gaussian noise of ``noise`` nats
    (:func:`cost_noise_sampler`), for graphs that come without features. ``info["perturbation"]``
    says which. A graph with division pairs is folded first. FP+A, AS and MM need a fixed segmentation (ValueError
    otherwise); for competing candidates use :func:`assignment_sampling` with ``solutions``
    from :func:`solvers.kbest_joint.kbest_joint`. AS weighs its proposals by their cost in
    ``graph`` itself (division pairs included) and takes the model's MAP ``solution`` as one of
    them when given.
    """
    method = Method(method)
    check_temperature(temperature)
    if method is Method.AS:
        return assignment_sampling(
            graph, k=check_k(k), temperature=temperature, solution=solution, pair_deltas=pair_deltas
        )
    if getattr(graph, "division_pairs", None) is not None:
        # pair-priced divisions have no per-edge form: use the product's folding
        # (min of continuation and half the best division, solvers.costs.fold_pairs); edge
        # indices are unchanged, so the result still lines up with ``graph``
        graph = fold_pairs(graph)
    if method in (Method.FP, Method.FPA, Method.AS):
        check_k(k)
    if method is Method.SM:
        return softmax_probabilities(graph, temperature=temperature)
    if method in (Method.FP, Method.FPA):
        sampler, how = perturbation_sampler(graph, sample_graph, features, sigma_px, sigma_area, noise)
        run = feature_perturbation if method is Method.FP else perturbed_assignments
        unc = run(graph, sampler, k=k, temperature=temperature, seed=seed)
        return replace(unc, info={**(unc.info or {}), "perturbation": how})
    return max_marginal_probabilities(graph, temperature=temperature)


def perturbation_sampler(
    graph: CandidateGraph,
    sample_graph: GraphSampler | None,
    features: CostModel | None,
    sigma_px: float = SIGMA_PX,
    sigma_area: float = SIGMA_AREA,
    noise: float = 1.0,
) -> tuple[GraphSampler, dict[str, Any]]:
    """The sampler FP / FP+A use (see :func:`edge_probabilities`) and a description of it."""
    if sample_graph is not None:
        return sample_graph, {"kind": "given"}
    if features is not None:
        return (
            feature_noise_sampler(features, sigma_px, sigma_area),
            {"kind": "features", "sigma_px": float(sigma_px), "sigma_area": float(sigma_area)},
        )
    return cost_noise_sampler(graph, noise), {"kind": "costs", "noise": float(noise)}


def feature_noise_sampler(
    model: CostModel, sigma_px: float = SIGMA_PX, sigma_area: float = SIGMA_AREA, fold: bool = True
) -> GraphSampler:
    """FP's noise distribution Q(x̂ | x): perturbed features, re-costed by the cost model.

    Every cell's centre moves by N(0, sigma_px²) per axis and its area is multiplied by
    exp(N(0, sigma_area²)); the graph is then rebuilt by :meth:`CostModel.graph` (motion field,
    noise scales and division rates of the solve unchanged), division pairs folded into the
    edges unless ``fold`` is False. All links of a cell share its jitter, as in the paper.
    """
    if not (np.isfinite(sigma_px) and sigma_px >= 0 and np.isfinite(sigma_area) and sigma_area >= 0):
        raise ValueError(f"sigma_px and sigma_area must be finite and >= 0, got {sigma_px}, {sigma_area}")
    cells = model.cells

    def sample(rng: np.random.Generator) -> CandidateGraph:
        jittered = replace(
            cells,
            centroid=cells.centroid + rng.normal(0.0, sigma_px, np.shape(cells.centroid)),
            area=cells.area * np.exp(rng.normal(0.0, sigma_area, len(cells.area))),
        )
        g = model.graph(jittered)
        return fold_pairs(g) if fold else g

    return sample


def cost_noise_sampler(graph: CandidateGraph, noise: float) -> GraphSampler:
    """A sampler that adds N(0, noise²) nats to edge, appear and disappear costs.

    The fallback when no feature-level sampler is available; appear/disappear costs that are 0
    (first/last frame, border) stay 0, and disappear + division is kept ≥ 0 for the LAP.
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    def sample(rng: np.random.Generator) -> CandidateGraph:
        app = np.where(graph.appear_cost > 0, graph.appear_cost + rng.normal(0, noise, graph.n_nodes), 0.0)
        dis = np.where(graph.disappear_cost > 0, graph.disappear_cost + rng.normal(0, noise, graph.n_nodes), 0.0)
        dis = np.maximum(dis, -graph.division_cost)
        return replace(
            graph, edge_cost=graph.edge_cost + rng.normal(0, noise, graph.n_edges), appear_cost=app, disappear_cost=dis
        )

    return sample


def _same_structure(graph: CandidateGraph, other: CandidateGraph) -> CandidateGraph:
    if (
        other.n_nodes != graph.n_nodes
        or other.n_edges != graph.n_edges
        or not np.array_equal(other.edge_source, graph.edge_source)
        or not np.array_equal(other.edge_target, graph.edge_target)
    ):
        raise ValueError("a perturbed graph must keep the nodes and edges of the original")
    return other


@dataclass(frozen=True)
class Ranked:
    """One ranked alternative of a method: a solution and its weight (weights sum to 1)."""

    solution: Solution  # its ``objective`` is on the graph the ranking is over
    weight: float


def ranked_solutions(
    graph: CandidateGraph,
    unc: Uncertainty,
    k: int,
    *,
    sample_temperature: float = 1.0,
    time_limit: float = 300.0,
    kbest: Sequence[Solution] | None = None,
) -> list[Ranked]:
    """Every method's alternatives, best first (what ``trackdb uncertainty`` stores as ranks).

    * FP+A: its distinct perturbed optima (``unc.solutions``), most frequent first, weight =
      frequency among the K draws; ties by objective on ``graph`` (the unperturbed costs).
    * FP: the exact K best of its averaged-cost graph (``unc.cost_graph``), the first being
      FP's own solution; SM, MM and AS: the exact K best of ``graph`` itself (``kbest`` when the
      caller has them already). Weights ``p_k ∝ exp(−cost_k / T_s)`` over the list.

    K best come from :func:`solvers.kbest_joint.kbest_joint` (Murty or frame-pair programs
    where the segmentation is fixed, else re-solves with no-good cuts, each limited to
    ``time_limit``); pass ``kbest`` to keep its report of what it found.
    """
    k = check_k(k)
    t_s = check_temperature(sample_temperature)
    if unc.method is Method.FPA:
        if not unc.solutions:
            raise ValueError("FP+A carries no perturbed solutions to rank")
        groups: dict[bytes, list[Solution]] = {}
        for sol in unc.solutions:
            key = np.packbits(sol.node_selected).tobytes() + np.packbits(sol.edge_selected).tobytes()
            groups.setdefault(key, []).append(sol)
        found = []
        for members in groups.values():
            first = members[0]
            obj = objective(graph, first.node_selected, first.edge_selected)
            found.append((len(members), obj, replace(first, objective=obj)))
        found.sort(key=lambda f: (-f[0], f[1]))
        n = len(unc.solutions)
        return [Ranked(sol, count / n) for count, _, sol in found[:k]]
    if kbest is None:
        target = unc.cost_graph if unc.method is Method.FP and unc.cost_graph is not None else graph
        kbest = kbest_joint(target, k, time_limit=time_limit).solutions
    if not kbest:
        return []
    costs = np.array([s.objective for s in kbest], np.float64)
    w = np.exp(-(costs - costs.min()) / t_s)
    w /= w.sum()
    return [Ranked(s, float(x)) for s, x in zip(kbest, w)]


def map_confidence(unc: Uncertainty, graph: CandidateGraph, solution: Solution) -> tuple[np.ndarray, np.ndarray]:
    """(edge indices, P) of the links the MAP ``solution`` chose: the paper's predictions."""
    chosen = np.flatnonzero(solution.edge_selected)
    return chosen, unc.edge_p[chosen]


__all__ = [
    "APPEAR",
    "SIGMA_AREA",
    "SIGMA_PX",
    "Method",
    "Ranked",
    "Uncertainty",
    "assignment_sampling",
    "check_k",
    "check_temperature",
    "cost_noise_sampler",
    "edge_probabilities",
    "feature_noise_sampler",
    "feature_perturbation",
    "group_entropy",
    "group_softmax",
    "map_confidence",
    "max_marginal_probabilities",
    "option_groups",
    "perturbation_sampler",
    "perturbed_assignments",
    "ranked_solutions",
    "softmax_probabilities",
    "with_temperature",
]
