r"""Pins as costs: a graph whose cheapest and most probable selections are those that honour
the pins, for the methods that read costs rather than take constraints (softmax and perturbed
probabilities, K best, max-marginals, :mod:`solvers.uncertainty`).

A pinned choice gets :data:`PIN_NATS` taken off its cost, a forbidden one that much added:
must / forbidden nodes on :math:`c^x`, edges on :math:`c^y`, a pinned or forbidden division on
:math:`c^s`, a pinned ending on :math:`c^d`. At 1,000 nats the weight of any selection that
breaks a pin is below :math:`e^{-1000}` of one that keeps it, so probabilities of pinned links
read 1 and of forbidden ones 0, while the relative weights of selections that all keep the pins
(what doubt is about) are unchanged: every such selection pays the same pin terms.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from solvers.types import CandidateGraph, Pins

PIN_NATS = 1000.0


def pinned_costs(graph: CandidateGraph, pins: Pins | None, nats: float = PIN_NATS) -> CandidateGraph:
    """``graph`` with the pins folded into its costs (see the module docstring)."""
    if pins is None:
        return graph
    node = graph.node_cost.copy()
    edge = graph.edge_cost.copy()
    division = graph.division_cost.copy()
    disappear = graph.disappear_cost.copy()
    np.subtract.at(node, pins.must_nodes, nats)
    np.add.at(node, pins.forbid_nodes, nats)
    np.subtract.at(edge, pins.must_edges, nats)
    np.add.at(edge, pins.forbid_edges, nats)
    np.subtract.at(division, pins.must_divide, nats)
    np.add.at(division, pins.forbid_divide, nats)
    np.subtract.at(disappear, pins.must_end, nats)
    return replace(graph, node_cost=node, edge_cost=edge, division_cost=division, disappear_cost=disappear)
