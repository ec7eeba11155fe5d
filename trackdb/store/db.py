"""Engines, schema revision checks and migrations.

Every command takes ``--db URL`` (or ``TRACKDB_DB``); SQLite is the embedded default and gets
WAL, foreign keys and a busy timeout so that readers never block the single writer. A database
whose Alembic revision is not this code's head is refused: older ones name ``trackdb db
upgrade``, newer ones ask for a newer trackdb.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import migrations
from trackdb.errors import ConnectionFailed, SchemaError

if TYPE_CHECKING:  # alembic is imported where the schema changes or is refused (0.2-0.5 s a start)
    from alembic.config import Config

DEFAULT_URL = "sqlite:///trackdb.sqlite"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_PAGE_SIZE = 16_384


def resolve_url(url: str | None) -> str:
    """The URL to use: explicit, else ``TRACKDB_DB``, else the embedded SQLite default."""
    url = url or os.environ.get("TRACKDB_DB") or DEFAULT_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # A new file gets 16 KiB pages (before WAL mode writes its header; an existing store keeps
    # its page size): a node row with its mask and embedding is ~0.5 KiB, and 4 KiB pages made
    # bulk batches spend more on WAL frames, the commit's checkpoint and page splits
    # (benchmarks/sqlite_ingest_profile.py)
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache for bulk work
    cur.close()


def parse_url(url: str | None) -> sa.engine.URL:
    """The database URL (explicit, else ``TRACKDB_DB``, else the default), refused with one line
    unless it names SQLite or PostgreSQL."""
    text = resolve_url(url)
    try:
        parsed = sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise ConnectionFailed(
            f"database URL {text!r} (--db or TRACKDB_DB) is not a URL: use "
            "sqlite:///path/to/store.sqlite (four slashes for an absolute path) or postgresql://user@host/dbname"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConnectionFailed(
            f"--db {_redact(text)}: trackdb stores live in SQLite or PostgreSQL, not {parsed.get_backend_name()!r}"
        )
    return parsed


def make_engine(url: str | None = None, *, must_exist: bool = False) -> Engine:
    """Create an engine and prove it connects (a bad URL fails here, with one clear line).

    ``must_exist``: a SQLite file that is not there is refused instead of created (every
    command but ``trackdb init`` and ``import-ctc``), so a mistyped path leaves nothing behind.
    """
    parsed = parse_url(url)
    url = parsed.render_as_string(hide_password=False)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database
            if path and path != ":memory:" and not path.startswith("file:"):
                if not Path(path).parent.exists():
                    raise ConnectionFailed(f"cannot open database {url}: folder {Path(path).parent} does not exist")
                if must_exist and not Path(path).is_file():
                    raise ConnectionFailed(
                        f"database file {path} does not exist "
                        "(check --db / TRACKDB_DB, or create it with `trackdb init`)"
                    )
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        with engine.connect():
            pass
    except ConnectionFailed:
        raise
    except Exception as exc:  # driver-specific errors: one family for the user
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionFailed(f"cannot connect to database {_redact(url)}: {msg}") from exc
    return engine


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]  # unparseable: at least never print a password


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


_REVISION = re.compile(r"""^(down_)?revision\s*(?::[^=]*)?=\s*(None|["']([^"']+)["'])""", re.M)


@cache
def _linear_head() -> str | None:
    """The head of ``migrations/versions`` read from the files' ``revision`` / ``down_revision``
    lines without importing Alembic; None unless they form one chain (then Alembic decides)."""
    revs: dict[str, str | None] = {}
    for path in (Path(migrations.__file__).parent / "versions").glob("*.py"):
        found = {m.group(1) or "": m.group(3) for m in _REVISION.finditer(path.read_text())}
        if "" in found:
            if found[""] is None or "down_" not in found:
                return None
            revs[found[""]] = found["down_"]
    heads = set(revs) - {d for d in revs.values() if d is not None}
    roots = [r for r, d in revs.items() if d is None]
    if len(heads) != 1 or len(roots) != 1 or len(set(revs.values())) != len(revs):
        return None
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None: no trackdb schema), read with one SELECT."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise SchemaError(f"database has {len(rows)} schema revisions ({', '.join(rows)}): not a trackdb database")
    return str(rows[0]) if rows else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema through Alembic (the only way the schema changes)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    current = current_revision(engine)
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"database is at schema revision {current}, newer than this trackdb knows "
            f"(head {head_revision()}): upgrade trackdb"
        )
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def check_schema(engine: Engine) -> None:
    """Refuse a database that is not at this code's head revision."""
    from_files = _linear_head()
    current = current_revision(engine)
    if from_files is not None and current == from_files:
        return
    from alembic.script import ScriptDirectory

    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError(f"database {_redact(str(engine.url))} has no trackdb schema: run `trackdb init`")
    known = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    if current in known:
        raise SchemaError(
            f"database is at schema revision {current}, older than this trackdb's {head}: run `trackdb db upgrade`"
        )
    raise SchemaError(
        f"database is at schema revision {current}, newer than this trackdb knows (head {head}): upgrade trackdb"
    )


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
