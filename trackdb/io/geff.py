"""Write a movie's graph as GEFF (the community graph exchange format) with the ``geff`` library.

Two shapes: one solution (its selected cells and links, with CTC ``track_id`` and a
``lineage_id`` declared as GEFF's lineage property), or the whole candidate graph
(``candidates=True``: every node and edge, with a ``selected`` flag and ``track_id`` from a
solution). GEFF has no notion of solutions or probabilities, so those travel as ordinary props,
and the trackdb provenance (movie, solution, probability runs) goes into ``extra["trackdb"]``.

Geff ids are our database node ids, so a GEFF node maps straight back to ``node.id``; an edge's
own database id is the ``edge_id`` prop. NULL values become GEFF ``missing`` entries; a column
that is NULL everywhere is left out, and so is the text column ``source`` (fixed-width strings
have no stable Zarr v3 data type yet). Written as Zarr v3 through ``geff.write_arrays``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from geff.core_io import write_arrays
from geff_spec import Axis, DisplayHint, GeffMetadata, PropMetadata, validate_space_unit, validate_time_unit

from trackdb import __version__
from trackdb.errors import TrackdbError
from trackdb.store.core import Store
from trackdb.store.frames import GraphFrames, graph_frames

ZARR_FORMAT: Literal[2, 3] = 3

_NODE_DOC = {
    "t": ("frame index", "frame"),
    "z": ("centroid, pixels", "pixel"),
    "y": ("centroid, pixels", "pixel"),
    "x": ("centroid, pixels", "pixel"),
    "label": ("id of the cell in its source label image", None),
    "area": ("number of pixels (voxels in 3D) of the mask", None),
    "track_id": ("CTC track id in the solution (tracks split at divisions and gaps)", None),
    "lineage_id": ("root track id of the cell's lineage tree", None),
    "selected": ("node belongs to the exported solution", None),
    "probability": ("probability that the cell is real (latest uncertainty run)", None),
    "entropy": ("daughter-wise entropy of the cell's outgoing options", None),
    "hier_parent_id": ("containing candidate in the candidate forest", None),
    "threshold": ("probability-map threshold that induced the candidate (1 for label images)", None),
    "score": ("mean foreground probability inside the mask (1 for label images)", None),
    "max_prob": ("highest foreground probability inside the mask", None),
    **{
        f"bbox_{a}{k}": (f"bounding box {'start' if k == '0' else 'end (exclusive)'} along {a}", "pixel")
        for a in "zyx"
        for k in "01"
    },
    **{f"prev_{a}": ("previous-frame centre the cell's pixels vote for", "pixel") for a in "zyx"},
}
_EDGE_DOC = {
    "edge_id": ("trackdb edge id", None),
    "dt": ("frames between source and target", "frame"),
    "distance": ("centroid distance in physical units (the movie's spacing; pixels for links made without it)", None),
    "iou": ("mask overlap (intersection over union)", None),
    "cost": ("linking cost used by the solver", None),
    "selected": ("edge belongs to the exported solution", None),
    "probability": ("probability of the link (latest uncertainty run)", None),
}


def _prop(series: pd.Series) -> dict[str, Any] | None:
    """GEFF values + missing arrays for one column; None when nothing is known."""
    missing = series.isna().to_numpy()
    if missing.all() and len(series):
        return None
    if isinstance(series.dtype, pd.Int64Dtype):
        values = series.to_numpy(dtype=np.int64, na_value=0)
    else:
        values = series.to_numpy()
    return {"values": values, "missing": missing if missing.any() else None}


def _props(df: pd.DataFrame, skip: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in df.columns:
        if name in skip or not (df[name].dtype.kind in "biuf" or isinstance(df[name].dtype, pd.Int64Dtype)):
            continue
        prop = _prop(df[name])
        if prop is not None:
            out[name] = prop
    return out


def _prop_metadata(props: dict[str, Any], doc: dict[str, tuple[str, str | None]]) -> dict[str, PropMetadata]:
    out = {}
    for name, prop in props.items():
        text, unit = doc.get(name, (None, None))
        values = prop["values"]
        out[name] = PropMetadata(identifier=name, dtype=values.dtype.name, description=text, unit=unit)
    return out


def _axes(store: Store, frames: GraphFrames) -> list[Axis]:
    """(t, [z,] y, x) axes: frames and pixels, scaled by the movie's time interval and spacing."""
    time_interval, meta_row = store.movie_time_meta(frames.movie.id)
    meta = meta_row if isinstance(meta_row, dict) else {}
    time_unit = meta.get("time_unit") if validate_time_unit(meta.get("time_unit")) else None
    space_unit = meta.get("space_unit") if validate_space_unit(meta.get("space_unit")) else None
    axes = [
        Axis(name="t", type="time", unit="frame", scale=time_interval, scaled_unit=time_unit if time_interval else None)
    ]
    names = ("z", "y", "x")[3 - frames.movie.ndim :]
    for name, spacing in zip(names, frames.movie.spacing):
        axes.append(Axis(name=name, type="space", unit="pixel", scale=spacing, scaled_unit=space_unit))
    return axes


