"""Doubt commands: probabilities and alternatives (uncertainty), what is doubtful, calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trackdb.cli.options import (
    DB_OPTION,
    FORMAT_OPTION,
    FRACTION,
    MOVIE_OPTION,
    POSITIVE,
    FiniteFloatRange,
    echo_json,
    open_store,
    print_table,
)

METHODS = click.Choice(["sm", "fp", "fpa", "as", "mm"])


@click.command()
@MOVIE_OPTION
@click.option(
    "--method",
    type=METHODS,
    required=True,
    help="sm: parental softmax; fp: perturbed costs; fpa: perturbed assignments; "
    "as: K best solutions; mm: max-marginal softmax.",
)
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Samples / alternatives (fp, fpa, as)."
)
@click.option("--calibration", default=None, help="Use the temperature stored by `trackdb calibrate --name`.")
@click.option("--temperature", type=POSITIVE, default=None, help="Explicit temperature (default 1).")
@click.option(
    "--sigma-px",
    type=FiniteFloatRange(min=0),
    default=2.0,
    show_default=True,
    help="fp/fpa: std of the jitter of cell centres, pixels per axis.",
)
@click.option(
    "--sigma-area",
    type=FiniteFloatRange(min=0),
    default=0.05,
    show_default=True,
    help="fp/fpa: std of the log-normal jitter of cell areas.",
)
@DB_OPTION
def uncertainty(
    movie_name: str,
    method: str,
    k: int,
    calibration: str | None,
    temperature: float | None,
    sigma_px: float,
    sigma_area: float,
    db_url: str | None,
) -> None:
    """Link and cell probabilities of the current solution, track confidences, and the method's
    ranked alternative solutions (named METHOD-rankK, e.g. `export-ctc --solution fpa-rank1`)."""
    from trackdb.stages.uncertainty import run_summary, run_uncertainty

    with open_store(db_url) as store:
        run_id = run_uncertainty(
            store,
            movie_name,
            method,
            k=k,
            calibration=calibration,
            temperature=temperature,
            sigma_px=sigma_px,
            sigma_area=sigma_area,
        )
        summary = run_summary(store, run_id)
    echo_json(summary)
    warn(summary)


@click.command()
@MOVIE_OPTION
@click.option("--below", type=FRACTION, default=0.8, show_default=True, help="List what is less probable than this.")
@FORMAT_OPTION
@DB_OPTION
def uncertain(movie_name: str, below: float, fmt: str, db_url: str | None) -> None:
    """Doubtful links, divisions and cells of the current solution (latest uncertainty run)."""
    from trackdb.stages.doubtful import uncertain as list_uncertain  # no solver imports

    with open_store(db_url) as store:
        print_table(list_uncertain(store, movie_name, below), fmt)


@click.command()
@MOVIE_OPTION
@click.option("--gt", "gt_dir", type=click.Path(path_type=Path), required=True, help="DATASET/SEQ_GT folder.")
@click.option("--method", type=METHODS, required=True)
@click.option("--name", default="default", show_default=True, help="Name to store the calibration under.")
@click.option("--png", type=click.Path(path_type=Path), default=None, help="Write the reliability diagram here.")
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Samples / alternatives (fp, fpa, as)."
)
@click.option(
    "--temperature-prior",
    type=FiniteFloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Std of the log-normal prior on T (keeps T near 1 unless the ground truth's errors "
    "say otherwise); 0: plain NLL fit.",
)
@DB_OPTION
def calibrate(
    movie_name: str,
    gt_dir: Path,
    method: str,
    name: str,
    png: Path | None,
    k: int,
    temperature_prior: float,
    db_url: str | None,
) -> None:
    """Fit the temperature of a method on ground truth; print ECE and sparsification as JSON."""
    from trackdb.stages.calibrate import run_calibrate

    with open_store(db_url) as store:
        result = run_calibrate(
            store, movie_name, gt_dir, method, name=name, png=png, k=k, temperature_prior=temperature_prior or None
        )
    echo_json(result)
    warn(result)


def warn(summary: dict[str, Any]) -> None:
    """A run's shortfalls (fewer alternatives than asked, time-capped solves), on stderr."""
    for line in summary.get("warnings") or []:
        click.echo(f"warning: {line}", err=True)


COMMANDS = [uncertainty, uncertain, calibrate]
