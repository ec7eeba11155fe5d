"""A whole experiment (or one movie) as one Parquet dataset partitioned by movie, and as GEFF per movie.

``OUT/nodes``, ``OUT/edges``, ``OUT/tracks`` and ``OUT/probabilities`` are each one dataset in
hive layout, one folder per movie (``movie=NAME/part-0.parquet``, the name URI-encoded), so
pandas (``pd.read_parquet("OUT/nodes")``), polars (``pl.read_parquet("OUT/nodes/**/*.parquet",
hive_partitioning=True)``), DuckDB (``read_parquet('OUT/nodes/*/*.parquet', hive_partitioning =
true)``) and ``pyarrow.dataset`` read every movie at once with a ``movie`` column, and a filter on
it reads only that movie's files. ``OUT/movies.parquet`` has one row per movie: its size,
spacing, time interval, solution, probability run and its conditions, one column each.

Each movie is exported at its current solution, as ``trackdb export-tracks --format parquet``
exports it (:func:`trackdb.store.frames.graph_frames`: the selected cells and links with the
probabilities of the newest uncertainty run of that solution, and the tracks), plus ``lineage_id`` on the cells and
``probabilities``: every candidate link and cell of that run (``kind`` ``link`` or ``cell``).
Every file of a table has the same schema (the columns of :data:`SCHEMAS`; 3D columns and
probabilities are null where a movie has none), so the datasets read without schema merging.
Masks and embeddings are left out (``trackdb export-tracks --format parquet`` has them).

A folder that holds anything is refused unless ``overwrite``; the export is written beside the
old one and moved in once complete, so a failed export leaves the folder as it was.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trackdb.errors import InputError, NotFoundError
from trackdb.io.geff import export_geff
from trackdb.store import queries
from trackdb.store.core import Movie, Store
from trackdb.store.frames import graph_frames

_I, _F, _S = pa.int64(), pa.float64(), pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "nodes": pa.schema(
        [
            ("node_id", _I),
            ("t", _I),
            ("label", _I),
            ("z", _F),
            ("y", _F),
            ("x", _F),
            ("area", _I),
            ("bbox_z0", _I),
            ("bbox_y0", _I),
            ("bbox_x0", _I),
            ("bbox_z1", _I),
            ("bbox_y1", _I),
            ("bbox_x1", _I),
            ("hier_parent_id", _I),
            ("threshold", _F),
            ("score", _F),
            ("max_prob", _F),
            ("prev_z", _F),
            ("prev_y", _F),
            ("prev_x", _F),
            ("embedding_dim", _I),
            ("source", _S),
            ("run_id", _I),
            ("track_id", _I),
            ("lineage_id", _I),
            ("probability", _F),
            ("entropy", _F),
        ]
    ),
    "edges": pa.schema(
        [
            ("edge_id", _I),
            ("source_id", _I),
            ("target_id", _I),
            ("t", _I),
            ("dt", _I),
            ("distance", _F),
            ("iou", _F),
            ("offset_vote", _F),
            ("embedding_distance", _F),
            ("cost", _F),
            ("run_id", _I),
            ("probability", _F),
            ("probability_method", _S),
        ]
    ),
    "tracks": pa.schema(
        [
            ("track_id", _I),
            ("start_t", _I),
            ("end_t", _I),
            ("parent_track_id", _I),
            ("lineage_id", _I),
            ("n_nodes", _I),
            ("confidence_min", _F),
            ("confidence_product", _F),
        ]
    ),
    "probabilities": pa.schema(
        [
            ("kind", _S),  # link or cell
            ("node_id", _I),  # the cell, or the link's target
            ("source_id", _I),  # the link's source (null for a cell)
            ("edge_id", _I),  # null for a cell
            ("t", _I),  # frame of node_id
            ("p", _F),
            ("entropy", _F),  # cells: daughter-wise entropy of their options
            ("method", _S),
            ("run_id", _I),
        ]
    ),
}
TABLES = tuple(SCHEMAS)
MOVIES_FILE = "movies.parquet"
_STAGING = ".trackdb-export-"


@dataclass(frozen=True)
class ExperimentExport:
    """What an export wrote: the folder, the movies in it and the movies left out (with why)."""

    path: Path
    movies: list[str]
    skipped: dict[str, str]
    rows: dict[str, int]  # table -> rows over all movies


def _table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame in the table's fixed schema: missing columns null, extra ones dropped."""
    n = len(df)
    cols = []
    for field in schema:
        if field.name in df.columns:
            cols.append(pa.array(df[field.name], from_pandas=True).cast(field.type))
        else:
            cols.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _movies(store: Store, experiment: str | None, movie: str | None) -> list[Movie]:
    if (experiment is None) == (movie is None):
        raise InputError("name an experiment or a movie to export (one of them)")
    if movie is not None:
        m = store.movie(movie)
        store.solution_id(m)  # one line when it has none yet
        return [m]
    names = queries.experiment_movies(store, str(experiment))
    if not names:
        raise NotFoundError(f"experiment {experiment!r} has no movies")
    return [store.movie(n) for n in names]


def owned(path: Path) -> list[Path]:
    """The entries of ``path`` an experiment export writes (and ``overwrite`` replaces)."""
    return [p for p in (*(path / t for t in TABLES), path / MOVIES_FILE) if p.exists()]