def export_geff(
    store: Store,
    path: Path | str,
    movie_name: str | int,
    solution: str | int | None = None,
    candidates: bool = False,
    *,
    overwrite: bool = False,
) -> Path:
    """Write one solution (default: current) or the candidate graph of a movie to ``path``.

    Returns the path of the GEFF Zarr group. An existing GEFF there is refused unless
    ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise TrackdbError(f"{path} already exists; choose another path or pass overwrite")
    frames = graph_frames(store, movie_name, solution, candidates=candidates)
    nodes, edges = frames.nodes, frames.edges
    node_ids = nodes["node_id"].to_numpy(dtype=np.int64)
    edge_ids = edges[["source_id", "target_id"]].to_numpy(dtype=np.int64).reshape(-1, 2)
    outside = ~np.isin(edge_ids, node_ids).all(axis=1)
    if outside.any():
        bad = int(edges["edge_id"].to_numpy()[outside][0])
        raise TrackdbError(f"edge {bad} of movie {frames.movie.name!r} links a node outside the export")

    if frames.tracks is not None and not candidates:
        roots = dict(zip(frames.tracks["track_id"].tolist(), frames.tracks["lineage_id"].tolist()))
        nodes = nodes.assign(lineage_id=nodes["track_id"].map(roots).astype("Int64"))
    node_props = _props(nodes, skip=("node_id", "run_id", "embedding_dim"))
    edge_props = _props(edges, skip=("source_id", "target_id", "run_id", "probability_method"))
    methods = sorted(set(edges["probability_method"].dropna())) if "probability_method" in edges else []
    extra = {
        "trackdb": {
            "version": __version__,
            "movie": frames.movie.name,
            "movie_id": frames.movie.id,
            "solution_id": frames.solution_id,
            "candidates": candidates,
            "node_probability_run": frames.node_probability_run,
            "edge_probability_run": frames.edge_probability_run,
            "edge_probability_methods": methods,
        }
    }
    metadata = GeffMetadata(
        directed=True,
        axes=_axes(store, frames),
        node_props_metadata=_prop_metadata(node_props, _NODE_DOC),
        edge_props_metadata=_prop_metadata(edge_props, _EDGE_DOC),
        track_node_props={"lineage": "lineage_id"} if "lineage_id" in node_props else None,
        display_hints=DisplayHint(
            display_horizontal="x",
            display_vertical="y",
            display_time="t",
            display_depth="z" if frames.movie.ndim == 3 else None,
        ),
        extra=extra,
    )
    write_arrays(
        str(path), node_ids, node_props, edge_ids, edge_props, metadata, zarr_format=ZARR_FORMAT, overwrite=overwrite
    )
    return path


__all__ = ["ZARR_FORMAT", "export_geff"]
