"""Dead runs are marked: a run whose process was killed (SIGKILL) or stopped (SIGTERM) is shown
as failed with the reason by the next command that lists or resumes runs, so `running` means
running (both engines, real subprocesses); revision 0008 upgrades and downgrades with data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from trackdb.store import Store, db, processes, runs, schema
from trackdb.store.runs import ImportParams, RunKind, RunStatus

from ..helpers import trackdb

WORKER = """
import sys, time
import trackdb.cli
from trackdb.store import Store, runs
from trackdb.store.runs import ImportParams, RunKind
trackdb.cli.install_signal_handlers()
store = Store(sys.argv[1])
with runs.record(store, None, RunKind.IMPORT, ImportParams(dataset="d", seq="01"), resume=True) as run_id:
    print(run_id, flush=True)
    time.sleep(120)
"""


def start_worker(db_url: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.Popen([sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), "the worker did not start its run"
    return proc, int(line)


def status_of(store: Store, run_id: int) -> tuple[str, str | None]:
    with store.engine.connect() as c:
        row = c.execute(sa.select(schema.run.c.status, schema.run.c.message).where(schema.run.c.id == run_id)).one()
    return row.status, row.message


def listed(db_url: str) -> dict[int, dict[str, object]]:
    r = trackdb("runs", "--format", "json", db=db_url)
    assert r.returncode == 0, r.stderr
    return {int(row["id"]): row for row in json.loads(r.stdout)}


def test_a_killed_run_is_marked_failed_by_the_next_listing(store: Store, db_url: str, tmp_path: Path) -> None:
    proc, run_id = start_worker(db_url, tmp_path)
    try:
        row = listed(db_url)[run_id]
        assert row["status"] == "running"  # its process lives: left alone
        assert row["pid"] == proc.pid
        assert row["host"] == processes.hostname()
    finally:
        proc.kill()
        proc.wait()
    assert status_of(store, run_id)[0] == "running"  # nobody looked yet
    row = listed(db_url)[run_id]
    assert row["status"] == "failed"
    assert row["message"] == f"abandoned: process {proc.pid} on {processes.hostname()} is gone"
    assert row["finished_at"] is not None
    assert status_of(store, run_id) == ("failed", row["message"])


def test_the_table_lists_runs_with_and_without_messages(store: Store, db_url: str, tmp_path: Path) -> None:
    """A failed run's message beside runs that have none (a crash once: NaN has no len())."""
    with runs.record(store, None, RunKind.IMPORT, ImportParams(dataset="a", seq="01")):
        pass
    proc, run_id = start_worker(db_url, tmp_path)
    proc.kill()
    proc.wait()
    r = trackdb("runs", db=db_url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("succeeded" in line for line in lines)
    assert any(line.split()[0] == str(run_id) and "abandoned: process" in line for line in lines)


def test_sigterm_marks_the_run_failed_itself(store: Store, db_url: str, tmp_path: Path) -> None:
    proc, run_id = start_worker(db_url, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert status_of(store, run_id) == ("failed", "terminated by SIGTERM")


def test_resuming_reaps_then_continues_the_dead_run(store: Store, db_url: str, tmp_path: Path) -> None:
    proc, run_id = start_worker(db_url, tmp_path)
    proc.kill()
    proc.wait()
    again, again_id = start_worker(db_url, tmp_path)  # the same stage with the same parameters
    try:
        assert again_id == run_id  # the dead run is continued, not duplicated
        row = listed(db_url)[run_id]
        assert row["status"] == "running"
        assert row["pid"] == again.pid  # and now belongs to the process that continues it
    finally:
        again.kill()
        again.wait()


def test_what_cannot_be_checked_is_left_alone(store: Store) -> None:
    """A live process, a process of another host and an old row without a process stay
    running; a reused pid (same pid, another start time) is another process."""
    me = processes.this_process()
    ids = {}
    owners: dict[str, dict[str, Any]] = {
        "alive": {"pid": me.pid, "host": me.host, "process_started": me.started},
        "other host": {"pid": 1, "host": "elsewhere.example", "process_started": 0.0},
        "no process": {"pid": None, "host": None, "process_started": None},
        "pid reused": {"pid": me.pid, "host": me.host, "process_started": (me.started or 0.0) - 3600.0},
    }
    for name, owner in owners.items():
        with store.engine.begin() as c:
            ids[name] = c.execute(
                schema.run.insert()
                .values(kind="import", status="running", params={"dataset": name, "seq": "01"}, **owner)
                .returning(schema.run.c.id)
            ).scalar_one()
    assert runs.reap(store) == [ids["pid reused"]]
    assert status_of(store, ids["pid reused"]) == (
        "failed",
        f"abandoned: process {me.pid} on {me.host} is gone (pid {me.pid} now belongs to another process)",
    )
    for name in ("alive", "other host", "no process"):
        assert status_of(store, ids[name])[0] == "running", name


def test_a_finished_run_records_its_process(store: Store) -> None:
    with runs.record(store, None, RunKind.IMPORT, ImportParams(dataset="d", seq="01")) as run_id:
        pass
    run = runs.get_run(store, run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert (run.pid, run.host) == (os.getpid(), processes.hostname())


def test_revision_0008_upgrade_and_downgrade_with_data(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0007")
    with engine.begin() as c:  # runs that other rows refer to, as in any real store
        c.exec_driver_sql(
            "INSERT INTO movie (id, name, ndim, n_frames, size_y, size_x, spacing_y, spacing_x) "
            "VALUES (1, 'm', 2, 2, 8, 8, 1, 1)"
        )
        c.exec_driver_sql(
            "INSERT INTO run (id, kind, status, message) VALUES (1, 'solve', 'running', NULL), "
            "(2, 'link', 'failed', 'no candidate pairs')"
        )
        c.exec_driver_sql(
            "INSERT INTO node (id, movie_id, run_id, t, label, y, x, area, bbox_y0, bbox_x0, bbox_y1, bbox_x1, "
            "source) VALUES (1, 1, 2, 0, 1, 1, 1, 1, 0, 0, 1, 1, 'gt')"
        )
    db.upgrade(engine, "0008")
    store = Store(db_url) if db.head_revision() == "0008" else None
    with engine.connect() as c:
        rows = c.exec_driver_sql("SELECT id, kind, status, message, pid, host, process_started FROM run ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (1, "solve", "running", None, None, None, None),
            (2, "link", "failed", "no candidate pairs", None, None, None),
        ]
    if store is not None:
        assert runs.reap(store) == []  # a pre-0008 run has no process to check: left as it was
        store.close()
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE run SET pid = 42, host = 'h', process_started = 1.5 WHERE id = 1")
    from alembic import command

    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    assert db.current_revision(engine) == "0007"
    columns = {col["name"] for col in sa.inspect(engine).get_columns("run")}
    assert not {"pid", "host", "process_started"} & columns
    with engine.connect() as c:
        assert [tuple(r) for r in c.exec_driver_sql("SELECT id, status FROM run ORDER BY id")] == [
            (1, "running"),
            (2, "failed"),
        ]
        assert c.exec_driver_sql("SELECT run_id FROM node").scalar_one() == 2
    engine.dispose()


@pytest.mark.parametrize("movie", [None, "m"])
def test_runs_listing_of_a_movie(store: Store, db_url: str, synthetic_ctc: Path, movie: str | None) -> None:
    from trackdb.io.import_ctc import import_ctc

    import_ctc(store, synthetic_ctc, "01", "m", masks_only=True)
    args = ("runs",) if movie is None else ("runs", "--movie", movie)
    r = trackdb(*args, db=db_url)
    assert r.returncode == 0, r.stderr
    assert "import" in r.stdout
    assert "succeeded" in r.stdout
