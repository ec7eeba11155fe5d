"""Two editors at once, in separate processes, on both engines: an edit made on a solution that
a re-solve replaced is refused with a conflict and succeeds when retried on the new one; and
overlapping re-solves of one movie (the issue's ``forbid-edge A; resolve --margin 60 &;
forbid-edge B; resolve --margin 0``) run one after the other, so the current solution honours
both edits and every edit's run holds it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from trackdb.io.import_ctc import import_ctc
from trackdb.stages.edits import add_edit, list_edits
from trackdb.stages.link import run_link
from trackdb.stages.resolve import resolve
from trackdb.stages.solve import run_solve
from trackdb.store import Store, schema
from trackdb.store.locks import movie_lock

MOVIE = "det"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def cli(db_url: str, *args: str) -> subprocess.Popen[str]:
    """``trackdb ARGS --db URL`` in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "trackdb", *args, "--db", db_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


def selected_links(store: Store, sid: int) -> set[int]:
    se = schema.solution_edge.c
    with store.engine.connect() as c:
        return set(c.execute(sa.select(se.edge_id).where(se.solution_id == sid)).scalars())


def solution_of_run(store: Store, run_id: int) -> int:
    s = schema.solution.c
    with store.engine.connect() as c:
        return int(c.execute(sa.select(s.id).where(s.run_id == run_id)).scalar_one())


def two_selected_links(store: Store) -> tuple[int, int]:
    sid = store.movie(MOVIE).current_solution_id
    se, e = schema.solution_edge.c, schema.edge.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(se.edge_id, e.t).join(schema.edge, e.id == se.edge_id).where(se.solution_id == sid).order_by(e.t)
        ).all()
    a = next(r[0] for r in rows if r[1] == 1)
    b = next(r[0] for r in rows if r[1] == 7)
    return int(a), int(b)


def test_conflicting_editor_is_refused_then_retries(solved: Store, db_url: str) -> None:
    s0 = solved.movie(MOVIE).current_solution_id
    a, b = two_selected_links(solved)
    # both editors look at solution s0; the first (this process) edits and re-solves
    add_edit(solved, MOVIE, "forbid-edge", a, "ann", based_on=s0)
    r = resolve(solved, MOVIE)
    assert r is not None
    s1 = r.solution_id
    # the second, still on s0, is refused with a clear message and nothing written
    n_edits = len(list_edits(solved, MOVIE))
    code, out, err = finish(
        cli(db_url, "edit", "--movie", MOVIE, "forbid-edge", str(b), "--on", str(s0), "--author", "bob")
    )
    assert code == 2
    assert err.strip() == (
        f"error: edit made on solution {s0} of movie '{MOVIE}', but solution {s1} is current now (a re-solve "
        f"replaced it): look at solution {s1} and repeat the edit on it (--on {s1})"
    )
    assert len(list_edits(solved, MOVIE)) == n_edits
    # the retry on the solution the first editor made
    code, out, err = finish(
        cli(db_url, "edit", "--movie", MOVIE, "forbid-edge", str(b), "--on", str(s1), "--author", "bob")
    )
    assert code == 0, err
    r = resolve(solved, MOVIE)
    assert r is not None
    final = selected_links(solved, r.solution_id)
    assert not {a, b} & final
    rows = list_edits(solved, MOVIE)
    assert rows["author"].tolist() == ["ann", "bob"]
    assert rows["based_on"].tolist() == [s0, s1]
    assert rows["state"].tolist() == ["applied", "applied"]


