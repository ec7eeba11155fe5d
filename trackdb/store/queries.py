"""Lineage queries in SQL: recursive CTEs walk the selected links inside the database.

Each function returns a pandas DataFrame and accepts the solution to read (default: the
movie's current solution). The SQL strings are plain and documented in docs/queries.md so
that users can adapt them in ``trackdb query``.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from trackdb.errors import NotFoundError
from trackdb.store import schema
from trackdb.store.core import Store

_CELL_COLUMNS = "n.id AS node_id, n.t, n.label, n.z, n.y, n.x, n.area, sn.track_id"

# Lineage walks go through the materialised tracks: a cell's ancestors are the earlier cells of
# its own track plus every cell of its ancestor tracks (CTC tracks split at divisions and
# gaps), so the recursion has one step per division, not one per frame. CROSS JOIN pins the
# join order on SQLite (tracks first, then their cells by index; a scalar subquery for the
# cell's frame made it build a Bloom filter over all nodes: 35 ms instead of 0.4 ms on 60k
# nodes); PostgreSQL plans CROSS JOIN + WHERE freely. The frame cut uses ``solution_node.t``
# (revision 0004), inside the (solution_id, track_id, t) index, so only returned cells touch ``node``.
ANCESTORS_SQL = f"""
WITH RECURSIVE cell(track_id, t) AS (
    SELECT sn.track_id, sn.t FROM solution_node sn
    WHERE sn.solution_id = :solution_id AND sn.node_id = :node_id
),
up(track_id) AS (
    SELECT track_id FROM cell
    UNION ALL
    SELECT tr.parent_track_id FROM up
    JOIN track tr ON tr.solution_id = :solution_id AND tr.track_id = up.track_id
    WHERE tr.parent_track_id IS NOT NULL
)
SELECT ROW_NUMBER() OVER (ORDER BY n.t DESC) - 1 AS depth, {_CELL_COLUMNS}
FROM up CROSS JOIN cell CROSS JOIN solution_node sn CROSS JOIN node n
WHERE sn.solution_id = :solution_id AND sn.track_id = up.track_id AND sn.t <= cell.t
  AND n.id = sn.node_id
ORDER BY n.t DESC
"""

DESCENDANTS_SQL = f"""
WITH RECURSIVE cell(track_id, t) AS (
    SELECT sn.track_id, sn.t FROM solution_node sn
    WHERE sn.solution_id = :solution_id AND sn.node_id = :node_id
),
down(track_id) AS (
    SELECT track_id FROM cell
    UNION ALL
    SELECT tr.track_id FROM down
    JOIN track tr ON tr.solution_id = :solution_id AND tr.parent_track_id = down.track_id
)
SELECT n.t - cell.t AS depth, {_CELL_COLUMNS}
FROM down CROSS JOIN cell CROSS JOIN solution_node sn CROSS JOIN node n
WHERE sn.solution_id = :solution_id AND sn.track_id = down.track_id AND sn.t >= cell.t
  AND n.id = sn.node_id
ORDER BY n.t, n.id
"""

# The whole family tree of a track: climb to its root track, then collect every descendant.
LINEAGE_TREE_SQL = """
WITH RECURSIVE up(track_id, parent_track_id) AS (
    SELECT track_id, parent_track_id FROM track
    WHERE solution_id = :solution_id AND track_id = :track_id
    UNION ALL
    SELECT t.track_id, t.parent_track_id FROM track t JOIN up ON t.track_id = up.parent_track_id
    WHERE t.solution_id = :solution_id
),
root AS (SELECT track_id FROM up WHERE parent_track_id IS NULL),
down(track_id, generation) AS (
    SELECT track_id, 0 FROM root
    UNION ALL
    SELECT t.track_id, down.generation + 1 FROM track t JOIN down ON t.parent_track_id = down.track_id
    WHERE t.solution_id = :solution_id
)
SELECT down.generation, t.track_id, t.start_t, t.end_t, t.parent_track_id
FROM down JOIN track t ON t.track_id = down.track_id AND t.solution_id = :solution_id
ORDER BY down.generation, t.track_id
"""

DIVISIONS_SQL = """
SELECT se.source_id AS mother_id, n.t, n.y, n.x,
       MIN(se.target_id) AS daughter_1, MAX(se.target_id) AS daughter_2
