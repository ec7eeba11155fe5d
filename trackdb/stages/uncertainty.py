"""Uncertainty of the current solution, stored: link/cell probabilities, track confidences,
ranked alternatives, and the SQL that lists what is doubtful.

The probabilities describe the model that produced the current solution, so that model is
rebuilt from its solve run (candidates + link run → costs refined over solves, exactly as
``trackdb solve`` did, :func:`trackdb.pipeline.build_solve`) and handed to
:mod:`solvers.uncertainty`. ``lap``/``hemd`` solves price daughter pairs folded into the edges
(``solvers.costs.fold_pairs``), so their model here is the folded graph; a ``joint`` model
keeps its pairs (per-edge methods fold them, and its K best are exact joint solutions). The
run's message says whether the rebuilt solve reproduced the stored solution. Everything a run computes is written in one transaction; bad input is refused
before the run row exists, so it leaves the store exactly as it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from solvers.costs import CostModel, fold_pairs
from solvers.kbest_joint import kbest_joint, lap_applies
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Solution
from solvers.uncertainty import (
    SIGMA_AREA,
    SIGMA_PX,
    GraphSampler,
    Method,
    Ranked,
    Uncertainty,
    assignment_sampling,
    edge_probabilities,
    feature_noise_sampler,
    perturbed_assignments,
    ranked_solutions,
)

from trackdb.store import ingest
from trackdb.store import schema
from trackdb.errors import InputError, NotFoundError
from trackdb.stages.solve import Method as SolveMethod
from trackdb.stages.solve import build_solve
from trackdb.store.core import Movie, Store

SAMPLE_TEMPERATURE = 1.0  # T_s of the ranked alternatives' weights p_k ∝ exp(−cost_k / T_s)


@dataclass(frozen=True)
class Model:
    """The current solution's model, rebuilt: graph as its solver saw it, ids, and its solve."""

    movie: Movie
    solution_id: int
    solve_run_id: int
    solve_method: SolveMethod
    time_limit: float
    graph: CandidateGraph
    node_ids: np.ndarray  # (graph.n_nodes,)
    edge_ids: np.ndarray  # (graph.n_edges,)
    rebuilt: Solution  # the solve re-run on the rebuilt model (normally = the stored solution)
    cost_model: CostModel | None = None  # the features and motion ``graph`` was costed from


def parse_method(method: str | Method) -> Method:
    try:
        return Method(method)
    except ValueError:
        raise InputError(f"unknown uncertainty method {method!r}; choose "
                         f"{', '.join(m.value for m in Method)}") from None


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"--k must be an integer >= 1, got {k!r}")
    return int(k)


def solve_run_of(store: Store, movie: Movie) -> tuple[int, dict[str, Any]]:
    """(current solution id, the solve run that wrote it); refuses imported or missing ones."""
    sid = store.solution_id(movie)  # NotFoundError when the movie has no solution
    s, r = schema.solution.c, schema.run.c
    with store.engine.connect() as c:
        run = c.execute(sa.select(schema.run).join(schema.solution, s.run_id == r.id)
                        .where(s.id == sid)).mappings().one()
    if run["kind"] != "solve":
        raise InputError(f"the current solution of movie {movie.name!r} (id {sid}) comes from a "
                         f"{run['kind']!r} run, not a solve: run `trackdb solve` first")
    return sid, dict(run)


def rebuild_model(store: Store, movie: Movie, solution_id: int, solve_run: dict[str, Any]) -> Model:
    """Re-run the solve's model building (no writes) from the parameters it recorded."""
    p = solve_run["params"]
    m = SolveMethod(p["method"])
    link_run = int(p["link_run_id"])
    with store.engine.connect() as c:
        link_params = c.execute(sa.select(schema.run.c.params).where(schema.run.c.id == link_run)).scalar_one()
    built = build_solve(store, movie, m, link_run, int(link_params["candidate_run_id"]),
                        window=p.get("window"), time_limit=float(p["time_limit"]), gap=float(p["gap"]),
                        iterations=int(p["iterations"]))
    graph = built.graph
    if m is not SolveMethod.JOINT:  # the LAP solves with daughter-pair costs folded into edges
        graph = fold_pairs(graph)
    return Model(movie, solution_id, int(solve_run["id"]), m, float(p["time_limit"]), graph,
                 built.node_ids, built.edge_ids, built.solution, built.cost_model)


