"""Plain data exchanged between the solvers and the rest of trackdb.

Indices are local (0..N-1 nodes, 0..E-1 edges); the store maps them to database ids. Keeping
these as frozen dataclasses of numpy arrays lets solvers be tested and benchmarked without a
database, and keeps OR-Tools types out of every public signature.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


class SolveStatus(enum.Enum):
    """Outcome of one optimisation, as the store records it in ``solution.status``."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # a solution exists but the gap was not closed (time limit)
    INFEASIBLE = "infeasible"
    TIMEOUT = "timeout"  # no solution found within the time limit
    ERROR = "error"


def _as(a: npt.ArrayLike, dtype: npt.DTypeLike) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=dtype))


@dataclass(frozen=True)
class CandidateGraph:
    """A tracking problem: candidate nodes (possibly competing, in a forest) and candidate links.

    ``node_cost`` is added when a node is selected (negative = the node is likely a real cell).
    ``node_hier_parent[i]`` is the index of the candidate that contains ``i`` (−1 for a root);
    at most one node of every leaf-to-root path may be selected. Label images give forests of
    single-node trees (all −1). Edges go from an earlier to a later frame (``t[src] < t[dst]``).
    ``appear_cost``/``disappear_cost`` are paid by a selected node with no incoming/outgoing
    edge (0 at the first/last frame and at the image border); ``division_cost`` is paid by a
    node that has two selected outgoing edges.
    """

    node_t: np.ndarray
    node_cost: np.ndarray
    node_hier_parent: np.ndarray
    edge_source: np.ndarray
    edge_target: np.ndarray
    edge_cost: np.ndarray
    appear_cost: np.ndarray
    disappear_cost: np.ndarray
    division_cost: np.ndarray
    # Optional division pairs (added for solvers/costs.py, compatible: default None). When given,
    # a node may divide only into one of the listed pairs of its out-edges, and the pair's cost is
    # paid on top of the two edge costs and ``division_cost``; this is how shape-based division
    # scores (daughters that together resemble the mother) reach the solver. None = any two
    # out-edges may form a division.
    division_pairs: np.ndarray | None = None  # (P, 2) edge indices with a common source
    division_pair_cost: np.ndarray | None = None  # (P,)
    # Optional, for the frame-pair LAP (solvers.lap): what a mother pays on top of the edge's
    # cost and ``division_cost`` when the edge is its second daughter (+inf: it cannot be one);
    # how division pairs reach a solver without pair variables (solvers.costs.division_slots).
    # None = 0 for every edge.
    edge_division_cost: np.ndarray | None = None  # (E,)

    def __post_init__(self) -> None:
        n = len(self.node_t)
        object.__setattr__(self, "node_t", _as(self.node_t, np.int64))
        for name in ("node_cost", "appear_cost", "disappear_cost", "division_cost"):
            arr = _as(getattr(self, name), np.float64)
            if arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n},)")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinite values")
            object.__setattr__(self, name, arr)
        parent = _as(self.node_hier_parent, np.int64)
        if parent.shape != (n,) or np.any(parent >= n) or np.any(parent < -1):
            raise ValueError("node_hier_parent must hold indices in [-1, N)")
        object.__setattr__(self, "node_hier_parent", parent)
        src = _as(self.edge_source, np.int64)
        dst = _as(self.edge_target, np.int64)
        cost = _as(self.edge_cost, np.float64)
        if not (src.shape == dst.shape == cost.shape) or src.ndim != 1:
            raise ValueError("edge_source, edge_target and edge_cost must be 1-D of equal length")
        if len(src) and (src.min() < 0 or dst.min() < 0 or src.max() >= n or dst.max() >= n):
            raise ValueError("edge endpoints must be node indices in [0, N)")
        if len(src) and np.any(self.node_t[src] >= self.node_t[dst]):
            raise ValueError("every edge must go forward in time")
        if not np.all(np.isfinite(cost)):
            raise ValueError("edge_cost contains NaN or infinite values")
        object.__setattr__(self, "edge_source", src)
        object.__setattr__(self, "edge_target", dst)
        object.__setattr__(self, "edge_cost", cost)
        if (self.division_pairs is None) != (self.division_pair_cost is None):
            raise ValueError("division_pairs and division_pair_cost must be given together")
        if self.division_pairs is not None and self.division_pair_cost is not None:
            pairs = _as(self.division_pairs, np.int64).reshape(-1, 2)
            pcost = _as(self.division_pair_cost, np.float64)
            if pcost.shape != (len(pairs),) or not np.all(np.isfinite(pcost)):
                raise ValueError("division_pair_cost must be finite, one value per pair")
            if len(pairs) and (
                pairs.min() < 0
                or pairs.max() >= len(src)
                or np.any(src[pairs[:, 0]] != src[pairs[:, 1]])
                or np.any(pairs[:, 0] == pairs[:, 1])
            ):
                raise ValueError("division_pairs must be two distinct edges with the same source")
            object.__setattr__(self, "division_pairs", pairs)
            object.__setattr__(self, "division_pair_cost", pcost)

        if self.edge_division_cost is not None:
            extra = _as(self.edge_division_cost, np.float64)
            if extra.shape != (len(src),) or np.any(np.isnan(extra)) or np.any(extra == -np.inf):
                raise ValueError("edge_division_cost must be one value per edge, finite or +inf")
            object.__setattr__(self, "edge_division_cost", extra)

    @property
    def n_nodes(self) -> int:
        return len(self.node_t)

    @property
    def n_edges(self) -> int:
        return len(self.edge_source)


@dataclass(frozen=True)
class Solution:
    """A selection of nodes and edges with its objective and solver diagnostics."""

    node_selected: np.ndarray  # (N,) bool
    edge_selected: np.ndarray  # (E,) bool
    objective: float
    status: SolveStatus
    bound: float = float("nan")
    gap: float = float("nan")
    seconds: float = 0.0
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_selected", _as(self.node_selected, bool))
        object.__setattr__(self, "edge_selected", _as(self.edge_selected, bool))


def _no_index() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class Pins:
    """User constraints for a (re-)solve: node / edge indices that must be / must not be
    selected, and node events: ``must_divide`` (two selected outgoing links, s = 1),
    ``forbid_divide`` (at most one, s = 0) and ``must_end`` (selected, no outgoing link, d = 1)."""

    must_nodes: np.ndarray = field(default_factory=_no_index)
    forbid_nodes: np.ndarray = field(default_factory=_no_index)
    must_edges: np.ndarray = field(default_factory=_no_index)
    forbid_edges: np.ndarray = field(default_factory=_no_index)
    must_divide: np.ndarray = field(default_factory=_no_index)
    forbid_divide: np.ndarray = field(default_factory=_no_index)
    must_end: np.ndarray = field(default_factory=_no_index)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _as(getattr(self, f.name), np.int64).reshape(-1))

    @property
    def has_events(self) -> bool:
        """Whether any division or ending is pinned (solvers without event variables refuse them)."""
        return bool(len(self.must_divide) or len(self.forbid_divide) or len(self.must_end))
