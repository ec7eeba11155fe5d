"""After a re-solve, the new solution's probabilities and alternatives are refreshed for the
re-solved window only, and respect the pins; on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from trackdb.io.import_ctc import import_ctc
from trackdb.stages.edits import add_edit
from trackdb.stages.link import run_link
from trackdb.stages.resolve import resolve
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty, uncertain
from trackdb.store import Store, runs, schema

MOVIE = "det"


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def edge_p(store: Store, run_id: int) -> dict[int, float]:
    ep = schema.edge_probability.c
    with store.engine.connect() as c:
        return {int(e): float(p) for e, p in c.execute(sa.select(ep.edge_id, ep.p).where(ep.run_id == run_id))}


def edge_frames(store: Store) -> dict[int, tuple[int, int]]:
    e = schema.edge.c
    with store.engine.connect() as c:
        return {int(i): (int(t), int(t + dt)) for i, t, dt in c.execute(sa.select(e.id, e.t, e.dt))}


def test_window_refreshed_rest_copied(solved: Store) -> None:
    before_run = run_uncertainty(solved, MOVIE, "sm", k=3)
    before = edge_p(solved, before_run)
    sid = solved.movie(MOVIE).current_solution_id
    se = schema.solution_edge.c
    with solved.engine.connect() as c:
        link = int(c.execute(sa.select(sa.func.min(se.edge_id)).where(se.solution_id == sid)).scalar_one())
    assert before[link] > 0.5
    add_edit(solved, MOVIE, "forbid-edge", link)
    r = resolve(solved, MOVIE, margin=1)
    assert r is not None
    assert r.uncertainty_error is None
    assert r.uncertainty_run_id is not None
    assert runs.latest_uncertainty_run(solved, solved.movie(MOVIE)) == r.uncertainty_run_id
    after = edge_p(solved, r.uncertainty_run_id)
    assert set(after) == set(before)  # every candidate link has a probability
    assert after[link] < 1e-6  # the forbidden link: respects the pin
    ((lo, hi),) = r.windows
    frames = edge_frames(solved)
    outside = [e for e, (_, t1) in frames.items() if not lo <= t1 <= hi]
    assert outside
    assert all(after[e] == before[e] for e in outside)  # copied, not recomputed
    run = runs.get_run(solved, r.uncertainty_run_id)
    assert run.summary is not None
    assert run.summary["refreshed_from"] == before_run
    assert run.summary["windows"] == [[lo, hi]]
    # its alternatives are whole solutions, equal to the new solution outside the window
    s = schema.solution.c
    sn = schema.solution_node.c
    with solved.engine.connect() as c:
        alts = c.execute(sa.select(s.id, s.rank, s.name).where(s.run_id == r.uncertainty_run_id)).all()
        cur_nodes = set(c.execute(sa.select(sn.node_id).where(sn.solution_id == r.solution_id)).scalars())
    doubtful = uncertain(solved, MOVIE, below=1.0)  # `trackdb uncertain` reads the refreshed run
    assert len(doubtful) > 0
    assert set(doubtful["node_id"]) <= cur_nodes
    with solved.engine.connect() as c:
        for alt_id, rank, name in alts:
            assert name == f"sm-rank{rank}"
            alt_nodes = set(c.execute(sa.select(sn.node_id).where(sn.solution_id == alt_id)).scalars())
            assert alt_nodes == cur_nodes  # fixed masks: every cell in every alternative


def test_no_uncertainty_run_no_refresh(solved: Store) -> None:
    sid = solved.movie(MOVIE).current_solution_id
    se = schema.solution_edge.c
    with solved.engine.connect() as c:
        link = int(c.execute(sa.select(sa.func.min(se.edge_id)).where(se.solution_id == sid)).scalar_one())
    add_edit(solved, MOVIE, "forbid-edge", link)
    r = resolve(solved, MOVIE)
    assert r is not None
    assert r.uncertainty_run_id is None
    assert r.uncertainty_error is None
