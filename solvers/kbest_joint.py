"""K best global solutions of the joint selection + assignment model.

Three exact schemes, picked by what the graph allows:

* **Fixed segmentation, one-frame links, no division pairs** (label images, LAP costs): the
  joint model is the frame-pair assignment model, and :func:`solvers.murty.kbest_lap`
  enumerates it exactly by Lawler–Murty partitioning, re-solving one frame pair per subspace.
* **Fixed segmentation, one-frame links, division pairs** (label images, joint costs): with
  every node selected the program splits into independent frame-pair programs (a node's
  incoming side belongs to the pair before it, its outgoing events, continuations and division
  pairs to the pair after it), so the K best of the movie are the K best sums of one solution
  per pair. Each pair's solutions are enumerated on demand by binary Lawler partitioning of
  its small integer program (:class:`_PairRanking`), and the sums by the usual heap over rank
  vectors (:func:`_kbest_sums`). The pairs' optima come from one call of the exact
  fixed-segmentation solver (:func:`solvers.assignment.solve_fixed`) and the "keep them all,
  add one" half of each optimum's split from its cheapest one-source addition; a pair's
  "drop one" program waits behind a lower bound from the folded graph's max-marginals
  (:func:`_drop_bounds`) and is solved only when the sums reach that bound. On the bacteria
  movie (k = 10) that is 26 programs instead of 168 (10.3 s → 2.2 s, load 5–7; the
  ``kbest.seconds`` of ``benchmarks/doubt_workflow.py``). As in :func:`solvers.lap.solve_lap`,
  a fixed segmentation means every node is selected: this equals the joint model with every
  node pinned (tested against the no-good scheme with such pins).
* **Anything else** (competing candidates, gap-closing links): the integer program of
  :mod:`solvers.model` is solved K times, each time with a no-good cut that removes every
  solution found so far. Node and edge variables fix all others (appear, disappear, division
  and pair variables follow from them, see :func:`solvers.model.completion`), so the cut
  ``Σ_{v∈S}(1−v) + Σ_{v∉S} v ≥ 1`` over node and edge columns removes exactly solution S. Each
  re-solve is run to optimality (relative gap 0), so the k-th solve returns the k-th best.

Why not no-good cuts everywhere: on the bacteria movie with GT masks (3,519 cells, 35,419
links, 18,927 division pairs) the whole-movie re-solve with one dense cut found no solution in
120 s (HiGHS' LP bound sits a fraction of a nat above the optimum and branching on 40,000
columns does not close it), while every frame pair's second best takes 0.01–0.3 s. Partitioning
a pair on its optimum's selected links ("drop at least one of them" / "keep them all and add
one") instead of a no-good over every link was 2–4× faster again on the largest pairs.

Every scheme says whether it delivered what was asked (:class:`KBest`): a list can be short
because fewer solutions exist (``exhausted``) or because a re-solve stopped at its time limit
before proving optimality (``stopped``, with the reason); in the second case the solutions it
did return are still the exact best ones, in order.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from solvers.lap import FramePair, frame_pairs
from solvers.model import IntegerProgram, build_program, objective
from solvers.murty import kbest_lap
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus

Progress = Callable[[int, int], None]  # (steps done, steps expected) of a long enumeration
BEYOND = float("inf")  # _PairRanking.get: the asked rank lies above the limit given
# per frame pair: (Δ of its edges, Δ of "appears" per target, the optimum's parent map)
PairDeltas = Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class KBest:
    """The K best solutions found, best first, and whether that is everything that was asked."""

    solutions: tuple[Solution, ...]
    requested: int
    scheme: str  # "murty", "pairs" or "nogood"
    exhausted: bool = False  # fewer than ``requested`` solutions exist: the list is all of them
    stopped: str | None = None  # why the enumeration ended early (a time-capped re-solve)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """All ``requested`` solutions were found, or all that exist."""
        return self.stopped is None

    def summary(self) -> dict[str, object]:
        """What a run row reports about the enumeration."""
        return {
            "scheme": self.scheme,
            "requested": self.requested,
            "found": len(self.solutions),
            "exhausted": self.exhausted,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
        }


def lap_applies(graph: CandidateGraph) -> bool:
    """Whether the graph is a fixed segmentation with one-frame links (Murty is exact)."""
    if getattr(graph, "division_pairs", None) is not None or not fixed_segmentation(graph):
        return False
    has_out = np.zeros(graph.n_nodes, bool)
    has_out[graph.edge_source] = True
    return not np.any(has_out & (graph.disappear_cost + graph.division_cost < 0))


def fixed_segmentation(graph: CandidateGraph) -> bool:
    """No competing candidates and only one-frame links: selecting every node decouples the
    frame pairs."""
    if np.any(graph.node_hier_parent >= 0):
        return False
    dt = graph.node_t[graph.edge_target] - graph.node_t[graph.edge_source]
    return not np.any(dt != 1)


def kbest_joint(
    graph: CandidateGraph,
    k: int,
    *,
    pins: Pins | None = None,
    method: str = "auto",
    time_limit: float = 300.0,
    progress: Progress | None = None,
    pair_deltas: PairDeltas | None = None,
) -> KBest:
    """The ``k`` best solutions of the joint model, best first, each with its objective.

    ``method``: ``"auto"`` (Murty when :func:`lap_applies`, frame pairs when
    :func:`fixed_segmentation`, else no-good cuts; the first two only without pins),
    ``"murty"``, ``"pairs"`` or ``"nogood"``. ``time_limit`` is per re-solve (of a frame pair
    or of the whole movie); a re-solve that stops early ends the list and says so in
    :attr:`KBest.stopped`. ``progress(done, expected)`` is called as the enumeration advances.
    ``pair_deltas``: :func:`pair_max_marginals` of the graph, when the caller has them (AS
    per frame pair computes the same), for the frame-pair scheme's bounds.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a finite number of seconds > 0, got {time_limit!r}")
    if method not in ("auto", "murty", "pairs", "nogood"):
        raise ValueError(f"unknown method {method!r}; choose auto, murty, pairs or nogood")
    if method == "auto":
        method = "nogood"
        if pins is None and lap_applies(graph):
            method = "murty"
        elif pins is None and fixed_segmentation(graph):
            method = "pairs"
    if method in ("murty", "pairs") and pins is not None:
        raise ValueError(f"the {method} scheme takes no pins; use method='nogood'")
    start = time.perf_counter()
    if method == "murty":
        sols = kbest_lap(graph, int(k))
        return KBest(tuple(sols), int(k), "murty", len(sols) < k, None, time.perf_counter() - start)
    if method == "pairs":
        if not fixed_segmentation(graph):
            raise ValueError("the pairs scheme needs a fixed segmentation with one-frame links")
        return _kbest_pairs(graph, int(k), float(time_limit), progress, pair_deltas)
    return _kbest_nogood(graph, int(k), pins, float(time_limit), progress)


