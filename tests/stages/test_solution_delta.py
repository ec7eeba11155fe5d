"""A re-solved solution is stored as a delta of its base (revision 0011) and reads like a full one.

After each edit + re-solve of a chain (a re-solve of a re-solve ...), the delta solution read
through the views equals the same solution written out in full: every cell, link and track row,
the tracks table, the lineage queries and the CTC export; its tracks are the CTC tracks of its
cells and links (the ids kept where a track did not change). Undoing the edits brings the delta
back to nothing; confidences written on a delta leave the base alone; deleting the movie removes
the deltas' rows; downgrading below 0011 writes the deltas out in full. SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from solvers.tracks import tracks_from_solution
from tests.stages.test_exact_resolve import MOVIE, random_edit, solved  # noqa: F401 (fixture)
from trackdb.errors import InputError
from trackdb.io.export_ctc import export_ctc
from trackdb.stages import cost_model as costs
from trackdb.stages import edits
from trackdb.stages.resolve import load_chain_model, resolve, selection_of
from trackdb.store import Store, cost_models, deltas, queries, runs, schema, solutions
from trackdb.store import db as store_db
from trackdb.store import edits as log
from trackdb.store.graph import load_candidates

TABLES = ("solution_node", "solution_edge", "track")


def view_rows(store: Store, sid: int) -> dict[str, list[tuple]]:
    """Every row each view gives for one solution, sorted, without the solution id."""
    out = {}
    with store.engine.connect() as c:
        for name in TABLES:
            cols = [k for k in getattr(schema, name).c.keys() if k != "solution_id"]
            q = sa.text(f"SELECT {', '.join(cols)} FROM {name} WHERE solution_id = :s")
            out[name] = sorted(tuple(r) for r in c.execute(q, {"s": sid}))
    return out


def full_copy(store: Store, sid: int) -> int:
    """The same solution written out in full (its own rows only), same track ids."""
    with store.begin() as c:
        d = deltas.delta_of(c, sid)
        mid = store.movie(MOVIE).id
        run = c.execute(sa.select(schema.solution.c.run_id).where(schema.solution.c.id == sid)).scalar_one()
        s = schema.solution
        copy = c.execute(
            s.insert().values(run_id=run, movie_id=mid, rank=99, status="optimal").returning(s.c.id)
        ).scalar_one()
        c.execute(schema.solution_layer.insert(), [{"solution_id": copy, "layer_id": copy}])
        if d.base_id != sid:
            c.execute(schema.solution_layer.insert(), [{"solution_id": copy, "layer_id": d.base_id}])
        for name, kind in zip(TABLES, ("node", "edge", "track")):
            stored = f"{name}_stored"
            cols = [k for k in getattr(schema, name).c.keys() if k != "solution_id"]
            c.execute(
                sa.text(
                    f"INSERT INTO {stored} (solution_id, {', '.join(cols)}) "
                    f"SELECT :copy, {', '.join(cols)} FROM {stored} WHERE solution_id = :s"
                ),
                {"copy": copy, "s": sid},
            )
            for i in d.hidden[kind]:
                c.execute(schema.solution_hidden.insert().values(solution_id=copy, kind=kind, item_id=i))
        deltas.materialize(c, copy)
        assert deltas.base_of(c, copy) is None
    return int(copy)


def assert_ctc_tracks(store: Store, sid: int) -> None:
    """The solution's track ids and rows are the CTC tracks of its cells and links."""
    arr = solutions.solution_arrays(store, sid)
    order = np.argsort(arr.node_ids)
    ids, t = arr.node_ids[order], arr.node_t[order]
    src = np.searchsorted(ids, arr.source_ids)
    dst = np.searchsorted(ids, arr.target_ids)
    fresh, fresh_tracks = tracks_from_solution(t, src, dst, np.ones(len(ids), bool), np.ones(len(src), bool))
    stored = dict(view_row for view_row in ((r[0], r[1]) for r in view_rows(store, sid)["solution_node"]))
    mine = np.array([stored[int(i)] for i in ids])
    # the same partition of cells into tracks: a one-to-one map between the two numberings
    pairs = set(zip(fresh.tolist(), mine.tolist()))
    assert len(pairs) == len(set(fresh.tolist())) == len(set(mine.tolist()))
    to_mine = dict(pairs)
    rows = {r[0]: r[1:4] for r in view_rows(store, sid)["track"]}
    assert len(rows) == len(fresh_tracks)
    for tid, start, end, parent in fresh_tracks.tolist():
        got = rows[to_mine[tid]]
        assert (got[0], got[1]) == (start, end)
        assert got[2] == (to_mine[parent] if parent else None)


