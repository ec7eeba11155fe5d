"""A solution as napari tracks, or a movie's graph as a networkx DiGraph.

napari's Tracks layer takes a ``(N, D+1)`` table ``track_id, t, [z,] y, x`` and a graph dict
``{track_id: [parent_track_id, ...]}`` that names only tracks with a parent; our CTC tracks
(split at divisions and gaps) are exactly its tracks, so both come from two bulk queries.
Coordinates stay in pixels/frames; pass the movie's spacing as the layer's ``scale``.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from trackdb.store.core import Store
from trackdb.store.frames import graph_frames, track_points


def napari_tracks(
    store: Store, movie_name: str | int, solution: str | int | None = None
) -> tuple[pd.DataFrame, dict[int, list[int]]]:
    """``(tracks table, graph dict)`` of a solution (default: the movie's current one).

    The table has columns ``track_id, t, [z,] y, x``, sorted by track then frame, ready for
    ``viewer.add_tracks(df.to_numpy(), graph=graph)``.
    """
    movie = store.movie(movie_name)
    sid = store.solution_id(movie, solution)
    table, links = track_points(store, movie, sid)
    graph: dict[int, list[int]] = {}
    for child, parent in links:
        graph.setdefault(int(child), []).append(int(parent))
    return table, graph


def write_napari_tracks(
    store: Store, outdir: Path | str, movie_name: str | int, solution: str | int | None = None
) -> dict[str, Path]:
    """Write ``tracks.csv`` (napari table) and ``graph.json`` (``{"child": [parent]}``) to ``outdir``."""
    table, graph = napari_tracks(store, movie_name, solution)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"tracks": outdir / "tracks.csv", "graph": outdir / "graph.json"}
    table.to_csv(paths["tracks"], index=False)
    paths["graph"].write_text(json.dumps({str(k): v for k, v in graph.items()}, indent=1) + "\n")
    return paths


def _records(df: pd.DataFrame, skip: tuple[str, ...]) -> list[dict[str, object]]:
    """Per-row attribute dicts with plain Python values; NULLs are left out, not stored as None."""
    cols = [c for c in df.columns if c not in skip]
    values = []
    for c in cols:
        s = df[c]
        vals = s.astype(object).where(s.notna(), None).tolist()
        values.append(vals)
    return [{k: v for k, v in zip(cols, row) if v is not None} for row in zip(*values)]


def to_networkx(
    store: Store, movie_name: str | int, solution: str | int | None = None, candidates: bool = False
) -> nx.DiGraph:
    """A DiGraph keyed by node id: one solution (default: current) or the whole candidate graph.

    Node attributes are the ``nodes`` table columns (see :mod:`trackdb.export_tables`), edge
    attributes the ``edges`` table columns; ``graph.graph`` holds movie, solution and spacing.
    """
    frames = graph_frames(store, movie_name, solution, candidates=candidates)
    g = nx.DiGraph(
        movie=frames.movie.name,
        movie_id=frames.movie.id,
        solution_id=frames.solution_id,
        candidates=candidates,
        spacing=frames.movie.spacing,
        node_probability_run=frames.node_probability_run,
        edge_probability_run=frames.edge_probability_run,
    )
    nodes, edges = frames.nodes, frames.edges
    g.add_nodes_from(zip(nodes["node_id"].tolist(), _records(nodes, ("node_id",))))
    src = np.asarray(edges["source_id"], dtype=np.int64).tolist()
    dst = np.asarray(edges["target_id"], dtype=np.int64).tolist()
    g.add_edges_from(zip(src, dst, _records(edges, ("source_id", "target_id"))))
    return g


__all__ = ["napari_tracks", "to_networkx", "write_napari_tracks"]