def _milp(
    prog: IntegerProgram,
    A: sp.csr_matrix,
    lo: np.ndarray,
    hi: np.ndarray,
    lb: np.ndarray,
    time_limit: float,
    ub: np.ndarray | None = None,
) -> OptimizeResult:
    return milp(
        prog.c,
        constraints=LinearConstraint(A, lo, hi),
        integrality=np.ones(prog.n_vars, np.int64),
        bounds=Bounds(lb, prog.ub if ub is None else ub),
        options={"time_limit": time_limit, "mip_rel_gap": 0.0, "presolve": True},
    )


def _stop_reason(res: OptimizeResult, what: str, time_limit: float) -> str | None:
    """None when ``res`` is a proven optimum or a proof of infeasibility, else why not."""
    if res.status in (0, 2):
        return None
    if res.status == 1:
        found = "a solution" if res.x is not None else "no solution"
        return f"{what} reached its time limit of {time_limit:g} s with {found} and no proof of optimality"
    return f"{what} ended with HiGHS status {res.status}: {res.message}"


def _kbest_nogood(
    graph: CandidateGraph, k: int, pins: Pins | None, time_limit: float, progress: Progress | None
) -> KBest:
    start = time.perf_counter()
    prog = build_program(graph, pins)
    n_key = graph.n_nodes + graph.n_edges  # x and y columns come first
    cuts: list[np.ndarray] = []
    out: list[Solution] = []
    stopped = None
    for rank in range(k):
        A, lo, hi = prog.A, prog.row_lo, prog.row_hi
        if cuts:
            key = np.array(cuts)  # (r, n_key) 0/1
            rows = sp.csr_matrix(np.hstack([1.0 - 2.0 * key, np.zeros((len(cuts), prog.n_vars - n_key))]))
            A = sp.vstack([A, rows], format="csr")
            lo = np.concatenate([lo, 1.0 - key.sum(axis=1)])
            hi = np.concatenate([hi, np.full(len(cuts), np.inf)])
        t0 = time.perf_counter()
        res = _milp(prog, A, lo, hi, prog.lb, time_limit)
        stopped = _stop_reason(res, f"the re-solve for rank {rank}", time_limit)
        if stopped is not None or res.x is None:
            break  # a capped re-solve may return a solution, but not provably the next best
        v = np.rint(res.x)
        out.append(
            Solution(
                node_selected=v[prog.x] > 0.5,
                edge_selected=v[prog.y] > 0.5,
                objective=float(res.fun),
                status=SolveStatus.OPTIMAL,
                bound=float(getattr(res, "mip_dual_bound", np.nan) or np.nan),
                gap=float(getattr(res, "mip_gap", np.nan) or 0.0),
                seconds=time.perf_counter() - t0,
                backend="highs-nogood",
                info={"rank": rank, "total_seconds": time.perf_counter() - start},
            )
        )
        cuts.append(v[:n_key])
        if progress is not None:
            progress(rank + 1, k)
    exhausted = stopped is None and len(out) < k
    return KBest(tuple(out), k, "nogood", exhausted, stopped, time.perf_counter() - start)


