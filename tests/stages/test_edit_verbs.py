"""The edit vocabulary on both engines: each verb's constraint holds after a re-solve (and after
a fresh solve), cells made by edits are candidates with links, and bad input leaves the store
exactly as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from trackdb.errors import ConflictError, InputError, NotFoundError
from trackdb.io.import_ctc import import_ctc
from trackdb.stages import edits
from trackdb.stages.link import run_link
from trackdb.stages.resolve import resolve
from trackdb.stages.solve import run_solve
from trackdb.store import Store, schema

from ..conftest import ellipse
from ..helpers import snapshot

MOVIE = "det"
SHAPE = (64, 80)


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    """conftest's synthetic movie (10 frames; track 1 divides into 2 and 3 at frame 3, track 5
    at y = 50 moves left), GT masks as detections, linked (dt 3) and solved."""
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def cells(store: Store) -> dict[int, list[tuple[int, float, float]]]:
    """frame -> [(node id, y, x)] of every candidate."""
    n = schema.node.c
    out: dict[int, list[tuple[int, float, float]]] = {}
    with store.engine.connect() as c:
        for nid, t, y, x in c.execute(sa.select(n.id, n.t, n.y, n.x).order_by(n.id)):
            out.setdefault(int(t), []).append((int(nid), float(y), float(x)))
    return out


def cell_at(store: Store, t: int, y: float, x: float) -> int:
    return min(cells(store)[t], key=lambda c: abs(c[1] - y) + abs(c[2] - x))[0]


def current(store: Store) -> tuple[set[int], set[tuple[int, int]]]:
    """(cells, {(source, target)}) of the current solution."""
    sid = store.movie(MOVIE).current_solution_id
    sn, se = schema.solution_node.c, schema.solution_edge.c
    with store.engine.connect() as c:
        nodes = set(c.execute(sa.select(sn.node_id).where(sn.solution_id == sid)).scalars())
        links = {
            (int(a), int(b)) for a, b in c.execute(sa.select(se.source_id, se.target_id).where(se.solution_id == sid))
        }
    return nodes, links


def children(links: set[tuple[int, int]], node: int) -> set[int]:
    return {b for a, b in links if a == node}


def test_division_false_then_real(solved: Store) -> None:
    mother = cell_at(solved, 2, 20, 19)
    assert len(children(current(solved)[1], mother)) == 2  # the GT division
    e = edits.division(solved, MOVIE, mother, False, author="ann")
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.applied == [e]
    assert len(children(current(solved)[1], mother)) == 1
    edits.remove(solved, MOVIE, e)
    edits.division(solved, MOVIE, mother, True)
    assert resolve(solved, MOVIE) is not None
    assert len(children(current(solved)[1], mother)) == 2
    rows = edits.list_edits(solved, MOVIE)
    assert rows["kind"].tolist() == ["division", "remove", "division"]
    assert rows["target"].tolist() == [f"{mother}:false", e, f"{mother}:real"]
    assert rows["author"].iloc[0] == "ann"
    assert rows["author"].iloc[1]  # the OS user when none is given


def test_relink_and_end_track(solved: Store) -> None:
    # track 4 continues daughter 3 after a two-frame gap: relink it to the other daughter, 2
    d2_last = cell_at(solved, 6, 17, 17)  # daughter 2 at frame 6
    first4 = cell_at(solved, 7, 24, 30)  # track 4's first cell
    nodes0, links0 = current(solved)
    e = edits.relink(solved, MOVIE, first4, d2_last)
    assert resolve(solved, MOVIE) is not None
    _, links = current(solved)
    assert (d2_last, first4) in links
    assert sum(1 for a, b in links if b == first4) == 1
    # end track 5 at frame 5: its cell is kept and has no successor
    c5 = cell_at(solved, 5, 50, 50)
    end = edits.end_track(solved, MOVIE, c5)
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.applied == [end]
    nodes, links = current(solved)
    assert c5 in nodes
    assert not children(links, c5)
    assert (d2_last, first4) in links  # the earlier pin holds
    assert {x[1] for x in edits.list_edits(solved, MOVIE)[["edit_id", "state"]].values} == {"applied"}
    assert e in set(edits.list_edits(solved, MOVIE)["edit_id"])
    assert nodes == nodes0  # fixed masks: every detection stays


def test_relink_adds_a_missing_link(solved: Store) -> None:
    """A parent the link stage did not propose (beyond --dt 3): the edit writes the link."""
    late = cell_at(solved, 9, 50, 42)
    early = cell_at(solved, 2, 50, 56)
    e = schema.edge.c
    with solved.engine.connect() as c:
        n_before = c.execute(sa.select(sa.func.count()).select_from(schema.edge)).scalar_one()
    eid = edits.relink(solved, MOVIE, late, early)
    with solved.engine.connect() as c:
        row = c.execute(sa.select(e.source_id, e.target_id, e.t, e.dt).order_by(e.id.desc()).limit(1)).one()
        n_after = c.execute(sa.select(sa.func.count()).select_from(schema.edge)).scalar_one()
    assert tuple(row) == (early, late, 2, 7)
    assert n_after == n_before + 1
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.applied == [eid]
    assert (early, late) in current(solved)[1]


def test_delete_cell(solved: Store) -> None:
    c5 = cell_at(solved, 5, 50, 50)
    edits.delete_cell(solved, MOVIE, c5)
    assert resolve(solved, MOVIE) is not None
    assert c5 not in current(solved)[0]


def test_add_cell_gets_links_and_replaces_overlaps(solved: Store) -> None:
    mask = ellipse(SHAPE, (50, 50), 5, 5)  # over track 5's cell at frame 5, a bit wider
    e = edits.add_cell(solved, MOVIE, 5, mask)
    (new,) = edits.edit_cells(solved, MOVIE, e)
    old = cell_at(solved, 5, 50, 50)
    n, ed = schema.node.c, schema.edge.c
    with solved.engine.connect() as c:
        row = c.execute(sa.select(n.t, n.source, n.area, n.run_id, n.label).where(n.id == new)).mappings().one()
        old_run = c.execute(sa.select(n.run_id).where(n.id == old)).scalar_one()
        links = c.execute(
            sa.select(ed.source_id, ed.target_id).where((ed.source_id == new) | (ed.target_id == new))
        ).all()
    assert row["t"] == 5
    assert row["source"] == "edit"
    assert row["area"] == int(mask.sum())
    assert row["run_id"] == old_run  # the chain's own candidate run
    assert row["label"] == -new
    assert any(b == new for _, b in links)  # incoming from frames 2-4
    assert any(a == new for a, _ in links)  # outgoing to frames 6-8
    payload = edits.list_edits(solved, MOVIE).iloc[0]
    assert payload["cells"] == str(new)
    r = resolve(solved, MOVIE)
    assert r is not None
    nodes, sel = current(solved)
    assert new in nodes
    assert old not in nodes  # replaced
    assert any(b == new for _, b in sel)  # the new cell is tracked
    # undo: the edit's cell is gone, the old one back
    edits.remove(solved, MOVIE, e)
    assert resolve(solved, MOVIE) is not None
    nodes, _ = current(solved)
    assert new not in nodes
    assert old in nodes


def test_merge_and_split(solved: Store) -> None:
    d2, d3 = cell_at(solved, 4, 19, 15), cell_at(solved, 4, 21, 28)
    m = edits.merge_cells(solved, MOVIE, d2, d3)
    assert resolve(solved, MOVIE) is not None
    (merged,) = edits.edit_cells(solved, MOVIE, m)
    nodes, _ = current(solved)
    assert merged in nodes
    assert not {d2, d3} & nodes
    # split track 5's cell at frame 6 with a vertical line through its centre
    c6 = cell_at(solved, 6, 50, 48)
    s = edits.split_cell(solved, MOVIE, c6, (40, 48, 60, 48))
    halves = edits.edit_cells(solved, MOVIE, s)
    n = schema.node.c
    with solved.engine.connect() as c:
        areas = dict(c.execute(sa.select(n.id, n.area).where(n.id.in_([*halves, c6]))).all())
    assert len(halves) == 2
    assert areas[halves[0]] + areas[halves[1]] == areas[c6]
    assert resolve(solved, MOVIE) is not None
    nodes, _ = current(solved)
    assert set(halves) <= nodes
    assert c6 not in nodes


def test_fresh_solve_honours_cell_edits(solved: Store) -> None:
    mother = cell_at(solved, 2, 20, 19)
    e1 = edits.division(solved, MOVIE, mother, False)
    c5 = cell_at(solved, 5, 50, 50)
    e2 = edits.delete_cell(solved, MOVIE, c5)
    res = run_solve(solved, MOVIE, method="joint", time_limit=60)
    assert res.applied_edits == [e1, e2]
    nodes, links = current(solved)
    assert len(children(links, mother)) == 1
    assert c5 not in nodes
    assert resolve(solved, MOVIE) is None


def test_based_on_conflict(solved: Store) -> None:
    sid = solved.movie(MOVIE).current_solution_id
    assert sid is not None
    c5 = cell_at(solved, 5, 50, 50)
    edits.end_track(solved, MOVIE, c5, based_on=sid)  # made on the current solution: fine
    r = resolve(solved, MOVIE)
    assert r is not None
    before = snapshot(solved)
    with pytest.raises(ConflictError, match=f"made on solution {sid}.*solution {r.solution_id} is current") as err:
        edits.delete_cell(solved, MOVIE, cell_at(solved, 6, 50, 48), based_on=sid)
    assert err.value.current_solution_id == r.solution_id
    assert snapshot(solved) == before
    edits.delete_cell(solved, MOVIE, cell_at(solved, 6, 50, 48), based_on=r.solution_id)  # the retry


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s: edits.relink(s, MOVIE, 10**9, 1), NotFoundError, "no node 1000000000 in movie 'det'"),
        (lambda s: edits.relink(s, MOVIE, 1, cell_at(s, 3, 50, 54)), InputError, "parent must be in an earlier frame"),
        (lambda s: edits.division(s, MOVIE, 10**9, True), NotFoundError, "no node 1000000000"),
        (lambda s: edits.division(s, MOVIE, cell_at(s, 9, 50, 42), True), InputError, "fewer than two candidate"),
        (lambda s: edits.delete_cell(s, "nope", 1), NotFoundError, "no movie 'nope'"),
        (lambda s: edits.end_track(s, MOVIE, 10**9), NotFoundError, "no node 1000000000"),
        (lambda s: edits.add_cell(s, MOVIE, 3, np.ones((10, 10), bool)), InputError, "mask has shape \\(10, 10\\)"),
        (lambda s: edits.add_cell(s, MOVIE, 3, np.zeros(SHAPE, bool)), InputError, "no non-zero pixel"),
        (lambda s: edits.add_cell(s, MOVIE, 42, np.ones(SHAPE, bool)), InputError, "frame 42 is outside"),
        (
            lambda s: edits.add_cell(s, MOVIE, 3, ellipse(SHAPE, (10, 10), 3, 3) | ellipse(SHAPE, (40, 40), 3, 3)),
            InputError,
            "2 separate pieces",
        ),
        (
            lambda s: edits.merge_cells(s, MOVIE, cell_at(s, 3, 20, 14), cell_at(s, 4, 19, 15)),
            InputError,
            "different frames",
        ),
        (lambda s: edits.merge_cells(s, MOVIE, 1, 1), InputError, "two different cells"),
        (
            lambda s: edits.split_cell(s, MOVIE, cell_at(s, 5, 50, 50), (0, 0, 5, 5)),
            InputError,
            "does not cross cell",
        ),
        (lambda s: edits.split_cell(s, MOVIE, cell_at(s, 5, 50, 50), (1, 2, 3)), InputError, "must be 4 numbers"),
        (lambda s: edits.remove(s, MOVIE, 77), NotFoundError, "no edit 77"),
        (lambda s: edits.delete_cell(s, MOVIE, 1, based_on=999), NotFoundError, "no solution 999"),
        (lambda s: edits.add_edit(s, MOVIE, "teleport", 1), InputError, "unknown edit kind 'teleport'"),
    ],
)
def test_bad_input_leaves_store_unchanged(solved: Store, call, error: type[Exception], message: str) -> None:
    before = snapshot(solved)
    with pytest.raises(error, match=message):
        call(solved)
    assert snapshot(solved) == before


def test_contradictions_refused(solved: Store) -> None:
    mother = cell_at(solved, 2, 20, 19)
    edits.division(solved, MOVIE, mother, True)
    before = snapshot(solved)
    for call, why in (
        (lambda: edits.division(solved, MOVIE, mother, False), "both divides and does not"),
        (lambda: edits.end_track(solved, MOVIE, mother), "both divides and ends"),
        (lambda: edits.delete_cell(solved, MOVIE, mother), "divides but is deleted"),
    ):
        with pytest.raises(InputError, match=f"contradictory edits in movie 'det': the cell {mother} {why}"):
            call()
        assert snapshot(solved) == before
    # removing an added cell that a later edit builds on is refused too
    a = edits.add_cell(solved, MOVIE, 8, ellipse(SHAPE, (8, 8), 3, 3))
    (new,) = edits.edit_cells(solved, MOVIE, a)
    edits.end_track(solved, MOVIE, new)
    before = snapshot(solved)
    with pytest.raises(InputError, match=f"the cell {new} ends a track but is deleted"):
        edits.remove(solved, MOVIE, a)
    assert snapshot(solved) == before
