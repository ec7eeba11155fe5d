"""File commands: import CTC data, export solutions (CTC, GEFF, napari, tables), score them."""

from __future__ import annotations

from pathlib import Path

import click

from trackdb.cli.options import DB_OPTION, MOVIE_OPTION, Spacing, echo_json, open_store
from trackdb.errors import TrackdbError


@click.command("import-ctc")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--seq", default="01", show_default=True, help="Sequence folder name.")
@click.option("--movie", "movie_name", required=True, help="Name of the new movie.")
@click.option("--masks-only", is_flag=True, help="Import GT masks as detections, without links.")
@click.option("--no-gt", is_flag=True, help="Import only the raw frames (no masks, no lineage).")
@click.option("--experiment", default=None, help="Experiment (plate) the movie belongs to.")
@click.option(
    "--spacing",
    type=Spacing(),
    default=None,
    help="Physical pixel size per axis, z,y,x (3D) or y,x (2D), e.g. 2,0.5,0.5 (default: 1 per axis).",
)
@DB_OPTION
def import_ctc_cmd(
    dataset: Path,
    seq: str,
    movie_name: str,
    masks_only: bool,
    no_gt: bool,
    experiment: str | None,
    spacing: tuple[float, ...] | None,
    db_url: str | None,
) -> None:
    """Import a CTC sequence DATASET/SEQ (+ DATASET/SEQ_GT/TRA) as a movie."""
    from trackdb.io.import_ctc import import_ctc

    if masks_only and no_gt:
        raise TrackdbError("--masks-only and --no-gt exclude each other")
    with open_store(db_url, create=True) as store:
        r = import_ctc(
            store,
            dataset,
            seq,
            movie_name,
            masks_only=masks_only,
            no_gt=no_gt,
            experiment=experiment,
            spacing=spacing,
        )
    for line in r.warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(
        f"movie {movie_name!r} (id {r.movie_id}): {r.n_frames} frames, {r.n_nodes} nodes, "
        f"{r.n_edges} links, spacing {','.join(f'{s:g}' for s in r.spacing)}"
        + (f", solution 'gt' (id {r.solution_id})" if r.solution_id else "")
    )


@click.command("export-ctc")
@click.argument("outdir", type=click.Path(path_type=Path))
@MOVIE_OPTION
@click.option("--solution", default=None, help="Solution id or name (default: the current one).")
@click.option(
    "--overwrite", is_flag=True, help="Export into a folder that is not empty (its mask*.tif and res_track.txt go)."
)
@DB_OPTION
def export_ctc_cmd(outdir: Path, movie_name: str, solution: str | None, overwrite: bool, db_url: str | None) -> None:
    """Write a solution as CTC result files (maskTTT.tif + res_track.txt) into an empty folder."""
    from trackdb.io.export_ctc import export_ctc

    with open_store(db_url) as store:
        out = export_ctc(store, outdir, movie_name, solution, overwrite=overwrite)
    click.echo(f"wrote {out}")


@click.command()
@MOVIE_OPTION
@click.option("--gt", "gt_dir", type=click.Path(path_type=Path), required=True, help="DATASET/SEQ_GT folder.")
@click.option("--solution", default=None)
@DB_OPTION
def evaluate(movie_name: str, gt_dir: Path, solution: str | None, db_url: str | None) -> None:
    """CTC metrics (TRA, DET, LNK, SEG) of a solution against ground truth, as JSON."""
    from trackdb.stages.evaluate import evaluate_solution

    with open_store(db_url) as store:
        echo_json(evaluate_solution(store, movie_name, gt_dir, solution))