# --- frame pairs ------------------------------------------------------------------------------
class _Stopped(Exception):
    """A frame pair's re-solve ended without a proof; the message says which and why."""


@dataclass(order=True)
class _Subspace:
    """A part of one pair's solution space (bounds + ``Σ y ≤ / ≥`` rows) and its optimum."""

    objective: float
    tie: int
    lb: np.ndarray = field(compare=False)
    rows: tuple[tuple[np.ndarray, float, float], ...] = field(compare=False)  # (edge cols, lo, hi)
    selected: np.ndarray = field(compare=False)  # the optimum's edge selection (local edges)


class _PairRanking:
    """The solutions of one frame pair, best first, enumerated on demand.

    Binary Lawler partitioning: a subspace X whose optimum selects links S splits, apart from
    S itself, into "at least one free link of S is dropped" (one row ``Σ_{e∈S free} y_e ≤
    |S free| − 1``) and "every link of S is kept and at least one free other link is added"
    (bounds ``y_S = 1`` and one row ``Σ y ≥ 1``): disjoint, and together all of X but S. With
    every node selected the links determine every other variable of the pair, so the
    partition is exact. A ranked solution's children are solved when the next rank is asked for.
    """

    def __init__(
        self,
        graph: CandidateGraph,
        pair: FramePair,
        time_limit: float,
        optimum: np.ndarray | None = None,
        drop_bound: float | None = None,
    ) -> None:
        self.pair, self.time_limit = pair, time_limit
        # a lower bound on the pair objective of every solution that drops a link of the
        # optimum (:func:`_drop_bounds`): that child is solved only once nothing cheaper is left
        self.drop_bound = drop_bound
        self.pending: list[tuple[float, np.ndarray, tuple[tuple[np.ndarray, float, float], ...]]] = []
        self.sub = sub = _pair_graph(graph, pair)
        self.prog = build_program(sub, Pins(must_nodes=np.arange(sub.n_nodes)))
        self.ranked: list[_Subspace] = []  # best first
        self.n_split = 0  # ranked[:n_split] have their children in the heap
        self.heap: list[_Subspace] = []
        self.counter = itertools.count()
        self.solves = 0
        if optimum is not None:  # the pair's part of an exact optimum of the movie
            value = objective(sub, np.ones(sub.n_nodes, bool), optimum)
            first: _Subspace | None = _Subspace(value, next(self.counter), self.prog.lb, (), optimum)
        else:
            first = self._solve(self.prog.lb, ())
        if first is None:  # cannot happen: every node may appear and disappear
            raise ValueError(f"frame pair t={pair.t} has no feasible solution")
        self.ranked.append(first)

    def _solve(
        self, lb: np.ndarray, rows: tuple[tuple[np.ndarray, float, float], ...], ub: np.ndarray | None = None
    ) -> _Subspace | None:
        prog = self.prog
        A, lo, hi = prog.A, prog.row_lo, prog.row_hi
        if rows:
            indptr = np.concatenate([[0], np.cumsum([len(c) for c, _, _ in rows])])
            cols = prog.n_nodes + np.concatenate([c for c, _, _ in rows])
            extra = sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(len(rows), prog.n_vars))
            A = sp.vstack([A, extra], format="csr")
            lo = np.concatenate([lo, [r[1] for r in rows]])
            hi = np.concatenate([hi, [r[2] for r in rows]])
        self.solves += 1
        res = _milp(prog, A, lo, hi, lb, self.time_limit, ub)
        reason = _stop_reason(res, f"the re-solve of frame pair t={self.pair.t}", self.time_limit)
        if reason is not None:
            raise _Stopped(reason)
        if res.x is None:  # infeasible: an empty subspace
            return None
        selected = np.rint(res.x[prog.y]) > 0.5
        return _Subspace(float(res.fun), next(self.counter), lb, rows, selected)

    def get(self, rank: int, limit: float | None = None) -> float | None:
        """The pair objective of its ``rank``-th best solution (None: fewer exist).

        With ``limit``, a value above it is not needed: :data:`BEYOND` (``inf``) is returned
        once that is proven, and a pending child is solved without the options that only
        solutions above ``limit`` can use (:meth:`_pruned_ub`)."""
        while len(self.ranked) <= rank:
            if self.n_split < len(self.ranked):  # children are solved only when needed
                self._split(self.ranked[self.n_split])
                self.n_split += 1
            elif self.pending and (not self.heap or self.pending[0][0] < self.heap[0].objective):
                bound, lb, rows = self.pending[0]
                if limit is not None and bound > limit:
                    return BEYOND
                ub = None if limit is None else self._pruned_ub(limit - self.ranked[0].objective)
                child = self._solve(lb, rows, ub)
                if ub is not None and limit is not None and (child is None or child.objective > limit):
                    # above limit (or empty) without those options, so above limit with them
                    self.pending[0] = (max(bound, float(np.nextafter(limit, np.inf))), lb, rows)
                    self.pending.sort(key=lambda entry: entry[0])
                    continue
                self.pending.pop(0)
                if child is not None:
                    heapq.heappush(self.heap, child)
            elif not self.heap:
                return None
            else:
                self.ranked.append(heapq.heappop(self.heap))
        return self.ranked[rank].objective

    def _pruned_ub(self, within: float) -> np.ndarray | None:
        """Upper bounds that remove every option dearer than leaving its sides unused by more
        than ``within`` (None: the program has no listed pairs to price options by).

        A solution of the optimum's "drop one" child that takes such an option costs more
        than the same solution without it (still in the child: it drops links only) by that
        excess, so it lies more than ``within`` above the pair's optimum; solutions within it
        use none of them. Only for that child (more rows would not stay satisfied)."""
        g, prog = self.sub, self.prog
        if g.division_pairs is None or g.division_pair_cost is None:
            return None
        src, dst, c = g.edge_source, g.edge_target, g.edge_cost
        a, b = g.division_pairs[:, 0], g.division_pairs[:, 1]
        u = src[a]
        total = c[a] + c[b] + g.division_cost[u] + g.division_pair_cost
        alone = np.minimum(
            g.disappear_cost[u] + g.appear_cost[dst[a]] + g.appear_cost[dst[b]],
            np.minimum(c[a] + g.appear_cost[dst[b]], c[b] + g.appear_cost[dst[a]]),
        )
        n, e = prog.n_nodes, prog.n_edges
        iz = 4 * n + e  # columns: x, y, a, d, s, then z per pair and q per edge (solvers.model)
        ub = prog.ub.copy()
        ub[iz + np.flatnonzero(total - alone > within)] = 0.0
        ub[iz + prog.n_pairs + np.flatnonzero(c - g.disappear_cost[src] - g.appear_cost[dst] > within)] = 0.0
        return ub

    def peek(self, rank: int) -> tuple[float, bool] | None:
        """(objective, exact) of the ``rank``-th best, ``rank`` at most one past the ranked
        ones: exact when known without a program, else a lower bound (a pending child's);
        None when fewer solutions exist."""
        if rank < len(self.ranked):
            return self.ranked[rank].objective, True
        while self.n_split < len(self.ranked):
            self._split(self.ranked[self.n_split])
            self.n_split += 1
        if self.pending and (not self.heap or self.pending[0][0] < self.heap[0].objective):
            return self.pending[0][0], False
        value = self.get(rank)
        return None if value is None else (value, True)

    def _split(self, x: _Subspace) -> None:
        y0 = self.prog.n_nodes
        forced = x.lb[y0 : y0 + self.prog.n_edges] > 0.5
        free_kept = np.flatnonzero(x.selected & ~forced)
        if len(free_kept):  # drop at least one of them
            rows = (*x.rows, (free_kept, -np.inf, len(free_kept) - 1.0))
            if self.drop_bound is not None and not x.rows and not forced.any():  # the optimum's
                self.pending.append((max(self.drop_bound, x.objective), x.lb, rows))
            else:
                child = self._solve(x.lb, rows)
                if child is not None:
                    heapq.heappush(self.heap, child)
        others = np.flatnonzero(~x.selected & (self.prog.ub[y0 : y0 + self.prog.n_edges] > 0.5))
        if len(others):  # keep them all, add at least one
            lb = x.lb.copy()
            lb[y0 + np.flatnonzero(x.selected)] = 1.0
            rows = (*x.rows, (others, 1.0, np.inf))
            if not x.rows and not forced.any():  # the whole pair's space: no program needed
                child = self._cheapest_addition(x, lb, rows)
            else:
                child = self._solve(lb, rows)
            if child is not None:
                heapq.heappush(self.heap, child)

    def _cheapest_addition(
        self, x: _Subspace, lb: np.ndarray, rows: tuple[tuple[np.ndarray, float, float], ...]
    ) -> _Subspace | None:
        """The optimum of "keep every link of ``x`` and add at least one" when ``x`` is the
        pair's optimum, without a program. With every node selected, a superset T of the
        optimum S changes each source on its own (its added links, to targets S leaves
        appearing, which only they take), and no such change alone is cheaper (S is optimal),
        so the best T adds the links of one source: one link from a vanishing source, a listed
        daughter pair from a vanishing source, or a second daughter to a continuing one."""
        g = self.sub
        src, dst, c = g.edge_source, g.edge_target, g.edge_cost
        sel = x.selected
        n_out = np.bincount(src[sel], minlength=g.n_nodes)
        covered = np.zeros(g.n_nodes, bool)
        covered[dst[sel]] = True
        free = ~sel & ~covered[dst] & (self.prog.ub[self.prog.n_nodes : self.prog.n_nodes + g.n_edges] > 0.5)
        # delta of each free link as a vanishing source's continuation / extra daughter
        gain = c - g.appear_cost[dst]
        best, add = np.inf, np.zeros(0, np.int64)
        single = np.flatnonzero(free & (n_out[src] == 0))
        if len(single):
            d = gain[single] - g.disappear_cost[src[single]]
            i = int(np.argmin(d))
            best, add = float(d[i]), single[i : i + 1]
        if g.division_pairs is not None and g.division_pair_cost is not None:
            a, b = g.division_pairs[:, 0], g.division_pairs[:, 1]
            u = src[a]
            price = g.division_pair_cost + g.division_cost[u]
            # a vanishing source divides into two free links
            ok = free[a] & free[b] & (n_out[u] == 0) & (dst[a] != dst[b])
            d = gain[a] + gain[b] + price - g.disappear_cost[u]
            # a continuing source takes a second daughter: the pair of its link and a free one
            ok1 = sel[a] & free[b] & (n_out[u] == 1)
            ok2 = sel[b] & free[a] & (n_out[u] == 1)
            for mask, value, extra in ((ok, d, None), (ok1, gain[b] + price, b), (ok2, gain[a] + price, a)):
                idx = np.flatnonzero(mask)
                if len(idx) and float(value[idx].min()) < best:
                    i = int(idx[np.argmin(value[idx])])
                    best = float(value[i])
                    add = np.array([a[i], b[i]]) if extra is None else np.array([extra[i]])
        else:  # any two out-links may be daughters
            price = g.division_cost
            order = np.flatnonzero(free)
            for u in np.unique(src[order]).tolist():
                links = order[src[order] == u]
                g_u = np.sort(gain[links])
                if n_out[u] == 1 and g_u[0] + price[u] < best:
                    best = float(g_u[0] + price[u])
                    add = links[np.argsort(gain[links])[:1]]
                if n_out[u] == 0 and len(links) >= 2 and g_u[0] + g_u[1] + price[u] - g.disappear_cost[u] < best:
                    best = float(g_u[0] + g_u[1] + price[u] - g.disappear_cost[u])
                    add = links[np.argsort(gain[links])[:2]]
        if not np.isfinite(best):
            return None
        selected = sel.copy()
        selected[add] = True
        self.solves += 1
        return _Subspace(x.objective + best, next(self.counter), lb, rows, selected)


