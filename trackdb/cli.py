"""The ``trackdb`` command line: one verb per pipeline step, ``--db URL`` on every command.

Errors from the :mod:`trackdb.errors` family print one line and exit with status 2; the store
is left as it was because every command writes inside one transaction per batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pandas as pd

from .errors import TrackdbError

DB_OPTION = click.option("--db", "db_url", envvar="TRACKDB_DB", default=None,
                         help="Database URL (default: $TRACKDB_DB or sqlite:///trackdb.sqlite).")


def open_store(db_url: str | None, create: bool = False):  # type: ignore[no-untyped-def]
    from .store import Store

    return Store(db_url, create=create)


def print_table(df: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records"))
    else:
        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            click.echo(df.to_string(index=False) if not df.empty else "(no rows)")


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")


class UserError(click.ClickException):
    """A :class:`TrackdbError` (or a plain-data room's ValueError) shown as one line, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class TrackdbGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TrackdbError, ValueError) as exc:
            raise UserError(str(exc)) from exc


@click.group(cls=TrackdbGroup)
@click.version_option(package_name="trackdb")
def cli() -> None:
    """trackdb: segmentation, tracking and lineage store for time-lapse microscopy."""


@cli.command()
@DB_OPTION
def init(db_url: str | None) -> None:
    """Create the schema (or upgrade it to this version) through Alembic."""
    from . import db

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    click.echo(f"database {engine.url.render_as_string(hide_password=True)} at schema revision {db.current_revision(engine)}")


@cli.group("db")
def db_group() -> None:
    """Schema revisions."""


@db_group.command("upgrade")
@DB_OPTION
def db_upgrade(db_url: str | None) -> None:
    """Upgrade an existing database to this trackdb's schema revision."""
    from . import db

    engine = db.make_engine(db_url)
    before = db.current_revision(engine)
    db.upgrade(engine)
    click.echo(f"schema revision {before} -> {db.current_revision(engine)}")


@db_group.command("current")
@DB_OPTION
def db_current(db_url: str | None) -> None:
    """Print the database's schema revision and this trackdb's."""
    from . import db

    engine = db.make_engine(db_url)
    click.echo(f"database: {db.current_revision(engine)}  trackdb head: {db.head_revision()}")


@cli.command("import-ctc")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--seq", default="01", show_default=True, help="Sequence folder name.")
@click.option("--movie", "movie_name", required=True, help="Name of the new movie.")
@click.option("--masks-only", is_flag=True, help="Import GT masks as detections, without links.")
@click.option("--no-gt", is_flag=True, help="Import only the raw frames (no masks, no lineage).")
@click.option("--experiment", default=None, help="Experiment (plate) the movie belongs to.")
@DB_OPTION
def import_ctc_cmd(dataset: Path, seq: str, movie_name: str, masks_only: bool, no_gt: bool,
                   experiment: str | None, db_url: str | None) -> None:
    """Import a CTC sequence DATASET/SEQ (+ DATASET/SEQ_GT/TRA) as a movie."""
    from .import_ctc import import_ctc

    if masks_only and no_gt:
        raise TrackdbError("--masks-only and --no-gt exclude each other")
    with open_store(db_url, create=True) as store:
        r = import_ctc(store, dataset, seq, movie_name, masks_only=masks_only, no_gt=no_gt, experiment=experiment)
    click.echo(f"movie {movie_name!r} (id {r.movie_id}): {r.n_frames} frames, {r.n_nodes} nodes, "
               f"{r.n_edges} links" + (f", solution 'gt' (id {r.solution_id})" if r.solution_id else ""))


@cli.command("export-ctc")
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--movie", "movie_name", required=True)
@click.option("--solution", default=None, help="Solution id or name (default: the current one).")
@DB_OPTION
def export_ctc_cmd(outdir: Path, movie_name: str, solution: str | None, db_url: str | None) -> None:
    """Write a solution as CTC result files (maskTTT.tif + res_track.txt)."""
    from .export_ctc import export_ctc

    with open_store(db_url) as store:
        out = export_ctc(store, outdir, movie_name, solution)
    click.echo(f"wrote {out}")


@cli.command()
@DB_OPTION
def movies(db_url: str | None) -> None:
    """List the movies with their size and current solution."""
    from . import stats

    with open_store(db_url) as store:
        print_table(stats.movies_table(store), "table")


@cli.command()
@click.option("--movie", "movie_name", default=None)
@DB_OPTION
def stats(movie_name: str | None, db_url: str | None) -> None:
    """Counts of nodes, edges, solutions, tracks and divisions."""
    from . import stats as st

    with open_store(db_url) as store:
        echo_json(st.store_stats(store, movie_name))


@cli.command()
@click.option("--node", "node_id", type=int, required=True, help="Node id of the cell.")
@click.option("--direction", type=click.Choice(["ancestors", "descendants"]), default="ancestors", show_default=True)
@click.option("--solution", default=None)
@FORMAT_OPTION
@DB_OPTION
def lineage(node_id: int, direction: str, solution: str | None, fmt: str, db_url: str | None) -> None:
    """Ancestors (or descendants) of a cell along the selected links."""
    from . import queries

    with open_store(db_url) as store:
        fn = queries.ancestors if direction == "ancestors" else queries.descendants
        print_table(fn(store, node_id, solution), fmt)


@cli.command()
@click.argument("sql")
@FORMAT_OPTION
@DB_OPTION
def query(sql: str, fmt: str, db_url: str | None) -> None:
    """Run SQL against the store and print the rows (see docs/queries.md)."""
    from . import queries

    with open_store(db_url) as store:
        print_table(queries.run_sql(store, sql), fmt)


@cli.command()
@click.option("--movie", "movie_name", required=True)
@click.option("--gt", "gt_dir", type=click.Path(path_type=Path), required=True, help="DATASET/SEQ_GT folder.")
@click.option("--solution", default=None)
@DB_OPTION
def evaluate(movie_name: str, gt_dir: Path, solution: str | None, db_url: str | None) -> None:
    """CTC metrics (TRA, DET, LNK, SEG) of a solution against ground truth, as JSON."""
    from .evaluate import evaluate_solution

    with open_store(db_url) as store:
        echo_json(evaluate_solution(store, movie_name, gt_dir, solution))


@cli.command("export-geff")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--movie", "movie_name", required=True)
@click.option("--solution", default=None, help="Solution id or name (default: the current one).")
@click.option("--candidates", is_flag=True, help="Export the whole candidate graph (with a 'selected' prop).")
@click.option("--overwrite", is_flag=True, help="Replace an existing GEFF at PATH.")
@DB_OPTION
def export_geff_cmd(path: Path, movie_name: str, solution: str | None, candidates: bool, overwrite: bool,
                    db_url: str | None) -> None:
    """Write a solution (or the candidate graph) as GEFF, with positions, costs and probabilities."""
    from .export_geff import export_geff

    with open_store(db_url) as store:
        out = export_geff(store, path, movie_name, solution, candidates, overwrite=overwrite)
    click.echo(f"wrote {out}")


@cli.command("export-tracks")
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--movie", "movie_name", required=True)
@click.option("--solution", default=None)
@click.option("--format", "fmt", type=click.Choice(["napari", "csv", "parquet"]), default="napari", show_default=True,
              help="napari: tracks.csv + graph.json; csv/parquet: nodes, edges and tracks tables.")
@click.option("--candidates", is_flag=True, help="Tables of the whole candidate graph (csv/parquet).")
@DB_OPTION
def export_tracks_cmd(outdir: Path, movie_name: str, solution: str | None, fmt: str, candidates: bool,
                      db_url: str | None) -> None:
    """Write tracks for napari, or node/edge/track tables as CSV or Parquet."""
    with open_store(db_url) as store:
        if fmt == "napari":
            from .export_graph import write_napari_tracks

            paths = write_napari_tracks(store, outdir, movie_name, solution)
        else:
            from .export_tables import export_tables

            paths = export_tables(store, outdir, movie_name, solution, fmt, candidates=candidates)  # type: ignore[arg-type]
    for name, p in paths.items():
        click.echo(f"{name}: {p}")


def main() -> None:
    cli.main(prog_name="trackdb")


from . import cli_more  # noqa: E402,F401  (registers the pipeline commands on ``cli``)

if __name__ == "__main__":
    main()