def test_two_editors_racing_never_apply_unseen(solved: Store, db_url: str) -> None:
    """Two processes edit on the same solution at once and each re-solves: whatever the order,
    every accepted edit names the solution that was current when it was appended, the others
    are conflicts, and the final solution honours every accepted edit."""
    s0 = solved.movie(MOVIE).current_solution_id
    a, b = two_selected_links(solved)
    script = (
        "import sys\n"
        "from trackdb.store import Store\n"
        "from trackdb.stages.edits import add_edit\n"
        "from trackdb.stages.resolve import resolve\n"
        "from trackdb.errors import ConflictError\n"
        "s = Store(sys.argv[1])\n"
        "try:\n"
        "    add_edit(s, 'det', 'forbid-edge', int(sys.argv[2]), based_on=int(sys.argv[3]))\n"
        "except ConflictError as e:\n"
        "    print('conflict', e.current_solution_id); sys.exit(0)\n"
        "resolve(s, 'det')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, str(link), str(s0)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for link in (a, b)
    ]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    outcomes = [out.split()[0] for _, out, _ in results]
    assert "ok" in outcomes
    accepted = [link for link, o in zip((a, b), outcomes) if o == "ok"]
    rows = list_edits(solved, MOVIE)
    assert sorted(rows["target"].tolist()) == sorted(accepted)
    assert set(rows["based_on"]) == {s0}
    assert set(rows["state"]) == {"applied"}
    current = solved.movie(MOVIE).current_solution_id
    assert current is not None
    assert not set(accepted) & selected_links(solved, current)


def _wait_for_waiters(store: Store, n: int) -> None:
    """Give the re-solve processes time to start and queue on the lock (PostgreSQL: until
    ``n`` advisory-lock requests are waiting; SQLite's flock queue cannot be read)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.is_postgres:
            with store.engine.connect() as c:
                waiting = c.exec_driver_sql(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).scalar_one()
            if waiting >= n:
                return
        elif time.monotonic() > deadline - 55:
            return
        time.sleep(0.2)


@pytest.mark.parametrize("hold_lock", [False, True])
def test_overlapping_resolves_are_serialised(solved: Store, db_url: str, hold_lock: bool) -> None:
    """The issue's scenario. With ``hold_lock`` a third party holds the movie's re-solve lock
    while both re-solves start, so they certainly overlap and then race for it."""
    a, b = two_selected_links(solved)
    movie_id = solved.movie(MOVIE).id
    ea = add_edit(solved, MOVIE, "forbid-edge", a)
    if hold_lock:
        with movie_lock(solved, movie_id):
            p1 = cli(db_url, "resolve", "--movie", MOVIE, "--margin", "60")
            eb = add_edit(solved, MOVIE, "forbid-edge", b)
            p2 = cli(db_url, "resolve", "--movie", MOVIE, "--margin", "0")
            _wait_for_waiters(solved, 2)
    else:
        p1 = cli(db_url, "resolve", "--movie", MOVIE, "--margin", "60")
        eb = add_edit(solved, MOVIE, "forbid-edge", b)
        p2 = cli(db_url, "resolve", "--movie", MOVIE, "--margin", "0")
    r1, r2 = finish(p1), finish(p2)
    assert r1[0] == 0, r1[2]
    assert r2[0] == 0, r2[2]
    current = solved.movie(MOVIE).current_solution_id
    assert current is not None
    assert not {a, b} & selected_links(solved, current)
    rows = list_edits(solved, MOVIE)
    assert rows["state"].tolist() == ["applied", "applied"]
    for edit_id, link in ((ea, a), (eb, b)):
        run_id = int(rows.loc[rows["edit_id"] == edit_id, "run_id"].iloc[0])
        assert link not in selected_links(solved, solution_of_run(solved, run_id))
    # the re-solves form one chain: each started from the solution the previous one wrote
    r = schema.run.c
    with solved.engine.connect() as c:
        solves = c.execute(sa.select(r.id, r.parent_run_id, r.params).where(r.kind == "solve").order_by(r.id)).all()
    resolves = [x for x in solves if x.params.get("resolve")]
    assert 1 <= len(resolves) <= 2
    for prev, nxt in zip(solves, solves[1:]):
        assert nxt.parent_run_id == prev.id
    sol_ids = [solution_of_run(solved, x.id) for x in solves]
    for x, prev_sid in zip(resolves, sol_ids[len(solves) - len(resolves) - 1 :]):
        assert x.params["resolve"]["previous_solution_id"] == prev_sid