def _pair_graph(graph: CandidateGraph, pair: FramePair) -> CandidateGraph:
    """The two frames of ``pair`` as a graph of their own, with the division pairs of its
    sources (node costs dropped: every node is selected, so they are a constant)."""
    nodes = np.concatenate([pair.sources, pair.targets])
    local = np.full(graph.n_nodes, -1, np.int64)
    local[nodes] = np.arange(len(nodes))
    division_pairs = division_pair_cost = None
    if graph.division_pairs is not None and graph.division_pair_cost is not None:
        edge_local = np.full(graph.n_edges, -1, np.int64)
        edge_local[pair.edges] = np.arange(len(pair.edges))
        mine = edge_local[graph.division_pairs[:, 0]] >= 0
        division_pairs = edge_local[graph.division_pairs[mine]]
        division_pair_cost = graph.division_pair_cost[mine]
    return CandidateGraph(
        node_t=graph.node_t[nodes],
        node_cost=np.zeros(len(nodes)),
        node_hier_parent=np.full(len(nodes), -1),
        edge_source=local[graph.edge_source[pair.edges]],
        edge_target=local[graph.edge_target[pair.edges]],
        edge_cost=graph.edge_cost[pair.edges],
        appear_cost=graph.appear_cost[nodes],
        disappear_cost=graph.disappear_cost[nodes],
        division_cost=graph.division_cost[nodes],
        division_pairs=division_pairs,
        division_pair_cost=division_pair_cost,
        edge_division_cost=None if graph.edge_division_cost is None else graph.edge_division_cost[pair.edges],
    )


