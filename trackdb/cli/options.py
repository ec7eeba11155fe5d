"""What every command shares: the store option, the movie option, and how results are printed."""

from __future__ import annotations

import json
from typing import Any

import click
import pandas as pd

from trackdb.store import Store

DB_OPTION = click.option(
    "--db",
    "db_url",
    envvar="TRACKDB_DB",
    default=None,
    help="Database URL (default: $TRACKDB_DB or sqlite:///trackdb.sqlite).",
)
MOVIE_OPTION = click.option("--movie", "movie_name", required=True, help="Movie name (or id).")
FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")


def open_store(db_url: str | None, create: bool = False) -> Store:
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
