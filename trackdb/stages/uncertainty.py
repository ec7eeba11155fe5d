"""Uncertainty of the current solution, stored: link/cell probabilities, track confidences,
ranked alternatives, and the SQL that lists what is doubtful.

The probabilities describe the model that produced the current solution, so that model is
rebuilt from its solve run (candidates + link run → costs refined over solves, exactly as
``trackdb solve`` did, :func:`trackdb.stages.solve.build_solve`) and handed to
:mod:`solvers.uncertainty`. ``lap``/``hemd`` solves price daughter pairs as the frame-pair
LAP's second slots (``solvers.costs.division_slots``), so their model here is that graph; a ``joint`` model
keeps its pairs (per-edge methods fold them, and its K best are exact joint solutions). The
run's summary says whether the rebuilt solve reproduced the stored solution. Everything a run
computes is written in one transaction; bad input is refused before the run row exists, so it
leaves the store exactly as it was.

The ranked alternatives are stored as deltas (:mod:`trackdb.store.deltas`) of the current
solution they were sampled around: only their cells, links and tracks that differ. A movie's K
alternatives written in full cost more than the K best search on PostgreSQL (a 37,000-cell plate
movie: 12 of 42 s). Read through the views each is the lineage a full copy held; a track the
alternative leaves alone keeps the current solution's id and row (:func:`alternative_changes`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from solvers.confidence import track_confidence
from solvers.costs import CostModel, division_slots, fold_pairs
from solvers.kbest_joint import KBest, PairDeltas, kbest_joint, lap_applies, pair_max_marginals
from solvers.pinned import pinned_costs
from solvers.tracks import tracks_from_solution
from solvers.types import CandidateGraph, Pins, Solution, SolveStatus
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
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.stages import pins as pin_rules
from trackdb.stages import scores as stored_scores
from trackdb.stages.doubtful import uncertain as uncertain  # re-exported: it lives apart, light
from trackdb.stages.scores import Reused
from trackdb.stages.solve import Method as SolveMethod
from trackdb.stages.solve import build_solve
from trackdb.store import cost_models, deltas, ingest, probabilities, runs, solutions
from trackdb.store import edits as edit_log
from trackdb.store.core import Connection, Movie, Store
from trackdb.store.graph import positions
from trackdb.store.runs import LinkParams, Run, RunKind, SolveParams, UncertaintyParams

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
    pins: Pins | None = None  # the edit log's pins, folded into ``graph``'s costs (solvers.pinned)


def parse_method(method: str | Method) -> Method:
    try:
        return Method(method)
    except ValueError:
        raise InputError(
            f"unknown uncertainty method {method!r}; choose {', '.join(m.value for m in Method)}"
        ) from None


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"--k must be an integer >= 1, got {k!r}")
    return int(k)


def rebuild_model(store: Store, movie: Movie, solution_id: int, solve_run: Run) -> Model:
    """The solve's model: from its stored cost model when it has one (exactly its costs, the
    edit log's pins folded in: :func:`stored_model`), else by re-running the solve's model
    building (no writes) from the parameters it recorded."""
    p = solve_run.typed(SolveParams)
    m = SolveMethod(p.method)
    stored = stored_model(store, movie, solution_id, solve_run)
    if stored is not None:
        return stored
    if p.link_run_id is None or p.time_limit is None or p.gap is None or p.iterations is None:
        raise InputError(f"solve run {solve_run.id} ({p.method}) did not solve a candidate graph")
    link = runs.get_run(store, p.link_run_id).typed(LinkParams)
    built = build_solve(
        store,
        movie,
        m,
        p.link_run_id,
        link.candidate_run_id,
        window=p.window,
        time_limit=float(p.time_limit),
        gap=float(p.gap),
        iterations=int(p.iterations),
    )
    graph = built.graph
    if m is not SolveMethod.JOINT:  # the LAP solves with daughter pairs as second-slot costs
        graph = division_slots(graph)
    return Model(
        movie,
        solution_id,
        solve_run.id,
        m,
        float(p.time_limit),
        graph,
        built.node_ids,
        built.edge_ids,
        built.solution,
        built.cost_model,
    )


def stored_model(store: Store, movie: Movie, solution_id: int, solve_run: Run) -> Model | None:
    """The current solution's model from the chain's stored cost model (None without one):
    the same costs the solve and its re-solves optimised, every active edit a pin, so
    probabilities and alternatives respect the curator's edits. ``rebuilt`` is the stored
    solution itself (it is optimal for this model, up to the solver's gap)."""
    from trackdb.stages.resolve import RESOLVABLE, load_chain_model, selection_of

    chain = runs.solve_chain(store, movie)
    if chain.root is None or chain.current is None or chain.current.id != solve_run.id:
        return None
    p = chain.root.typed(SolveParams)
    if p.method not in RESOLVABLE or cost_models.read(store, chain.root.id) is None:
        return None
    cm = load_chain_model(store, movie, chain)
    edit_pins, _, _ = pin_rules.pins_for(
        pin_rules.constraints(edit_log.all_edits(store, movie.id)), cm.node_ids, cm.edge_ids
    )
    # no edits: the model exactly as the solve left it
    pins = edit_pins if any(len(getattr(edit_pins, f.name)) for f in dataclasses.fields(edit_pins)) else None
    graph = pinned_costs(cm.graph, pins)
    m = SolveMethod(p.method)
    if m is not SolveMethod.JOINT:  # the LAP solves with daughter pairs as second-slot costs
        graph = division_slots(graph)
    return Model(
        movie,
        solution_id,
        solve_run.id,
        m,
        float(p.time_limit or 300.0),
        graph,
        cm.node_ids,
        cm.edge_ids,
        selection_of(store, solution_id, cm.node_ids, cm.edge_ids),
        cm.model,
        pins,
    )


def compute(
    model: Model,
    method: Method,
    *,
    k: int,
    temperature: float,
    seed: int = 0,
    sigma_px: float = SIGMA_PX,
    sigma_area: float = SIGMA_AREA,
    ranked: bool = True,
    progress: bool = True,
    reused: Reused | None = None,
    pair_deltas: PairDeltas | None = None,
) -> tuple[Uncertainty, list[Ranked]]:
    """Probabilities of ``method`` on the model and its ranked alternatives (best first; none
    without ``ranked``, unless the method needs them anyway). ``info["kbest"]`` reports the K
    best search (:meth:`solvers.kbest_joint.KBest.summary`: found, asked, why it stopped);
    ``progress`` shows a bar on stderr for the K best and FP+A's solves.

    Alternatives (:func:`solvers.uncertainty.ranked_solutions`): FP+A its distinct perturbed
    solutions by frequency; FP the K best of its averaged costs; SM, MM and AS the K best of the
    model. FP and FP+A perturb the cell features (centres by ``sigma_px``, areas by
    ``sigma_area``) and re-cost them with the solve's cost model.

    Frame-pair methods (FP+A with the LAP, AS per frame pair, MM) need a fixed segmentation
    with one-frame links; otherwise AS weighs the exact K best joint solutions and FP+A
    re-solves the joint model, and MM is refused.

    ``reused``: this model's stored AS scores (:func:`trackdb.stages.scores.find`), re-tempered
    instead of sampled, their max-marginals handed to the K best; ``pair_deltas``: the frame
    pairs' max-marginals when the caller has them (:func:`solvers.kbest_joint.pair_max_marginals`).
    """
    g = model.graph
    per_pair = lap_applies(fold_pairs(g))
    perturbs = method in (Method.FP, Method.FPA)
    try:
        if method is Method.MM and not per_pair:
            raise InputError(
                f"--method mm needs a fixed segmentation with one-frame links; movie "
                f"{model.movie.name!r} was solved with {model.solve_method.value} on "
                "another kind of graph (use sm, fp, fpa or as)"
            )
        kbest = None
        # per-pair AS and the K best's bounds use the same max-marginals: computed once
        deltas = reused.deltas if reused is not None else pair_deltas
        if deltas is None and method is Method.AS and per_pair and ranked:
            deltas = pair_max_marginals(g)
        if (method is Method.AS and not per_pair) or (ranked and method in (Method.SM, Method.MM, Method.AS)):
            # the K best of the model itself (per-pair AS weighs each frame pair's own instead)
            kbest = _kbest(g, k, model.time_limit, progress, deltas)
        if reused is not None:  # the same model's scores, from the run that computed them
            unc = reused.at(g, temperature)
        elif method is Method.AS and not per_pair:
            assert kbest is not None
            if not kbest.solutions:
                raise SolveFailed(
                    f"as on movie {model.movie.name!r}: no solution of the model was found: {kbest.stopped}"
                )
            unc = assignment_sampling(g, k=k, temperature=temperature, solutions=kbest.solutions)
        elif method is Method.FPA and not per_pair:
            from solvers.joint import solve_joint

            folded = fold_pairs(g)
            unc = perturbed_assignments(
                folded,
                _sampler(model, sigma_px, sigma_area),
                k=k,
                temperature=temperature,
                seed=seed,
                solve=lambda h: solve_joint(h, time_limit=model.time_limit),
                progress=_bar("fpa: perturbed solves") if progress else None,
            )
            unc = replace(
                unc,
                info={
                    **(unc.info or {}),
                    "perturbation": {"kind": "features", "sigma_px": float(sigma_px), "sigma_area": float(sigma_area)},
                },
            )
        else:
            unc = edge_probabilities(
                g,
                method,
                k=k,
                temperature=temperature,
                seed=seed,
                sample_graph=_sampler(model, sigma_px, sigma_area) if model.pins is not None and perturbs else None,
                features=model.cost_model,
                sigma_px=sigma_px,
                sigma_area=sigma_area,
                solution=model.rebuilt if method is Method.AS else None,
                pair_deltas=deltas,
            )
            if model.pins is not None and perturbs:  # the features sampler, with the pins folded in
                unc = replace(
                    unc,
                    info={
                        **(unc.info or {}),
                        "perturbation": {
                            "kind": "features",
                            "sigma_px": float(sigma_px),
                            "sigma_area": float(sigma_area),
                        },
                    },
                )
        if ranked and method is Method.FP:  # the K best of FP's averaged costs
            kbest = _kbest(unc.cost_graph or g, k, model.time_limit, progress)
        if kbest is not None:
            unc = replace(unc, info={**(unc.info or {}), "kbest": kbest.summary()})
        if not ranked:
            return unc, []
        return unc, ranked_solutions(
            g if method is not Method.FPA else fold_pairs(g),
            unc,
            k,
            sample_temperature=SAMPLE_TEMPERATURE,
            time_limit=model.time_limit,
            kbest=kbest.solutions if kbest is not None else None,
        )
    except ValueError as exc:  # a plain-data room's refusal, with its reason
        raise InputError(f"{method.value} on movie {model.movie.name!r}: {exc}") from exc


def _bar(desc: str) -> Callable[..., None]:
    """A tqdm bar on stderr driven by (done, expected[, what comes next]) callbacks, closed when
    done = expected; shown only on a terminal (logs and pipes stay clean)."""
    bar = tqdm(desc=desc, unit="step", leave=False, disable=None)

    def update(done: int, total: int, now: str | None = None) -> None:
        bar.total = total
        bar.n = done
        if now is not None:
            bar.set_postfix_str(now, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _kbest(
    graph: CandidateGraph, k: int, time_limit: float, progress: bool, pair_deltas: PairDeltas | None = None
) -> KBest:
    return kbest_joint(
        graph,
        k,
        time_limit=time_limit,
        progress=_bar(f"{k} best solutions") if progress else None,
        pair_deltas=pair_deltas,
    )


def _sampler(model: Model, sigma_px: float, sigma_area: float) -> GraphSampler:
    if model.cost_model is None:
        raise ValueError("the solve's cost model (cell features) was not rebuilt")
    sample = feature_noise_sampler(model.cost_model, sigma_px, sigma_area)
    if model.pins is None:
        return sample
    pins = model.pins
    return lambda rng: pinned_costs(sample(rng), pins)


def resolve_temperature(store: Store, method: Method, calibration: str | None, temperature: float | None) -> float:
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
    stored = probabilities.calibration_temperature(store, calibration, method.value)
    if stored is None:
        have = ", ".join(f"{n}/{m}" for n, m in probabilities.calibrations(store)) or "none"
        raise NotFoundError(
            f"no calibration {calibration!r} for method {method.value!r} "
            f"(stored: {have}); run `trackdb calibrate --name {calibration} --method {method.value}`"
        )
    return stored


def check_sigma(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"--{name} must be a finite number >= 0, got {value!r}")
    return v


def run_uncertainty(
    store: Store,
    movie_name: str,
    method: str | Method,
    *,
    k: int = 10,
    calibration: str | None = None,
    temperature: float | None = None,
    sigma_px: float = SIGMA_PX,
    sigma_area: float = SIGMA_AREA,
    resume: bool = False,
) -> int:
    """Probabilities of every candidate link and cell of the current solution's model, stored
    under a run of kind ``uncertainty`` with the method's ranked alternatives (named
    ``<method>-rank<k>``; one equal to the current solution is not stored again); returns the
    run id (see the module docstring). ``sigma_px`` / ``sigma_area``: FP and FP+A's feature
    noise. ``resume`` continues an unfinished run with the same parameters instead of adding a
    run row (a re-run of an interrupted experiment). AS scores stored for exactly this model
    (by ``trackdb calibrate``, :mod:`trackdb.stages.scores`) are re-tempered instead of sampled
    again; ``info["reused_scores"]`` then names the run that computed them."""
    m = parse_method(method)
    k = check_k(k)
    sigma_px = check_sigma("sigma-px", sigma_px)
    sigma_area = check_sigma("sigma-area", sigma_area)
    movie = store.movie(movie_name)
    t = resolve_temperature(store, m, calibration, temperature)
    sid, solve_run = runs.current_solve(store, movie)
    perturbs = m in (Method.FP, Method.FPA)
    params = UncertaintyParams(
        method=m.value,
        k=k,
        temperature=t,
        calibration=calibration,
        solution_id=sid,
        solve_run_id=solve_run.id,
        sigma_px=sigma_px if perturbs else None,
        sigma_area=sigma_area if perturbs else None,
    )
    with runs.record(store, movie.id, RunKind.UNCERTAINTY, params, parent_run_id=solve_run.id, resume=resume) as run_id:
        model = rebuild_model(store, movie, sid, solve_run)
        reused = stored_scores.find(store, model, m, k)  # e.g. calibrate's, on this very model
        unc, alternatives = compute(
            model, m, k=k, temperature=t, sigma_px=sigma_px, sigma_area=sigma_area, reused=reused
        )
        kbest = (unc.info or {}).get("kbest")
        if k > 1 and kbest and kbest["stopped"] and kbest["found"] < 2:
            raise SolveFailed(
                f"{m.value} on movie {movie.name!r}: no alternative to the current solution: {kbest['stopped']}"
            )
        _write(store, model, run_id, unc, m, alternatives, shortfalls(model, unc, k))
    return run_id


def shortfalls(model: Model, unc: Uncertainty, k: int) -> list[str]:
    """What a run delivered short of what was asked, one sentence each (shown as warnings)."""
    notes = []
    info = unc.info or {}
    kbest = info.get("kbest")
    if kbest and kbest["stopped"]:
        notes.append(f"found {kbest['found']} of the {k} best solutions: {kbest['stopped']}")
    elif kbest and kbest["exhausted"]:
        notes.append(f"the model has only {kbest['found']} solutions, fewer than the {k} asked for")
    if info.get("not_optimal"):
        notes.append(
            f"{info['not_optimal']} of the {k} perturbed solves stopped at the time limit "
            f"({model.time_limit:g} s) before optimality"
        )
    if model.rebuilt.status is not SolveStatus.OPTIMAL:
        notes.append(f"the rebuilt solve ended {model.rebuilt.status.value}, not optimal")
    return notes


def _stored_selection(store: Store, model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The current solution as local arrays: track id per node (0 = not selected), selected
    edges, and its CTC track table sorted by id."""
    track_of, edge_sel, tracks, _ = _selection_arrays(store, model)
    return track_of, edge_sel, tracks


def _selection_arrays(store: Store, model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """:func:`_stored_selection` and whether every cell and link of the stored solution is in
    the model (alternatives are stored as its delta only then)."""
    stored = solutions.selection(store, model.solution_id)
    track_of = np.zeros(model.graph.n_nodes, np.int64)
    pos, ok = positions(model.node_ids, stored.node_ids)
    track_of[pos[ok]] = stored.track_ids[ok]
    edge_sel = np.zeros(model.graph.n_edges, bool)
    epos, eok = positions(model.edge_ids, stored.edge_ids)
    edge_sel[epos[eok]] = True
    return track_of, edge_sel, solutions.solution_tracks(store, model.solution_id), bool(ok.all() and eok.all())


def _write(
    store: Store,
    model: Model,
    run_id: int,
    unc: Uncertainty,
    method: Method,
    alternatives: list[Ranked],
    warnings: list[str],
) -> dict[str, Any]:
    g = model.graph
    edge_p = np.clip(unc.edge_p, 0.0, 1.0)
    node_p = np.clip(unc.node_p, 0.0, 1.0)
    track_of, edge_sel, tracks, complete = _selection_arrays(store, model)
    conf = track_confidence(g, track_of, tracks, edge_sel, edge_p, unc.appear_p)
    differ = int(np.sum(edge_sel != model.rebuilt.edge_selected))
    node_sel = track_of > 0
    is_current = [
        bool(np.array_equal(a.solution.edge_selected, edge_sel) and np.array_equal(a.solution.node_selected, node_sel))
        for a in alternatives
    ]
    with store.begin() as c:
        probabilities.insert_probabilities(
            c, run_id, method.value, model.edge_ids, edge_p, model.node_ids, node_p, unc.entropy
        )
        solutions.set_track_confidence(c, model.solution_id, tracks[:, 0], conf)
        here = None
        if complete:
            d = deltas.delta_of(c, model.solution_id)
            here = Current(track_of, edge_sel, tracks, conf, d, sum(deltas.base_counts(c, d.base_id).values()))
        stored = []
        for rank, (alt, current) in enumerate(zip(alternatives, is_current)):
            if current:  # already stored, under its solve
                continue
            _insert_alternative(c, model, here, run_id, alt.solution, rank, alt.weight, unc, method)
            stored.append(rank)
        summary = {
            "edges": g.n_edges,
            "nodes": g.n_nodes,
            "alternatives": len(stored),
            "ranks": stored,
            "current_rank": is_current.index(True) if any(is_current) else None,
            "rank0_weight": alternatives[0].weight if alternatives else None,
            "rebuilt_links_differ": differ,
            "rank0_links_differ": (
                int(np.sum(edge_sel != alternatives[0].solution.edge_selected)) if alternatives else None
            ),
            "seconds": round(unc.seconds, 3),
            "info": unc.info,
            "warnings": warnings,
        }
        runs.set_summary(c, run_id, summary)
    return summary


@dataclass(frozen=True)
class Current:
    """The current solution as its alternatives are compared with it: track id per model node
    (0 = not selected), selected edges, its track table ``(K, 4)`` sorted by id with the
    confidences just stored for it ``(K, 2)``, and how it is stored (its base and own rows)."""

    track_of: np.ndarray
    edge_sel: np.ndarray
    tracks: np.ndarray
    conf: np.ndarray
    delta: deltas.Delta
    base_rows: int  # cells, links and tracks ``delta``'s base stores


def _insert_alternative(
    conn: Connection,
    model: Model,
    current: Current | None,
    run_id: int,
    sol: Solution,
    rank: int,
    weight: float,
    unc: Uncertainty,
    method: Method,
) -> int:
    """Store a ranked alternative as a delta of the current solution's base: an alternative
    differs from the solution it was sampled around in a few links, and writing every cell,
    link and track of it again was most of a plate movie's uncertainty writes. Read through the
    views it is the same lineage as a full copy, its tracks numbered as the current solution's
    (:func:`alternative_changes`). Without ``current`` (a stored solution with cells or links
    outside the model) it is written in full."""
    name = f"{method.value}-rank{rank}"
    if current is None:
        return _insert_full(conn, model, run_id, sol, rank, weight, unc, name)
    return deltas.write_delta(
        conn,
        deltas.changed(conn, current.delta, alternative_changes(model, current, sol, unc)),
        run_id=run_id,
        movie_id=model.movie.id,
        status=sol.status.value,
        name=name,
        objective=sol.objective,
        rank=rank,
        weight=weight,
        base_rows=current.base_rows,
    )


def _alternative_tracks(
    model: Model, sol: Solution, unc: Uncertainty
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An alternative's CTC tracks (cell → track, track rows), its cells and links, and the
    tracks' confidences, for a full copy and a delta alike."""
    g = model.graph
    track_of, tracks = tracks_from_solution(
        g.node_t, g.edge_source, g.edge_target, sol.node_selected, sol.edge_selected
    )
    sel = sol.node_selected
    esel = sol.edge_selected & sel[g.edge_source] & sel[g.edge_target]
    conf = track_confidence(g, track_of, tracks, esel, np.clip(unc.edge_p, 0, 1), unc.appear_p)
    return track_of, tracks, sel, esel, conf


def _insert_full(
    conn: Connection, model: Model, run_id: int, sol: Solution, rank: int, weight: float, unc: Uncertainty, name: str
) -> int:
    """An alternative written out in full, its tracks numbered in CTC order."""
    g = model.graph
    track_of, tracks, sel, esel, conf = _alternative_tracks(model, sol, unc)
    return ingest.insert_solution(
        conn,
        run_id=run_id,
        movie_id=model.movie.id,
        node_ids=model.node_ids[sel],
        node_t=g.node_t[sel],
        track_ids=track_of[sel],
        edge_ids=model.edge_ids[esel],
        edge_source_ids=model.node_ids[g.edge_source[esel]],
        edge_target_ids=model.node_ids[g.edge_target[esel]],
        tracks=tracks,
        status=sol.status.value,
        rank=rank,
        name=name,
        objective=sol.objective,
        weight=weight,
        track_confidence=conf,
    )


def alternative_changes(
    model: Model, current: Current, sol: Solution, unc: Uncertainty
) -> dict[str, dict[int, tuple | None]]:
    """The cell, link and track rows (``deltas.changed``'s ``changes``) in which an alternative
    differs from the current solution. Its CTC tracks (:func:`solvers.tracks.tracks_from_solution`)
    keep the current solution's id when they start at the cell a current track starts at, the
    others get ids after the current ones (in CTC order), so tracks the alternative does not
    touch keep their rows; their confidences are computed as for a full copy."""
    g = model.graph
    track_of, tracks, sel, esel, conf = _alternative_tracks(model, sol, unc)
    # each track's first cell, and the current track starting there (if one does)
    cells = np.flatnonzero(track_of > 0)
    order = cells[np.lexsort((g.node_t[cells], track_of[cells]))]
    _, first = np.unique(track_of[order], return_index=True)
    head = order[first]  # tracks are numbered 1..K, so head[i] starts track i + 1
    cur_ids, cur_start = current.tracks[:, 0], current.tracks[:, 1]
    there = current.track_of[head]
    row = np.searchsorted(cur_ids, there).clip(0, max(len(cur_ids) - 1, 0))
    keeps = (there > 0) & (len(cur_ids) > 0)
    if len(cur_ids):
        keeps &= (cur_ids[row] == there) & (cur_start[row] == g.node_t[head])
    new_id = np.zeros(len(tracks) + 1, np.int64)
    new_id[1:][keeps] = there[keeps]
    top = int(cur_ids.max()) if len(cur_ids) else 0
    new_id[1:][~keeps] = top + 1 + np.arange(int((~keeps).sum()))
    alt_track = new_id[track_of]
    # cells: dropped, added, or on another track
    cur_sel = current.track_of > 0
    diff = np.flatnonzero((sel != cur_sel) | (sel & (alt_track != current.track_of)))
    node_rows: dict[int, tuple | None] = {
        int(model.node_ids[i]): ((int(alt_track[i]), int(g.node_t[i])) if sel[i] else None) for i in diff.tolist()
    }
    # links: dropped or added (a link's endpoints are its own)
    edge_rows: dict[int, tuple | None] = {
        int(model.edge_ids[e]): (
            (int(model.node_ids[g.edge_source[e]]), int(model.node_ids[g.edge_target[e]])) if esel[e] else None
        )
        for e in np.flatnonzero(esel != current.edge_sel).tolist()
    }
    # tracks: every row that is not the current one of the same id
    cur_rows = {
        int(tid): (int(a), int(b), int(p) or None, float(cmin), float(cprod))
        for (tid, a, b, p), (cmin, cprod) in zip(current.tracks.tolist(), current.conf.tolist())
    }
    track_rows: dict[int, tuple | None] = {}
    for (tid, a, b, p), (cmin, cprod) in zip(tracks.tolist(), conf.tolist()):
        mine = (int(a), int(b), int(new_id[p]) if p else None, float(cmin), float(cprod))
        if not _same_row(cur_rows.get(int(new_id[tid])), mine):
            track_rows[int(new_id[tid])] = mine
    kept = set(new_id[1:].tolist())
    track_rows.update({tid: None for tid in cur_rows if tid not in kept})
    return {"node": node_rows, "edge": edge_rows, "track": track_rows}


def _same_row(a: tuple | None, b: tuple) -> bool:
    """Two track rows alike (confidences bit for bit; NaN equals NaN, as a copy would be)."""
    if a is None:
        return False
    return all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b)
    )


def run_summary(store: Store, run_id: int) -> dict[str, Any]:
    """The run's parameters and what it wrote (its summary), for the CLI."""
    run = runs.get_run(store, run_id)
    return {"run_id": run_id, **run.params.to_json(), **(run.summary or {})}
