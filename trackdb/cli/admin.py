"""Schema commands: create the store, upgrade or show its Alembic revision."""

from __future__ import annotations

import click

from trackdb.cli.options import DB_OPTION


@click.command()
@DB_OPTION
def init(db_url: str | None) -> None:
    """Create the schema (or upgrade it to this version) through Alembic."""
    from trackdb.store import db

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    click.echo(
        f"database {engine.url.render_as_string(hide_password=True)} at schema revision {db.current_revision(engine)}"
    )


@click.group("db")
def db_group() -> None:
    """Schema revisions."""


@db_group.command("upgrade")
@DB_OPTION
def db_upgrade(db_url: str | None) -> None:
    """Upgrade an existing database to this trackdb's schema revision."""
    from trackdb.store import db

    engine = db.make_engine(db_url, must_exist=True)
    before = db.current_revision(engine)
    db.upgrade(engine)
    click.echo(f"schema revision {before} -> {db.current_revision(engine)}")


@db_group.command("current")
@DB_OPTION
def db_current(db_url: str | None) -> None:
    """Print the database's schema revision and this trackdb's."""
    from trackdb.store import db

    engine = db.make_engine(db_url, must_exist=True)
    click.echo(f"database: {db.current_revision(engine)}  trackdb head: {db.head_revision()}")


COMMANDS = [init, db_group]