def compute(model: Model, method: Method, *, k: int, temperature: float, seed: int = 0,
            sigma_px: float = SIGMA_PX, sigma_area: float = SIGMA_AREA, ranked: bool = True
            ) -> tuple[Uncertainty, list[Ranked]]:
    """Probabilities of ``method`` on the model and its ranked alternatives (best first; none
    without ``ranked``, unless the method needs them anyway).

    Alternatives (:func:`solvers.uncertainty.ranked_solutions`): FP+A its distinct perturbed
    solutions by frequency; FP the K best of its averaged costs; SM, MM and AS the K best of the
    model. FP and FP+A perturb the cell features (centres by ``sigma_px``, areas by
    ``sigma_area``) and re-cost them with the solve's cost model.

    Frame-pair methods (FP+A with the LAP, AS per frame pair, MM) need a fixed segmentation
    with one-frame links; otherwise AS weighs the exact K best joint solutions and FP+A
    re-solves the joint model, and MM is refused.
    """
    g = model.graph
    per_pair = lap_applies(fold_pairs(g))
    try:
        if method is Method.MM and not per_pair:
            raise InputError(f"--method mm needs a fixed segmentation with one-frame links; movie "
                             f"{model.movie.name!r} was solved with {model.solve_method.value} on "
                             "another kind of graph (use sm, fp, fpa or as)")
        kbest = None
        if method is Method.AS or (ranked and method in (Method.SM, Method.MM)):
            # the K best of the model itself
            kbest = kbest_joint(g, k, time_limit=model.time_limit)
        if method is Method.AS and not per_pair:
            unc = assignment_sampling(g, k=k, temperature=temperature, solutions=kbest)
        elif method is Method.FPA and not per_pair:
            from solvers.joint import solve_joint

            folded = fold_pairs(g)
            unc = perturbed_assignments(
                folded, _sampler(model, sigma_px, sigma_area), k=k, temperature=temperature,
                seed=seed, solve=lambda h: solve_joint(h, time_limit=model.time_limit))
            unc = replace(unc, info={**(unc.info or {}), "perturbation": {
                "kind": "features", "sigma_px": float(sigma_px), "sigma_area": float(sigma_area)}})
        else:
            unc = edge_probabilities(g, method, k=k, temperature=temperature, seed=seed,
                                     features=model.cost_model, sigma_px=sigma_px,
                                     sigma_area=sigma_area)
        if not ranked:
            return unc, []
        return unc, ranked_solutions(g if method is not Method.FPA else fold_pairs(g), unc, k,
                                     sample_temperature=SAMPLE_TEMPERATURE,
                                     time_limit=model.time_limit, kbest=kbest)
    except ValueError as exc:  # a plain-data room's refusal, with its reason
        raise InputError(f"{method.value} on movie {model.movie.name!r}: {exc}") from exc


def _sampler(model: Model, sigma_px: float, sigma_area: float) -> GraphSampler:
    if model.cost_model is None:
        raise ValueError("the solve's cost model (cell features) was not rebuilt")
    return feature_noise_sampler(model.cost_model, sigma_px, sigma_area)


def resolve_temperature(store: Store, method: Method, calibration: str | None,
                        temperature: float | None) -> float:
    """An explicit temperature, else the stored calibration (name, method), else 1."""
    if calibration is not None and temperature is not None:
        raise InputError("give --calibration or --temperature, not both")
    if temperature is not None:
        t = float(temperature)
        if not math.isfinite(t) or t <= 0:
            raise InputError(f"--temperature must be a finite number > 0, got {temperature!r}")
        return t
    if calibration is None:
        return 1.0
    c = schema.calibration.c
    with store.engine.connect() as conn:
        t = conn.execute(sa.select(c.temperature).where(c.name == calibration, c.method == method.value)).scalar()
        known = conn.execute(sa.select(c.name, c.method).order_by(c.name, c.method)).all()
    if t is None:
        have = ", ".join(f"{n}/{m}" for n, m in known) or "none"
        raise NotFoundError(f"no calibration {calibration!r} for method {method.value!r} "
                            f"(stored: {have}); run `trackdb calibrate --name {calibration} --method {method.value}`")
    return float(t)


