"""Pipeline commands: candidates, links between them, the solve, and ``track`` (link + solve
in one process: the quick path from fixed masks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trackdb.cli.options import (
    DB_OPTION,
    MOVIE_OPTION,
    POSITIVE,
    FiniteFloatRange,
    echo_json,
    open_store,
    stage_imports,
)

if TYPE_CHECKING:
    from trackdb.stages.solve import SolveResult


@click.command()
@MOVIE_OPTION
@click.option(
    "--prob",
    type=click.Path(path_type=Path),
    default=None,
    help="Probability map: TIFF stack, folder of TIFFs or Zarr array (T,[Z,]Y,X) in [0,1].",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    default=None,
    help="Label images (TIFF stack, folder or Zarr): each object becomes one candidate.",
)
@click.option(
    "--tau",
    type=FiniteFloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Lowest threshold of the forest.",
)
@click.option("--min-area", type=click.IntRange(min=1), default=10, show_default=True)
@DB_OPTION
def candidates(
    movie_name: str, prob: Path | None, labels: Path | None, tau: float, min_area: int, db_url: str | None
) -> None:
    """Candidate cells: the H-EMD forest of a probability map, or label images."""
    from trackdb.stages.candidates import run_candidates
    from trackdb.store import runs

    with open_store(db_url) as store:
        run_id = run_candidates(store, movie_name, prob=prob, labels=labels, tau=tau, min_area=min_area)
        summary = runs.get_run(store, run_id).summary or {}
    for line in summary.get("warnings", []):
        click.echo(f"warning: {line}", err=True)
    click.echo(f"candidates run {run_id} done")


@click.command()
@MOVIE_OPTION
@click.option(
    "--max-distance",
    type=POSITIVE,
    default=None,
    help="Search radius in physical units (the movie's spacing; pixels where none was imported). "
    "Default: chosen from the cells (their size and a first motion estimate).",
)
@click.option(
    "--k",
    type=click.IntRange(min=1),
    default=None,
    help="Nearest candidates per frame step. Default: chosen from the cells (neighbours within reach).",
)
@click.option(
    "--dt", type=click.IntRange(min=1), default=1, show_default=True, help="Longest gap (frames) a link may close."
)
@DB_OPTION
def link(movie_name: str, max_distance: float | None, k: int | None, dt: int, db_url: str | None) -> None:
    """Candidate links between candidates of nearby frames (distances in physical units)."""
    with stage_imports():
        from trackdb.stages.link import run_link
        from trackdb.store import runs
        from trackdb.store.runs import LinkParams

    with open_store(db_url) as store:
        run_id = run_link(store, movie_name, max_distance=max_distance, k=k, dt=dt)
        p = runs.get_run(store, run_id).typed(LinkParams)
    if p.chosen:
        click.echo(f"link: chosen from the cells: {p.chosen['reason']}")
    click.echo(f"link run {run_id} done (radius {p.max_distance:.4g}, k {p.k}, dt {p.dt})")


@click.command()
@MOVIE_OPTION
@click.option(
    "--method",
    type=click.Choice(["joint", "lap", "hemd", "embedtrack"]),
    default="joint",
    show_default=True,
    help="embedtrack: the network's own clustering + linking (needs `trackdb predict`).",
)
@click.option("--window", type=click.IntRange(min=2), default=None, help="Solve in windows of this many frames.")
@click.option("--time-limit", type=POSITIVE, default=300.0, show_default=True, help="Seconds per solve.")
@click.option(
    "--gap", type=FiniteFloatRange(0, 1, max_open=True), default=1e-4, show_default=True, help="Relative MIP gap."
)
@click.option(
    "--iterations", type=click.IntRange(min=1), default=4, show_default=True, help="Solve / re-estimate motion rounds."
)
@DB_OPTION
def solve(
    movie_name: str, method: str, window: int | None, time_limit: float, gap: float, iterations: int, db_url: str | None
) -> None:
    """Select cells and links (OR-Tools / HiGHS), write the solution and make it current."""
    with stage_imports():
        from trackdb.stages.solve import run_solve

    if method == "embedtrack":
        from trackdb.stages.predictions import run_embedtrack

        with open_store(db_url) as store:
            sid = run_embedtrack(store, movie_name)
        echo_json({"solution_id": sid, "method": "embedtrack", "status": "optimal"})
        return
    with open_store(db_url) as store:
        r = run_solve(
            store, movie_name, method=method, window=window, time_limit=time_limit, gap=gap, iterations=iterations
        )
    _echo_solve(r)


def _echo_solve(r: SolveResult, **extra: object) -> None:
    from trackdb.stages.solve import final_scales

    echo_json(
        {
            **extra,
            "run_id": r.run_id,
            "solution_id": r.solution_id,
            "status": r.status,
            "objective": r.objective,
            "cells": r.n_selected,
            "links": r.n_links,
            "tracks": r.n_tracks,
            "divisions": r.n_divisions,
            "solve_seconds": round(r.seconds, 2),
            **r.solver,
            **final_scales(r.history),
            "warnings": r.warnings,
        }
    )
    for line in r.warnings:
        click.echo(f"warning: {line}", err=True)


@click.command()
@MOVIE_OPTION
@click.option(
    "--method",
    type=click.Choice(["joint", "lap"]),
    default="joint",
    show_default=True,
    help="As for `trackdb solve` (fixed masks: joint is solved exactly as an assignment with divisions).",
)
@DB_OPTION
def track(movie_name: str, method: str, db_url: str | None) -> None:
    """Link then solve with the defaults, in one process: the quick path from fixed masks.

    The same as `trackdb link --movie M` followed by `trackdb solve --movie M` (two runs in
    `trackdb runs`, a link run and a solve run, each with its own parameters and times), without
    a second start-up or reading the candidates and links back. Prints the link stage's lines
    on stderr and the solve's JSON (with the link run's id) on stdout. Options beyond the
    defaults: run the two commands.
    """
    with stage_imports():
        from trackdb.stages.link import link_movie
        from trackdb.stages.solve import solve_linked

    with open_store(db_url) as store:
        linked = link_movie(store, movie_name)
        p = linked.params
        if p.chosen:
            click.echo(f"link: chosen from the cells: {p.chosen['reason']}", err=True)
        click.echo(f"link run {linked.run_id} done (radius {p.max_distance:.4g}, k {p.k}, dt {p.dt})", err=True)
        r = solve_linked(store, movie_name, linked, method=method)
    _echo_solve(r, link_run_id=linked.run_id, candidate_links=len(linked.edges.source))


COMMANDS = [candidates, link, solve, track]
