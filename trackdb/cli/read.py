"""Read commands: what the store holds, lineages and SQL."""

from __future__ import annotations

import click

from trackdb.cli.options import DB_OPTION, FORMAT_OPTION, echo_json, open_store, print_table


@click.command()
@DB_OPTION
def movies(db_url: str | None) -> None:
    """List the movies with their size and current solution."""
    from trackdb.store import stats

    with open_store(db_url) as store:
        print_table(stats.movies_table(store), "table")


@click.command()
@click.option("--movie", "movie_name", default=None)
@DB_OPTION
def stats(movie_name: str | None, db_url: str | None) -> None:
    """Counts of nodes, edges, solutions, tracks and divisions."""
    from trackdb.store import stats as st

    with open_store(db_url) as store:
        echo_json(st.store_stats(store, movie_name))


@click.command()
@click.option("--node", "node_id", type=int, required=True, help="Node id of the cell.")
@click.option("--direction", type=click.Choice(["ancestors", "descendants"]), default="ancestors", show_default=True)
@click.option("--solution", default=None)
@FORMAT_OPTION
@DB_OPTION
def lineage(node_id: int, direction: str, solution: str | None, fmt: str, db_url: str | None) -> None:
    """Ancestors (or descendants) of a cell along the selected links."""
    from trackdb.store import queries

    with open_store(db_url) as store:
        fn = queries.ancestors if direction == "ancestors" else queries.descendants
        print_table(fn(store, node_id, solution), fmt)


@click.command()
@click.argument("sql")
@FORMAT_OPTION
@DB_OPTION
def query(sql: str, fmt: str, db_url: str | None) -> None:
    """Run SQL against the store and print the rows (see docs/queries.md)."""
    from trackdb.store import queries

    with open_store(db_url) as store:
        print_table(queries.run_sql(store, sql), fmt)


@click.command("runs")
@click.option("--movie", "movie_name", default=None, help="Only this movie's runs.")
@FORMAT_OPTION
@DB_OPTION
def runs_cmd(movie_name: str | None, fmt: str, db_url: str | None) -> None:
    """Every stage run: kind, status, when, where (host, pid) and a failed run's reason. A run
    whose process on this host is gone is marked failed first, so `running` means running."""
    import pandas as pd

    from trackdb.store import runs

    with open_store(db_url) as store:
        movie_id = store.movie(movie_name).id if movie_name else None
        rows = runs.listing(store, movie_id)
    df = pd.DataFrame(
        rows,
        columns=[
            "id",
            "movie_id",
            "kind",
            "status",
            "started_at",
            "finished_at",
            "host",
            "pid",
            "parent_run_id",
            "message",
        ],
    )
    for col in ("movie_id", "pid", "parent_run_id"):
        df[col] = df[col].astype("Int64")
    for col in ("started_at", "finished_at"):
        df[col] = df[col].map(lambda v: None if v is None or pd.isna(v) else str(v)[:19])
    if fmt == "table":  # one line per run
        df["message"] = df["message"].map(lambda m: m[:77] + "..." if isinstance(m, str) and len(m) > 80 else m)
    print_table(df, fmt)


COMMANDS = [movies, stats, lineage, query, runs_cmd]