def _kbest_sums(
    rankings: list[_PairRanking], k: int, progress: Progress | None
) -> tuple[list[tuple[int, ...]], str | None]:
    """The ``k`` cheapest rank vectors (one rank per pair), cheapest first, and why the search
    stopped early (None: it did not).

    Every vector other than all-zeros has one parent: lower its last non-zero rank by one.
    A popped vector whose last raised pair is j therefore pushes "raise pair j once more" and
    "raise pair q from 0 to 1" for every q > j; costs never decrease along these moves, so
    vectors leave the heap cheapest first, each once.
    """
    m = len(rankings)
    counter = itertools.count()
    # (delta, tie, ranks, last raised pair, base): with a base (the delta of the vector it was
    # raised from), delta is only a lower bound, made exact when it reaches the top (the
    # raised pair's program is solved only then)
    heap: list[tuple[float, int, tuple[int, ...], int, float | None]] = [(0.0, next(counter), (0,) * m, -1, None)]
    out: list[tuple[int, ...]] = []
    # the k smallest exact deltas of distinct vectors seen: the k-th bounds the k-th best
    known: list[float] = [0.0]

    def record(value: float) -> None:
        bisect.insort(known, value)
        del known[k:]

    done = m  # progress: the pairs' optima are known, then their second bests, then the k picks
    try:
        while heap and len(out) < k:
            delta, _, ranks, last, base = heapq.heappop(heap)
            if base is not None:
                prev = rankings[last].ranked[ranks[last] - 1].objective
                limit = prev + (known[k - 1] - base) if len(known) >= k else None
                value = rankings[last].get(ranks[last], limit)
                # above the k-th bound: neither this vector nor any raised from it is needed
                if value is not None and value != BEYOND:
                    heapq.heappush(heap, (base + value - prev, next(counter), ranks, last, None))
                    record(base + value - prev)
                continue
            out.append(ranks)
            if len(out) == k:
                if progress is not None:
                    progress(2 * m + k, 2 * m + k)
                break
            moves = ([last] if last >= 0 else []) + [q for q in range(last + 1, m) if ranks[q] == 0]
            for q in moves:
                peeked = rankings[q].peek(ranks[q] + 1)
                if peeked is not None:
                    raised = ranks[:q] + (ranks[q] + 1,) + ranks[q + 1 :]
                    step = peeked[0] - rankings[q].ranked[ranks[q]].objective
                    heapq.heappush(heap, (delta + step, next(counter), raised, q, None if peeked[1] else delta))
                    if peeked[1]:
                        record(delta + step)
                if last < 0 and progress is not None:
                    done += 1
                    progress(done, 2 * m + k)
            if progress is not None:
                progress(2 * m + len(out), 2 * m + k)
    except _Stopped as exc:
        return out, str(exc)
    return out, None


