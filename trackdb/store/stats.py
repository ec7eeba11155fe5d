"""Store statistics: what is in the database, per movie."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from trackdb.store import schema
from trackdb.store.core import Store


def _count(conn: sa.Connection, table: sa.Table, *where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def movies_table(store: Store) -> pd.DataFrame:
    rows = [
        {
            "id": m.id,
            "name": m.name,
            "frames": m.n_frames,
            "shape": "x".join(map(str, m.shape)),
            "spacing": ",".join(f"{s:g}" for s in m.spacing),
            "current_solution": m.current_solution_id,
        }
        for m in store.movies()
    ]
    return pd.DataFrame(rows)


def store_stats(store: Store, movie_name: str | None = None) -> dict[str, Any]:
    movies = [store.movie(movie_name)] if movie_name else store.movies()
    out: dict[str, Any] = {"database": store.engine.url.render_as_string(hide_password=True), "movies": []}
    with store.engine.connect() as c:
        for m in movies:
            entry: dict[str, Any] = {
                "movie": m.name,
                "frames": m.n_frames,
                "shape": list(m.shape),
                "spacing": list(m.spacing),
                "nodes": _count(c, schema.node, schema.node.c.movie_id == m.id),
                "edges": _count(c, schema.edge, schema.edge.c.movie_id == m.id),
                "solutions": _count(c, schema.solution, schema.solution.c.movie_id == m.id),
                "runs": _count(c, schema.run, schema.run.c.movie_id == m.id),
                "current_solution": m.current_solution_id,
            }
            if m.current_solution_id is not None:
                sid = m.current_solution_id
                entry["selected_cells"] = _count(c, schema.solution_node, schema.solution_node.c.solution_id == sid)
                entry["tracks"] = _count(c, schema.track, schema.track.c.solution_id == sid)
                entry["divisions"] = int(
                    c.execute(
                        sa.text(
                            "SELECT COUNT(*) FROM (SELECT source_id FROM solution_edge WHERE solution_id = :s "
                            "GROUP BY source_id HAVING COUNT(*) = 2) d"
                        ),
                        {"s": sid},
                    ).scalar_one()
                )
            out["movies"].append(entry)
    return out
