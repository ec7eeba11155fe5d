"""A solve's final cost model in and out of the store, and the candidate graph it prices.

``trackdb solve`` saves the :class:`solvers.costs.CostModel` its last round priced the graph
with (:func:`save`); a re-solve or an uncertainty run rebuilds exactly that graph
(:func:`chain_graph`): the same features from the same candidates, the stored motion field and
scales, so its costs are the solve's own. Cells that edits added after the solve have no stored
motion: they take the Gaussian-weighted mean shift of the nearest stored candidates of their
frame (the field is smooth by construction, :func:`solvers.motion.smooth_shift`) and their
frame's division rate. A solve stored before revision 0006 has no model; then the costs are
re-estimated from its stored solution (two rounds of :func:`solvers.motion.estimate_motion`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from inference.regions import mask_covariance
from inference.types import CandidateEdges, Candidates
from solvers.costs import CostModel, CostParams
from solvers.features import CellFeatures
from solvers.motion import MotionModel, estimate_motion, initial_motion
from solvers.types import Solution, SolveStatus
from trackdb.store import cost_models, solutions
from trackdb.store.core import Connection, Movie, Store
from trackdb.store.graph import positions

NEIGHBOURS = 8  # stored candidates whose shift an added cell averages
CHANGED_CODE = "stored, priced by cost code changed since the solve (re-run `trackdb solve` for its exact costs)"


def module_digest(*modules: ModuleType) -> str:
    """Digest of these modules' source files: what stored results computed by them carry, so
    results of other code are told apart."""
    h = hashlib.sha256()
    for mod in modules:
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def cost_code() -> str:
    """Digest of the modules that turn a stored model into costs: a stored model holds scales,
    not formulas, so a model saved by other code is priced differently by this one."""
    import solvers.costs
    import solvers.features
    import solvers.motion
    import solvers.node_costs

    return module_digest(solvers.costs, solvers.features, solvers.motion, solvers.node_costs)


def priced_as_saved(stored: cost_models.StoredCostModel) -> bool:
    """False when the model was saved by other cost code (models saved before the digest was
    kept cannot tell, and count as the same)."""
    saved = stored.scalars.get("cost_code")
    return saved is None or saved == cost_code()


def save(conn: Connection, run_id: int, node_ids: np.ndarray, model: CostModel) -> None:
    """Store the cost model of a solve run (arrays aligned with ``node_ids``)."""
    scalars: dict[str, Any] = {"cost_code": cost_code()}
    arrays: dict[str, np.ndarray] = {"node_ids": np.asarray(node_ids, np.int64)}
    for f in dataclasses.fields(model.motion):
        v = getattr(model.motion, f.name)
        if isinstance(v, np.ndarray):
            arrays[f"motion.{f.name}"] = np.asarray(v, np.float64)
        elif isinstance(v, (int, float)):  # not the persistence fit: its effect is in the shift
            scalars[f.name] = float(v)
    if model.node_cost is not None:
        arrays["node_cost"] = np.asarray(model.node_cost, np.float64)
    # each cell's pixel covariance, so a re-solve prices its window without decoding masks
    arrays["cell.cov"] = np.asarray(model.cells.cov, np.float64)
    params = {f.name: getattr(model.params, f.name) for f in dataclasses.fields(model.params)}
    cost_models.write(conn, run_id, scalars, _jsonable(params), arrays)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def features(cands: Candidates, movie: Movie, cov: np.ndarray | None = None) -> CellFeatures:
    """What the costs read of each candidate (as ``trackdb solve`` computes it); ``cov``: the
    cells' pixel covariances when known already (else from their masks)."""
    return CellFeatures(
        t=cands.t,
        centroid=cands.centroid,
        area=cands.area.astype(float),
        cov=mask_covariance(cands) if cov is None else cov,
        bbox=cands.bbox,
        image_shape=movie.shape,
        spacing=movie.spacing,
    )


def window_features(
    cands: Candidates,
    node_ids: np.ndarray,
    movie: Movie,
    stored: cost_models.StoredCostModel,
    masks_of: Callable[[np.ndarray], tuple[Candidates, np.ndarray]],
) -> CellFeatures:
    """:func:`features` of candidates read without masks: the covariances the solve stored
    (``cell.cov``, the same numbers it priced), and for cells it did not have (made by an edit)
    the covariance of their masks, read by ``masks_of(ids)`` (candidates with masks, their ids)."""
    sid = stored.arrays["node_ids"]
    d = cands.centroid.shape[1]
    cov = np.zeros((len(node_ids), d, d))
    pos, found = positions(sid, node_ids)
    cov[found] = stored.arrays["cell.cov"][pos[found]]
    if not found.all():
        missing = node_ids[~found]
        with_masks, ids = masks_of(missing)
        at, _ = positions(ids, missing)
        cov[~found] = mask_covariance(with_masks)[at]
    return features(cands, movie, cov)


