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
from trackdb.store.frames import bulk_reader, read_frame, sorted_by

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


# --- plate-wide queries (docs/plate_queries.md) --------------------------------------------------
# One text per question for both engines, run with bind parameters here and with the literals
# inlined in the docs (tests/store/test_plate_queries.py checks that the docs show this text and
# that no plan reads a table whole). Every movie is read at its current solution; a condition is
# a ``movie_condition`` row (text in ``value``, numbers also in ``value_num``). The experiment's
# movies come through ix_movie_experiment_id (revision 0009), each movie's runs through
# ix_run_movie_id, a solution's rows through their (solution_id, ...) keys, probabilities through
# (run_id, edge_id) or edge_id, nodes by id.

# The experiment's movies with their solution and the latest succeeded uncertainty run of that
# solution (its ``params.solution_id``; ``->>`` reads JSON on PostgreSQL and SQLite >= 3.38), as
# ``trackdb uncertain`` picks it: after a re-solve without a new uncertainty run (or refresh),
# the movie's divisions count as not scored rather than scored by another solution's run.
_PLATE_CTE = """plate AS (
    SELECT m.id AS movie_id, m.name AS movie, m.current_solution_id AS solution_id,
           m.n_frames, m.size_y, m.size_x, m.time_interval,
           (SELECT MAX(r.id) FROM run r WHERE r.movie_id = m.id AND r.kind = 'uncertainty'
                AND r.status = 'succeeded'
                AND CAST(r.params ->> 'solution_id' AS INTEGER) = m.current_solution_id) AS prob_run
    FROM experiment e JOIN movie m ON m.experiment_id = e.id
    WHERE e.name = :experiment AND m.current_solution_id IS NOT NULL
)"""

PLATE_UNCERTAIN_DIVISIONS_SQL = f"""
WITH {_PLATE_CTE},
division AS (
    SELECT p.movie_id, se.source_id AS mother_id, MIN(ep.p) * MAX(ep.p) AS p_division
    FROM plate p
    JOIN solution_edge se ON se.solution_id = p.solution_id
    LEFT JOIN edge_probability ep ON ep.run_id = p.prob_run AND ep.edge_id = se.edge_id
    GROUP BY p.movie_id, se.source_id
    HAVING COUNT(*) = 2
)
SELECT w.value AS well, p.movie, COUNT(d.mother_id) AS divisions,
       COUNT(d.p_division) AS scored,
       COALESCE(SUM(CASE WHEN d.p_division < :below THEN 1 ELSE 0 END), 0) AS uncertain,
       MIN(d.p_division) AS p_min
FROM plate p
JOIN movie_condition w ON w.movie_id = p.movie_id AND w.key = :well_key
LEFT JOIN division d ON d.movie_id = p.movie_id
GROUP BY w.value, p.movie
ORDER BY well, p.movie
"""

# A division is a track with two daughter tracks (one daughter is a gap in CTC's terms); a
# whole cell cycle is a track born at a division that divides again.
PLATE_DIVISION_RATE_SQL = f"""
WITH {_PLATE_CTE},
fate AS (
    SELECT p.movie_id, t.parent_track_id, t.end_t - t.start_t + 1 AS frames,
           (SELECT COUNT(*) FROM track c WHERE c.solution_id = t.solution_id
                AND c.parent_track_id = t.track_id) AS children
    FROM plate p JOIN track t ON t.solution_id = p.solution_id
),
per_movie AS (
    SELECT p.movie_id, p.time_interval,
           (SELECT COUNT(*) FROM solution_node sn WHERE sn.solution_id = p.solution_id) AS cell_frames,
           COALESCE(f.divisions, 0) AS divisions, COALESCE(f.cycles, 0) AS cycles, f.cycle_frames
    FROM plate p LEFT JOIN (
        SELECT movie_id, SUM(CASE WHEN children = 2 THEN 1 ELSE 0 END) AS divisions,
               SUM(CASE WHEN children = 2 AND parent_track_id IS NOT NULL THEN 1 ELSE 0 END) AS cycles,
               SUM(CASE WHEN children = 2 AND parent_track_id IS NOT NULL THEN frames END) AS cycle_frames
        FROM fate GROUP BY movie_id
    ) f ON f.movie_id = p.movie_id
)
SELECT c.value AS condition, MAX(c.value_num) AS condition_num, COUNT(*) AS movies, SUM(pm.divisions) AS divisions,
       SUM(pm.cell_frames) AS cell_frames,
       CAST(SUM(pm.divisions) AS FLOAT) / CAST(NULLIF(SUM(pm.cell_frames), 0) AS FLOAT) AS division_rate,
       SUM(pm.cycles) AS cycles,
       CAST(SUM(pm.cycle_frames) AS FLOAT) / CAST(NULLIF(SUM(pm.cycles), 0) AS FLOAT) AS cycle_frames,
       SUM(pm.cycle_frames * pm.time_interval) / CAST(NULLIF(SUM(pm.cycles), 0) AS FLOAT) AS cycle_time
FROM per_movie pm
JOIN movie_condition c ON c.movie_id = pm.movie_id AND c.key = :key
GROUP BY c.value
ORDER BY condition_num, condition
"""

