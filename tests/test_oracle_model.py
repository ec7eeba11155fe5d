"""benchmarks/oracle_model.py: its cost accounting is the solver's objective."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.oracle_model import config_costs, errors
from solvers.assignment import solve_fixed_or_joint
from solvers.types import CandidateGraph


def _graph(seed: int) -> CandidateGraph:
    """Four cells per frame over three frames, every link between consecutive frames, every
    pair of a cell's out-links a division, random costs."""
    rng = np.random.default_rng(seed)
    t = np.repeat([0, 1, 2], 4)
    src, dst = zip(*[(i, j) for i in range(12) for j in range(12) if t[j] == t[i] + 1], strict=True)
    s = np.array(src)
    pairs = np.array([(a, b) for a, b in itertools.combinations(range(len(s)), 2) if s[a] == s[b]])
    return CandidateGraph(
        node_t=t,
        node_cost=np.full(12, -30.0),
        node_hier_parent=np.full(12, -1),
        edge_source=s,
        edge_target=np.array(dst),
        edge_cost=rng.uniform(0.0, 8.0, len(s)),
        appear_cost=rng.uniform(2.0, 6.0, 12),
        disappear_cost=rng.uniform(2.0, 6.0, 12),
        division_cost=rng.uniform(0.0, 1.0, 12),
        division_pairs=pairs,
        division_pair_cost=rng.uniform(-4.0, 4.0, len(pairs)),
    )


@pytest.mark.parametrize("seed", range(6))
def test_config_costs_add_up_to_the_solvers_objective(seed: int) -> None:
    g = _graph(seed)
    sol = solve_fixed_or_joint(g, time_limit=30.0)
    sel = np.asarray(sol.edge_selected, bool)
    assert np.asarray(sol.node_selected).all()
    parts = config_costs(g, sel)
    assert sum(parts.values()) + g.node_cost.sum() == pytest.approx(sol.objective, abs=1e-6)
    # any other selection of the same kind costs at least as much: the optimum is optimal
    alone = np.zeros(g.n_edges, bool)
    assert sum(config_costs(g, alone).values()) >= sum(parts.values()) - 1e-9


def test_errors_count_missing_and_wrong_links() -> None:
    gt = np.array([True, True, False, False])
    sel = np.array([True, False, True, False])
    assert errors(sel, gt) == {"missing": 1, "wrong": 1, "errors": 2}


def test_the_random_graphs_exercise_divisions() -> None:
    # the objective check above covers division accounting only if some optimum divides
    divides = 0
    for seed in range(6):
        g = _graph(seed)
        sel = np.asarray(solve_fixed_or_joint(g, time_limit=30.0).edge_selected, bool)
        divides += int((np.bincount(g.edge_source[sel], minlength=g.n_nodes) == 2).sum())
    assert divides > 0
