"""napari reader (npe2): a store's movie as Image + Labels + Tracks layers.

Open ``store.sqlite`` (every movie of it), ``store.sqlite#MOVIE`` (one movie), or a PostgreSQL
URL ``postgresql://…[#MOVIE]``. Each movie gives, in napari's layer-data form
``(data, kwargs, layer_type)``:

* ``image``: its pixels (raw frames, else the predicted seediness), a lazy dask array, one frame
  per chunk, when the store knows where they are;
* ``labels``: the current solution painted with its track ids (what ``export-ctc`` writes);
* ``tracks``: one vertex per cell (``track_id, t, [z,] y, x``) with the lineage graph, and as
  properties per vertex: ``node_id``, ``p_cell`` (the cell's probability), ``p_link`` (the
  probability of the link into it; NaN where a track starts) and ``confidence`` (the track's
  weakest link), from the latest uncertainty run.

Every layer's metadata names the store, movie and solution (``metadata["trackdb"]``), which is
how the labels writer knows what an edited Labels layer was drawn from. Scale is the movie's
pixel spacing (frames 1). The functions below are plain: :func:`movie_layers` is what the
reader returns, testable without napari.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trackdb.io.pixels import MoviePixels
from trackdb.io.render import render_labels
from trackdb.store.core import Movie, Store
from trackdb.store.frames import graph_frames

LayerData = tuple[Any, dict[str, Any], str]
STORE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".trackdb")


def split_target(path: str) -> tuple[str, str | None]:
    """``(database URL, movie or None)`` of what napari was asked to open."""
    target, _, movie = str(path).partition("#")
    if "://" in target:
        url = target
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
    else:
        url = f"sqlite:///{Path(target).expanduser().resolve()}"
    return url, (movie or None)


def _is_candidate(path: str) -> bool:
    target = str(path).partition("#")[0]
    if target.startswith(("postgresql://", "postgresql+psycopg://")):
        return True
    return target.lower().endswith(STORE_SUFFIXES) and Path(target).is_file()


def _meta(url: str, movie: Movie, solution_id: int | None) -> dict[str, Any]:
    shown = re.sub(r"://([^:/@]+):[^@/]*@", r"://\1@", url)  # no password in layer metadata
    return {"trackdb": {"url": shown, "movie": movie.name, "movie_id": movie.id, "solution_id": solution_id}}


def _smallest_uint(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max(initial=0))
    for dtype in (np.uint8, np.uint16):
        if top <= np.iinfo(dtype).max:
            return labels.astype(dtype)
    return labels


def tracks_data(store: Store, movie: Movie, solution_id: int) -> tuple[np.ndarray, dict[int, list[int]], dict]:
    """napari Tracks ``(data, graph, properties)`` of a solution (see the module docstring)."""
    frames = graph_frames(store, movie.name, solution_id)
    nodes = frames.nodes.sort_values(["track_id", "t"], kind="stable").reset_index(drop=True)
    coords = ["z", "y", "x"] if movie.ndim == 3 else ["y", "x"]
    data = np.column_stack(
        [nodes["track_id"].to_numpy(np.float64), nodes["t"].to_numpy(np.float64)]
        + [nodes[c].to_numpy(np.float64) for c in coords]
    ).reshape(-1, 2 + len(coords))
    edges = frames.edges
    p_link = np.full(len(nodes), np.nan)
    if "probability" in edges.columns and len(edges):
        into = pd.Series(edges["probability"].to_numpy(np.float64, na_value=np.nan), index=edges["target_id"])
        into = into[~into.index.duplicated()]
        p_link = into.reindex(nodes["node_id"].to_numpy()).to_numpy(np.float64)
    p_cell = (
        nodes["probability"].to_numpy(np.float64, na_value=np.nan)
        if "probability" in nodes.columns
        else np.full(len(nodes), np.nan)
    )
    confidence = np.full(len(nodes), np.nan)
    graph: dict[int, list[int]] = {}
    if frames.tracks is not None and len(frames.tracks):
        tr = frames.tracks
        conf = pd.Series(tr["confidence_min"].to_numpy(np.float64, na_value=np.nan), index=tr["track_id"])
        confidence = conf.reindex(nodes["track_id"].to_numpy()).to_numpy(np.float64)
        for child, parent in zip(tr["track_id"].tolist(), tr["parent_track_id"].tolist()):
            if parent is not None and not pd.isna(parent):
                graph.setdefault(int(child), []).append(int(parent))
    properties = {
        "node_id": nodes["node_id"].to_numpy(np.int64),
        "p_cell": p_cell,
        "p_link": p_link,
        "confidence": confidence,
    }
    return data, graph, properties


def movie_layers(
    store: Store, movie_name: str | int, url: str = "", solution: str | int | None = None
) -> list[LayerData]:
    """Image (when the store knows the pixels), Labels and Tracks layer data of one movie."""
    movie = store.movie(movie_name)
    sid = store.solution_id(movie, solution) if (solution is not None or movie.current_solution_id) else None
    meta = _meta(url, movie, sid)
    scale = (1.0, *movie.spacing)
    layers: list[LayerData] = []
    pixels = MoviePixels(movie)
    if pixels.source is not None:
        layers.append(
            (pixels.lazy(), {"name": f"{movie.name} {pixels.source}", "scale": scale, "metadata": meta}, "image")
        )
    if sid is None:
        return layers
    labels = _smallest_uint(render_labels(store, movie, sid))
    layers.append((labels, {"name": f"{movie.name} cells", "scale": scale, "metadata": meta}, "labels"))
    data, graph, properties = tracks_data(store, movie, sid)
    layers.append(
        (
            data,
            {
                "name": f"{movie.name} tracks",
                "scale": scale,
                "graph": graph,
                "properties": properties,
                "metadata": meta,
            },
            "tracks",
        )
    )
    return layers


def read_store(path: str | Sequence[str]) -> list[LayerData]:
    """The layers of every movie (or the ``#MOVIE`` one) of each store ``path`` names."""
    out: list[LayerData] = []
    for p in [path] if isinstance(path, str) else list(path):
        url, movie = split_target(str(p))
        with Store(url) as store:
            names = [movie] if movie else [m.name for m in store.movies()]
            for name in names:
                out += movie_layers(store, name, url)
    return out


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """npe2 reader hook: :func:`read_store` when every path is a trackdb store, else None (so
    napari asks the next reader)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(_is_candidate(str(p)) for p in paths):
        return None
    for p in paths:
        url, movie = split_target(str(p))
        try:
            with Store(url) as store:
                if movie:
                    store.movie(movie)
        except Exception:  # not a trackdb store (or not a database at all): another reader's file
            return None
    return read_store