def _params(stored: dict[str, Any]) -> CostParams:
    known = {f.name: f for f in dataclasses.fields(CostParams)}
    kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}
    return CostParams(**kw)


def _aligned(
    values: np.ndarray,
    stored_ids: np.ndarray,
    node_ids: np.ndarray,
    t: np.ndarray,
    centroid: np.ndarray,
    stored_t: np.ndarray,
    stored_c: np.ndarray,
) -> np.ndarray:
    """``values`` (rows aligned with ``stored_ids``) for ``node_ids``; rows of nodes the model
    lacks are the Gaussian-weighted mean of their frame's nearest stored nodes."""
    pos, found = positions(stored_ids, node_ids)
    out = np.zeros((len(node_ids),) + values.shape[1:], np.float64)
    out[found] = values[pos[found]]
    for f in np.unique(t[~found]):
        here = np.flatnonzero(~found & (t == f))
        known = np.flatnonzero(stored_t == f)
        if len(known) == 0:
            out[here] = np.median(values, axis=0) if len(values) else 0.0
            continue
        k = min(NEIGHBOURS, len(known))
        dist, nb = cKDTree(stored_c[known]).query(centroid[here], k=k)
        dist, nb = np.asarray(dist).reshape(len(here), k), np.asarray(nb).reshape(len(here), k)
        h = max(float(np.median(dist)), 1e-6)
        w = np.exp(-0.5 * (dist / h) ** 2) + 1e-12
        vals = values[known[nb]]  # (m, k, ...)
        w = w.reshape(w.shape + (1,) * (vals.ndim - 2))
        out[here] = (w * vals).sum(axis=1) / w.sum(axis=1)
    return out


def stored_model(
    stored: cost_models.StoredCostModel,
    cells: CellFeatures,
    node_ids: np.ndarray,
    edges: CandidateEdges,
    node_hier_parent: np.ndarray,
) -> CostModel:
    """The stored cost model on the current candidates (edit-added cells interpolated)."""
    sid = stored.arrays["node_ids"]
    pos, found = positions(node_ids, sid)
    # where the stored nodes are now, to interpolate from (all of them are, unless the
    # candidates were rewritten: then the model's own order is lost and its rows unused)
    st = np.full(len(sid), -1, np.int64)
    sc = np.zeros((len(sid), cells.centroid.shape[1]))
    st[found] = cells.t[pos[found]]
    sc[found] = cells.centroid[pos[found]]
    kw: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(MotionModel)}
    for key, values in stored.arrays.items():
        if key.startswith("motion.") and key[7:] in names:
            kw[key[7:]] = _aligned(values, sid, node_ids, cells.t, cells.centroid, st, sc)
    kw.update({k: v for k, v in stored.scalars.items() if k in names})
    motion = MotionModel(**kw)
    params = _params(stored.params)
    node_cost = None
    if "node_cost" in stored.arrays:
        base = params.node if params.node is not None else -(params.appear + params.disappear) - 5
        pos2, found2 = positions(sid, node_ids)
        node_cost = np.full(len(node_ids), float(base))
        node_cost[found2] = stored.arrays["node_cost"][pos2[found2]]
    return CostModel(
        cells,
        np.asarray(edges.source, np.int64),
        np.asarray(edges.target, np.int64),
        motion,
        params,
        node_cost,
        node_hier_parent,
    )


def reestimated_model(
    store: Store,
    root_solution_id: int,
    cells: CellFeatures,
    node_ids: np.ndarray,
    edge_ids: np.ndarray,
    edges: CandidateEdges,
    node_cost: np.ndarray | None,
    node_hier_parent: np.ndarray,
) -> CostModel:
    """Costs re-estimated from a stored solution (solves without a stored cost model)."""
    stored = solutions.selection(store, root_solution_id)
    node_sel = np.isin(node_ids, stored.node_ids)
    edge_sel = np.isin(edge_ids, stored.edge_ids)
    params = CostParams()
    root = Solution(node_sel, edge_sel, float("nan"), SolveStatus.OPTIMAL)
    motion = initial_motion(cells, edges.source, edges.target)
    for _ in range(2):
        motion = estimate_motion(cells, edges.source, edges.target, root, motion, params.div_rate_bounds)
    return CostModel(cells, edges.source, edges.target, motion, params, node_cost, node_hier_parent)
