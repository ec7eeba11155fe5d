"""Curation commands: append an edit, list the edit log, re-solve what the edits touch."""

from __future__ import annotations

import click

from trackdb.cli.options import DB_OPTION, FORMAT_OPTION, MOVIE_OPTION, echo_json, open_store, print_table

EDIT_KINDS = click.Choice(["pin-node", "forbid-node", "pin-edge", "forbid-edge", "remove"])


@click.command()
@MOVIE_OPTION
@click.argument("kind", type=EDIT_KINDS)
@click.argument("target_id", type=int)
@click.option("--author", default=None, help="Who made the edit (kept in the audit log).")
@DB_OPTION
def edit(movie_name: str, kind: str, target_id: int, author: str | None, db_url: str | None) -> None:
    """Pin or forbid a candidate node / link (TARGET_ID: its node or edge id), or remove an
    earlier edit (TARGET_ID: the edit id). Applied by the next `trackdb resolve`."""
    from trackdb.stages.edits import add_edit

    with open_store(db_url) as store:
        edit_id = add_edit(store, movie_name, kind, target_id, author)
    click.echo(edit_id)


@click.command()
@MOVIE_OPTION
@FORMAT_OPTION
@DB_OPTION
def edits(movie_name: str, fmt: str, db_url: str | None) -> None:
    """The movie's edits: kind, target, frames, and the re-solve run that applied each."""
    from trackdb.stages.edits import list_edits

    with open_store(db_url) as store:
        print_table(list_edits(store, movie_name), fmt)


@click.command()
@MOVIE_OPTION
@click.option(
    "--margin",
    type=int,
    default=2,
    show_default=True,
    help="Frames re-solved on each side of the frames the edits touch.",
)
@click.option(
    "--backend", type=click.Choice(["highs", "ortools-highs", "scip", "cpsat"]), default="highs", show_default=True
)
@click.option("--time-limit", type=float, default=300.0, show_default=True, help="Seconds per window.")
@click.option("--gap", type=float, default=1e-4, show_default=True, help="Relative MIP gap.")
@DB_OPTION
def resolve(movie_name: str, margin: int, backend: str, time_limit: float, gap: float, db_url: str | None) -> None:
    """Apply pending edits: re-solve only the frames they touch (± margin), everything else fixed
    to the current solution; the result becomes the current solution."""
    from trackdb.stages.resolve import resolve as run_resolve

    with open_store(db_url) as store:
        r = run_resolve(store, movie_name, margin=margin, backend=backend, time_limit=time_limit, gap=gap)
    if r is None:
        click.echo(f"movie {movie_name!r}: no pending edits, and the current solution holds every pin; nothing written")
        return
    echo_json(
        {
            "run_id": r.run_id,
            "parent_run_id": r.parent_run_id,
            "solution_id": r.solution_id,
            "status": r.status,
            "objective": r.objective,
            "windows": r.windows,
            "edits": r.applied,
            "violated": r.violated,
            "stale": r.stale,
            "cells": r.n_selected,
            "links": r.n_links,
            "tracks": r.n_tracks,
            "cells_changed": r.nodes_changed,
            "links_changed": r.links_changed,
            "build_seconds": round(r.build_seconds, 2),
            "solve_seconds": round(r.solve_seconds, 2),
        }
    )


COMMANDS = [edit, edits, resolve]
