"""A solve's final cost model, stored (``cost_model``, revision 0006) and read back.

The model is plain data here: JSON scalars and cost parameters, and named per-candidate arrays
(``node_ids`` plus the motion shift, division rates and node costs aligned with them) in one
``numpy.savez`` blob, read with ``allow_pickle=False``. What the arrays mean is
:class:`solvers.costs.CostModel`; :mod:`trackdb.stages.cost_model` converts.
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
class StoredCostModel:
    run_id: int
    scalars: dict[str, Any]
    params: dict[str, Any]
    arrays: dict[str, np.ndarray]  # always "node_ids"; the others as written


def write(
    conn: Connection, run_id: int, scalars: dict[str, Any], params: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Store (or replace) the cost model of a solve run, in the caller's transaction."""
    if "node_ids" not in arrays:
        raise ValueError("a stored cost model needs the node ids its arrays are aligned with")
    buf = io.BytesIO()
    named: dict[str, Any] = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    np.savez(buf, **named)
    cm = schema.cost_model.c
    conn.execute(schema.cost_model.delete().where(cm.run_id == run_id))
    conn.execute(
        schema.cost_model.insert().values(
            run_id=run_id,
            n_nodes=len(arrays["node_ids"]),
            scalars=scalars,
            params=params,
            arrays=buf.getvalue(),
        )
    )


def read(store: Store, run_id: int) -> StoredCostModel | None:
    """The stored cost model of a solve run, or None (solves from before revision 0006)."""
    cm = schema.cost_model.c
    with store.engine.connect() as c:
        row = c.execute(sa.select(cm.scalars, cm.params, cm.arrays).where(cm.run_id == run_id)).first()
    if row is None:
        return None
    with np.load(io.BytesIO(row.arrays), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return StoredCostModel(run_id, dict(row.scalars), dict(row.params), arrays)
