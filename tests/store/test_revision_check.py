"""The schema check without Alembic: the head read from the migration files is Alembic's, the
database's revision is one SELECT, and anything but the head still gets Alembic's refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from trackdb.errors import SchemaError
from trackdb.store import db


def test_head_from_the_files_is_alembics() -> None:
    assert db._linear_head() == db.head_revision()


def test_current_revision_and_the_check(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        assert db.current_revision(engine) is None
        with pytest.raises(SchemaError, match="no trackdb schema"):
            db.check_schema(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        db.check_schema(engine)  # passes
        with engine.begin() as c:
            c.execute(sa.text("UPDATE alembic_version SET version_num = '0005'"))
        with pytest.raises(SchemaError, match="older than this trackdb"):
            db.check_schema(engine)
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0004')"))
        with pytest.raises(SchemaError, match="2 schema revisions"):
            db.current_revision(engine)
    finally:
        engine.dispose()


def test_a_branched_history_is_left_to_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import migrations

    versions = tmp_path / "versions"
    versions.mkdir()
    for rev, down in (("0001", None), ("0002", "0001"), ("0003", "0001")):
        (versions / f"{rev}.py").write_text(f"revision = {rev!r}\ndown_revision = {down!r}\n")
    monkeypatch.setattr(migrations, "__file__", str(tmp_path / "__init__.py"))
    db._linear_head.cache_clear()
    try:
        assert db._linear_head() is None
    finally:
        db._linear_head.cache_clear()
