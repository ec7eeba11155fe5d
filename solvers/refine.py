r"""The solve / re-estimate loop: costs whose scales are learnt from the solver's own answer.

The costs (:mod:`solvers.costs`) are negative log-likelihoods whose parameters θ (motion field,
noise scales, division geometry, and the division, interior appear and disappear rates:
:class:`solvers.motion.MotionModel`) are not known before the links are.
:func:`refine_cost_model` alternates the two maximisations of a hard EM (classification EM: the
"E step" picks the single best assignment instead of averaging over them)::

    θ₀ = initial_motion(candidates)                         (needs no links)
    Sₖ = argmin_S  cost(S; θₖ)                              (the caller's solver)
    θₖ₊₁ = estimate_motion(Sₖ, θₖ)                          (robust statistics of Sₖ's links)

for at most ``n_iter`` solves, stopping early when Sₖ selects the same links as Sₖ₋₁ (a fixed
point) or when a solve is neither optimal nor feasible. The re-estimates are robust statistics
(medians), not maximum-likelihood ones, so unlike EM the loop has no guaranteed descent: it is a
fixed-point iteration, and the returned history (scales, changed links, status, seconds per
solve) shows how it went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.costs import DEFAULT_COST_PARAMS, CostModel, CostParams, Overlap
from solvers.features import CellFeatures
from solvers.motion import Persistence, estimate_motion, initial_motion
from solvers.types import CandidateGraph, Solution


@dataclass(frozen=True)
class Refined:
    """What :func:`refine_cost_model` ends with: the cost model of the last solve, its graph,
    its solution and per-iteration diagnostics (scales, changed links)."""

    model: CostModel
    graph: CandidateGraph
    solution: Solution
    history: list[dict[str, float | str]]


def persistence_summary(fit: Persistence | None) -> dict[str, float]:
    """The persistence a round's motion used (α for continuing cells and daughters, the
    regressions' estimates, standard errors and pairs); NaN before any solution."""
    if fit is None:
        nan = float("nan")
        return {"persistence": nan, "persistence_daughters": nan}
    return {
        "persistence": fit.alpha,
        "persistence_estimate": fit.estimate,
        "persistence_se": fit.se,
        "persistence_pairs": float(fit.n),
        "persistence_daughters": fit.alpha_d,
        "persistence_daughters_estimate": fit.estimate_d,
        "persistence_daughters_se": fit.se_d,
        "persistence_daughters_pairs": float(fit.n_d),
    }


def refine_cost_model(
    cells: CellFeatures,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    solve: Callable[[CandidateGraph], Solution],
    n_iter: int = 4,
    params: CostParams = DEFAULT_COST_PARAMS,
    node_cost: np.ndarray | None = None,
    node_hier_parent: np.ndarray | None = None,
    overlap: Overlap | None = None,
) -> Refined:
    """Solve, re-estimate motion and scales from the solution, re-cost, re-solve (n_iter solves).

    Stops early when the selected links no longer change. Returns the last graph, its solution,
    the :class:`CostModel` it was built from and per-iteration diagnostics.
    """
    motion = initial_motion(cells, edge_source, edge_target)
    history: list[dict[str, float | str]] = []
    sol: Solution | None = None
    graph: CandidateGraph | None = None
    model: CostModel | None = None
    rounds = max(1, n_iter)
    for it in range(rounds):
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
                "division_rate": float("nan") if motion.division_rate is None else float(np.mean(motion.division_rate)),
                "appear_rate": float("nan") if motion.appear_rate is None else float(np.mean(motion.appear_rate)),
                "disappear_rate": float("nan")
                if motion.disappear_rate is None
                else float(np.mean(motion.disappear_rate)),
                **persistence_summary(motion.persistence),
                "changed_links": changed,
                "status": new.status.value,
                "seconds": new.seconds,
            }
        )
        sol = new
        # after the last solve the motion would be re-estimated for no one
        if changed == 0 or new.status.value not in ("optimal", "feasible") or it == rounds - 1:
            break
        motion = estimate_motion(cells, edge_source, edge_target, sol, motion, params.div_rate_bounds)
    # the loop runs at least once
    assert model is not None
    assert graph is not None
    assert sol is not None
    return Refined(model, graph, sol, history)