def track_confidence(graph: CandidateGraph, track_of: np.ndarray, tracks: np.ndarray,
                     edge_selected: np.ndarray, edge_p: np.ndarray, appear_p: np.ndarray) -> np.ndarray:
    """``(K, 2)`` min and product of the probabilities of each track's chosen options.

    A track's options are its selected links (the link into it from its parent included); a
    root track's first cell contributes its "appears" probability instead (1 in the first
    frame), so a track that starts mid-movie because a link was doubtful is flagged too.
    """
    sel_nodes = track_of > 0
    e = np.flatnonzero(edge_selected & sel_nodes[graph.edge_source] & sel_nodes[graph.edge_target])
    has_mother = np.zeros(graph.n_nodes, bool)
    has_mother[graph.edge_target[e]] = True
    starts = np.flatnonzero(sel_nodes & ~has_mother)
    tid = np.concatenate([track_of[graph.edge_target[e]], track_of[starts]])
    p = np.clip(np.concatenate([edge_p[e], appear_p[starts]]), 0.0, 1.0)
    row = np.searchsorted(tracks[:, 0], tid)  # ``tracks`` is sorted by track id
    k = len(tracks)
    lo = np.ones(k)
    np.minimum.at(lo, row, p)
    with np.errstate(divide="ignore"):
        prod = np.exp(np.bincount(row, weights=np.log(p), minlength=k))
    return np.column_stack([lo, prod])


def check_sigma(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"--{name} must be a finite number >= 0, got {value!r}")
    return v


def run_uncertainty(store: Store, movie_name: str, method: str | Method, *, k: int = 10,
                    calibration: str | None = None, temperature: float | None = None,
                    sigma_px: float = SIGMA_PX, sigma_area: float = SIGMA_AREA) -> int:
    """Probabilities of every candidate link and cell of the current solution's model, stored
    under a run of kind ``uncertainty`` with the method's ranked alternatives (named
    ``<method>-rank<k>``; one equal to the current solution is not stored again); returns the
    run id (see the module docstring). ``sigma_px`` / ``sigma_area``: FP and FP+A's feature
    noise."""
    m = parse_method(method)
    k = check_k(k)
    sigma_px = check_sigma("sigma-px", sigma_px)
    sigma_area = check_sigma("sigma-area", sigma_area)
    movie = store.movie(movie_name)
    t = resolve_temperature(store, m, calibration, temperature)
    sid, solve_run = solve_run_of(store, movie)
    params = {"method": m.value, "k": k, "temperature": t, "calibration": calibration,
              "solution_id": sid, "solve_run_id": solve_run["id"]}
    if m in (Method.FP, Method.FPA):
        params.update(sigma_px=sigma_px, sigma_area=sigma_area)
    with store.run(movie.id, "uncertainty", params, parent_run_id=int(solve_run["id"])) as run_id:
        model = rebuild_model(store, movie, sid, solve_run)
        unc, alternatives = compute(model, m, k=k, temperature=t, sigma_px=sigma_px,
                                    sigma_area=sigma_area)
        _write(store, model, run_id, unc, m, alternatives)
    return run_id


