"""Revision 0006 (the solve's stored cost model): a database written at 0005 with a solved movie
upgrades, its old solve re-solves with re-estimated costs, a new solve stores its model and its
re-solves use it; the revision downgrades again. On both engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command

from trackdb.io.import_ctc import import_ctc
from trackdb.stages.edits import add_edit
from trackdb.stages.link import run_link
from trackdb.stages.resolve import resolve
from trackdb.stages.solve import run_solve
from trackdb.store import Store, cost_models, db, schema

MOVIE = "det"


def _downgrade(url: str, revision: str) -> None:
    engine = db.make_engine(url)
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def first_link(store: Store) -> int:
    se = schema.solution_edge.c
    sid = store.movie(MOVIE).current_solution_id
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.min(se.edge_id)).where(se.solution_id == sid)).scalar_one())


def test_upgrade_from_0005_with_a_solved_movie(db_url: str, synthetic_ctc: Path) -> None:
    store = Store(db_url, create=True)
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    solve = run_solve(store, MOVIE, method="joint", time_limit=60)
    model = cost_models.read(store, solve.run_id)
    assert model is not None
    assert set(model.arrays) >= {"node_ids", "motion.shift", "motion.division_rate"}
    assert model.arrays["motion.shift"].shape == (len(model.arrays["node_ids"]), 2)
    assert model.scalars["sigma_motion"] > 0
    assert model.params["appear"] == 10.0
    store.close()
    _downgrade(db_url, "0005")  # the database as 0005 wrote it: a solve without a stored model
    engine = db.make_engine(db_url)
    assert "cost_model" not in sa.inspect(engine).get_table_names()
    assert db.current_revision(engine) == "0005"
    db.upgrade(engine)
    engine.dispose()
    store = Store(db_url)
    assert cost_models.read(store, solve.run_id) is None
    with store.engine.connect() as c:
        n_solutions = c.execute(sa.select(sa.func.count()).select_from(schema.solution)).scalar_one()
    assert n_solutions == 1  # the old rows are all there
    add_edit(store, MOVIE, "forbid-edge", first_link(store))
    r = resolve(store, MOVIE)
    assert r is not None
    assert r.costs == "re-estimated"
    # a new solve (honouring the edit) stores its model; its re-solves price the graph with it
    again = run_solve(store, MOVIE, method="joint", time_limit=60)
    stored = cost_models.read(store, again.run_id)
    assert stored is not None
    np.testing.assert_array_equal(np.sort(stored.arrays["node_ids"]), np.sort(model.arrays["node_ids"]))
    add_edit(store, MOVIE, "forbid-edge", first_link(store))
    r = resolve(store, MOVIE)
    assert r is not None
    assert r.costs == "stored"
    store.close()