# The whole family tree of a cell, in whichever movie it is: its movie's current solution, its
# track, up to the root track, then every track below it, by generation.
PLATE_LINEAGE_SQL = """
WITH RECURSIVE cell AS (
    SELECT m.name AS movie, sn.solution_id, sn.track_id
    FROM node n
    JOIN movie m ON m.id = n.movie_id
    JOIN solution_node sn ON sn.solution_id = m.current_solution_id AND sn.node_id = n.id
    WHERE n.id = :node_id
),
up(solution_id, track_id, parent_track_id) AS (
    SELECT t.solution_id, t.track_id, t.parent_track_id
    FROM cell JOIN track t ON t.solution_id = cell.solution_id AND t.track_id = cell.track_id
    UNION ALL
    SELECT t.solution_id, t.track_id, t.parent_track_id
    FROM up JOIN track t ON t.solution_id = up.solution_id AND t.track_id = up.parent_track_id
),
down(solution_id, track_id, generation) AS (
    SELECT solution_id, track_id, 0 FROM up WHERE parent_track_id IS NULL
    UNION ALL
    SELECT t.solution_id, t.track_id, down.generation + 1
    FROM down JOIN track t ON t.solution_id = down.solution_id AND t.parent_track_id = down.track_id
)
SELECT cell.movie, down.generation, t.track_id, t.parent_track_id, t.start_t, t.end_t,
       CASE WHEN t.track_id = cell.track_id THEN 1 ELSE 0 END AS has_cell
FROM down
JOIN track t ON t.solution_id = down.solution_id AND t.track_id = down.track_id
CROSS JOIN cell
ORDER BY down.generation, t.track_id
"""

# Frames without a cell have no row.
PLATE_CELLS_PER_FRAME_SQL = """
SELECT w.value AS well, sn.t, COUNT(*) AS cells
FROM experiment e
JOIN movie m ON m.experiment_id = e.id
JOIN movie_condition w ON w.movie_id = m.id AND w.key = :well_key
JOIN solution_node sn ON sn.solution_id = m.current_solution_id
WHERE e.name = :experiment
GROUP BY w.value, sn.t
ORDER BY well, sn.t
"""

# A track ends early when it stops before the movie's last frame without dividing (no daughter
# track): an exit when its last cell's box lies within :margin pixels of the image's edge (in
# y and x; a deep 3D stack's cells can also leave along z), a death otherwise.
PLATE_EARLY_ENDS_SQL = f"""
WITH {_PLATE_CTE},
ended AS (
    SELECT p.movie_id,
           CASE WHEN n.bbox_y0 <= :margin OR n.bbox_x0 <= :margin
                  OR n.bbox_y1 >= p.size_y - :margin OR n.bbox_x1 >= p.size_x - :margin
                THEN 1 ELSE 0 END AS at_border
    FROM plate p
    JOIN track t ON t.solution_id = p.solution_id
    JOIN solution_node sn ON sn.solution_id = t.solution_id AND sn.track_id = t.track_id
        AND sn.t = t.end_t
    JOIN node n ON n.id = sn.node_id
    WHERE t.end_t < p.n_frames - 1
      AND NOT EXISTS (SELECT 1 FROM track c WHERE c.solution_id = t.solution_id
                      AND c.parent_track_id = t.track_id)
),
per_movie AS (
    SELECT p.movie_id,
           (SELECT COUNT(*) FROM track t WHERE t.solution_id = p.solution_id) AS tracks,
           COALESCE(d.deaths, 0) AS deaths, COALESCE(d.exits, 0) AS exits
    FROM plate p LEFT JOIN (
        SELECT movie_id, SUM(1 - at_border) AS deaths, SUM(at_border) AS exits
        FROM ended GROUP BY movie_id
    ) d ON d.movie_id = p.movie_id
)
SELECT c.value AS condition, MAX(c.value_num) AS condition_num, COUNT(*) AS movies, SUM(pm.tracks) AS tracks,
       SUM(pm.deaths) AS deaths, SUM(pm.exits) AS exits,
       CAST(SUM(pm.deaths) AS FLOAT) / CAST(NULLIF(SUM(pm.tracks), 0) AS FLOAT) AS death_fraction
FROM per_movie pm
JOIN movie_condition c ON c.movie_id = pm.movie_id AND c.key = :key
GROUP BY c.value
ORDER BY condition_num, condition
"""

PLATE_SQL = {
    "uncertain_divisions": PLATE_UNCERTAIN_DIVISIONS_SQL,
    "division_rate": PLATE_DIVISION_RATE_SQL,
    "lineage": PLATE_LINEAGE_SQL,
    "cells_per_frame": PLATE_CELLS_PER_FRAME_SQL,
    "early_ends": PLATE_EARLY_ENDS_SQL,
}