def _kbest_pairs(
    graph: CandidateGraph, k: int, time_limit: float, progress: Progress | None, pair_deltas: PairDeltas | None = None
) -> KBest:
    start = time.perf_counter()
    pairs = frame_pairs(graph)
    everyone = np.ones(graph.n_nodes, bool)
    optimum = _fixed_optimum(graph, time_limit)
    bounds = None if optimum is None else _drop_bounds(graph, pairs, optimum, pair_deltas)
    rankings = []
    try:
        for i, pair in enumerate(pairs):
            rankings.append(
                _PairRanking(
                    graph,
                    pair,
                    time_limit,
                    None if optimum is None else optimum[pair.edges],
                    None if bounds is None else bounds[i],
                )
            )
            if progress is not None:
                progress(i + 1, 2 * len(pairs) + k)
    except _Stopped as exc:
        return KBest((), k, "pairs", False, str(exc), time.perf_counter() - start)
    vectors, stopped = _kbest_sums(rankings, k, progress)
    out = []
    for rank, ranks in enumerate(vectors):
        edges = np.zeros(graph.n_edges, bool)
        for ranking, r in zip(rankings, ranks):
            edges[ranking.pair.edges[ranking.ranked[r].selected]] = True
        out.append(
            Solution(
                node_selected=everyone,
                edge_selected=edges,
                objective=objective(graph, everyone, edges),
                status=SolveStatus.OPTIMAL,
                seconds=time.perf_counter() - start,
                backend="highs-pairs",
                info={"rank": rank, "pair_solves": sum(r.solves for r in rankings)},
            )
        )
    exhausted = stopped is None and len(out) < k
    return KBest(tuple(out), k, "pairs", exhausted, stopped, time.perf_counter() - start)


