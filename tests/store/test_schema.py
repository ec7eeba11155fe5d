"""Schema revisions: created through Alembic, older and newer databases refused with advice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from trackdb import db
from trackdb.errors import ConnectionFailed, SchemaError
from trackdb.store import Store


def test_init_creates_every_table(db_url: str) -> None:
    store = Store(db_url, create=True)
    names = set(sa.inspect(store.engine).get_table_names())
    expected = {"experiment", "movie", "run", "node", "edge", "solution", "solution_node", "solution_edge",
                "track", "edge_probability", "node_probability", "calibration", "edit", "id_block",
                "alembic_version"}
    assert expected <= names
    idx = {i["name"] for i in sa.inspect(store.engine).get_indexes("node")}
    assert {"ix_node_movie_t", "ix_node_hier_parent_id"} <= idx
    assert db.current_revision(store.engine) == db.head_revision()


def test_empty_database_is_refused_without_init(db_url: str) -> None:
    with pytest.raises(SchemaError, match="trackdb init"):
        Store(db_url)


def test_older_revision_names_upgrade(db_url: str) -> None:
    store = Store(db_url, create=True)
    with store.engine.begin() as c:  # pretend the database predates the current head
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    if db.head_revision() == "0001":
        engine = store.engine
        with engine.begin() as c:
            c.exec_driver_sql("DELETE FROM alembic_version")
        with pytest.raises(SchemaError, match="trackdb init"):
            Store(db_url)
        return
    with pytest.raises(SchemaError, match="trackdb db upgrade"):
        Store(db_url)


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


def test_sqlite_pragmas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}", create=True)
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
