"""What the review page reads about one place of a movie: a cell, the cells of a frame around
it with their masks, its links in a solution, a candidate link between two cells, and the
family of tracks it belongs to.

Each read is one indexed query (frame + bbox, solution + endpoint, solution + track), so a page
costs a few milliseconds however large the movie is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from trackdb.store import schema
from trackdb.store.codecs import decode_mask
from trackdb.store.core import Movie, Store


@dataclass(frozen=True)
class Cell:
    """A candidate cell, and its track in the solution it was read against (None: not selected)."""

    node_id: int
    t: int
    centroid: tuple[float, ...]  # ([z,] y, x) pixels
    lo: tuple[int, ...]  # bbox low corner ([z,] y, x)
    hi: tuple[int, ...]  # bbox high corner, exclusive
    area: int
    run_id: int
    source: str
    track_id: int | None


@dataclass(frozen=True)
class CellMask:
    """A selected cell of a frame with its bbox mask."""

    node_id: int
    track_id: int
    centroid: tuple[float, ...]
    lo: tuple[int, ...]
    mask: np.ndarray  # bool, bbox-shaped


def _box_columns(movie: Movie) -> list[sa.ColumnElement]:
    n = schema.node.c
    cols = [n.y, n.x, n.bbox_y0, n.bbox_x0, n.bbox_y1, n.bbox_x1]
    return cols + ([n.z, n.bbox_z0, n.bbox_z1] if movie.ndim == 3 else [])


def _geometry(movie: Movie, row: tuple) -> tuple[tuple[float, ...], tuple[int, ...], tuple[int, ...]]:
    y, x, y0, x0, y1, x1, *zs = row
    if movie.ndim == 3:
        z, z0, z1 = zs
        return (float(z), float(y), float(x)), (int(z0), int(y0), int(x0)), (int(z1), int(y1), int(x1))
    return (float(y), float(x)), (int(y0), int(x0)), (int(y1), int(x1))


def cell(store: Store, movie: Movie, node_id: int, solution_id: int | None) -> Cell | None:
    """The candidate cell ``node_id`` of the movie (None when it is not one of its cells)."""
    n, sn = schema.node.c, schema.solution_node.c
    track = (
        sa.select(sn.track_id).where(sn.solution_id == solution_id, sn.node_id == n.id).scalar_subquery()
        if solution_id is not None
        else sa.null()
    )
    query = sa.select(n.id, n.t, n.area, n.run_id, n.source, track.label("track_id"), *_box_columns(movie)).where(
        n.id == int(node_id), n.movie_id == movie.id
    )
    with store.engine.connect() as c:
        row = c.execute(query).first()
    if row is None:
        return None
    centroid, lo, hi = _geometry(movie, tuple(row[6:]))
    track_id = None if row[5] is None else int(row[5])
    return Cell(int(row[0]), int(row[1]), centroid, lo, hi, int(row[2]), int(row[3]), str(row[4]), track_id)


def frame_cells(
    store: Store, movie: Movie, solution_id: int, t: int, lo: tuple[int, ...], hi: tuple[int, ...]
) -> list[CellMask]:
    """Selected cells of frame ``t`` whose bbox overlaps the box ``[lo, hi)``, with their masks."""
    n, sn = schema.node.c, schema.solution_node.c
    overlap = [n.bbox_y0 < hi[-2], n.bbox_y1 > lo[-2], n.bbox_x0 < hi[-1], n.bbox_x1 > lo[-1]]
    if movie.ndim == 3:
        overlap += [n.bbox_z0 < hi[0], n.bbox_z1 > lo[0]]
    query = (
        sa.select(n.id, sn.track_id, n.mask, *_box_columns(movie))
        .select_from(schema.node.join(schema.solution_node, sn.node_id == n.id))
        .where(n.movie_id == movie.id, n.t == int(t), sn.solution_id == solution_id, *overlap)
        .order_by(n.id)
    )
    out = []
    with store.engine.connect() as c:
        for node_id, track_id, blob, *geo in c.execute(query):
            centroid, a, b = _geometry(movie, tuple(geo))
            mask = decode_mask(blob, [q - p for p, q in zip(a, b)])
            out.append(CellMask(int(node_id), int(track_id), centroid, a, mask))
    return out


def solution_links(store: Store, solution_id: int, node_id: int) -> tuple[list[int], list[int]]:
    """(mothers, daughters): the cells the solution links into and out of ``node_id``."""
    se = schema.solution_edge.c
    with store.engine.connect() as c:
        mothers = c.execute(
            sa.select(se.source_id).where(se.solution_id == solution_id, se.target_id == node_id).order_by(se.source_id)
        ).scalars()
        daughters = c.execute(
            sa.select(se.target_id).where(se.solution_id == solution_id, se.source_id == node_id).order_by(se.target_id)
        ).scalars()
        return [int(x) for x in mothers], [int(x) for x in daughters]


def solution_edge_id(store: Store, solution_id: int, source_id: int, target_id: int) -> int | None:
    """The link of the solution from ``source_id`` to ``target_id``, if it holds one."""
    se = schema.solution_edge.c
    with store.engine.connect() as c:
        e = c.execute(
            sa.select(se.edge_id).where(
                se.solution_id == solution_id, se.source_id == source_id, se.target_id == target_id
            )
        ).scalar()
    return None if e is None else int(e)


def candidate_edge_id(store: Store, link_run_id: int, source_id: int, target_id: int) -> int | None:
    """The candidate link ``source_id → target_id`` of a link run, if the run holds one."""
    e = schema.edge.c
    with store.engine.connect() as c:
        eid = c.execute(
            sa.select(e.id).where(e.source_id == source_id, e.target_id == target_id, e.run_id == link_run_id)
        ).scalar()
    return None if eid is None else int(eid)


# The family of a track: climb at most :up generations, then every descendant of the track
# reached, each track with its first and last cell (the cell a page about that track opens, the
# mother of a division).
FAMILY_SQL = """
WITH RECURSIVE up(track_id, parent_track_id, generation) AS (
    SELECT track_id, parent_track_id, 0 FROM track WHERE solution_id = :sid AND track_id = :track_id
    UNION ALL
    SELECT t.track_id, t.parent_track_id, up.generation + 1 FROM track t JOIN up ON t.track_id = up.parent_track_id
    WHERE t.solution_id = :sid AND up.generation < :up
),
down(track_id) AS (
    SELECT track_id FROM up WHERE generation = (SELECT MAX(generation) FROM up)
    UNION ALL
    SELECT t.track_id FROM track t JOIN down ON t.parent_track_id = down.track_id WHERE t.solution_id = :sid
)
SELECT t.track_id, t.start_t, t.end_t, t.parent_track_id,
       (SELECT sn.node_id FROM solution_node sn WHERE sn.solution_id = :sid AND sn.track_id = t.track_id
        ORDER BY sn.t LIMIT 1) AS first_node_id,
       (SELECT sn.node_id FROM solution_node sn WHERE sn.solution_id = :sid AND sn.track_id = t.track_id
        ORDER BY sn.t DESC LIMIT 1) AS last_node_id
