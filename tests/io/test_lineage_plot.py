"""Lineage plots: the family tree of a track as PNG and SVG, divisions coloured by their
probability when the solution has an uncertainty run, from Python and ``trackdb plot lineage``."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackdb.errors import InputError, NotFoundError
from trackdb.io.import_ctc import import_ctc
from trackdb.io.lineage_plot import lineage_figure, write_lineage
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty
from trackdb.store import Store, runs
from trackdb.store.lineage import division_probabilities

from ..helpers import snapshot, trackdb

MOVIE = "det"


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def mother_track(store: Store) -> int:
    """The track that divides (conftest's track 1 → 2, 3)."""
    from trackdb.store import queries

    tracks = queries.tracks(store, MOVIE)
    return int(tracks.loc[tracks["n_children"] == 2, "track_id"].iloc[0])


def test_png_and_svg_without_probabilities(solved: Store, tmp_path: Path) -> None:
    mother = mother_track(solved)
    png = lineage_figure(solved, MOVIE, mother)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = lineage_figure(solved, MOVIE, mother, fmt="svg").decode()
    assert svg.lstrip().startswith("<?xml")
    assert "divisions unscored" in svg
    before = snapshot(solved)
    out = write_lineage(solved, MOVIE, mother, tmp_path / "tree.svg")
    assert out.read_text().startswith("<?xml")
    assert snapshot(solved) == before  # drawing reads only
    with pytest.raises(NotFoundError, match="no track 999"):
        lineage_figure(solved, MOVIE, 999)
    with pytest.raises(InputError, match="must end in .png or .svg"):
        write_lineage(solved, MOVIE, mother, tmp_path / "tree.gif")


def test_divisions_coloured_by_probability(solved: Store) -> None:
    run_uncertainty(solved, MOVIE, "sm", k=2)
    movie = solved.movie(MOVIE)
    run_id = runs.latest_uncertainty_run(solved, movie)
    assert movie.current_solution_id is not None
    p = division_probabilities(solved, movie.current_solution_id, run_id)
    mother = mother_track(solved)
    assert set(p) == {mother}
    assert 0.0 < p[mother] <= 1.0
    svg = lineage_figure(solved, MOVIE, mother, fmt="svg").decode()
    assert "division probability" in svg  # the colour bar
    assert f"{p[mother]:.2f}" in svg


def test_cli_plot_lineage(db_url: str, synthetic_ctc: Path, tmp_path: Path) -> None:
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", MOVIE, db=db_url).returncode == 0
    out = tmp_path / "lin.png"
    r = trackdb("plot", "lineage", "--track", "1", "--out", str(out), db=db_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    r = trackdb("plot", "lineage", "--track", "77", "--out", str(out), db=db_url)
    assert r.returncode == 2
    assert "no track 77" in r.stderr
    r = trackdb("plot", "lineage", "--track", "1", "--movie", "nope", db=db_url)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: no movie 'nope' in this database (see `trackdb movies`)"