def test_a_chain_of_deltas_reads_like_full_solutions(solved: Store, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(7)
    movie = solved.movie(MOVIE)
    root = movie.current_solution_id
    assert root is not None
    cm = load_chain_model(solved, movie, runs.solve_chain(solved, movie))
    done = retracked = 0
    while done < 12:
        sid = solved.movie(MOVIE).current_solution_id
        assert sid is not None
        sol = selection_of(solved, sid, cm.node_ids, cm.edge_ids)
        try:
            made = random_edit(
                solved, np.random.default_rng(rng.integers(1 << 30)), cm.graph, sol, cm.node_ids, cm.edge_ids
            )
        except InputError:
            continue
        if made is None:
            continue
        if done % 3 == 0:  # now and then two edits in one re-solve: two windows, or one grown
            try:
                random_edit(
                    solved, np.random.default_rng(rng.integers(1 << 30)), cm.graph, sol, cm.node_ids, cm.edge_ids
                )
            except InputError:
                pass
        try:
            r = resolve(solved, MOVIE, margin=1)
        except Exception:  # infeasible pins: undo this round's edits (itself a re-solve of the chain)
            for e in log.all_edits(solved, movie.id):
                if e["run_id"] is None and e["kind"] != "remove":
                    edits.remove(solved, MOVIE, e["id"])
            r = resolve(solved, MOVIE, margin=1)
        assert r is not None
        with solved.engine.connect() as c:
            base = deltas.base_of(c, r.solution_id)
            # one level: a delta's base is a full solution (the solve's, or a delta written out in full)
            assert base is None or deltas.base_of(c, base) is None
        with solved.engine.connect() as c:
            retracked += len(deltas.delta_of(c, r.solution_id).own["track"])
        full = full_copy(solved, r.solution_id)
        assert view_rows(solved, r.solution_id) == view_rows(solved, full)
        assert_ctc_tracks(solved, r.solution_id)
        pd_a = queries.tracks(solved, MOVIE, solution=r.solution_id)
        pd_b = queries.tracks(solved, MOVIE, solution=full)
        assert pd_a.equals(pd_b)
        cell = int(view_rows(solved, r.solution_id)["solution_node"][-1][0])
        assert queries.ancestors(solved, cell, solution=r.solution_id).equals(
            queries.ancestors(solved, cell, solution=full)
        )
        a = export_ctc(solved, tmp_path / f"a{done}", MOVIE, r.solution_id)
        b = export_ctc(solved, tmp_path / f"b{done}", MOVIE, full)
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
        assert r.n_selected == len(view_rows(solved, r.solution_id)["solution_node"])
        assert r.n_tracks == len(view_rows(solved, r.solution_id)["track"])
        done += 1
    assert retracked > 0  # tracks were re-cut along the way, not only links swapped


def _continuing_link(store: Store, sid: int) -> int:
    """A selected link whose source has no other selected link, in the middle of the movie."""
    arr = solutions.solution_arrays(store, sid)
    src, n = np.unique(arr.source_ids, return_counts=True)
    single = set(src[n == 1].tolist())
    t = dict(zip(arr.node_ids.tolist(), arr.node_t.tolist()))
    mid = store.movie(MOVIE).n_frames // 2
    return int(next(e for e, s in zip(arr.edge_ids.tolist(), arr.source_ids.tolist()) if s in single and t[s] == mid))


def test_undo_brings_the_delta_back_to_nothing(solved: Store) -> None:  # noqa: F811
    root = solved.movie(MOVIE).current_solution_id
    assert root is not None
    before = view_rows(solved, root)
    made = edits.add_edit(solved, MOVIE, "forbid-edge", _continuing_link(solved, root))
    r1 = resolve(solved, MOVIE)
    assert r1 is not None
    assert r1.links_changed > 0
    with solved.engine.connect() as c:
        d1 = deltas.delta_of(c, r1.solution_id)
    assert d1.base_id == root
    assert 0 < d1.size() < 40
    assert view_rows(solved, r1.solution_id) != before
    assert view_rows(solved, root) == before  # the base is untouched
    edits.remove(solved, MOVIE, made)
    r2 = resolve(solved, MOVIE)
    assert r2 is not None
    with solved.engine.connect() as c:
        d2 = deltas.delta_of(c, r2.solution_id)
    assert d2.base_id == root
    assert d2.size() == 0
    assert view_rows(solved, r2.solution_id) == before


def test_confidences_on_a_delta_leave_the_base(solved: Store) -> None:  # noqa: F811
    root = solved.movie(MOVIE).current_solution_id
    assert root is not None
    edits.add_edit(solved, MOVIE, "forbid-edge", _continuing_link(solved, root))
    r = resolve(solved, MOVIE)
    assert r is not None
    tids = np.array([row[0] for row in view_rows(solved, r.solution_id)["track"]])
    conf = np.column_stack([np.full(len(tids), 0.5), np.full(len(tids), 0.25)])
    with solved.begin() as c:
        solutions.set_track_confidence(c, r.solution_id, tids, conf)
    assert {row[4:] for row in view_rows(solved, r.solution_id)["track"]} == {(0.5, 0.25)}
    assert {row[4:] for row in view_rows(solved, root)["track"]} == {(None, None)}


def test_deleting_the_movie_removes_every_delta_row(solved: Store) -> None:  # noqa: F811
    root = solved.movie(MOVIE).current_solution_id
    assert root is not None
    edits.add_edit(solved, MOVIE, "forbid-edge", _continuing_link(solved, root))
    assert resolve(solved, MOVIE) is not None
    with solved.begin() as c:
        c.execute(schema.movie.delete())
    with solved.engine.connect() as c:
        for table in (
            "solution_node_stored",
            "solution_edge_stored",
            "track_stored",
            "solution_layer",
            "solution_hidden",
        ):
            assert c.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0


def test_downgrading_writes_deltas_in_full(solved: Store) -> None:  # noqa: F811
    from alembic import command

    root = solved.movie(MOVIE).current_solution_id
    assert root is not None
    edits.add_edit(solved, MOVIE, "forbid-edge", _continuing_link(solved, root))
    r = resolve(solved, MOVIE)
    assert r is not None
    want = view_rows(solved, r.solution_id)
    cfg = store_db.alembic_config()
    with solved.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    with solved.engine.connect() as c:
        got = sorted(
            tuple(x)
            for x in c.execute(
                sa.text("SELECT node_id, track_id, t FROM solution_node WHERE solution_id = :s"), {"s": r.solution_id}
            )
        )
    assert got == want["solution_node"]
    store_db.upgrade(solved.engine)  # and back up: the same rows through the views
    assert view_rows(solved, r.solution_id) == want


@pytest.mark.parametrize("fraction", [0.0])
def test_a_delta_past_its_limit_is_written_in_full(solved: Store, fraction: float, monkeypatch) -> None:  # noqa: F811
    root = solved.movie(MOVIE).current_solution_id
    assert root is not None
    edits.add_edit(solved, MOVIE, "forbid-edge", _continuing_link(solved, root))
    before_cells = view_rows(solved, root)["solution_node"]
    monkeypatch.setattr(deltas, "COMPACT_FRACTION", fraction)
    r = resolve(solved, MOVIE)
    assert r is not None
    with solved.engine.connect() as c:
        assert deltas.base_of(c, r.solution_id) is None
    rows = view_rows(solved, r.solution_id)
    assert {x[0] for x in rows["solution_node"]} == {x[0] for x in before_cells}  # a link edit keeps the cells
    assert_ctc_tracks(solved, r.solution_id)


def test_window_covariances_from_the_solve_equal_the_masks(solved: Store) -> None:  # noqa: F811
    """A re-solve's window reads no masks: the covariances the solve stored are the masks' own,
    and a cell the solve did not have (an edit's) gets its masks' covariance."""
    movie = solved.movie(MOVIE)
    chain = runs.solve_chain(solved, movie)
    assert chain.root is not None
    stored = cost_models.read(solved, chain.root.id)
    assert stored is not None
    assert "cell.cov" in stored.arrays
    run = chain.candidate_run
    cands, ids = load_candidates(solved, run, movie.ndim, frames=(4, 9))
    want = costs.features(cands, movie).cov
    bare, bare_ids = load_candidates(solved, run, movie.ndim, with_masks=False, frames=(4, 9))
    np.testing.assert_array_equal(bare_ids, ids)

    def masks_of(wanted: np.ndarray) -> tuple:
        return load_candidates(solved, run, movie.ndim, node_ids=wanted)

    got = costs.window_features(bare, ids, movie, stored, masks_of).cov
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    keep = ~np.isin(stored.arrays["node_ids"], ids[::3])  # every third window cell unknown to the solve
    partial = dataclasses.replace(
        stored, arrays={k: v[keep] if k in ("node_ids", "cell.cov") else v for k, v in stored.arrays.items()}
    )
    got = costs.window_features(bare, ids, movie, partial, masks_of).cov
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