def check_outdir(
    path: Path, overwrite: bool, what: str = "nodes/, edges/, tracks/, probabilities/ and movies.parquet"
) -> None:
    """Refuse a file, or a folder with anything in it unless ``overwrite`` (as export-ctc)."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file, not a folder for the export")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{path} is not empty: choose an empty folder, or pass --overwrite to replace its {what}")


def _conditions(store: Store, movies: list[Movie]) -> pd.DataFrame:
    """One row per movie, one column per condition key (numbers where every value is one)."""
    cond = queries.movie_conditions(store, [m.id for m in movies])
    wide = pd.DataFrame({"movie_id": [m.id for m in movies]})
    for key, group in cond.groupby("key", sort=True):
        numeric = group["value_num"].notna().all()
        values = dict(zip(group["movie_id"], group["value_num"] if numeric else group["value"]))
        wide[str(key)] = pd.Series([values.get(m.id) for m in movies], dtype="float64" if numeric else "object")
    return wide


def _movie_rows(store: Store, movies: list[Movie], solutions: dict[int, int], runs: dict[int, int | None]) -> pa.Table:
    rows = []
    for m in movies:
        time_interval, _ = store.movie_time_meta(m.id)
        z = m.ndim == 3
        rows.append(
            {
                "movie": m.name,
                "movie_id": m.id,
                "ndim": m.ndim,
                "n_frames": m.n_frames,
                "size_z": m.shape[0] if z else None,
                "size_y": m.shape[-2],
                "size_x": m.shape[-1],
                "spacing_z": m.spacing[0] if z else None,
                "spacing_y": m.spacing[-2],
                "spacing_x": m.spacing[-1],
                "time_interval": time_interval,
                "solution_id": solutions[m.id],
                "probability_run": runs[m.id],
            }
        )
    df = pd.DataFrame(rows)
    for col in ("size_z", "probability_run"):
        df[col] = df[col].astype("Int64")
    cond = _conditions(store, movies).drop(columns="movie_id")
    cond.columns = [c if c not in df.columns else f"condition_{c}" for c in cond.columns]
    return pa.Table.from_pandas(pd.concat([df, cond], axis=1), preserve_index=False)


def _write_movie(store: Store, movie: Movie, staging: Path) -> tuple[int, int | None, dict[str, int]]:
    """One movie's four tables into its partition folders; returns (solution, probability run, rows)."""
    frames = graph_frames(store, movie.name)
    assert frames.tracks is not None
    assert frames.solution_id is not None
    roots = dict(zip(frames.tracks["track_id"].tolist(), frames.tracks["lineage_id"].tolist()))
    nodes = frames.nodes.assign(lineage_id=frames.nodes["track_id"].map(roots))
    parts: dict[str, pd.DataFrame] = {"nodes": nodes, "edges": frames.edges, "tracks": frames.tracks}
    run = frames.edge_probability_run
    if run is not None:
        links, cells = queries.run_probabilities(store, run)
        parts["probabilities"] = pd.concat(
            [links.assign(kind="link"), cells.assign(kind="cell")], ignore_index=True
        ).assign(run_id=run)
    else:
        parts["probabilities"] = pd.DataFrame()
    counts = {}
    for name, df in parts.items():
        folder = staging / name / f"movie={quote(movie.name, safe='')}"
        folder.mkdir(parents=True)
        table = _table(df, SCHEMAS[name])
        pq.write_table(table, folder / "part-0.parquet")
        counts[name] = table.num_rows
    return frames.solution_id, run, counts


def export_parquet(
    store: Store,
    path: Path | str,
    *,
    experiment: str | None = None,
    movie: str | None = None,
    overwrite: bool = False,
) -> ExperimentExport:
    """Write an experiment's movies (or one movie) at their current solution (module docstring).

    A movie without a solution yet is left out and named in ``skipped``; an experiment none of
    whose movies has one is refused.
    """
    path = Path(path)
    movies = _movies(store, experiment, movie)
    check_outdir(path, overwrite)
    skipped = {m.name: "no solution yet" for m in movies if m.current_solution_id is None}
    todo = [m for m in movies if m.current_solution_id is not None]
    if not todo:
        raise InputError(f"nothing to export: no movie of {experiment or movie!r} has a solution yet")
    path.mkdir(parents=True, exist_ok=True)
    staging = path / f"{_STAGING}{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        solutions, runs, rows = {}, {}, dict.fromkeys(TABLES, 0)
        for m in todo:
            solutions[m.id], runs[m.id], counts = _write_movie(store, m, staging)
            for name, n in counts.items():
                rows[name] += n
        pq.write_table(_movie_rows(store, todo, solutions, runs), staging / MOVIES_FILE)
        for old in owned(path):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        for new in staging.iterdir():
            new.rename(path / new.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExperimentExport(path, [m.name for m in todo], skipped, rows)


def export_geff_per_movie(
    store: Store, path: Path | str, experiment: str, *, overwrite: bool = False
) -> ExperimentExport:
    """One GEFF per movie of the experiment, ``PATH/<movie>.geff`` (the movie name URI-encoded),
    each as ``trackdb export-geff`` writes it (current solution, positions, probabilities)."""
    path = Path(path)
    movies = _movies(store, experiment, None)
    check_outdir(path, overwrite, what="<movie>.geff stores")
    skipped = {m.name: "no solution yet" for m in movies if m.current_solution_id is None}
    todo = [m for m in movies if m.current_solution_id is not None]
    if not todo:
        raise InputError(f"nothing to export: no movie of {experiment!r} has a solution yet")
    path.mkdir(parents=True, exist_ok=True)
    rows = {"nodes": 0, "edges": 0}
    for m in todo:
        out = path / f"{quote(m.name, safe='')}.geff"
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        export_geff(store, out, m.name)
    return ExperimentExport(path, [m.name for m in todo], skipped, rows)


__all__ = ["SCHEMAS", "TABLES", "ExperimentExport", "check_outdir", "export_geff_per_movie", "export_parquet", "owned"]
