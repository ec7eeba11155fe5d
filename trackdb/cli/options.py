"""What every command shares: the store option, the movie option, and how results are printed."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # pandas is imported where a table is printed (0.3-0.8 s off every other command), the store
    # (SQLAlchemy and its dialects, ~0.3 s) where a command opens it: `trackdb --help` and
    # option errors need neither
    import pandas as pd

    from trackdb.store import Store


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses NaN and infinity (NaN compares as inside any range)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


class Spacing(click.ParamType):
    """``z,y,x`` or ``y,x``: the physical size of a pixel per axis, each a finite number > 0
    (whether the count fits the movie's frames is checked once they are read)."""

    name = "spacing"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers (z,y,x or y,x)", param, ctx)
        if len(values) not in (2, 3):
            self.fail(f"{value!r} has {len(values)} value(s); give 3 (z,y,x) or 2 (y,x)", param, ctx)
        if not all(math.isfinite(v) and v > 0 for v in values):
            self.fail(f"{value!r}: every value must be a finite number > 0", param, ctx)
        return values


POSITIVE = FiniteFloatRange(min=0, min_open=True)  # seconds, pixels, rates, temperatures
FRACTION = FiniteFloatRange(0, 1)

DB_OPTION = click.option(
    "--db",
    "db_url",
    envvar="TRACKDB_DB",
    default=None,
    help="Database URL (default: $TRACKDB_DB or sqlite:///trackdb.sqlite).",
)
MOVIE_OPTION = click.option("--movie", "movie_name", required=True, help="Movie name (or id).")
FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")


@contextmanager
def stage_imports() -> Iterator[None]:
    """Import a command's stage modules (the store, SciPy, the solvers) without the cyclic
    garbage collector, then freeze what they made: imports leave little cyclic garbage, and
    module objects live as long as the process, so the collections during the command's work
    no longer walk them (0.07-0.13 of the 0.14-0.18 CPU-s that `trackdb track` spent in the
    collector on the ``benchmarks/track_speed.py`` movie, by gc.callbacks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def open_store(db_url: str | None, create: bool = False) -> Store:
    from trackdb.store import Store

    return Store(db_url, create=create)


def print_table(df: pd.DataFrame, fmt: str) -> None:
    import pandas as pd

    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records"))
    else:
        shown = df.copy()
        for col in shown.columns:  # nullable integers (ids not set yet) print as blanks, not <NA>
            if isinstance(shown[col].dtype, pd.Int64Dtype):
                shown[col] = shown[col].astype(object).where(shown[col].notna(), "")
        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            click.echo(shown.to_string(index=False, na_rep="") if not df.empty else "(no rows)")


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))
