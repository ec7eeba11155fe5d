"""One schema rule for every command: an older database is refused by every command but
`trackdb init` / `trackdb db upgrade` (import-ctc included), and a command that only reads never
creates a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from trackdb.store import db

from ..helpers import trackdb

PREVIOUS = "0005"  # a database written by the release before this schema's head


def counts(url: str) -> tuple[str | None, int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as c:
            movies = c.execute(sa.text("SELECT COUNT(*) FROM movie")).scalar_one()
        return db.current_revision(engine), int(movies)
    finally:
        engine.dispose()


COMMANDS = [
    ("import-ctc", "{data}", "--movie", "new", "--masks-only"),
    ("movies",),
    ("stats",),
    ("query", "SELECT 1"),
    ("lineage", "--node", "1"),
    ("export-ctc", "{out}", "--movie", "m"),
    ("link", "--movie", "m"),
    ("solve", "--movie", "m"),
    ("edits", "--movie", "m"),
]


def fill(args: tuple[str, ...], data: Path, out: Path) -> list[str]:
    return [a.format(data=data, out=out) for a in args]


def test_an_older_database_is_refused_by_every_command(db_url: str, synthetic_ctc: Path, tmp_path: Path) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine, PREVIOUS)
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO movie (name, ndim, n_frames, size_y, size_x, spacing_y, spacing_x) "
            "VALUES ('m', 2, 2, 8, 8, 1, 1)"
        )
    engine.dispose()
    for args in COMMANDS:
        r = trackdb(*fill(args, synthetic_ctc, tmp_path / "out"), db=db_url)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.strip().splitlines() == [
            f"error: database is at schema revision {PREVIOUS}, older than this trackdb's "
            f"{db.head_revision()}: run `trackdb db upgrade`"
        ], args
        assert counts(db_url) == (PREVIOUS, 1), args  # not migrated, nothing written
    assert not (tmp_path / "out").exists()
    r = trackdb("db", "upgrade", db=db_url)
    assert r.returncode == 0, r.stderr
    assert counts(db_url) == (db.head_revision(), 1)
    r = trackdb("import-ctc", str(synthetic_ctc), "--movie", "new", "--masks-only", db=db_url)
    assert r.returncode == 0, r.stderr


def test_import_ctc_creates_a_new_database(db_url: str, synthetic_ctc: Path) -> None:
    r = trackdb("import-ctc", str(synthetic_ctc), "--movie", "m", "--masks-only", db=db_url)
    assert r.returncode == 0, r.stderr
    assert counts(db_url) == (db.head_revision(), 1)


READS = [
    ("movies",),
    ("stats",),
    ("query", "SELECT 1"),
    ("lineage", "--node", "1"),
    ("export-ctc", "{out}", "--movie", "m"),
    ("evaluate", "--movie", "m", "--gt", "{data}"),
    ("uncertain", "--movie", "m"),
    ("edits", "--movie", "m"),
    ("db", "current"),
    ("db", "upgrade"),
    ("link", "--movie", "m"),
    ("solve", "--movie", "m"),
]


@pytest.mark.parametrize("args", READS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_sqlite_file_is_not_created(args: tuple[str, ...], tmp_path: Path, synthetic_ctc: Path) -> None:
    path = tmp_path / "typo.sqlite"
    r = trackdb(*fill(args, synthetic_ctc, tmp_path / "out"), db=f"sqlite:///{path}")
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip().splitlines() == [
        f"error: database file {path} does not exist (check --db / TRACKDB_DB, or create it with `trackdb init`)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]