FROM down JOIN track t ON t.solution_id = :sid AND t.track_id = down.track_id
ORDER BY t.start_t, t.track_id
"""


def family(store: Store, solution_id: int, track_id: int, up: int = 2) -> pd.DataFrame:
    """The tracks of ``track_id``'s lineage from its ancestor ``up`` generations back (fewer when
    the lineage starts later) down to every descendant: track_id, start_t, end_t,
    parent_track_id, first_node_id, last_node_id (empty when the track is not in the solution)."""
    params = {"sid": int(solution_id), "track_id": int(track_id), "up": int(up)}
    with store.engine.connect() as c:
        res = c.execute(sa.text(FAMILY_SQL), params)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    return df.astype({"parent_track_id": "Int64"}) if len(df) else df


def track_cell(store: Store, solution_id: int, track_id: int, t: int) -> int | None:
    """The cell of a track at frame ``t`` (its nearest frame when the track has a gap there)."""
    sn = schema.solution_node.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(sn.node_id, sn.t).where(sn.solution_id == solution_id, sn.track_id == track_id)
        ).all()
    if not rows:
        return None
    return int(min(rows, key=lambda r: (abs(int(r[1]) - int(t)), int(r[1])))[0])


def division_probabilities(store: Store, run_id: int, solution_id: int, mothers: list[int]) -> dict[int, float]:
    """Probability of each mother's division in a solution: the product of its two selected
    links' probabilities in an uncertainty run (as ``trackdb uncertain`` scores divisions)."""
    if not mothers:
        return {}
    se, ep = schema.solution_edge.c, schema.edge_probability.c
    query = (
        sa.select(se.source_id, ep.p)
        .select_from(
            schema.solution_edge.join(schema.edge_probability, (ep.edge_id == se.edge_id) & (ep.run_id == run_id))
        )
        .where(se.solution_id == solution_id, se.source_id.in_([int(m) for m in mothers]))
    )
    links: dict[int, list[float]] = {}
    with store.engine.connect() as c:
        for source, p in c.execute(query):
            links.setdefault(int(source), []).append(float(p))
    return {m: ps[0] * ps[1] for m, ps in links.items() if len(ps) == 2}