def inline(sql: str, params: dict[str, object]) -> str:
    """The SQL with its ``:name`` parameters written as literals: the text `trackdb query` runs
    (numbers as they are, text quoted with its quotes doubled)."""

    def literal(value: object) -> str:
        if isinstance(value, bool) or value is None:
            raise TypeError(f"no literal for {value!r}")
        if isinstance(value, int | float):
            return repr(value)
        return "'" + str(value).replace("'", "''") + "'"

    for name in sorted(params, key=len, reverse=True):  # :key before :k
        sql = sql.replace(f":{name}", literal(params[name]))
    return sql


def experiment_movies(store: Store, experiment: str) -> list[str]:
    """Names of an experiment's movies, in the order they were added; an unknown experiment is
    a :class:`~trackdb.errors.NotFoundError`."""
    e, m = schema.experiment.c, schema.movie.c
    with store.engine.connect() as c:
        eid = c.execute(sa.select(e.id).where(e.name == experiment)).scalar()
        if eid is None:
            raise NotFoundError(f"no experiment {experiment!r} in this database")
        return [str(n) for n in c.execute(sa.select(m.name).where(m.experiment_id == eid).order_by(m.id)).scalars()]


def _plate_df(store: Store, name: str, experiment: str, **params: object) -> pd.DataFrame:
    experiment_movies(store, experiment)  # one clear line for an unknown experiment
    return _df(store, PLATE_SQL[name], {"experiment": experiment, **params})


def plate_uncertain_divisions(
    store: Store, experiment: str, below: float = 0.8, well_key: str = "well"
) -> pd.DataFrame:
    """Per well: divisions of the current solution, how many have probabilities (``scored``),
    how many fall below ``below`` and the lowest (a division's p: the product of its two links')."""
    return _plate_df(store, "uncertain_divisions", experiment, below=float(below), well_key=well_key)


def plate_division_rate(store: Store, experiment: str, key: str = "drug") -> pd.DataFrame:
    """Per value of condition ``key``: divisions per cell and frame, and the mean length of a
    whole cell cycle (birth at a division to the next division) in frames and in time units."""
    return _plate_df(store, "division_rate", experiment, key=key)


def plate_lineage(store: Store, node_id: int) -> pd.DataFrame:
    """The family tree (tracks by generation) of the cell ``node_id`` in its movie's current
    solution; ``has_cell`` marks the cell's own track."""
    df = _df(store, PLATE_SQL["lineage"], {"node_id": int(node_id)})
    if df.empty:
        raise NotFoundError(f"no node {node_id} in the current solution of any movie")
    return df


def plate_cells_per_frame(store: Store, experiment: str, well_key: str = "well") -> pd.DataFrame:
    """Cells of the current solution in each frame of each well."""
    return _plate_df(store, "cells_per_frame", experiment, well_key=well_key)


def plate_early_ends(store: Store, experiment: str, key: str = "drug", margin: int = 2) -> pd.DataFrame:
    """Per value of condition ``key``: tracks, and those that end before the last frame without
    dividing, as deaths (inside the field) and exits (within ``margin`` pixels of its edge)."""
    return _plate_df(store, "early_ends", experiment, key=key, margin=int(margin))


# --- tables for exports of a whole experiment (trackdb.io.parquet) -------------------------------
def movie_conditions(store: Store, movie_ids: list[int]) -> pd.DataFrame:
    """``movie_id, key, value, value_num`` of the movies' conditions (``value`` as text)."""
    mc = schema.movie_condition.c
    with store.engine.connect() as c:
        got = c.execute(
            sa.select(mc.movie_id, mc.key, mc.value, mc.value_num)
            .where(mc.movie_id.in_([int(i) for i in movie_ids]))
            .order_by(mc.movie_id, mc.key)
        ).all()
    return pd.DataFrame(
        [(int(m), str(k), None if v is None else str(v), n) for m, k, v, n in got],
        columns=["movie_id", "key", "value", "value_num"],
    )


def run_probabilities(store: Store, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every probability an uncertainty run stored: of each candidate link (``edge_id,
    source_id, node_id`` = its target, ``t`` = the target's frame, ``p, method``) and of each
    candidate cell (``node_id, t, p, entropy, method``). Read in bulk like the graph exports."""
    ep, e, npr, n = schema.edge_probability.c, schema.edge.c, schema.node_probability.c, schema.node.c
    links = (
        sa.select(ep.edge_id, e.source_id, e.target_id.label("node_id"), (e.t + e.dt).label("t"), ep.p, ep.method)
        .select_from(schema.edge_probability.join(schema.edge, e.id == ep.edge_id))
        .where(ep.run_id == int(run_id))
    )
    cells = (
        sa.select(npr.node_id, n.t, npr.p, npr.entropy, npr.method)
        .select_from(schema.node_probability.join(schema.node, n.id == npr.node_id))
        .where(npr.run_id == int(run_id))
    )
    not_null = {"edge_id": False, "source_id": False, "node_id": False, "t": False, "p": False}
    with bulk_reader(store) as conn:
        link_df = read_frame(conn, links, not_null)
        cell_df = read_frame(conn, cells, not_null)
    return sorted_by(link_df, "edge_id"), sorted_by(cell_df, "node_id")
