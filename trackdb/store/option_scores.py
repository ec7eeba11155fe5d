"""An uncertainty method's temperature-free option scores, stored (``option_score``, revision
0010) so a later run on the same model re-tempers them instead of sampling again.

Plain data here: a key (the digest of everything the scores depend on, made by the caller), the
method's report as JSON, and named arrays in one ``numpy.savez`` blob read with
``allow_pickle=False``. What the arrays mean is :mod:`trackdb.stages.scores`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.store import schema
from trackdb.store.core import Store


@dataclass(frozen=True)
class StoredScores:
    run_id: int  # the run that computed them
    method: str
    k: int
    info: dict[str, Any]
    arrays: dict[str, np.ndarray]


def write(
    conn: Connection, run_id: int, key: str, method: str, k: int, info: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Store a run's scores under ``key``, in the caller's transaction. Earlier rows of the
    method for the same movie are dropped: they describe a model the movie no longer has (or
    hold the same numbers), so a store keeps one set per movie and method."""
    buf = io.BytesIO()
    named: dict[str, Any] = {name: np.ascontiguousarray(v) for name, v in arrays.items()}
    np.savez(buf, **named)
    s, r = schema.option_score.c, schema.run.c
    movie = sa.select(r.movie_id).where(r.id == run_id).scalar_subquery()
    same_movie = sa.select(r.id).where(r.movie_id == movie)
    conn.execute(
        schema.option_score.delete().where(
            sa.or_(s.key == key, s.run_id == run_id, sa.and_(s.method == method, s.run_id.in_(same_movie)))
        )
    )
    conn.execute(
        schema.option_score.insert().values(
            run_id=run_id, key=key, method=method, k=int(k), info=info, arrays=buf.getvalue()
        )
    )


def find(store: Store, key: str) -> StoredScores | None:
    """The latest stored scores under ``key`` (None: nothing computed them yet)."""
    s = schema.option_score.c
    with store.engine.connect() as c:
        row = c.execute(
            sa.select(s.run_id, s.method, s.k, s.info, s.arrays).where(s.key == key).order_by(s.run_id.desc())
        ).first()
    if row is None:
        return None
    with np.load(io.BytesIO(row.arrays), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return StoredScores(int(row.run_id), str(row.method), int(row.k), dict(row.info or {}), arrays)
