"""`trackdb query` only reads: every write, DDL, ATTACH or VACUUM INTO is refused with one line
and exit 2, and the store is unchanged (its rows on both engines, its file's bytes on SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackdb.errors import InputError
from trackdb.io.import_ctc import import_ctc
from trackdb.store import Store, readonly

from ..helpers import snapshot, trackdb

WRITES = [
    "DROP TABLE solution_edge",
    "DELETE FROM node",
    "UPDATE node SET t = 0",
    "INSERT INTO experiment (name) VALUES ('x')",
    "CREATE TABLE evil (a INTEGER)",
    "ALTER TABLE node ADD COLUMN evil INTEGER",
    "ATTACH DATABASE 'attached.sqlite' AS other",
    "VACUUM INTO 'copy.sqlite'",
    "VACUUM",
    "REINDEX",
    "BEGIN",
    "COMMIT",
    "SELECT 1; DROP TABLE node",
    "SELECT 1; COMMIT; CREATE TABLE evil (a INTEGER)",
    "WITH x AS (SELECT 1) DELETE FROM node",
    "  -- a comment first\n  DELETE FROM node",
]
SQLITE_ONLY = ["PRAGMA user_version = 7", "PRAGMA journal_mode = DELETE"]
POSTGRES_ONLY = [
    "WITH gone AS (DELETE FROM node RETURNING id) SELECT * FROM gone",
    "SELECT nextval('movie_id_seq')",
    "TRUNCATE node",
    "COPY node TO '/tmp/trackdb-query-copy.csv'",
]


@pytest.fixture
def loaded(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", "synth")
    return store


def files_state(store: Store) -> dict[str, bytes] | None:
    """The bytes of every file in the SQLite store's folder (None on PostgreSQL)."""
    path = store.sqlite_path
    if path is None:
        return None
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.is_file()}


def test_writes_are_refused_and_the_store_is_unchanged(
    loaded: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # ATTACH / VACUUM INTO would write here
    loaded.close()  # checkpoint the WAL, so the file bytes are the whole store
    before, before_files = snapshot(loaded), files_state(loaded)
    extra = SQLITE_ONLY if loaded.sqlite_path is not None else POSTGRES_ONLY
    for sql in WRITES + extra:
        r = trackdb("query", sql, db=db_url)
        assert r.returncode == 2, (sql, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (sql, r.stderr)
        assert r.stderr.startswith("error: trackdb query only reads"), (sql, r.stderr)
        assert r.stdout == ""
    assert snapshot(loaded) == before
    assert files_state(loaded) == before_files  # SQLite: the store's folder is tmp_path itself
    if loaded.sqlite_path is None:
        assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []
    # reads still work after all that, with their columns
    r = trackdb("query", "SELECT t, COUNT(*) AS n FROM node GROUP BY t ORDER BY t", "--format", "csv", db=db_url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "t,n"
    assert len(lines) == 11


def test_the_engine_guard_holds_without_the_keyword_check(loaded: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the first-keyword check, the read-only connection (SQLite: mode=ro, query_only and
    an authorizer; PostgreSQL: a READ ONLY transaction) still refuses every write."""
    monkeypatch.setattr(readonly, "check_statement", lambda sql: sql)
    before, before_files = snapshot(loaded), files_state(loaded)
    writes = ["DROP TABLE solution_edge", "DELETE FROM node", "CREATE TABLE evil (a INTEGER)"]
    if loaded.sqlite_path is not None:
        attached = loaded.sqlite_path.parent / "attached.sqlite"
        copied = loaded.sqlite_path.parent / "copy.sqlite"
        writes += [f"ATTACH DATABASE '{attached}' AS other", f"VACUUM INTO '{copied}'", "PRAGMA user_version = 7"]
    for sql in writes:
        with pytest.raises(InputError, match="trackdb query only reads"):
            readonly.run_sql(loaded, sql)
    assert snapshot(loaded) == before
    assert files_state(loaded) == before_files


def test_reads_with_parameters_and_percent_signs(loaded: Store) -> None:
    df = readonly.run_sql(loaded, "SELECT COUNT(*) AS n FROM node WHERE t = :t AND 'a%' LIKE 'a%'", {"t": 3})
    assert list(df.columns) == ["n"]
    assert int(df["n"].iloc[0]) == 3  # alive at frame 3: the daughters 2 and 3, and track 5
    with pytest.raises(InputError, match="query failed"):
        readonly.run_sql(loaded, "SELECT * FROM no_such_table")
