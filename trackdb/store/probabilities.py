"""Doubt in SQL: link and cell probabilities of uncertainty runs, stored temperatures, and the
query that lists what is doubtful in the current solution."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trackdb.store import schema
from trackdb.store.bulk import bulk_insert_columns
from trackdb.store.core import Store, now

if TYPE_CHECKING:  # pandas (0.3 s to import) only where the doubtful list is read
    import pandas as pd


def insert_probabilities(
    conn: Connection,
    run_id: int,
    method: str,
    edge_ids: np.ndarray,
    edge_p: np.ndarray,
    node_ids: np.ndarray,
    node_p: np.ndarray,
    entropy: np.ndarray,
) -> None:
    # column-wise: binary COPY straight from the arrays on PostgreSQL, the method inlined once
    # on SQLite (trackdb.store.bulk)
    bulk_insert_columns(
        conn,
        schema.edge_probability,
        {
            "run_id": int(run_id),
            "edge_id": np.asarray(edge_ids, np.int64),
            "p": np.asarray(edge_p, np.float64),
            "method": method,
        },
        len(edge_ids),
    )
    bulk_insert_columns(
        conn,
        schema.node_probability,
        {
            "run_id": int(run_id),
            "node_id": np.asarray(node_ids, np.int64),
            "p": np.asarray(node_p, np.float64),
            "entropy": np.asarray(entropy, np.float64),
            "method": method,
        },
        len(node_ids),
    )


# --- calibrations --------------------------------------------------------------------------------
def calibration_temperature(store: Store, name: str, method: str) -> float | None:
    c = schema.calibration.c
    with store.engine.connect() as conn:
        t = conn.execute(sa.select(c.temperature).where(c.name == name, c.method == method)).scalar()
    return None if t is None else float(t)


def calibrations(store: Store) -> list[tuple[str, str]]:
    """(name, method) of every stored calibration."""
    c = schema.calibration.c
    with store.engine.connect() as conn:
        return [(n, m) for n, m in conn.execute(sa.select(c.name, c.method).order_by(c.name, c.method))]


def store_calibration(
    store: Store, name: str, method: str, temperature: float, ece_before: float, ece_after: float, run_id: int
) -> None:
    """Upsert by (name, method): a re-fit replaces the previous temperature."""
    c = schema.calibration.c
    values = {
        "temperature": float(temperature),
        "ece_before": float(ece_before),
        "ece_after": float(ece_after),
        "run_id": run_id,
        "created_at": now(),
    }
    with store.engine.begin() as conn:
        done = conn.execute(
            schema.calibration.update().where(c.name == name, c.method == method).values(**values)
        ).rowcount
        if not done:
            conn.execute(schema.calibration.insert().values(name=name, method=method, **values))


# --- what is doubtful ----------------------------------------------------------------------------
# Doubtful parts of the current solution. A division's confidence is the product of its two
# links' probabilities (daughters decided independently, as the per-cell softmax treats them);
# a cell is doubtful when it may not exist (node p) or, having no mother in the solution, when
# "it appears" is doubtful: 1 − Σ p of its incoming candidate links (the options sum to 1).
UNCERTAIN_SQL = """
WITH prob AS (SELECT edge_id, p FROM edge_probability WHERE run_id = :run_id),
cellp AS (SELECT node_id, p, entropy FROM node_probability WHERE run_id = :run_id),
links AS (
    SELECT se.source_id, se.target_id, prob.p FROM solution_edge se
    JOIN prob ON prob.edge_id = se.edge_id WHERE se.solution_id = :solution_id
),
incoming AS (
    SELECT e.target_id, SUM(prob.p) AS p_in FROM prob JOIN edge e ON e.id = prob.edge_id
    GROUP BY e.target_id
),
cells AS (
    SELECT sn.node_id, n.t, l.source_id AS mother_id, cp.p AS p_node, cp.entropy,
           CASE WHEN l.source_id IS NULL THEN 1.0 - COALESCE(i.p_in, 0.0) ELSE 1.0 END AS p_appear
    FROM solution_node sn JOIN node n ON n.id = sn.node_id
    JOIN cellp cp ON cp.node_id = sn.node_id
    LEFT JOIN links l ON l.target_id = sn.node_id
    LEFT JOIN incoming i ON i.target_id = sn.node_id
    WHERE sn.solution_id = :solution_id
)
SELECT * FROM (
SELECT 'link' AS kind, n.t, l.target_id AS node_id, l.source_id AS mother_id,
       NULL AS daughter_ids, l.p, cp.entropy
FROM links l JOIN node n ON n.id = l.target_id LEFT JOIN cellp cp ON cp.node_id = l.target_id
WHERE l.p < :below
UNION ALL
SELECT 'division', n.t, l.source_id, NULL,
       CAST(MIN(l.target_id) AS TEXT) || ',' || CAST(MAX(l.target_id) AS TEXT),
       MIN(l.p) * MAX(l.p), NULL
FROM links l JOIN node n ON n.id = l.source_id
GROUP BY l.source_id, n.t HAVING COUNT(*) = 2 AND MIN(l.p) * MAX(l.p) < :below
UNION ALL
SELECT 'cell', t, node_id, mother_id, NULL,
       CASE WHEN p_appear < p_node THEN p_appear ELSE p_node END, entropy
FROM cells WHERE p_node < :below OR p_appear < :below
) doubtful ORDER BY p, t, node_id
"""


def doubtful(store: Store, run_id: int, solution_id: int, below: float) -> pd.DataFrame:
    """Links, divisions and cells of a solution with probability below ``below`` in a run."""
    import pandas as pd

    params = {"run_id": run_id, "solution_id": solution_id, "below": float(below)}
    with store.engine.connect() as c:
        res = c.execute(sa.text(UNCERTAIN_SQL), params)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    return df.astype({"t": "int64", "node_id": "int64", "mother_id": "Int64"})


def copy_probabilities(
    conn: Connection, from_run: int, to_run: int, edge_ids: np.ndarray, node_ids: np.ndarray
) -> None:
    """Copy an uncertainty run's link and cell probabilities to another run, except those of
    ``edge_ids`` / ``node_ids`` (a re-solve's refreshed window writes them anew)."""
    for table, key, skip in (
        (schema.edge_probability, "edge_id", edge_ids),
        (schema.node_probability, "node_id", node_ids),
    ):
        cols = [c.name for c in table.columns if c.name != "run_id"]
        conn.execute(
            table.insert().from_select(
                ["run_id", *cols],
                sa.select(sa.literal(int(to_run)).label("run_id"), *[table.c[c] for c in cols]).where(
                    table.c.run_id == int(from_run)
                ),
            )
        )
        ids = np.unique(np.asarray(skip, np.int64)).tolist()
        for start in range(0, len(ids), 5000):
            conn.execute(
                table.delete().where(table.c.run_id == int(to_run), table.c[key].in_(ids[start : start + 5000]))
            )
