"""Schema revisions: created through Alembic, older and newer databases refused with advice."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from trackdb.errors import ConnectionFailed, SchemaError
from trackdb.store import Store, db


def test_init_creates_every_table(db_url: str) -> None:
    store = Store(db_url, create=True)
    inspector = sa.inspect(store.engine)
    names = set(inspector.get_table_names()) | set(inspector.get_view_names())
    expected = {
        "experiment",
        "movie",
        "run",
        "node",
        "edge",
        "solution",
        "solution_node",  # views (revision 0011) over the *_stored tables
        "solution_edge",
        "track",
        "solution_node_stored",
        "solution_edge_stored",
        "track_stored",
        "solution_layer",
        "solution_hidden",
        "edge_probability",
        "node_probability",
        "calibration",
        "edit",
        "id_block",
        "alembic_version",
    }
    assert expected <= names
    idx = {i["name"] for i in sa.inspect(store.engine).get_indexes("node")}
    assert {"ix_node_movie_t", "ix_node_hier_parent_id"} <= idx
    assert db.current_revision(store.engine) == db.head_revision()


def test_empty_database_is_refused_without_init(db_url: str) -> None:
    if db_url.startswith("sqlite"):  # a missing file is refused, not created
        with pytest.raises(ConnectionFailed, match="does not exist.*trackdb init"):
            Store(db_url)
        db.make_engine(db_url).dispose()  # an empty file
    with pytest.raises(SchemaError, match="trackdb init"):
        Store(db_url)


def test_create_makes_a_schema_but_never_migrates(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0005")
    with pytest.raises(SchemaError, match="older than this trackdb.*trackdb db upgrade"):
        Store(db_url, create=True)
    assert db.current_revision(engine) == "0005"


def test_older_revision_is_refused_then_upgraded_with_data(db_url: str) -> None:
    from trackdb.store.db import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0001")  # a database written by the first release
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO movie (id, name, ndim, n_frames, size_y, size_x, spacing_y, spacing_x) "
            "VALUES (1, 'm', 2, 2, 8, 8, 1, 1)"
        )
        c.exec_driver_sql("INSERT INTO run (id, movie_id, kind, status) VALUES (1, 1, 'import', 'succeeded')")
        c.exec_driver_sql(
            "INSERT INTO run (id, movie_id, kind, status, message) VALUES "
            "(2, 1, 'uncertainty', 'succeeded', '{\"alternatives\": 3}'), "
            "(3, 1, 'solve', 'failed', 'solve ended infeasible')"
        )
        for nid, t in ((1, 0), (2, 1)):
            c.exec_driver_sql(
                f"INSERT INTO node (id, movie_id, run_id, t, label, y, x, area, bbox_y0, bbox_x0, "
                f"bbox_y1, bbox_x1, source) VALUES ({nid}, 1, 1, {t}, 1, 1, 1, 1, 0, 0, 1, 1, 'gt')"
            )
        c.exec_driver_sql(
            "INSERT INTO edge (id, movie_id, run_id, source_id, target_id, t, dt) VALUES (7, 1, 1, 1, 2, 0, 1)"
        )
        c.exec_driver_sql("INSERT INTO solution (id, run_id, movie_id, rank, status) VALUES (1, 1, 1, 0, 'optimal')")
        c.exec_driver_sql("INSERT INTO solution_edge (solution_id, edge_id) VALUES (1, 7)")
        for nid in (1, 2):
            c.exec_driver_sql(f"INSERT INTO solution_node (solution_id, node_id, track_id) VALUES (1, {nid}, 1)")
    with pytest.raises(SchemaError, match="older than this trackdb.*trackdb db upgrade"):
        Store(db_url)
    upgrade(engine)
    store = Store(db_url)
    with store.engine.connect() as c:
        row = c.exec_driver_sql("SELECT source_id, target_id FROM solution_edge WHERE edge_id = 7").one()
    assert tuple(row) == (1, 2)
    with store.engine.connect() as c:  # 0004 copies each selected cell's frame from node
        frames = c.exec_driver_sql("SELECT node_id, t FROM solution_node ORDER BY node_id").all()
    assert [tuple(r) for r in frames] == [(1, 0), (2, 1)]
    with store.engine.connect() as c:  # 0005 moves uncertainty summaries out of the error column
        runs = {r[0]: (r[1], r[2]) for r in c.exec_driver_sql("SELECT id, message, summary FROM run")}
    assert runs[2][0] is None
    summary = json.loads(runs[2][1]) if isinstance(runs[2][1], str) else runs[2][1]
    assert summary == {"alternatives": 3}
    assert runs[3] == ("solve ended infeasible", None)
    assert db.current_revision(store.engine) == db.head_revision()


def test_newer_revision_is_refused(db_url: str) -> None:
    store = Store(db_url, create=True)
    with store.engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    with pytest.raises(SchemaError, match="newer than this trackdb"):
        Store(db_url)
    with pytest.raises(SchemaError, match="newer than this trackdb"):
        db.upgrade(store.engine)


def test_unreachable_database() -> None:
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        Store("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConnectionFailed, match="does not exist"):
        Store("sqlite:////no/such/folder/x.sqlite")


def test_sqlite_pragmas(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}", create=True)
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
