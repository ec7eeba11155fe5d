"""Curation commands: append an edit, list the edit log, re-solve what the edits touch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trackdb.cli.options import (
    DB_OPTION,
    FORMAT_OPTION,
    MOVIE_OPTION,
    POSITIVE,
    FiniteFloatRange,
    echo_json,
    open_store,
    print_table,
)
from trackdb.errors import InputError

AUTHOR_OPTION = click.option("--author", default=None, help="Who made the edit (default: the OS user).")
ON_OPTION = click.option(
    "--on",
    "based_on",
    type=int,
    default=None,
    help="The solution id the edit was made on; refused (exit 2) when it is no longer current.",
)


def _edit_options(f: Callable[..., None]) -> Callable[..., None]:
    return AUTHOR_OPTION(ON_OPTION(DB_OPTION(f)))


@click.group(cls=click.Group)
@MOVIE_OPTION
@click.pass_context
def edit(ctx: click.Context, movie_name: str) -> None:
    """Append an edit to the movie's edit log (applied by the next `trackdb resolve`); prints
    the edit id. Pin or forbid candidates and links by id, or fix the lineage with relink,
    division, delete-cell, add-cell, merge-cells, split-cell, end-track; undo with remove."""
    ctx.obj = {"movie": movie_name}


def _run(ctx: click.Context, db_url: str | None, call: Callable[..., int], *args: Any, **kw: Any) -> None:
    with open_store(db_url) as store:
        edit_id = call(store, ctx.obj["movie"], *args, **kw)
    click.echo(edit_id)


def _pin_command(kind: str, what: str) -> click.Command:
    @click.command(name=kind, help=f"{kind.split('-')[0].capitalize()} the candidate {what} TARGET_ID.")
    @click.argument("target_id", type=int)
    @_edit_options
    @click.pass_context
    def command(
        ctx: click.Context, target_id: int, author: str | None, based_on: int | None, db_url: str | None
    ) -> None:
        from trackdb.stages.edits import add_edit

        _run(ctx, db_url, add_edit, kind, target_id, author, based_on=based_on)

    return command


for _kind, _what in (("pin-node", "cell"), ("forbid-node", "cell"), ("pin-edge", "link"), ("forbid-edge", "link")):
    edit.add_command(_pin_command(_kind, _what))


@edit.command()
@click.argument("edit_id", type=int)
@_edit_options
@click.pass_context
def remove(ctx: click.Context, edit_id: int, author: str | None, based_on: int | None, db_url: str | None) -> None:
    """Undo the edit EDIT_ID (the log keeps both)."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.remove, edit_id, author=author, based_on=based_on)


@edit.command()
@click.argument("child", type=int)
@click.argument("parent", type=int)
@_edit_options
@click.pass_context
def relink(
    ctx: click.Context, child: int, parent: int, author: str | None, based_on: int | None, db_url: str | None
) -> None:
    """CHILD's parent is PARENT (a cell of frame t-1 or earlier)."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.relink, child, parent, author=author, based_on=based_on)


@edit.command()
@click.argument("node", type=int)
@click.argument("verdict", type=click.Choice(["real", "false"]))
@_edit_options
@click.pass_context
def division(
    ctx: click.Context, node: int, verdict: str, author: str | None, based_on: int | None, db_url: str | None
) -> None:
    """The cell NODE divides here (real) or does not (false)."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.division, node, verdict == "real", author=author, based_on=based_on)


@edit.command(name="delete-cell")
@click.argument("node", type=int)
@_edit_options
@click.pass_context
def delete_cell(ctx: click.Context, node: int, author: str | None, based_on: int | None, db_url: str | None) -> None:
    """The candidate NODE is not a cell."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.delete_cell, node, author=author, based_on=based_on)


@edit.command(name="end-track")
@click.argument("node", type=int)
@_edit_options
@click.pass_context
def end_track(ctx: click.Context, node: int, author: str | None, based_on: int | None, db_url: str | None) -> None:
    """The track ends at NODE (death or exit)."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.end_track, node, author=author, based_on=based_on)


@edit.command(name="add-cell")
@click.option("--t", "t", type=int, required=True, help="The frame of the new cell.")
@click.option(
    "--mask",
    "mask_file",
    type=click.Path(path_type=Path),
    required=True,
    help="TIFF of the frame's shape; non-zero = the cell.",
)
@_edit_options
@click.pass_context
def add_cell(
    ctx: click.Context, t: int, mask_file: Path, author: str | None, based_on: int | None, db_url: str | None
) -> None:
    """A cell the candidates missed, drawn as a mask; it replaces the candidates it overlaps."""
    from trackdb.io.masks import read_mask
    from trackdb.stages import edits

    _run(ctx, db_url, edits.add_cell, t, read_mask(mask_file), author=author, based_on=based_on)


@edit.command(name="merge-cells")
@click.argument("a", type=int)
@click.argument("b", type=int)
@_edit_options
@click.pass_context
def merge_cells(
    ctx: click.Context, a: int, b: int, author: str | None, based_on: int | None, db_url: str | None
) -> None:
    """Cells A and B (one frame) are one cell."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.merge_cells, a, b, author=author, based_on=based_on)


def _line(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise InputError(
            f"--line must be comma-separated numbers (Y0,X0,Y1,X1 or Z0,Y0,X0,Z1,Y1,X1), got {value!r}"
        ) from None


@edit.command(name="split-cell")
@click.argument("node", type=int)
@click.option("--line", "line", required=True, help="Y0,X0,Y1,X1 (Z0,Y0,X0,Z1,Y1,X1 in 3D): the cut, in pixels.")
@_edit_options
@click.pass_context
def split_cell(
    ctx: click.Context, node: int, line: str, author: str | None, based_on: int | None, db_url: str | None
) -> None:
    """Cut cell NODE in two along a line."""
    from trackdb.stages import edits

    _run(ctx, db_url, edits.split_cell, node, _line(line), author=author, based_on=based_on)


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
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Frames re-solved on each side of the frames the edits touch.",
)
@click.option(
    "--backend", type=click.Choice(["highs", "ortools-highs", "scip", "cpsat"]), default="highs", show_default=True
)
@click.option("--time-limit", type=POSITIVE, default=300.0, show_default=True, help="Seconds per window.")
@click.option(
    "--gap", type=FiniteFloatRange(0, 1, max_open=True), default=1e-4, show_default=True, help="Relative MIP gap."
)
@DB_OPTION
def resolve(movie_name: str, margin: int, backend: str, time_limit: float, gap: float, db_url: str | None) -> None:
    """Apply pending edits: re-solve only the frames they touch (± margin), everything else fixed
    to the current solution; the result becomes the current solution."""
    from trackdb.stages.resolve import resolve as run_resolve
    from trackdb.stages.resolve import summary_of

    with open_store(db_url) as store:
        r = run_resolve(store, movie_name, margin=margin, backend=backend, time_limit=time_limit, gap=gap)
    if r is None:
        click.echo(f"movie {movie_name!r}: no pending edits, and the current solution holds every pin; nothing written")
        return
    echo_json(summary_of(r))


COMMANDS = [edit, edits, resolve]
