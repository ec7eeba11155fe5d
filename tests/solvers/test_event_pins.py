"""Pins on node events (a division pinned or forbidden, a track end pinned), whole and windowed,
and pins folded into costs (solvers.pinned)."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.joint import solve_joint
from solvers.model import build_program
from solvers.pinned import PIN_NATS, pinned_costs
from solvers.types import Pins

from .test_joint import division_graph


def test_pinned_events() -> None:
    g = division_graph()
    assert solve_joint(g).edge_selected.tolist() == [True, True, False]  # it divides on its own
    no_div = solve_joint(g, pins=Pins(forbid_divide=np.array([0])))
    assert no_div.edge_selected.sum() == 1
    end = solve_joint(g, pins=Pins(must_end=np.array([0])))
    assert end.node_selected[0]
    assert not end.edge_selected.any()
    costly = division_graph(division=100.0)
    assert solve_joint(costly).edge_selected.sum() == 1
    div = solve_joint(costly, pins=Pins(must_divide=np.array([0])))
    assert div.edge_selected.sum() == 2
    with pytest.raises(ValueError, match="both require and forbid"):
        build_program(g, Pins(must_divide=np.array([0]), forbid_divide=np.array([0])))
    with pytest.raises(ValueError, match="must_end holds indices outside"):
        build_program(g, Pins(must_end=np.array([9])))


def test_event_pins_in_a_window() -> None:
    g = division_graph()
    ref = solve_joint(g)
    sol = solve_joint(g, pins=Pins(forbid_divide=np.array([0])), window=(0, 1), warm_start=ref)
    assert sol.edge_selected.sum() == 1  # the mother's outgoing side is in the window's problem


def test_pins_as_costs() -> None:
    g = division_graph()
    p = pinned_costs(g, Pins(forbid_edges=np.array([1]), must_end=np.array([0])))
    assert p.edge_cost[1] == pytest.approx(g.edge_cost[1] + PIN_NATS)
    assert p.disappear_cost[0] == pytest.approx(g.disappear_cost[0] - PIN_NATS)
    assert pinned_costs(g, None) is g
    sol = solve_joint(p)
    assert not sol.edge_selected.any()  # ending at 0 is now by far the cheapest
