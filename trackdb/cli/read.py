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


COMMANDS = [movies, stats, lineage, query]
