"""A user's SQL, read-only on both engines (what ``trackdb query`` runs).

Writes go through the commands that own them, so a query may only read. Three guards, each
enough on its own for the usual mistakes, together for the unusual ones:

* the statement must be one query: its first keyword is SELECT, WITH, VALUES, TABLE, EXPLAIN,
  SHOW or (SQLite) PRAGMA, and a second statement after ``;`` is refused;
* SQLite: a fresh connection to the file opened ``mode=ro`` with ``PRAGMA query_only``, and an
  authorizer that allows only reads (no ATTACH, no VACUUM INTO, no writing pragma), so the
  file's bytes cannot change and no other file is created;
* PostgreSQL: the statement runs in a ``READ ONLY`` transaction (refuses writes, DDL and
  sequence changes) through the extended protocol (one statement only), and the session is
  discarded afterwards so nothing it set (``set_config``) outlives it.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa

from trackdb.errors import InputError
from trackdb.store.core import Store

QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW", "PRAGMA")
# pragmas that only report (SQLite); any other pragma could change the connection or the file
READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "database_list",
        "collation_list",
        "function_list",
        "user_version",
        "schema_version",
        "page_count",
        "page_size",
        "freelist_count",
        "compile_options",
    }
)
# of those, the ones whose argument names a table or index (not a new value)
TABLE_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"})
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_SQLITE_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction


def _refused(sql: str, why: str) -> InputError:
    head = " ".join(sql.split())
    head = head if len(head) <= 60 else head[:57] + "..."
    return InputError(
        f"trackdb query only reads, {why}: {head!r} refused (writes go through the commands that own them)"
    )


def check_statement(sql: str) -> str:
    """The statement without comments, refused unless it is one query."""
    text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise InputError("trackdb query needs a SQL statement")
    first = text.split(None, 1)[0].upper()
    if first not in QUERY_KEYWORDS:
        raise _refused(sql, f"and {first} is not a query")
    return text


def run_sql(store: Store, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The rows of one read-only statement as a DataFrame (see the module docstring)."""
    check_statement(sql)
    if store.engine.dialect.name == "sqlite":
        return _run_sqlite(store, sql, params or {})
    return _run_postgres(store, sql, params or {})


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in _SQLITE_READS:
        return sqlite3.SQLITE_OK
    pragma = (arg1 or "").lower()
    if action == sqlite3.SQLITE_PRAGMA and pragma in READ_PRAGMAS and (arg2 is None or pragma in TABLE_PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _run_sqlite(store: Store, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    path = store.sqlite_path
    if path is None:
        raise InputError("trackdb query needs a SQLite file or PostgreSQL (an in-memory store has no file to read)")
    con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("PRAGMA query_only = ON")
        con.set_authorizer(_sqlite_authorizer)
        try:
            cur = con.execute(sql, params)
            rows = cur.fetchall()
        except sqlite3.ProgrammingError as exc:
            if "one statement" in str(exc):
                raise _refused(sql, "one statement at a time") from exc
            raise InputError(f"query failed: {exc}") from exc
        except sqlite3.Error as exc:
            msg = str(exc)
            if "authoriz" in msg or "readonly" in msg or "read-only" in msg:
                raise _refused(sql, "and this statement would change a database") from exc
            raise InputError(f"query failed: {msg}") from exc
        if cur.description is None:
            raise _refused(sql, "and this statement returns no rows")
        return pd.DataFrame(rows, columns=[d[0] for d in cur.description])
    finally:
        con.close()


def _run_postgres(store: Store, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    import psycopg

    with store.engine.connect() as c:
        try:
            c.exec_driver_sql("SET TRANSACTION READ ONLY")
            compiled = sa.text(sql).compile(dialect=c.dialect)
            bound = {k: params.get(k) for k in compiled.params}
            raw = c.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            with raw.cursor() as cur:
                try:
                    cur.execute(str(compiled), bound, prepare=True)  # extended protocol: one statement
                except psycopg.Error as exc:
                    state = getattr(exc, "sqlstate", None)
                    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    if state == _READ_ONLY_SQLSTATE:
                        raise _refused(sql, "and this statement would change the store") from exc
                    if "multiple commands" in msg:
                        raise _refused(sql, "one statement at a time") from exc
                    raise InputError(f"query failed: {msg}") from exc
                if cur.description is None:
                    raise _refused(sql, "and this statement returns no rows")
                df = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        finally:
            c.invalidate()  # never hand this session back to the pool
    return df