@click.command("export-geff")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--movie", "movie_name", default=None, help="Movie name (or id).")
@click.option(
    "--experiment", default=None, help="Every movie of this experiment: PATH is a folder of <movie>.geff stores."
)
@click.option("--solution", default=None, help="Solution id or name (default: the current one).")
@click.option("--candidates", is_flag=True, help="Export the whole candidate graph (with a 'selected' prop).")
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing GEFF at PATH (with --experiment: a non-empty folder)."
)
@DB_OPTION
def export_geff_cmd(
    path: Path,
    movie_name: str | None,
    experiment: str | None,
    solution: str | None,
    candidates: bool,
    overwrite: bool,
    db_url: str | None,
) -> None:
    """Write a solution (or the candidate graph) as GEFF, with positions, costs and probabilities;
    with --experiment, the current solution of each of its movies."""
    from trackdb.io.geff import export_geff

    if (movie_name is None) == (experiment is None):
        raise TrackdbError("give --movie NAME or --experiment NAME (one of them)")
    with open_store(db_url) as store:
        if experiment is not None:
            if solution is not None or candidates:
                raise TrackdbError("--experiment exports each movie's current solution: drop --solution/--candidates")
            from trackdb.io.parquet import export_geff_per_movie

            res = export_geff_per_movie(store, path, experiment, overwrite=overwrite)
            _report_skipped(res.skipped)
            click.echo(f"wrote {len(res.movies)} GEFF stores to {res.path}")
            return
        out = export_geff(store, path, str(movie_name), solution, candidates, overwrite=overwrite)
    click.echo(f"wrote {out}")


def _report_skipped(skipped: dict[str, str]) -> None:
    for name, why in skipped.items():
        click.echo(f"warning: movie {name!r} left out ({why})", err=True)


@click.command("export-parquet")
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--experiment", default=None, help="Export every movie of this experiment.")
@click.option("--movie", "movie_name", default=None, help="Export this one movie.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Export into a folder that is not empty (its nodes/, edges/, tracks/, probabilities/ and movies.parquet go).",
)
@DB_OPTION
def export_parquet_cmd(
    outdir: Path, experiment: str | None, movie_name: str | None, overwrite: bool, db_url: str | None
) -> None:
    """One Parquet dataset of an experiment, partitioned by movie (OUTDIR/nodes, edges, tracks,
    probabilities, each movie=NAME/...; OUTDIR/movies.parquet with the conditions), each movie at
    its current solution: pandas, polars, DuckDB and pyarrow read it directly."""
    from trackdb.io.parquet import export_parquet

    with open_store(db_url) as store:
        res = export_parquet(store, outdir, experiment=experiment, movie=movie_name, overwrite=overwrite)
    _report_skipped(res.skipped)
    counts = ", ".join(f"{n} {t}" for t, n in res.rows.items())
    click.echo(f"wrote {res.path}: {len(res.movies)} movies, {counts}")


@click.command("export-tracks")
@click.argument("outdir", type=click.Path(path_type=Path))
@MOVIE_OPTION
@click.option("--solution", default=None)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["napari", "csv", "parquet"]),
    default="napari",
    show_default=True,
    help="napari: tracks.csv + graph.json; csv/parquet: nodes, edges and tracks tables.",
)
@click.option("--candidates", is_flag=True, help="Tables of the whole candidate graph (csv/parquet).")
@DB_OPTION
def export_tracks_cmd(
    outdir: Path, movie_name: str, solution: str | None, fmt: str, candidates: bool, db_url: str | None
) -> None:
    """Write tracks for napari, or node/edge/track tables as CSV or Parquet."""
    with open_store(db_url) as store:
        if fmt == "napari":
            from trackdb.io.napari import write_napari_tracks

            paths = write_napari_tracks(store, outdir, movie_name, solution)
        else:
            from trackdb.io.tables import export_tables

            paths = export_tables(store, outdir, movie_name, solution, fmt, candidates=candidates)  # type: ignore[arg-type]
    for name, p in paths.items():
        click.echo(f"{name}: {p}")


COMMANDS = [import_ctc_cmd, export_ctc_cmd, evaluate, export_geff_cmd, export_parquet_cmd, export_tracks_cmd]
