"""Pictures of what the store holds: ``trackdb plot lineage``."""

from __future__ import annotations

from pathlib import Path

import click

from trackdb.cli.options import DB_OPTION, open_store
from trackdb.errors import InputError


@click.group()
def plot() -> None:
    """Draw pictures of a movie's solution (PNG or SVG)."""


@plot.command()
@click.option("--track", "track_id", type=int, required=True, help="A track id of the solution.")
@click.option("--movie", "movie_name", default=None, help="Movie name or id (default: the store's only movie).")
@click.option("--solution", default=None, help="Solution id or name (default: the movie's current solution).")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Picture to write, .png or .svg (default: lineage-track-N.png).",
)
@DB_OPTION
def lineage(track_id: int, movie_name: str | None, solution: str | None, out: Path | None, db_url: str | None) -> None:
    """The lineage tree of the family of track N, divisions coloured by their probability."""
    from trackdb.io.lineage_plot import write_lineage

    with open_store(db_url) as store:
        if movie_name is None:
            movies = store.movies()
            if len(movies) != 1:
                names = ", ".join(m.name for m in movies) or "none"
                raise InputError(f"this store holds {len(movies)} movies ({names}): choose one with --movie")
            movie_name = movies[0].name
        path = write_lineage(
            store, movie_name, track_id, out or Path(f"lineage-track-{track_id}.png"), solution=solution
        )
    click.echo(str(path))


COMMANDS = [plot]
