"""After a re-solve: link and cell probabilities and ranked alternatives refreshed for the
re-solved windows only.

When the solution a re-solve replaced had an uncertainty run, the new solution gets one too,
with the same method and parameters: outside the windows the probabilities are copied (nothing
there changed, neither the solution nor its costs); inside each window they are computed anew
by :func:`trackdb.stages.uncertainty.compute` on the window's graph (the frames the re-solve
read), with every edit's pin and the frames outside the window fixed to the new solution folded
into its costs (:func:`solvers.pinned.pinned_costs`). The window's ranked alternatives, each
stitched into the new solution outside the window, are stored as the run's alternatives
(``<method>-rank<k>``, ranks numbered on across windows). Track confidences of the new solution
are not recomputed (they need every link of a track): its ``track`` rows carry none.
"""

from __future__ import annotations

import numpy as np

from solvers.costs import division_slots
from solvers.pinned import pinned_costs
from solvers.types import Pins
from solvers.uncertainty import SIGMA_AREA, SIGMA_PX
from trackdb.stages import pins as pin_rules
from trackdb.stages.resolve import ChainModel, insert_rows, local_selection, merge_window, solution_rows
from trackdb.stages.solve import Method as SolveMethod
from trackdb.stages.uncertainty import Model, compute, parse_method
from trackdb.store import probabilities, runs, solutions
from trackdb.store.core import Movie, Store
from trackdb.store.runs import RunKind, UncertaintyParams


def _uncertainty_run_of(store: Store, movie: Movie, solution_id: int) -> runs.Run | None:
    for run in runs.runs_of(store, movie.id, RunKind.UNCERTAINTY):
        if run.typed(UncertaintyParams).solution_id == solution_id:
            return run
    return None


def _context_pins(part: ChainModel, sel: np.ndarray, esel: np.ndarray, lo: int, hi: int) -> Pins:
    """Cells outside frames lo..hi, and links between them, fixed to the selection."""
    g = part.graph
    out = (g.node_t < lo) | (g.node_t > hi)
    e_out = out[g.edge_source] & out[g.edge_target]
    return Pins(
        must_nodes=np.flatnonzero(out & sel),
        forbid_nodes=np.flatnonzero(out & ~sel),
        must_edges=np.flatnonzero(e_out & esel),
        forbid_edges=np.flatnonzero(e_out & ~esel),
    )


def _union(a: Pins, b: Pins) -> Pins:
    return Pins(
        must_nodes=np.union1d(a.must_nodes, b.must_nodes),
        forbid_nodes=np.union1d(a.forbid_nodes, b.forbid_nodes),
        must_edges=np.union1d(a.must_edges, b.must_edges),
        forbid_edges=np.union1d(a.forbid_edges, b.forbid_edges),
        must_divide=a.must_divide,
        forbid_divide=a.forbid_divide,
        must_end=a.must_end,
    )


def refresh_uncertainty(
    store: Store,
    movie: Movie,
    previous_solution_id: int,
    solution_id: int,
    resolve_run_id: int,
    method: str,
    parts: list[tuple[int, int, ChainModel]],
    constraints: list[pin_rules.Constraint],
) -> int | None:
    """A new uncertainty run for the re-solved solution (see the module docstring); None when
    the previous solution had none."""
    before = _uncertainty_run_of(store, movie, previous_solution_id)
    if before is None:
        return None
    p = before.typed(UncertaintyParams)
    m = parse_method(p.method)
    params = UncertaintyParams(
        method=p.method,
        k=p.k,
        temperature=p.temperature,
        calibration=p.calibration,
        solution_id=solution_id,
        solve_run_id=resolve_run_id,
        sigma_px=p.sigma_px,
        sigma_area=p.sigma_area,
    )
    current = solutions.solution_arrays(store, solution_id)
    with runs.record(store, movie.id, RunKind.UNCERTAINTY, params, parent_run_id=resolve_run_id) as run_id:
        edge_ids, edge_p, node_ids, node_p, entropy = [], [], [], [], []
        alternatives = []
        for lo, hi, part in parts:
            base = local_selection(current, part)
            edit_pins, _, _ = pin_rules.pins_for(constraints, part.node_ids, part.edge_ids, partial=True)
            pins = _union(edit_pins, _context_pins(part, base.node_selected, base.edge_selected, lo, hi))
            graph = pinned_costs(part.graph, pins)
            solve_method = SolveMethod(method)
            if solve_method is not SolveMethod.JOINT:  # as the LAP solved it (stages.uncertainty)
                graph = division_slots(graph)
            model = Model(
                movie, solution_id, resolve_run_id, solve_method, 300.0, graph, part.node_ids, part.edge_ids, base,
                part.model, pins,
            )  # fmt: skip
            unc, ranked = compute(
                model,
                m,
                k=p.k,
                temperature=p.temperature,
                sigma_px=SIGMA_PX if p.sigma_px is None else p.sigma_px,
                sigma_area=SIGMA_AREA if p.sigma_area is None else p.sigma_area,
            )
            g = part.graph
            inside = (g.node_t >= lo) & (g.node_t <= hi)
            e_in = inside[g.edge_target]  # the incoming options of the window's cells
            edge_ids.append(part.edge_ids[e_in])
            edge_p.append(np.clip(unc.edge_p[e_in], 0.0, 1.0))
            node_ids.append(part.node_ids[inside])
            node_p.append(np.clip(unc.node_p[inside], 0.0, 1.0))
            entropy.append(np.asarray(unc.entropy)[inside])
            for alt in ranked:
                same = np.array_equal(alt.solution.node_selected, base.node_selected) and np.array_equal(
                    alt.solution.edge_selected, base.edge_selected
                )
                if not same:
                    alternatives.append((merge_window(current, part, alt.solution), alt.weight))
        e_ids, n_ids = np.concatenate(edge_ids), np.concatenate(node_ids)
        with store.begin() as c:
            probabilities.copy_probabilities(c, before.id, run_id, e_ids, n_ids)
            probabilities.insert_probabilities(
                c,
                run_id,
                m.value,
                e_ids,
                np.concatenate(edge_p),
                n_ids,
                np.concatenate(node_p),
                np.concatenate(entropy),
            )
            for rank, (sel, weight) in enumerate(alternatives, start=1):
                insert_rows(
                    c,
                    run_id,
                    movie.id,
                    solution_rows(sel),
                    status="feasible",
                    rank=rank,
                    name=f"{m.value}-rank{rank}",
                    weight=weight,
                )
            runs.set_summary(
                c,
                run_id,
                {
                    "refreshed_from": before.id,
                    "windows": [(lo, hi) for lo, hi, _ in parts],
                    "edges_refreshed": len(e_ids),
                    "nodes_refreshed": len(n_ids),
                    "alternatives": len(alternatives),
                    "track_confidence": "not recomputed",
                },
            )
    return run_id
