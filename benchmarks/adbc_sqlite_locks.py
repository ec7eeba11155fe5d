"""Can ADBC's SQLite share a process with Python's ``sqlite3`` on one database file? (It cannot.)

The PyPI wheel of adbc-driver-sqlite links its own copy of SQLite. SQLite keeps its POSIX locks
per process in the library's own tables, so two copies in one process neither see each other's
locks nor know each other's open files. Three experiments on a scratch WAL database, each beside
its control with two ``sqlite3`` connections instead:

1. ``second_writer``: while ``sqlite3`` holds the write lock (``BEGIN IMMEDIATE``), does a second
   connection in the same process get it too (busy timeout 0)? Then both commit a row: which
   rows does the file hold?
2. ``close_deletes_wal``: a second connection opens and closes while the first stays open; are the
   ``-wal`` / ``-shm`` files still there (a library that believes it closed the last connection
   checkpoints and deletes them)?
3. ``other_process_writer``: after (2), this process takes the write lock; does another process's
   writer still get refused?

Prints one JSON object. Usage: ``python benchmarks/adbc_sqlite_locks.py``
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adbc_writer_prototype import same_sqlite_library  # noqa: E402
from common import emit  # noqa: E402

OTHER_PROCESS = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    c.execute("BEGIN IMMEDIATE")
    print("granted")
except sqlite3.OperationalError as exc:
    print("refused: " + str(exc))
"""


class Second:
    """The second connection: ``sqlite3`` (control) or ADBC, behind one small interface."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        if kind == "sqlite3":
            self.c: Any = sqlite3.connect(path, timeout=0, isolation_level=None)
            self.cur = self.c
        else:
            self.c = adbc_sqlite.connect(path, autocommit=True)
            self.cur = self.c.cursor()
        self.cur.execute("PRAGMA busy_timeout=0")

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def close(self) -> None:
        if self.kind != "sqlite3":
            self.cur.close()
        self.c.close()


def fresh(folder: str, name: str) -> tuple[str, sqlite3.Connection]:
    path = os.path.join(folder, name)
    own = sqlite3.connect(path, timeout=0, isolation_level=None)
    own.execute("PRAGMA journal_mode=WAL")
    own.execute("CREATE TABLE t (x INTEGER)")
    return path, own


def second_writer(folder: str, kind: str) -> dict[str, Any]:
    path, own = fresh(folder, f"writer_{kind}.sqlite")
    own.execute("BEGIN IMMEDIATE")
    own.execute("INSERT INTO t VALUES (1)")
    other = Second(kind, path)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (2)")
        other.execute("COMMIT")
        second = "granted, committed row 2"
    except Exception as exc:
        second = "refused: " + str(exc).splitlines()[0]
    own.execute("COMMIT")
    other.close()
    rows = sorted(r[0] for r in own.execute("SELECT x FROM t"))
    check = own.execute("PRAGMA integrity_check").fetchone()[0]
    own.close()
    return {"second_writer_while_first_holds_lock": second, "rows_in_file": rows, "integrity_check": check}


def close_deletes_wal(folder: str, kind: str) -> dict[str, Any]:
    path, own = fresh(folder, f"close_{kind}.sqlite")
    other = Second(kind, path)
    other.execute("SELECT count(*) FROM t")
    other.close()
    files = {s: os.path.exists(path + s) for s in ("-wal", "-shm")}
    own.execute("BEGIN IMMEDIATE")
    proc = subprocess.run([sys.executable, "-c", OTHER_PROCESS, path], capture_output=True, text=True, timeout=60)
    own.execute("ROLLBACK")
    own.close()
    return {
        "wal_and_shm_exist_after_second_closed": files,
        "other_process_writer_while_this_process_holds_lock": proc.stdout.strip(),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        adbc = adbc_sqlite.connect(os.path.join(folder, "version.sqlite"), autocommit=True)
        with adbc.cursor() as cur:
            cur.execute("SELECT sqlite_version()")
            adbc_version = cur.fetchall()[0][0]
        adbc.close()
        out = {
            "python_sqlite3_version": sqlite3.sqlite_version,
            "adbc_sqlite_version": adbc_version,
            "same_sqlite_library": same_sqlite_library(),
            "control_two_sqlite3_connections": {
                **second_writer(folder, "sqlite3"),
                **close_deletes_wal(folder, "sqlite3"),
            },
            "sqlite3_and_adbc": {**second_writer(folder, "adbc"), **close_deletes_wal(folder, "adbc")},
        }
    emit("adbc_sqlite_locks", out)


if __name__ == "__main__":
    main()
