"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from click.testing import CliRunner, Result

from trackdb.cli import cli
from trackdb.io import ctc
from trackdb.store import Store, schema


def trackdb(*args: str, db: str | None = None) -> Result:
    """Run a ``trackdb`` command in-process; ``returncode`` mirrors a subprocess's."""
    result = CliRunner(mix_stderr=False).invoke(cli, [*args, *(["--db", db] if db else [])])
    result.returncode = result.exit_code  # type: ignore[attr-defined]
    return result


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
