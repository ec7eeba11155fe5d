"""A task the scheduler gives up on (its worker died, KilledWorker) fails its stage's running
run in the store: no process will finish it, and a worker of another host cannot be reaped."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import Any

import dask
import pytest
import sqlalchemy as sa

from trackdb.experiment import engine
from trackdb.store import Store, experiments, runs, schema
from trackdb.store.runs import LinkParams, RunKind


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _run_row(store: Store, run_id: int) -> Any:
    with store.engine.connect() as c:
        return c.execute(sa.select(schema.run.c.status, schema.run.c.message).where(schema.run.c.id == run_id)).one()


def test_a_killed_worker_fails_the_running_run(store: Store, db_url: str) -> None:
    distributed = pytest.importorskip("distributed")
    mid = experiments.register_movie(
        store, "plate-x", "A01", (16, 16), 3, uri=None, spacing=None, conditions={"drug": "DMSO"}
    )
    other = experiments.register_movie(store, "plate-x", "A02", (16, 16), 3, uri=None, spacing=None, conditions={})
    params = LinkParams(candidate_run_id=0, max_distance=5.0, k=3)
    run_id = runs.begin(store, mid, RunKind.LINK, params)
    bystander = runs.begin(store, other, RunKind.LINK, params)  # another movie's run: left alone
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            fut = client.submit(_die, key="link-t0-A01-test", pure=False)
            graph = engine._Graph(futures=[fut], movie_of={fut.key: "A01"}, stage_of={fut.key: "link"})
            manifest = SimpleNamespace(name="plate-x", movies=[SimpleNamespace(name="A01")])
            failed_tasks, failed = engine.wait(client, graph, manifest, False, db_url)  # type: ignore[arg-type]
        finally:
            client.close()
            cluster.close()
    assert failed_tasks == 1
    assert "KilledWorker" in failed["A01"]
    status, message = _run_row(store, run_id)
    assert status == "failed"
    assert message.startswith("abandoned: Dask gave up on task link-t0-A01-test after its workers died")
    assert _run_row(store, bystander).status == "running"