def _fixed_optimum(graph: CandidateGraph, time_limit: float) -> np.ndarray | None:
    """The links of an optimum of the movie with every node selected, from the exact
    fixed-segmentation solver (:func:`solvers.assignment.solve_fixed`, one call instead of a
    program per frame pair); None where it does not apply or did not prove its optimum.

    Node costs are a constant when every node is selected, so they are lowered until keeping
    a cell never costs more than leaving it out (the solver's condition); the links stay."""
    from solvers.assignment import not_fixed_reason, solve_fixed

    kept = replace(graph, node_cost=np.minimum(graph.node_cost, -(graph.appear_cost + graph.disappear_cost) - 1.0))
    if not_fixed_reason(kept) is not None:
        return None
    sol = solve_fixed(kept, time_limit=time_limit, gap=0.0)
    if sol.status is not SolveStatus.OPTIMAL or not sol.node_selected.all():
        return None
    return np.asarray(sol.edge_selected, bool)


def pair_max_marginals(graph: CandidateGraph) -> PairDeltas | None:
    """Per frame pair of the folded graph (:func:`solvers.costs.fold_pairs`), its options'
    max-marginals and the optimum they are measured from
    (:func:`solvers.max_marginals.option_deltas_and_optimum`); None where the folded graph is
    no frame-pair LAP."""
    from solvers.costs import fold_pairs
    from solvers.max_marginals import option_deltas_and_optimum

    folded = fold_pairs(graph)
    if not lap_applies(folded):
        return None
    return [option_deltas_and_optimum(folded, pair) for pair in frame_pairs(folded)]