FROM solution_edge se
JOIN node n ON n.id = se.source_id
WHERE se.solution_id = :solution_id
GROUP BY se.source_id, n.t, n.y, n.x
HAVING COUNT(*) = 2
ORDER BY n.t, se.source_id
"""

TRACKS_SQL = """
SELECT t.track_id, t.start_t, t.end_t, t.parent_track_id, t.end_t - t.start_t + 1 AS length,
       t.confidence_min, t.confidence_product,
       (SELECT COUNT(*) FROM track c WHERE c.solution_id = t.solution_id
            AND c.parent_track_id = t.track_id) AS n_children
FROM track t WHERE t.solution_id = :solution_id ORDER BY t.track_id
"""

CELLS_SQL = f"""
SELECT {_CELL_COLUMNS}
FROM solution_node sn JOIN node n ON n.id = sn.node_id
WHERE sn.solution_id = :solution_id AND n.movie_id = :movie_id AND n.t = :t
  AND n.y >= :y0 AND n.y < :y1 AND n.x >= :x0 AND n.x < :x1
ORDER BY n.id
"""


def _df(store: Store, sql: str, params: dict[str, object]) -> pd.DataFrame:
    with store.engine.connect() as c:
        res = c.execute(sa.text(sql), params)
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))


def node_solution(
    store: Store, node_id: int, solution: str | int | None = None, conn: sa.Connection | None = None
) -> int:
    """The solution to read for a node: the given one, else its movie's current solution."""
    n, m = schema.node.c, schema.movie.c
    query = (
        sa.select(n.movie_id, m.current_solution_id)
        .select_from(schema.node.join(schema.movie, m.id == n.movie_id))
        .where(n.id == int(node_id))
    )
    if conn is None:
        with store.engine.connect() as c:
            row = c.execute(query).first()
    else:
        row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no node with id {node_id}")
    if solution is None and row[1] is not None:
        return int(row[1])  # the common case, answered by the one lookup above
    return store.solution_id(store.movie(int(row[0])), solution)


def _walk(store: Store, sql: str, node_id: int, solution: str | int | None) -> pd.DataFrame:
    with store.engine.connect() as c:
        sid = node_solution(store, node_id, solution, conn=c)
        res = c.execute(sa.text(sql), {"node_id": int(node_id), "solution_id": sid})
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))


def ancestors(store: Store, node_id: int, solution: str | int | None = None) -> pd.DataFrame:
    """The cell and every cell before it in its lineage, newest first (depth 0 = the cell).

    Empty when the cell is not part of the solution.
    """
    return _walk(store, ANCESTORS_SQL, node_id, solution)


def descendants(store: Store, node_id: int, solution: str | int | None = None) -> pd.DataFrame:
    """The cell and every cell after it in its lineage; ``depth`` = frames after the cell."""
    return _walk(store, DESCENDANTS_SQL, node_id, solution)


def lineage_tree(store: Store, movie: str, track_id: int, solution: str | int | None = None) -> pd.DataFrame:
    """All tracks of the family a track belongs to, by generation from the root."""
    sid = store.solution_id(store.movie(movie), solution)
    df = _df(store, LINEAGE_TREE_SQL, {"solution_id": sid, "track_id": int(track_id)})
    if df.empty:
        raise NotFoundError(f"no track {track_id} in solution {sid} of movie {movie!r}")
    return df


def divisions(store: Store, movie: str, solution: str | int | None = None) -> pd.DataFrame:
    sid = store.solution_id(store.movie(movie), solution)
    return _df(store, DIVISIONS_SQL, {"solution_id": sid})


def tracks(store: Store, movie: str, solution: str | int | None = None) -> pd.DataFrame:
    sid = store.solution_id(store.movie(movie), solution)
    return _df(store, TRACKS_SQL, {"solution_id": sid})


def cells(
    store: Store,
    movie: str,
    t: int,
    box: tuple[float, float, float, float] | None = None,
    solution: str | int | None = None,
) -> pd.DataFrame:
    """Selected cells in frame ``t``, optionally inside ``box = (y0, x0, y1, x1)``."""
    m = store.movie(movie)
    sid = store.solution_id(m, solution)
    y0, x0, y1, x1 = box if box is not None else (0, 0, m.shape[-2] + 1, m.shape[-1] + 1)
    return _df(
        store, CELLS_SQL, {"solution_id": sid, "movie_id": m.id, "t": int(t), "y0": y0, "x0": x0, "y1": y1, "x1": x1}
    )


def run_sql(store: Store, sql: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    """Run a user's SQL, read-only on both engines (:mod:`trackdb.store.readonly`): a write,
    DDL, ATTACH or VACUUM INTO is refused with an :class:`~trackdb.errors.InputError`."""
    from trackdb.store import readonly

    return readonly.run_sql(store, sql, params)
