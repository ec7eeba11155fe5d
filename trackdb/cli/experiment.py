"""``trackdb experiment``: run a whole experiment (a plate) from a TOML manifest on Dask, and
show the state of its movies × stages."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trackdb.cli.options import DB_OPTION, FORMAT_OPTION, echo_json, print_table


@click.group("experiment")
def experiment_group() -> None:
    """Experiments: many movies, their conditions and stages, run on Dask distributed."""


@experiment_group.command("run")
@click.argument("manifest_path", metavar="PLATE.toml", type=click.Path(path_type=Path))
@DB_OPTION
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes of the LocalCluster (default: 1 on SQLite, else one per core up to 4).",
)
@click.option("--threads-per-worker", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--scheduler", default=None, help="Address of an existing Dask cluster, e.g. tcp://HOST:8786.")
@click.option("--no-progress", is_flag=True, help="No progress bar (the summary is printed all the same).")
def run_cmd(
    manifest_path: Path,
    db_url: str | None,
    workers: int | None,
    threads_per_worker: int,
    scheduler: str | None,
    no_progress: bool,
) -> None:
    """Run every movie × stage of PLATE.toml; a re-run skips what finished and redoes the rest.

    The whole manifest, the store and the cluster are checked first: every problem is printed
    on its own line and nothing is written (exit 2). Movies that fail are named with their
    first error in the summary and in their run rows (exit 1); the other movies finish.
    """
    from trackdb.experiment import engine
    from trackdb.store import db

    url = db.resolve_url(db_url)
    options = engine.Options(
        url=url,
        workers=workers if workers is not None else engine.default_workers(url),
        threads_per_worker=threads_per_worker,
        scheduler=scheduler,
        progress=not no_progress,
    )
    manifest, problems, client = engine.check(manifest_path, options)
    if problems or manifest is None:
        for line in problems or [f"{manifest_path}: no experiment"]:
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    try:
        result = engine.run(manifest, options, client)
    finally:
        if client is not None:
            client.close()
    echo_json(result.to_json())
    for movie, error in result.failed.items():
        click.echo(f"failed: movie {movie!r}: {error}", err=True)
    if result.failed:
        sys.exit(1)


@experiment_group.command("status")
@click.argument("name")
@DB_OPTION
@FORMAT_OPTION
def status_cmd(name: str, db_url: str | None, fmt: str) -> None:
    """The experiment's movies × stages: the state of each stage's newest run and the first error."""
    from trackdb.experiment import engine
    from trackdb.store import Store

    with Store(db_url) as store:
        table = engine.status_table(store, name)
    if fmt == "json":
        echo_json(table.to_dict(orient="records"))
    else:
        print_table(table, fmt)


COMMANDS = [experiment_group]