def _drop_bounds(
    graph: CandidateGraph, pairs: list[FramePair], optimum: np.ndarray, pair_deltas: PairDeltas | None = None
) -> list[float] | None:
    """Per frame pair, a lower bound on the pair objective of every solution that drops at
    least one link of ``optimum`` (None where the folded graph is no frame-pair LAP).

    The folded graph (:func:`solvers.costs.fold_pairs`: a link costs at most its share of any
    division, any two links may be daughters) prices every solution of the joint model at
    most at its joint cost. A solution that drops the link into target v gives v another
    option o, so it costs at least the folded optimum plus o's max-marginal there
    (:func:`solvers.max_marginals.option_deltas`); the bound is the smallest over the
    optimum's linked targets and their other options."""
    from solvers.costs import fold_pairs

    deltas = pair_max_marginals(graph) if pair_deltas is None else pair_deltas
    if deltas is None:
        return None
    if len(deltas) != len(pairs):
        raise ValueError(f"pair_deltas holds {len(deltas)} frame pairs, the graph has {len(pairs)}")
    folded = fold_pairs(graph)
    out = []
    for pair, (edge_delta, appear_delta, parent) in zip(pairs, deltas):
        sel = optimum[pair.edges]
        if len(pair.sources) == 0 or len(pair.targets) == 0 or not sel.any():
            out.append(-np.inf)
            continue
        sub = _pair_graph(folded, pair)
        best = np.zeros(len(pair.edges), bool)
        best[np.searchsorted(pair.edges, parent[parent >= 0])] = True
        value = objective(sub, np.ones(sub.n_nodes, bool), best)
        linked = np.zeros(len(pair.targets), bool)
        linked[pair.edge_col[sel]] = True
        other = ~sel & linked[pair.edge_col]
        m = min(float(edge_delta[other].min(initial=np.inf)), float(appear_delta[linked].min(initial=np.inf)))
        # a hair below, so that rounding never lifts a bound above the value it bounds
        out.append(value + m - 1e-9 * max(1.0, abs(value)))
    return out
