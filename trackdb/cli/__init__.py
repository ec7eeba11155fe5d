"""The ``trackdb`` command line: one verb per pipeline step, ``--db URL`` on every command.

Each module of this package owns one group of commands and lists them in ``COMMANDS``; they are
registered here, so ``trackdb``, ``python -m trackdb`` and ``python -m trackdb.cli`` see the same
commands. A :class:`~trackdb.errors.TrackdbError` prints one line and exits with status 2 (the
store is left as it was: every command writes inside one transaction per batch); anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
from typing import Any

import click

from trackdb.cli import admin, curation, doubt, experiment, files, network, pipeline, plot, read, review
from trackdb.errors import TrackdbError


class UserError(click.ClickException):
    """A :class:`TrackdbError` shown as one line, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class TrackdbGroup(click.Group):
    """Turns a user's mistake into one line: a :class:`TrackdbError` from a stage, or an option
    value that its click type refuses (the message names the option and the value)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrackdbError as exc:
            raise UserError(str(exc)) from exc
        except click.BadParameter as exc:
            raise UserError(exc.format_message()) from exc


@click.group(cls=TrackdbGroup)
@click.version_option(package_name="trackdb")
def cli() -> None:
    """trackdb: segmentation, tracking and lineage store for time-lapse microscopy."""


for _module in (admin, read, files, pipeline, network, doubt, curation, review, plot, experiment):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


class Terminated(SystemExit):
    """Raised in the main thread when the process is asked to stop (SIGTERM, SIGHUP): the
    running stage's transaction rolls back and its run is marked failed with the signal as the
    reason, as for any error. (SIGKILL cannot be caught: ``trackdb runs`` finds those runs.)"""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signame = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"terminated by {self.signame}"


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _terminate)


def main() -> None:
    install_signal_handlers()
    cli.main(prog_name="trackdb")


__all__ = ["cli", "main", "install_signal_handlers", "Terminated", "UserError"]
