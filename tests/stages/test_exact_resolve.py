"""Exact incremental re-solve: after each of 50 random edits of a synthetic movie, the re-solved
solution has the objective of a full solve of the same graph (the solve's stored cost model)
with the same pins, within the MIP gap. Margin 0, so the windows start as small as the edits
and their widening (when changes reach a border frame) is what makes them exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from solvers.joint import solve_joint
from solvers.model import objective
from synthetic.cases import case
from synthetic.ctc_io import write_ctc
from synthetic.movies import generate
from trackdb.errors import InputError
from trackdb.io.import_ctc import import_ctc
from trackdb.stages import edits
from trackdb.stages import pins as pin_rules
from trackdb.stages.link import run_link
from trackdb.stages.resolve import load_chain_model, resolve, selection_of, summary_of
from trackdb.stages.solve import run_solve
from trackdb.store import Store, runs
from trackdb.store import edits as log

MOVIE = "syn"
GAP = 1e-6


@pytest.fixture
def solved(store: Store, tmp_path: Path) -> Store:
    """The quick ``nuclei_border`` case (20 frames, ~15-30 nuclei, divisions, border crossings):
    GT masks as detections, linked with 3-frame gaps, solved."""
    write_ctc(generate(case("nuclei_border", quick=True)), tmp_path / "syn", raw=False)
    import_ctc(store, tmp_path / "syn", "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=40, k=6, dt=2)
    run_solve(store, MOVIE, method="joint", gap=GAP, time_limit=120)
    return store


def random_edit(store: Store, rng: np.random.Generator, graph, sol, node_ids, edge_ids) -> int | None:
    """One random edit of the current solution: forbid a selected link, pin an unselected one,
    mark a division false, end a track, delete a cell, relink, or undo an earlier edit."""
    verb = rng.choice(["forbid-edge", "pin-edge", "division", "end-track", "delete-cell", "relink", "remove"])
    sel_e = np.flatnonzero(sol.edge_selected)
    n_out = np.bincount(graph.edge_source[sol.edge_selected], minlength=graph.n_nodes)
    if verb == "forbid-edge":
        return edits.add_edit(store, MOVIE, "forbid-edge", int(edge_ids[rng.choice(sel_e)]))
    if verb == "pin-edge":
        return edits.add_edit(store, MOVIE, "pin-edge", int(edge_ids[rng.choice(np.flatnonzero(~sol.edge_selected))]))
    if verb == "division":
        mothers = np.flatnonzero(n_out == 2)
        if len(mothers) == 0:
            return None
        return edits.division(store, MOVIE, int(node_ids[rng.choice(mothers)]), False)
    if verb == "end-track":
        return edits.end_track(store, MOVIE, int(node_ids[rng.choice(np.flatnonzero(n_out == 1))]))
    if verb == "delete-cell":
        return edits.delete_cell(store, MOVIE, int(node_ids[rng.choice(np.flatnonzero(sol.node_selected))]))
    if verb == "relink":
        e = int(rng.choice(np.flatnonzero(~sol.edge_selected)))
        return edits.relink(store, MOVIE, int(node_ids[graph.edge_target[e]]), int(node_ids[graph.edge_source[e]]))
    active = [r["id"] for r in log.all_edits(store, store.movie(MOVIE).id) if r["kind"] != "remove"]
    gone = log.removed(store, store.movie(MOVIE).id)
    left = [i for i in active if i not in gone]
    return edits.remove(store, MOVIE, int(rng.choice(left))) if left else None


def test_fifty_random_edits_match_full_solves(solved: Store) -> None:
    rng = np.random.default_rng(13)
    movie = solved.movie(MOVIE)
    chain = runs.solve_chain(solved, movie)
    cm = load_chain_model(solved, movie, chain)
    assert cm.costs == "stored"
    graph, node_ids, edge_ids = cm.graph, cm.node_ids, cm.edge_ids
    # the stored model is the solve's own: its solution is optimal for it
    assert movie.current_solution_id is not None
    stored = selection_of(solved, movie.current_solution_id, node_ids, edge_ids)
    plain = solve_joint(graph, gap=GAP)
    assert objective(graph, stored.node_selected, stored.edge_selected) == pytest.approx(
        plain.objective, rel=GAP, abs=1e-6
    )
    checked = widened = failed = 0
    while checked < 50:
        sid = solved.movie(MOVIE).current_solution_id
        assert sid is not None
        sol = selection_of(solved, sid, node_ids, edge_ids)
        try:
            made = random_edit(solved, rng, graph, sol, node_ids, edge_ids)
        except InputError:  # a contradiction with an earlier edit: refused, store unchanged
            continue
        if made is None:
            continue
        cons = pin_rules.constraints(log.all_edits(solved, movie.id))
        pins, stale, _ = pin_rules.pins_for(cons, node_ids, edge_ids)
        assert stale == []
        full = solve_joint(graph, pins=pins, gap=GAP)
        try:
            r = resolve(solved, MOVIE, margin=0, gap=GAP)
        except Exception:
            # only when the pins are infeasible for the whole movie too; then undo the edit
            assert full.status.value == "infeasible"
            failed += 1
            edits.remove(solved, MOVIE, made)
            resolve(solved, MOVIE, margin=0, gap=GAP)
            continue
        assert full.status.value == "optimal"
        assert r is not None
        new = selection_of(solved, r.solution_id, node_ids, edge_ids)
        got = objective(graph, new.node_selected, new.edge_selected)
        assert got == pytest.approx(r.objective, rel=1e-9, abs=1e-6)
        tol = 2 * GAP * abs(full.objective) + 1e-6
        assert got <= full.objective + tol, f"edit {made}: re-solve {got} vs full solve {full.objective}"
        assert got >= full.objective - tol
        widened += r.widened
        checked += 1
        # GT masks: a fixed segmentation, so every window's sub-problem is an assignment
        assert r.solver == {"solver": "assignment"}, r.solver
        assert summary_of(r)["solver"] == "assignment"
    assert checked == 50
    assert failed < 10
    assert widened > 0  # margin 0: the windows' borders bind, and widening finds the full optimum


def test_a_named_backend_runs_the_joint_program(solved: Store) -> None:
    movie = solved.movie(MOVIE)
    chain = runs.solve_chain(solved, movie)
    cm = load_chain_model(solved, movie, chain)
    assert movie.current_solution_id is not None
    sol = selection_of(solved, movie.current_solution_id, cm.node_ids, cm.edge_ids)
    e = int(np.flatnonzero(sol.edge_selected)[0])
    edits.add_edit(solved, MOVIE, "forbid-edge", int(cm.edge_ids[e]))
    r = resolve(solved, MOVIE, margin=1, gap=GAP, backend="ortools-highs")
    assert r is not None
    assert r.solver == {"solver": "joint"}
    summary = runs.get_run(solved, r.run_id).summary
    assert summary is not None
    assert summary["solver"] == "joint"
