"""Option scores computed once per model: ``trackdb calibrate`` stores the temperature-free
scores of AS (and the frame pairs' max-marginals they and the K best share), and a following
``trackdb uncertainty`` of the same model re-tempers them instead of sampling again.

A temperature only divides the scores before each cell's softmax
(:func:`solvers.uncertainty.with_temperature`), so the re-tempered probabilities are the ones a
fresh run computes. The scores are found by a key, the digest of everything they depend on: the
model's costs and structure as rebuilt (the edit log's pins are folded into the costs), its
node and edge ids, the current solution and its solve run, the method, K, and the code that
scores; any change to one of them recomputes. Only per-frame-pair AS is reused: its ranked
alternatives come from the K best of the model, not from the scores (FP and FP+A rank their own
samples, SM is a cheap softmax, and AS over competing candidates weighs the K best the
ranking needs anyway).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers.costs import fold_pairs
from solvers.kbest_joint import PairDeltas, lap_applies
from solvers.lap import frame_pairs
from solvers.uncertainty import Method, Uncertainty, with_temperature
from trackdb.stages.cost_model import module_digest
from trackdb.store import option_scores
from trackdb.store.core import Connection, Store

if TYPE_CHECKING:
    from trackdb.stages.uncertainty import Model


@functools.cache
def scoring_code() -> str:
    """Digest of the modules that compute AS scores and max-marginals."""
    import solvers.costs
    import solvers.kbest_joint
    import solvers.lap
    import solvers.max_marginals
    import solvers.murty
    import solvers.uncertainty

    return module_digest(
        solvers.costs,
        solvers.kbest_joint,
        solvers.lap,
        solvers.max_marginals,
        solvers.murty,
        solvers.uncertainty,
    )


def reusable(model: Model, method: Method) -> bool:
    """Whether ``method``'s scores on ``model`` are stored and reused: per-frame-pair AS."""
    return method is Method.AS and lap_applies(fold_pairs(model.graph))


def key(model: Model, method: Method, k: int) -> str:
    """Digest of what the scores of ``method`` with ``k`` on ``model`` depend on."""
    h = hashlib.sha256()

    def add(tag: str, value: Any) -> None:
        h.update(tag.encode())
        if value is None:
            h.update(b"<none>")
        elif isinstance(value, np.ndarray):
            a = np.ascontiguousarray(value)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(repr(value).encode())

    add("code", scoring_code())
    add("method", method.value)
    add("k", int(k))
    add("solution", (model.solution_id, model.solve_run_id))
    for f in dataclasses.fields(model.graph):
        add(f.name, getattr(model.graph, f.name))
    add("node_ids", np.asarray(model.node_ids, np.int64))
    add("edge_ids", np.asarray(model.edge_ids, np.int64))
    add("node_selected", model.rebuilt.node_selected)
    add("edge_selected", model.rebuilt.edge_selected)
    return h.hexdigest()


def save(conn: Connection, run_id: int, model: Model, k: int, unc: Uncertainty, deltas: PairDeltas) -> None:
    """Store ``unc``'s scores (any temperature: they are temperature-free) and the frame pairs'
    max-marginals under the model's key, in the caller's transaction."""
    g = model.graph
    edge_delta = np.zeros(g.n_edges)
    appear_delta = np.zeros(g.n_nodes)
    parent = np.full(g.n_nodes, -1, np.int64)
    pairs = frame_pairs(fold_pairs(g))
    if len(pairs) != len(deltas):
        raise ValueError(f"deltas hold {len(deltas)} frame pairs, the graph has {len(pairs)}")
    for pair, (e, a, p) in zip(pairs, deltas):
        edge_delta[pair.edges] = e
        appear_delta[pair.targets] = a
        parent[pair.targets] = p
    arrays = {
        "edge_score": unc.edge_score,
        "appear_score": unc.appear_score,
        "node_p": unc.node_p,
        "edge_delta": edge_delta,
        "appear_delta": appear_delta,
        "parent": parent,
    }
    option_scores.write(conn, run_id, key(model, unc.method, k), unc.method.value, k, unc.info or {}, arrays)


@dataclasses.dataclass(frozen=True)
class Reused:
    """Stored scores found for a model: the method's result at T = 1 and the max-marginals."""

    run_id: int  # the run that computed them
    uncertainty: Uncertainty
    deltas: PairDeltas

    def at(self, graph: Any, temperature: float) -> Uncertainty:
        """The probabilities at ``temperature``, with where the scores came from in ``info``
        (``seconds``: the re-tempering's)."""
        start = time.perf_counter()
        unc = with_temperature(self.uncertainty, graph, temperature)
        info = {**(unc.info or {}), "reused_scores": {"run_id": self.run_id}}
        return replace(unc, info=info, seconds=time.perf_counter() - start)


def find(store: Store, model: Model, method: Method, k: int) -> Reused | None:
    """The stored scores of ``method`` with ``k`` on exactly this model, or None."""
    if not reusable(model, method):
        return None
    stored = option_scores.find(store, key(model, method, k))
    if stored is None:
        return None
    g = model.graph
    a = stored.arrays
    if a["edge_score"].shape != (g.n_edges,) or a["appear_score"].shape != (g.n_nodes,):
        return None  # cannot happen for an equal key; refuse rather than misalign
    unc = Uncertainty(
        method=method,
        temperature=1.0,
        edge_score=a["edge_score"],
        appear_score=a["appear_score"],
        edge_p=np.zeros(g.n_edges),
        appear_p=np.zeros(g.n_nodes),
        node_p=a["node_p"],
        entropy=np.zeros(g.n_nodes),
        info=stored.info,
    )
    pairs = frame_pairs(fold_pairs(g))
    deltas = [(a["edge_delta"][p.edges], a["appear_delta"][p.targets], a["parent"][p.targets]) for p in pairs]
    return Reused(stored.run_id, unc, deltas)