def _stored_selection(store: Store, model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The current solution as local arrays: track id per node (0 = not selected), selected
    edges, and its CTC track table sorted by id."""
    with store.engine.connect() as c:
        sn = c.execute(sa.select(schema.solution_node.c.node_id, schema.solution_node.c.track_id)
                       .where(schema.solution_node.c.solution_id == model.solution_id)).all()
        se = c.execute(sa.select(schema.solution_edge.c.edge_id)
                       .where(schema.solution_edge.c.solution_id == model.solution_id)).scalars().all()
        tr = c.execute(sa.select(schema.track.c.track_id, schema.track.c.start_t, schema.track.c.end_t,
                                 sa.func.coalesce(schema.track.c.parent_track_id, 0))
                       .where(schema.track.c.solution_id == model.solution_id)
                       .order_by(schema.track.c.track_id)).all()
    track_of = np.zeros(model.graph.n_nodes, np.int64)
    if sn:
        ids, tids = np.array(sn, np.int64).T
        pos, ok = _local(model.node_ids, ids)
        track_of[pos[ok]] = tids[ok]
    edge_sel = np.zeros(model.graph.n_edges, bool)
    pos, ok = _local(model.edge_ids, np.array(se, np.int64))
    edge_sel[pos[ok]] = True
    return track_of, edge_sel, np.array(tr, np.int64).reshape(-1, 4)


def _local(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``wanted`` database ids in ``ids``, and which were found."""
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], wanted), max(len(ids) - 1, 0))
    ok = (ids[order][pos] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    return order[pos], ok


def _write(store: Store, model: Model, run_id: int, unc: Uncertainty, method: Method,
           alternatives: list[Ranked]) -> dict[str, Any]:
    g = model.graph
    edge_p = np.clip(unc.edge_p, 0.0, 1.0)
    node_p = np.clip(unc.node_p, 0.0, 1.0)
    track_of, edge_sel, tracks = _stored_selection(store, model)
    conf = track_confidence(g, track_of, tracks, edge_sel, edge_p, unc.appear_p)
    differ = int(np.sum(edge_sel != model.rebuilt.edge_selected))
    node_sel = track_of > 0
    is_current = [bool(np.array_equal(a.solution.edge_selected, edge_sel)
                       and np.array_equal(a.solution.node_selected, node_sel)) for a in alternatives]
    with store.engine.begin() as c:
        ingest.bulk_insert(c, schema.edge_probability, ("run_id", "edge_id", "p", "method"),
                           zip([run_id] * g.n_edges, model.edge_ids.tolist(), edge_p.tolist(),
                               [method.value] * g.n_edges))
        ingest.bulk_insert(c, schema.node_probability, ("run_id", "node_id", "p", "entropy", "method"),
                           zip([run_id] * g.n_nodes, model.node_ids.tolist(), node_p.tolist(),
                               unc.entropy.tolist(), [method.value] * g.n_nodes))
        tr = schema.track.c
        if len(tracks):
            c.execute(schema.track.update()
                      .where(tr.solution_id == sa.bindparam("sid"), tr.track_id == sa.bindparam("tid"))
                      .values(confidence_min=sa.bindparam("cmin"), confidence_product=sa.bindparam("cprod")),
                      [{"sid": model.solution_id, "tid": int(a), "cmin": float(b), "cprod": float(d)}
                       for a, (b, d) in zip(tracks[:, 0].tolist(), conf.tolist())])
        stored = []
        for rank, (alt, current) in enumerate(zip(alternatives, is_current)):
            if current:  # already stored, under its solve
                continue
            _insert_alternative(c, model, run_id, alt.solution, rank, alt.weight, unc, method)
            stored.append(rank)
        summary = {"edges": g.n_edges, "nodes": g.n_nodes, "alternatives": len(stored),
                   "ranks": stored,
                   "current_rank": is_current.index(True) if any(is_current) else None,
                   "rank0_weight": alternatives[0].weight if alternatives else None,
                   "rebuilt_links_differ": differ,
                   "rank0_links_differ": (int(np.sum(edge_sel != alternatives[0].solution.edge_selected))
                                          if alternatives else None),
                   "seconds": round(unc.seconds, 3),
                   "info": unc.info}
        c.execute(schema.run.update().where(schema.run.c.id == run_id)
                  .values(message=json.dumps(summary, default=str)))
    return summary


def _insert_alternative(conn: sa.Connection, model: Model, run_id: int, sol: Solution, rank: int,
                        weight: float, unc: Uncertainty, method: Method) -> int:
    g = model.graph
    track_of, tracks = tracks_from_solution(g.node_t, g.edge_source, g.edge_target,
                                            sol.node_selected, sol.edge_selected)
    sel = sol.node_selected
    esel = sol.edge_selected & sel[g.edge_source] & sel[g.edge_target]
    conf = track_confidence(g, track_of, tracks, esel, np.clip(unc.edge_p, 0, 1), unc.appear_p)
    return ingest.insert_solution(
        conn, run_id=run_id, movie_id=model.movie.id, node_ids=model.node_ids[sel],
        node_t=g.node_t[sel], track_ids=track_of[sel], edge_ids=model.edge_ids[esel],
        edge_source_ids=model.node_ids[g.edge_source[esel]],
        edge_target_ids=model.node_ids[g.edge_target[esel]], tracks=tracks,
        status=sol.status.value, rank=rank, name=f"{method.value}-rank{rank}",
        objective=sol.objective, weight=weight, track_confidence=conf)


def latest_uncertainty_run(store: Store, movie: Movie) -> int:
    """The newest succeeded uncertainty run of the movie's *current* solution."""
    sid = store.solution_id(movie)
    r = schema.run.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(r.id, r.params).where(r.movie_id == movie.id, r.kind == "uncertainty",
                                                         r.status == "succeeded").order_by(r.id.desc())).all()
    for rid, p in rows:
        if p and p.get("solution_id") == sid:
            return int(rid)
    raise NotFoundError(f"no uncertainty run for the current solution (id {sid}) of movie "
                        f"{movie.name!r}: run `trackdb uncertainty --movie {movie.name} --method sm` first")


