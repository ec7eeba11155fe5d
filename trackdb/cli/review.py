"""The review page command: serve the local web app that curates one movie."""

from __future__ import annotations

import getpass
import socket

import click

from trackdb.cli.options import DB_OPTION, MOVIE_OPTION, open_store
from trackdb.errors import InputError

DEFAULT_PORT = 8765


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the address cannot be bound (port taken, unknown host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another --port") from exc


@click.command()
@MOVIE_OPTION
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default serves this machine only (anyone who reaches the page can edit).",
)
@click.option("--author", default=None, help="Name recorded on every edit (default: the OS user).")
@click.option("--below", type=float, default=0.8, show_default=True, help="List what is less probable than this.")
@click.option("--margin", type=int, default=2, show_default=True, help="Frames re-solved around each edit.")
@click.option(
    "--refresh/--no-refresh",
    default=False,
    show_default=True,
    help="Refresh the re-solved frames' probabilities and alternatives at every edit (slower clicks; "
    "without it the queue keeps the stored probabilities and offers to recompute them).",
)
@DB_OPTION
def review(
    movie_name: str,
    port: int,
    host: str,
    author: str | None,
    below: float,
    margin: int,
    refresh: bool,
    db_url: str | None,
) -> None:
    """Serve the review page of a movie: doubtful links, divisions and cells first, their pixels
    and lineage, and buttons (and keys) that edit and re-solve."""
    import uvicorn

    from trackdb.review import create_app

    store = open_store(db_url)
    hosts = [] if host in ("127.0.0.1", "localhost", "::1") else [host]
    app = create_app(
        store, movie_name, author=author or os_user(), below=below, margin=margin, refresh=refresh, hosts=hosts
    )
    _check_port(host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"reviewing movie {movie_name!r} at http://{shown}:{port}/ as {author or os_user()} (Ctrl-C stops)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()


COMMANDS = [review]
