"""Edits → incremental re-solve on both engines: pins hold, frames outside the window stay, runs chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import tifffile

from inference.synthetic import movie_prob_from_labels
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.candidates import run_candidates
from trackdb.stages.edits import add_edit, division, list_edits
from trackdb.stages.link import run_link
from trackdb.stages.resolve import resolve, windows
from trackdb.stages.solve import run_solve
from trackdb.store import Store, schema

from ..helpers import gt_masks, snapshot, trackdb

MOVIE = "det"


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    """The synthetic movie (10 frames, one division, one gap) with GT masks, linked and solved."""
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def current(store: Store) -> tuple[int, set[tuple[int, ...]], set[tuple[int, ...]]]:
    """(solution id, {(node, t)}, {(edge, source, target, source t)}) of the current solution."""
    sid = store.movie(MOVIE).current_solution_id
    sn, se, e = schema.solution_node.c, schema.solution_edge.c, schema.edge.c
    with store.engine.connect() as c:
        nodes = {tuple(r) for r in c.execute(sa.select(sn.node_id, sn.t).where(sn.solution_id == sid))}
        edges = {
            tuple(r)
            for r in c.execute(
                sa.select(se.edge_id, se.source_id, se.target_id, e.t, e.dt)
                .join(schema.edge, e.id == se.edge_id)
                .where(se.solution_id == sid)
            )
        }
    return sid, nodes, edges  # type: ignore[return-value]


def candidate_edges(store: Store) -> list[tuple[int, int, int]]:
    e = schema.edge.c
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(e.id, e.t, e.dt).order_by(e.id))]


def run_row(store: Store, run_id: int) -> dict:
    with store.engine.connect() as c:
        return dict(c.execute(sa.select(schema.run).where(schema.run.c.id == run_id)).mappings().one())


def outside(nodes: set, edges: set, lo: int, hi: int) -> tuple[set, set]:
    """Cells outside frames [lo, hi] and links with both ends outside them."""
    return (
        {n for n in nodes if not lo <= n[1] <= hi},
        {x for x in edges if not (lo <= x[3] <= hi or lo <= x[3] + x[4] <= hi or (x[3] < lo and x[3] + x[4] > hi))},
    )


def test_forbid_selected_link(solved: Store) -> None:
    sid0, nodes0, edges0 = current(solved)
    run0 = solved.movie(MOVIE)
    with solved.engine.connect() as c:
        solve_run = c.execute(sa.select(schema.solution.c.run_id).where(schema.solution.c.id == sid0)).scalar_one()
    target = next(x for x in sorted(edges0, key=lambda x: x[3]) if x[3] == 4 and x[4] == 1)
    edit_id = add_edit(solved, MOVIE, "forbid-edge", target[0], author="test")
    edits = list_edits(solved, MOVIE)
    assert edits.to_dict("records")[0] | {"created_at": None} == {
        "edit_id": edit_id,
        "kind": "forbid-edge",
        "target": target[0],
        "t_start": 4,
        "t_end": 5,
        "author": "test",
        "created_at": None,
        "run_id": None,
        "state": "pending",
        "based_on": sid0,
        "cells": None,
    }
    r = resolve(solved, MOVIE, margin=2)
    assert r is not None
    assert r.status == "optimal"
    assert r.windows == [(2, 7)]
    assert r.applied == [edit_id]
    sid1, nodes1, edges1 = current(solved)
    assert sid1 == r.solution_id != sid0
    assert run0.current_solution_id == sid0
    assert target[0] not in {x[0] for x in edges1}
    assert outside(nodes1, edges1, 2, 7) == outside(nodes0, edges0, 2, 7)
    assert nodes1 == nodes0  # fixed masks: every detection stays selected
    run = run_row(solved, r.run_id)
    assert run["kind"] == "solve"
    assert run["status"] == "succeeded"
    assert run["parent_run_id"] == solve_run
    assert run["params"]["resolve"]["edits"] == [edit_id]
    assert list_edits(solved, MOVIE)["run_id"].tolist() == [r.run_id]
    assert list_edits(solved, MOVIE)["state"].tolist() == ["applied"]
    # a second edit chains onto the re-solve, and the first pin keeps holding
    other = next(x for x in sorted(edges1, key=lambda x: x[3]) if x[3] == 5 and x[4] == 1)
    add_edit(solved, MOVIE, "forbid-edge", other[0])
    r2 = resolve(solved, MOVIE, margin=1)
    assert r2 is not None
    assert run_row(solved, r2.run_id)["parent_run_id"] == r.run_id
    _, _, edges2 = current(solved)
    assert not {target[0], other[0]} & {x[0] for x in edges2}


def test_pin_unselected_link(solved: Store) -> None:
    _, nodes0, edges0 = current(solved)
    chosen = {x[0] for x in edges0}
    pin = next(e for e in candidate_edges(solved) if e[0] not in chosen and e[2] == 1)
    add_edit(solved, MOVIE, "pin-edge", pin[0])
    r = resolve(solved, MOVIE, margin=1)
    lo, hi = max(0, pin[1] - 1), min(9, pin[1] + 2)
    assert r is not None
    assert r.links_changed > 0
    assert r.windows == [(lo, hi)]
    _, nodes1, edges1 = current(solved)
    assert pin[0] in {x[0] for x in edges1}
    assert outside(nodes1, edges1, lo, hi) == outside(nodes0, edges0, lo, hi)


def test_node_edits_and_remove(solved: Store) -> None:
    _, nodes0, _ = current(solved)
    node = next(n for n, t in sorted(nodes0) if t == 5)
    forbid = add_edit(solved, MOVIE, "forbid-node", node)
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.nodes_changed == 1
    assert node not in {n for n, _ in current(solved)[1]}
    undo = add_edit(solved, MOVIE, "remove", forbid)
    assert list_edits(solved, MOVIE)["state"].tolist() == ["removed", "pending"]
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.applied == [undo]
    assert node in {n for n, _ in current(solved)[1]}
    with pytest.raises(InputError, match="already removed"):
        add_edit(solved, MOVIE, "remove", forbid)


@pytest.mark.parametrize(
    "kind, target, message",
    [
        ("forbid-edge", 10**9, "no link 1000000000 in movie 'det'"),
        ("pin-node", 10**9, "no node 1000000000 in movie 'det'"),
        ("remove", 12345, "no edit 12345 in movie 'det'"),
        ("split", 1, "unknown edit kind 'split'"),
    ],
)
def test_bad_edit_leaves_store_unchanged(solved: Store, kind: str, target: int, message: str) -> None:
    before = snapshot(solved)
    with pytest.raises((NotFoundError, InputError), match=message):
        add_edit(solved, MOVIE, kind, target)
    assert snapshot(solved) == before


def test_contradictory_edits_are_refused(solved: Store) -> None:
    _, _, edges0 = current(solved)
    link = min(edges0, key=lambda x: x[3])[0]
    first = add_edit(solved, MOVIE, "pin-edge", link)
    before = snapshot(solved)
    with pytest.raises(InputError, match=f"link {link} is both pinned and forbidden \\(edit {first} and this edit\\)"):
        add_edit(solved, MOVIE, "forbid-edge", link)
    assert snapshot(solved) == before
    add_edit(solved, MOVIE, "remove", first)  # undo the pin: now the forbid is fine
    add_edit(solved, MOVIE, "forbid-edge", link)
    r = resolve(solved, MOVIE)
    assert r is not None
    assert link not in {x[0] for x in current(solved)[2]}


def test_two_parents_pinned_is_refused(solved: Store) -> None:
    e = schema.edge.c
    with solved.engine.connect() as c:
        rows = c.execute(sa.select(e.id, e.target_id).order_by(e.target_id, e.id)).all()
    by_target: dict[int, list[int]] = {}
    for eid, tgt in rows:
        by_target.setdefault(tgt, []).append(eid)
    a, b = next(v for v in by_target.values() if len(v) >= 2)[:2]
    add_edit(solved, MOVIE, "pin-edge", a)
    before = snapshot(solved)
    with pytest.raises(InputError, match="gets two parents"):
        add_edit(solved, MOVIE, "pin-edge", b)
    assert snapshot(solved) == before


def test_infeasible_pins_fail_the_run(solved: Store) -> None:
    """Pins no rule catches when they are made (a division whose daughters are all forbidden
    but one) fail the re-solve: run failed, current solution and edits as they were."""
    sid0, _, edges0 = current(solved)
    e = schema.edge.c
    with solved.engine.connect() as c:
        rows = c.execute(sa.select(e.id, e.source_id).where(e.dt == 1).order_by(e.source_id, e.id)).all()
    out: dict[int, list[int]] = {}
    for eid, src in rows:
        out.setdefault(src, []).append(eid)
    mother, links = next((m, v) for m, v in out.items() if len(v) >= 2)
    first = add_edit(solved, MOVIE, "forbid-edge", links[0])
    for other in links[2:]:
        add_edit(solved, MOVIE, "forbid-edge", other)
    last = division(solved, MOVIE, mother, True)
    with pytest.raises(SolveFailed, match="ended infeasible: the pins conflict"):
        resolve(solved, MOVIE)
    assert solved.movie(MOVIE).current_solution_id == sid0
    with solved.engine.connect() as c:
        run = c.execute(sa.select(schema.run).order_by(schema.run.c.id.desc()).limit(1)).mappings().one()
        n_solutions = c.execute(sa.select(sa.func.count()).select_from(schema.solution)).scalar_one()
    assert run["kind"] == "solve"
    assert run["status"] == "failed"
    assert n_solutions == 1
    assert set(list_edits(solved, MOVIE)["state"]) == {"pending"}
    add_edit(solved, MOVIE, "remove", first)  # two daughters possible again: now it solves
    r = resolve(solved, MOVIE)
    assert r is not None
    assert last in r.applied


def test_nothing_pending_writes_nothing(solved: Store) -> None:
    before = snapshot(solved)
    assert resolve(solved, MOVIE) is None
    assert snapshot(solved) == before
    _, _, edges0 = current(solved)
    add_edit(solved, MOVIE, "forbid-edge", min(edges0, key=lambda x: x[3])[0])
    assert resolve(solved, MOVIE) is not None
    before = snapshot(solved)
    assert resolve(solved, MOVIE) is None  # applied and held: nothing to do
    assert snapshot(solved) == before


def test_fresh_solve_honours_the_edits(solved: Store) -> None:
    _, _, edges0 = current(solved)
    link = min(edges0, key=lambda x: x[3])[0]
    edit_id = add_edit(solved, MOVIE, "forbid-edge", link)
    res = run_solve(solved, MOVIE, method="joint", time_limit=60)  # a full solve applies the pin too
    assert res.applied_edits == [edit_id]
    assert link not in {x[0] for x in current(solved)[2]}
    assert list_edits(solved, MOVIE)["run_id"].tolist() == [res.run_id]
    assert resolve(solved, MOVIE) is None  # nothing pending, every pin holds


def test_resolve_needs_a_solve(store: Store, synthetic_ctc: Path) -> None:
    import_ctc(store, synthetic_ctc, "01", MOVIE)  # ground truth lineage: solution from an import
    with pytest.raises(NotFoundError, match="run `trackdb link` first"):
        add_edit(store, MOVIE, "pin-node", 1)
    run_link(store, MOVIE, max_distance=30, k=5)
    with pytest.raises(InputError, match="run `trackdb solve` first"):
        resolve(store, MOVIE)


def test_forest_forbid_selected_cell(store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    """Competing candidates: forbidding a selected cell leaves the frames outside the window as they were."""
    prob = movie_prob_from_labels(gt_masks(synthetic_ctc), seed=1, merge_fraction=0.0, split_fraction=0.0)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    import_ctc(store, synthetic_ctc, "01", MOVIE, no_gt=True)
    run_candidates(store, MOVIE, prob=tmp_path / "prob.tif", min_area=5, progress=False)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    _, nodes0, edges0 = current(store)
    node = next(n for n, t in sorted(nodes0) if t == 5)
    add_edit(store, MOVIE, "forbid-node", node)
    r = resolve(store, MOVIE, margin=1)
    assert r is not None
    assert r.status == "optimal"
    # frames 4-6 first; the new links reach the window's border frames, so it is widened once
    assert r.widened == 1
    assert r.windows == [(2, 8)]
    _, nodes1, edges1 = current(store)
    assert node not in {n for n, _ in nodes1}
    assert outside(nodes1, edges1, 2, 8) == outside(nodes0, edges0, 2, 8)


def test_windows_merge_when_contexts_would_touch() -> None:
    assert windows([(4, 5)], 2, 10, 1) == [(2, 7)]
    assert windows([(0, 0), (9, 9)], 2, 10, 1) == [(0, 2), (7, 9)]
    assert windows([(0, 0), (6, 6)], 2, 10, 1) == [(0, 8)]  # 2 and 4: one frame apart
    assert windows([(1, 1), (30, 31)], 0, 40, 3) == [(1, 1), (30, 31)]


def test_cli_edit_edits_resolve(db_url: str, synthetic_ctc: Path) -> None:
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", MOVIE, "--masks-only", db=db_url).returncode == 0
    assert trackdb("link", "--movie", MOVIE, "--max-distance", "30", "--k", "5", "--dt", "3", db=db_url).returncode == 0
    assert trackdb("solve", "--movie", MOVIE, db=db_url).returncode == 0
    r = trackdb("query", "SELECT MIN(edge_id) AS e FROM solution_edge", "--format", "csv", db=db_url)
    link = r.stdout.strip().splitlines()[-1]
    r = trackdb("edit", "--movie", MOVIE, "forbid-edge", link, "--author", "me", db=db_url)
    assert r.returncode == 0
    assert r.stdout.strip() == "1"
    r = trackdb("edit", "--movie", MOVIE, "pin-node", "99999999", db=db_url)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: no node 99999999 in movie 'det'"
    rows = json.loads(trackdb("edits", "--movie", MOVIE, "--format", "json", db=db_url).stdout)
    assert [(x["kind"], str(x["target"]), x["state"]) for x in rows] == [("forbid-edge", link, "pending")]
    r = trackdb("resolve", "--movie", MOVIE, "--margin", "2", db=db_url)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "optimal"
    assert out["edits"] == [1]
    assert out["parent_run_id"] == 3
    r = trackdb("resolve", "--movie", MOVIE, db=db_url)
    assert r.returncode == 0
    assert "nothing written" in r.stdout


def test_a_cost_model_saved_by_other_cost_code_is_named(solved: Store) -> None:
    """A stored model holds scales, not formulas: after the cost code changed, a re-solve says
    its costs are no longer exactly the solve's."""
    from trackdb.stages import cost_model

    sid0, _, edges0 = current(solved)
    cm = schema.cost_model.c
    with solved.engine.connect() as c:
        solve_run = c.execute(sa.select(schema.solution.c.run_id).where(schema.solution.c.id == sid0)).scalar_one()
        scalars = c.execute(sa.select(cm.scalars).where(cm.run_id == solve_run)).scalar_one()
    assert scalars["cost_code"] == cost_model.cost_code()  # the solve kept its code's digest
    first, second = sorted(edges0)[:2]
    add_edit(solved, MOVIE, "forbid-edge", first[0], author="test")
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.costs == "stored"
    other = {**scalars, "cost_code": "0" * 16}  # as if another trackdb version had saved it
    with solved.begin() as c:
        c.execute(schema.cost_model.update().where(cm.run_id == solve_run).values(scalars=other))
    add_edit(solved, MOVIE, "forbid-edge", second[0], author="test")
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.costs == cost_model.CHANGED_CODE