# Doubtful parts of the current solution. A division's confidence is the product of its two
# links' probabilities (daughters decided independently, as the per-cell softmax treats them);
# a cell is doubtful when it may not exist (node p) or, having no mother in the solution, when
# "it appears" is doubtful: 1 − Σ p of its incoming candidate links (the options sum to 1).
UNCERTAIN_SQL = """
WITH prob AS (SELECT edge_id, p FROM edge_probability WHERE run_id = :run_id),
cellp AS (SELECT node_id, p, entropy FROM node_probability WHERE run_id = :run_id),
links AS (
    SELECT se.source_id, se.target_id, prob.p FROM solution_edge se
    JOIN prob ON prob.edge_id = se.edge_id WHERE se.solution_id = :solution_id
),
incoming AS (
    SELECT e.target_id, SUM(prob.p) AS p_in FROM prob JOIN edge e ON e.id = prob.edge_id
    GROUP BY e.target_id
),
cells AS (
    SELECT sn.node_id, n.t, l.source_id AS mother_id, cp.p AS p_node, cp.entropy,
           CASE WHEN l.source_id IS NULL THEN 1.0 - COALESCE(i.p_in, 0.0) ELSE 1.0 END AS p_appear
    FROM solution_node sn JOIN node n ON n.id = sn.node_id
    JOIN cellp cp ON cp.node_id = sn.node_id
    LEFT JOIN links l ON l.target_id = sn.node_id
    LEFT JOIN incoming i ON i.target_id = sn.node_id
    WHERE sn.solution_id = :solution_id
)
SELECT * FROM (
SELECT 'link' AS kind, n.t, l.target_id AS node_id, l.source_id AS mother_id,
       NULL AS daughter_ids, l.p, cp.entropy
FROM links l JOIN node n ON n.id = l.target_id LEFT JOIN cellp cp ON cp.node_id = l.target_id
WHERE l.p < :below
UNION ALL
SELECT 'division', n.t, l.source_id, NULL,
       CAST(MIN(l.target_id) AS TEXT) || ',' || CAST(MAX(l.target_id) AS TEXT),
       MIN(l.p) * MAX(l.p), NULL
FROM links l JOIN node n ON n.id = l.source_id
GROUP BY l.source_id, n.t HAVING COUNT(*) = 2 AND MIN(l.p) * MAX(l.p) < :below
UNION ALL
SELECT 'cell', t, node_id, mother_id, NULL,
       CASE WHEN p_appear < p_node THEN p_appear ELSE p_node END, entropy
FROM cells WHERE p_node < :below OR p_appear < :below
) doubtful ORDER BY p, t, node_id
"""


def uncertain(store: Store, movie_name: str, below: float = 0.8) -> pd.DataFrame:
    """Links, divisions and cells of the current solution with probability below ``below``,
    from the latest uncertainty run of that solution (one SQL query)."""
    if not 0.0 <= float(below) <= 1.0:
        raise InputError(f"--below must lie in [0, 1], got {below}")
    movie = store.movie(movie_name)
    run_id = latest_uncertainty_run(store, movie)
    params = {"run_id": run_id, "solution_id": store.solution_id(movie), "below": float(below)}
    with store.engine.connect() as c:
        res = c.execute(sa.text(UNCERTAIN_SQL), params)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    return df.astype({"t": "int64", "node_id": "int64", "mother_id": "Int64"})


def run_summary(store: Store, run_id: int) -> dict[str, Any]:
    """The run's parameters and what it wrote (its message), for the CLI."""
    with store.engine.connect() as c:
        row = c.execute(sa.select(schema.run.c.params, schema.run.c.message)
                        .where(schema.run.c.id == run_id)).one()
    return {"run_id": run_id, **(row.params or {}), **json.loads(row.message or "{}")}
