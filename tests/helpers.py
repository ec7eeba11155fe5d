"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from click.testing import CliRunner

from trackdb.cli import cli
from trackdb.io import ctc
from trackdb.store import Store, schema


@dataclass(frozen=True)
class Ran:
    """What a command run in-process left, named as a subprocess's result."""

    returncode: int
    stdout: str
    stderr: str
    exception: BaseException | None


def trackdb(*args: str, db: str | None = None) -> Ran:
    """Run a ``trackdb`` command in-process."""
    result = CliRunner(mix_stderr=False).invoke(cli, [*args, *(["--db", db] if db else [])])
    return Ran(result.exit_code, result.stdout, result.stderr, result.exception)


def snapshot(store: Store) -> str:
    """A digest of every row of every table: equal digests mean an unchanged database."""
    h = hashlib.sha256()
    with store.engine.connect() as c:
        for table in schema.metadata.sorted_tables:
            rows = c.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            h.update(f"{table.name}:{len(rows)}:{sorted(map(repr, rows))}".encode())
    return h.hexdigest()


def gt_masks(root: Path) -> np.ndarray:
    """The tracking masks of a CTC dataset folder's sequence 01."""
    return ctc.read_stack(ctc.frame_files(root / "01_GT" / "TRA", "man_track"), labels=True)
