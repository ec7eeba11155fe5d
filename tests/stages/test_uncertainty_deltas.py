"""Ranked alternatives are stored as deltas of the current solution and read like full copies.

Each method's alternatives (``<method>-rank<k>``) are written as the rows in which they differ
from the solution they were sampled around. Here the same run is made twice on one store, once
forced to write its alternatives in full (the way they were written before) and once as deltas:
the probabilities are bit-equal, and each alternative read through the views is the full copy
with its tracks renamed (cells, links, tracks with their confidences, lineage walks, the CTC
export), a track the alternative leaves alone keeping the current solution's id. On a current
solution that is itself a delta (after a re-solve) the alternatives are deltas of the same base.
Deleting an alternative leaves the current solution as it was; deleting a base first writes its
deltas out in full; compacting one (:func:`trackdb.store.deltas.materialize`) keeps its rows.
SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile

from tests.stages.test_exact_resolve import MOVIE, solved  # noqa: F401 (fixture)
from tests.stages.test_solution_delta import view_rows
from tests.stages.test_uncertainty import solved as solved_lap
from trackdb.io.export_ctc import export_ctc
from trackdb.stages import edits, uncertainty
from trackdb.stages.resolve import resolve
from trackdb.store import Store, deltas, queries

Rows = dict[str, list[tuple]]


def run_both(store: Store, movie: str, method: str, monkeypatch: pytest.MonkeyPatch, **kw: object) -> tuple[int, int]:
    """The same uncertainty run twice: alternatives written in full, then as deltas."""
    real = uncertainty._selection_arrays

    def as_before(store: Store, model: uncertainty.Model) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        return (*real(store, model)[:3], False)

    with monkeypatch.context() as m:
        m.setattr(uncertainty, "_selection_arrays", as_before)
        full = uncertainty.run_uncertainty(store, movie, method, **kw)  # type: ignore[arg-type]
    return full, uncertainty.run_uncertainty(store, movie, method, **kw)  # type: ignore[arg-type]


def q(store: Store, sql: str, **params: object) -> list[tuple]:
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(sql), params)]


def alternatives(store: Store, run_id: int) -> list[tuple]:
    return q(
        store,
        "SELECT name, rank, weight, objective, status, id FROM solution WHERE run_id = :r ORDER BY rank",
        r=run_id,
    )


def renamed(a: Rows, b: Rows) -> dict[int, int]:
    """The track ids of ``a`` as ``b`` names them (same cells, a one-to-one renaming)."""
    ta = {n: k for n, k, _ in a["solution_node"]}
    tb = {n: k for n, k, _ in b["solution_node"]}
    assert ta.keys() == tb.keys()
    names = {ta[n]: tb[n] for n in ta}
    assert all(names[ta[n]] == tb[n] for n in ta)
    assert len(set(names.values())) == len(names)
    return names


def rename(rows: Rows, names: dict[int, int]) -> Rows:
    return {
        "solution_node": sorted((n, names[k], t) for n, k, t in rows["solution_node"]),
        "solution_edge": rows["solution_edge"],
        "track": sorted(
            (names[k], a, b, None if p is None else names[p], *rest) for k, a, b, p, *rest in rows["track"]
        ),
    }


def assert_same_lineage(store: Store, movie: str, full: int, delta: int, current: int, out: Path) -> None:
    """``delta`` read through the views is ``full`` with renamed tracks; a track starting where
    a current one starts has the current one's id."""
    a, b = view_rows(store, full), view_rows(store, delta)
    names = renamed(a, b)
    assert rename(a, names) == b
    head: dict[tuple[str, int], int] = {}  # track id -> its first cell, in the current solution and the delta
    for sid, into in ((current, "cur"), (delta, "alt")):
        for n, k, _t in sorted(view_rows(store, sid)["solution_node"], key=lambda r: (r[1], r[2])):
            head.setdefault((into, k), n)
    cur_heads = {n: k for (who, k), n in head.items() if who == "cur"}
    for (who, k), n in head.items():
        if who == "alt" and n in cur_heads:
            assert k == cur_heads[n]
    cell = int(b["solution_node"][len(b["solution_node"]) // 2][0])
    walk_a = queries.ancestors(store, cell, solution=full)
    walk_b = queries.ancestors(store, cell, solution=delta)
    assert walk_a["node_id"].tolist() == walk_b["node_id"].tolist()
    # the CTC export: the same masks and track table, up to the renaming
    ea = export_ctc(store, out / f"full{full}", movie, full)
    eb = export_ctc(store, out / f"delta{delta}", movie, delta)
    files = sorted(p.name for p in ea.iterdir())
    assert files == sorted(p.name for p in eb.iterdir())
    lut = np.zeros(max([0, *names]) + 1, np.int64)
    lut[list(names)] = list(names.values())
    for f in files:
        if f.endswith(".tif"):
            assert np.array_equal(lut[tifffile.imread(ea / f)], tifffile.imread(eb / f))
    ta = np.loadtxt(ea / "res_track.txt", dtype=np.int64, ndmin=2).reshape(-1, 4)
    tb = np.loadtxt(eb / "res_track.txt", dtype=np.int64, ndmin=2).reshape(-1, 4)
    ta[:, 0] = lut[ta[:, 0]]
    ta[:, 3] = lut[ta[:, 3]]
    assert sorted(map(tuple, ta.tolist())) == sorted(map(tuple, tb.tolist()))


def assert_runs_agree(store: Store, movie: str, full_run: int, delta_run: int, current: int, out: Path) -> int:
    """Bit-equal probabilities and the same alternatives; returns how many deltas were compared
    (one that grew past ``deltas.COMPACT_FRACTION`` of its base is written in full)."""
    for table, key in (("edge_probability", "edge_id"), ("node_probability", "node_id")):
        cols = "p, entropy" if table == "node_probability" else "p"
        sql = f"SELECT {key}, {cols} FROM {table} WHERE run_id = :r ORDER BY {key}"
        assert q(store, sql, r=full_run) == q(store, sql, r=delta_run)
    got, want = alternatives(store, delta_run), alternatives(store, full_run)
    assert [r[:5] for r in got] == [r[:5] for r in want]
    timed = ("run_id", "seconds", "info")  # info: the K best search's times
    summary = {k: v for k, v in uncertainty.run_summary(store, delta_run).items() if k not in timed}
    assert summary == {k: v for k, v in uncertainty.run_summary(store, full_run).items() if k not in timed}
    with store.engine.connect() as c:
        base = deltas.base_of(c, current) or current
        for *_, full_id in want:
            assert deltas.base_of(c, full_id) is None
        bases = [deltas.base_of(c, alt_id) for *_, alt_id in got]
    assert set(bases) <= {base, None}  # one level: the current solution's base
    for (*_, f), (*_, d) in zip(want, got):
        assert_same_lineage(store, movie, f, d, current, out)
    return sum(b is not None for b in bases)


@pytest.mark.parametrize("method", ["sm", "fp", "fpa", "mm", "as"])
def test_every_method_stores_alternatives_as_deltas(
    store: Store, synthetic_ctc: Path, tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = solved_lap(store, synthetic_ctc)
    monkeypatch.setattr(deltas, "COMPACT_FRACTION", 1e9)  # a tiny movie: keep every delta
    full, delta = run_both(store, "det", method, monkeypatch, k=6, sigma_px=6.0, sigma_area=0.2)
    assert assert_runs_agree(store, "det", full, delta, sid, tmp_path) == len(alternatives(store, delta)) >= 1
    own = q(
        store,
        "SELECT COUNT(*) FROM solution_node_stored WHERE solution_id IN (SELECT id FROM solution WHERE run_id = :r)",
        r=delta,
    )[0][0]
    cells = q(store, "SELECT COUNT(*) FROM solution_node WHERE solution_id = :s", s=sid)[0][0]
    assert own < cells * len(alternatives(store, delta))  # not every cell again


def test_alternatives_of_a_resolved_solution(
    solved: Store,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AS on the joint movie, first as solved, then after an edit and re-solve (the current
    solution a delta itself): alternatives equal their full copies; deleting and compacting."""
    store = solved
    root = store.movie(MOVIE).current_solution_id
    assert root is not None
    full, delta = run_both(store, MOVIE, "as", monkeypatch, k=8)
    assert assert_runs_agree(store, MOVIE, full, delta, root, tmp_path / "a") >= 2
    with store.engine.connect() as c:  # tracks re-cut, not only links swapped
        assert any(deltas.delta_of(c, a[-1]).own["track"] for a in alternatives(store, delta))

    link = q(store, "SELECT edge_id FROM solution_edge WHERE solution_id = :s ORDER BY edge_id", s=root)
    edits.add_edit(store, MOVIE, "forbid-edge", int(link[len(link) // 2][0]))
    r = resolve(store, MOVIE)
    assert r is not None
    with store.engine.connect() as c:
        assert deltas.base_of(c, r.solution_id) == root
    full2, delta2 = run_both(store, MOVIE, "as", monkeypatch, k=8)
    assert assert_runs_agree(store, MOVIE, full2, delta2, r.solution_id, tmp_path / "b") >= 2

    # deleting an alternative: its rows go, the solutions it read from stay as they were
    current_rows = view_rows(store, r.solution_id)
    root_rows = view_rows(store, root)
    gone = alternatives(store, delta2)[0][-1]
    with store.begin() as c:
        deltas.delete_solution(c, gone)
    for name in ("solution_node_stored", "solution_edge_stored", "track_stored", "solution_hidden"):
        assert q(store, f"SELECT COUNT(*) FROM {name} WHERE solution_id = :s", s=gone)[0][0] == 0
    assert q(store, "SELECT COUNT(*) FROM solution_layer WHERE solution_id = :s", s=gone)[0][0] == 0
    assert view_rows(store, r.solution_id) == current_rows
    assert view_rows(store, root) == root_rows

    # compacting one alternative keeps its rows
    kept = alternatives(store, delta2)[1][-1]
    before = view_rows(store, kept)
    with store.begin() as c:
        deltas.materialize(c, kept)
        assert deltas.base_of(c, kept) is None
    assert view_rows(store, kept) == before

    # deleting the base: every delta on it is written out in full first and reads the same
    on_root = {a[-1]: view_rows(store, a[-1]) for run in (delta, delta2) for a in alternatives(store, run)}
    on_root[r.solution_id] = current_rows
    with store.begin() as c:
        assert set(deltas.dependents(c, root)) == {s for s in on_root if s != kept}
        store.set_current_solution(c, store.movie(MOVIE).id, r.solution_id)
        deltas.delete_solution(c, root)
        assert deltas.dependents(c, root) == []
    assert q(store, "SELECT COUNT(*) FROM solution WHERE id = :s", s=root)[0][0] == 0
    for sid, want in on_root.items():
        assert view_rows(store, sid) == want
    assert q(store, "SELECT COUNT(*) FROM solution_hidden")[0][0] == 0
    assert q(store, "SELECT COUNT(*) FROM solution_layer WHERE solution_id <> layer_id")[0][0] == 0
