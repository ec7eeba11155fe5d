"""Exactly once: a worker SIGKILLed mid-task, or the whole run SIGKILLed (scheduler, workers,
client), then a re-run: the store equals that of an uninterrupted run (row counts and the
selected lineage's digest per movie), with no duplicate, orphan or unfinished rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from tests.helpers import trackdb
from trackdb.experiment import engine
from trackdb.experiment import manifest as mf

from .conftest import manifest_text, write_movies
from .test_engine import store_state

N_MOVIES, N_FRAMES = 4, 20  # 5 frame chunks per movie and stage: room to land a kill mid-run


@pytest.fixture
def big_plate(tmp_path: Path) -> Path:
    write_movies(tmp_path, n=N_MOVIES, n_frames=N_FRAMES)
    path = tmp_path / "plate.toml"
    path.write_text(manifest_text(n=N_MOVIES))
    return path


def reference(plate: Path, url: str) -> dict[str, Any]:
    """The store after one uninterrupted run."""
    r = trackdb("experiment", "run", str(plate), "--workers", "2", "--no-progress", db=url)
    assert r.returncode == 0, (r.stderr, r.exception)
    state = store_state(url)
    assert all(v == 0 for v in state["defects"].values()), state["defects"]
    return state


def _count(url: str, sql: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(sa.text(sql)).scalar_one())
    except sa.exc.ProgrammingError:  # the schema is not there yet
        return 0
    finally:
        eng.dispose()


def test_worker_sigkill_mid_task(big_plate: Path, new_pg: Callable[[], str]) -> None:
    ref_url, url = new_pg(), new_pg()
    expected = reference(big_plate, ref_url)

    manifest = mf.load(big_plate)
    options = engine.Options(url=url, workers=2, progress=False)
    killed: dict[str, Any] = {}
    with engine.local_client(options) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        result: dict[str, engine.Result] = {}
        runner = threading.Thread(target=lambda: result.setdefault("r", engine.run(manifest, options, client)))
        runner.start()
        deadline = time.monotonic() + 120
        while "pid" not in killed and runner.is_alive() and time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                busy = [k for k in keys if str(k).startswith(("import-t", "link-t"))]
                done = _count(url, "SELECT COUNT(*) FROM run WHERE status = 'succeeded'")
                if busy and done >= 2 and addr in pids:  # some movies imported, chunks in flight
                    os.kill(pids[addr], signal.SIGKILL)
                    killed.update(pid=pids[addr], task=str(busy[0]))
                    break
            time.sleep(0.01)
        runner.join(timeout=300)
        assert not runner.is_alive()
    assert "pid" in killed, "the run finished before a worker could be killed"
    assert not psutil.pid_exists(killed["pid"]) or psutil.Process(killed["pid"]).status() == psutil.STATUS_ZOMBIE
    # Dask ran the dead worker's tasks again on a live (or restarted) worker: nothing failed
    assert result["r"].failed == {}, result["r"].failed

    # and a re-run of the manifest has nothing left to do
    again = trackdb("experiment", "run", str(big_plate), "--workers", "2", "--no-progress", db=url)
    assert again.returncode == 0, again.stderr
    assert store_state(url) == expected, killed


def _session_processes(sid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return out


def test_whole_run_sigkill(big_plate: Path, new_pg: Callable[[], str]) -> None:
    ref_url, url = new_pg(), new_pg()
    expected = reference(big_plate, ref_url)

    cmd = [sys.executable, "-m", "trackdb", "experiment", "run", str(big_plate), "--workers", "2", "--db", url]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if _count(url, "SELECT COUNT(*) FROM edge") > 0:  # importing done for some movie, linking begun
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # client, scheduler, nannies and workers at once
        proc.wait(timeout=30)
        time.sleep(0.5)
        assert _session_processes(proc.pid) == []
    finally:
        for p in _session_processes(proc.pid):
            p.kill()
    unfinished = _count(url, "SELECT COUNT(*) FROM run WHERE status <> 'succeeded'")
    finished = _count(url, "SELECT COUNT(*) FROM run WHERE status = 'succeeded' AND kind = 'uncertainty'")
    assert unfinished > 0, "the kill must land mid-run"
    assert finished < N_MOVIES, "the kill must land mid-run"

    st = trackdb("experiment", "status", "plate-1", db=url)  # dead runs are shown failed, not running
    assert st.returncode == 0, st.stdout
    assert "running" not in st.stdout, st.stdout

    again = trackdb("experiment", "run", str(big_plate), "--workers", "2", "--no-progress", db=url)
    assert again.returncode == 0, (again.stderr, again.exception)
    assert store_state(url) == expected
