"""trackdb export-parquet and export-geff --experiment on both engines: one Parquet dataset of
the plate partitioned by movie, read back by pandas and pyarrow.dataset, and a GEFF per movie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geff
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from trackdb.cli import cli
from trackdb.errors import InputError, NotFoundError
from trackdb.io.parquet import SCHEMAS, TABLES, export_parquet
from trackdb.store import Store, frames, schema, solutions
from trackdb.store.core import Movie

from ..helpers import snapshot
from ..plate_fixture import EXPERIMENT, MOVIES, TIME_INTERVAL, plate_store, rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def plate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with plate_store(request.param, tmp_path_factory.mktemp("plate")) as store:
        yield store


@pytest.fixture(scope="module")
def exported(plate: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "plate"
    res = export_parquet(plate, out, experiment=EXPERIMENT)
    assert res.movies == ["A01", "A02", "B01"]
    assert res.skipped == {}
    return out


def url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def trackdb(*args: str) -> tuple[int, str, str]:
    r = CliRunner(mix_stderr=False).invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_pandas_reads_every_movie_at_its_current_solution(plate: Store, exported: Path) -> None:
    nodes = pd.read_parquet(exported / "nodes")
    tracks = pd.read_parquet(exported / "tracks")
    assert sorted(nodes["movie"].astype(str).unique()) == ["A01", "A02", "B01"]
    for movie in MOVIES:
        m = plate.movie(movie.name)
        assert m.current_solution_id is not None
        sel = solutions.selection(plate, m.current_solution_id)
        mine = nodes[nodes["movie"] == movie.name]
        assert sorted(mine["node_id"].tolist()) == sorted(sel.node_ids.tolist())
        assert len(mine) == movie.cell_frames
        assert dict(zip(mine["node_id"], mine["track_id"])) == dict(zip(sel.node_ids.tolist(), sel.track_ids.tolist()))
        # the tracks: exactly the drawn lineage (start, end, has parent), and the stored table
        got = tracks[tracks["movie"] == movie.name]
        stored = solutions.solution_tracks(plate, m.current_solution_id)
        assert sorted(got["track_id"]) == stored[:, 0].tolist()
        drawn = sorted((s, e, p > 0) for _, s, e, p in movie.tracks.tolist())
        assert sorted(zip(got["start_t"], got["end_t"], got["parent_track_id"].notna())) == drawn
    # B01: every cell of the family rooted at its first track carries that track as lineage
    b01 = nodes[nodes["movie"] == "B01"]
    family = b01[b01["lineage_id"] == b01.loc[b01["t"] == 0, "lineage_id"].min()]
    assert len(family) == sum(e - s + 1 for k, s, e, _ in MOVIES[2].tracks.tolist() if k <= 5)


def test_one_schema_per_table_and_pyarrow_filters_by_movie(exported: Path) -> None:
    for name in TABLES:
        files = sorted((exported / name).glob("movie=*/part-0.parquet"))
        assert [f.parent.name for f in files] == ["movie=A01", "movie=A02", "movie=B01"]
        assert {str(ds.dataset(f).schema) for f in files} == {str(SCHEMAS[name])}
    edges = ds.dataset(exported / "edges", partitioning="hive")
    only = edges.to_table(filter=ds.field("movie") == "B01").to_pandas()
    assert set(only["movie"].astype(str)) == {"B01"}
    assert (
        len(only) == MOVIES[2].cell_frames - len(MOVIES[2].tracks) + 4
    )  # links: cells - tracks + divisions' 2nd daughters
    assert only["probability"].between(0, 1).all()


def test_probabilities_are_every_candidate_of_the_latest_run(plate: Store, exported: Path) -> None:
    probs = pd.read_parquet(exported / "probabilities")
    edges = pd.read_parquet(exported / "edges")
    nodes = pd.read_parquet(exported / "nodes")
    for movie in MOVIES:
        (run,) = rows(
            plate,
            "SELECT MAX(r.id) FROM run r JOIN movie m ON m.id = r.movie_id "
            "WHERE m.name = :m AND r.kind = 'uncertainty'",
            m=movie.name,
        )[0]
        n_links = rows(plate, "SELECT COUNT(*) FROM edge_probability WHERE run_id = :r", r=run)[0][0]
        n_cells = rows(plate, "SELECT COUNT(*) FROM node_probability WHERE run_id = :r", r=run)[0][0]
        mine = probs[probs["movie"] == movie.name]
        assert (mine["kind"] == "link").sum() == n_links > 0
        assert (mine["kind"] == "cell").sum() == n_cells == movie.cell_frames
        assert set(mine["run_id"]) == {run}
        links = mine[mine["kind"] == "link"].set_index("edge_id")
        sel = edges[edges["movie"] == movie.name]
        assert np.allclose(links.loc[sel["edge_id"], "p"].to_numpy(), sel["probability"].to_numpy())
        assert (links.loc[sel["edge_id"], "node_id"].to_numpy() == sel["target_id"].to_numpy()).all()
        cells = mine[mine["kind"] == "cell"].set_index("node_id")
        mn = nodes[nodes["movie"] == movie.name]
        assert np.allclose(cells.loc[mn["node_id"], "p"].to_numpy(), mn["probability"].to_numpy())
        assert (cells.loc[mn["node_id"], "t"].to_numpy() == mn["t"].to_numpy()).all()


def test_movies_table_has_the_conditions(exported: Path) -> None:
    movies = pd.read_parquet(exported / "movies.parquet")
    assert movies["movie"].tolist() == ["A01", "A02", "B01"]
    assert movies["drug"].tolist() == ["DMSO", "DMSO", "taxol"]
    assert movies["dose_um"].tolist() == [0.0, 0.0, 1.5]
    assert movies["well"].tolist() == ["A01", "A02", "B01"]
    assert movies["time_interval"].tolist() == [TIME_INTERVAL[m] for m in ("A01", "A02", "B01")]
    assert movies["n_frames"].tolist() == [12, 12, 12]
    assert movies["probability_run"].notna().all()
    # joined to a table by movie, as an analysis would
    tracks = pd.read_parquet(exported / "tracks").assign(movie=lambda d: d["movie"].astype(str))
    per_drug = tracks.merge(movies, on="movie").groupby("drug").size().to_dict()
    assert per_drug == {"DMSO": 8, "taxol": 7}


def test_duckdb_reads_the_dataset(exported: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(
        f"SELECT movie, COUNT(*) FROM read_parquet('{exported}/nodes/*/*.parquet', hive_partitioning = true) "
        "GROUP BY movie ORDER BY movie"
    ).fetchall()
    assert n == [(m.name, m.cell_frames) for m in MOVIES]


def test_polars_reads_the_dataset(exported: Path) -> None:
    pl = pytest.importorskip("polars")
    df = pl.read_parquet(f"{exported}/tracks/**/*.parquet", hive_partitioning=True)
    assert df.height == sum(len(m.tracks) for m in MOVIES)


def test_refuses_a_folder_that_is_not_empty_and_overwrites_on_request(plate: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty.*--overwrite"):
        export_parquet(plate, out, experiment=EXPERIMENT)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    code, _, err = trackdb("export-parquet", str(out), "--movie", "A01", "--db", url(plate))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert "not empty" in err
    # one movie, then the plate over it, then one movie again: no stale partition stays
    code, outp, err = trackdb("export-parquet", str(out), "--movie", "A01", "--overwrite", "--db", url(plate))
    assert code == 0, err
    assert "1 movies" in outp
    assert sorted(pd.read_parquet(out / "nodes")["movie"].astype(str).unique()) == ["A01"]
    code, _, err = trackdb("export-parquet", str(out), "--experiment", EXPERIMENT, "--overwrite", "--db", url(plate))
    assert code == 0, err
    assert sorted(pd.read_parquet(out / "tracks")["movie"].astype(str).unique()) == ["A01", "A02", "B01"]
    export_parquet(plate, out, movie="B01", overwrite=True)
    assert [p.name for p in (out / "edges").iterdir()] == ["movie=B01"]
    assert (out / "notes.txt").read_text() == "mine"  # not the export's: left alone
    assert not [p for p in out.iterdir() if p.name.startswith(".trackdb-export-")]


def test_unknown_experiment_or_movie_is_one_line(plate: Store, tmp_path: Path) -> None:
    before = snapshot(plate)
    for args, expected in (
        (("--experiment", "plate-9"), "no experiment 'plate-9'"),
        (("--movie", "Z99"), "no movie 'Z99'"),
        ((), "one of them"),
        (("--movie", "A01", "--experiment", EXPERIMENT), "one of them"),
    ):
        code, _, err = trackdb("export-parquet", str(tmp_path / "new"), *args, "--db", url(plate))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("error: ")
        assert expected in err
    code, _, err = trackdb("export-geff", str(tmp_path / "new"), "--experiment", "plate-9", "--db", url(plate))
    assert code == 2
    assert "no experiment 'plate-9'" in err
    assert not (tmp_path / "new").exists()
    assert snapshot(plate) == before


def test_a_movie_without_solution_is_left_out_and_named(plate: Store, tmp_path: Path) -> None:
    with plate.begin() as c:
        plate.add_movie(c, "C01", (64, 96), 12, experiment=EXPERIMENT)
    try:
        code, outp, err = trackdb("export-parquet", str(tmp_path / "o"), "--experiment", EXPERIMENT, "--db", url(plate))
        assert code == 0, err
        assert "movie 'C01' left out (no solution yet)" in err
        assert pd.read_parquet(tmp_path / "o" / "movies.parquet")["movie"].tolist() == ["A01", "A02", "B01"]
        with pytest.raises(NotFoundError, match="'C01' has no solution yet"):
            export_parquet(plate, tmp_path / "p", movie="C01")
    finally:
        with plate.begin() as c:
            c.execute(sa.text("DELETE FROM movie WHERE name = 'C01'"))


def test_geff_per_movie_of_the_experiment(plate: Store, tmp_path: Path) -> None:
    out = tmp_path / "geff"
    code, outp, err = trackdb("export-geff", str(out), "--experiment", EXPERIMENT, "--db", url(plate))
    assert code == 0, err
    assert "wrote 3 GEFF stores" in outp
    for movie in MOVIES:
        graph, meta = geff.read(str(out / f"{movie.name}.geff"))
        assert graph.number_of_nodes() == movie.cell_frames
        assert meta.extra["trackdb"]["movie"] == movie.name
    code, _, err = trackdb("export-geff", str(out), "--experiment", EXPERIMENT, "--db", url(plate))
    assert code == 2
    assert "not empty" in err
    code, _, err = trackdb("export-geff", str(out), "--experiment", EXPERIMENT, "--overwrite", "--db", url(plate))
    assert code == 0, err
    code, _, err = trackdb("export-geff", str(out), "--experiment", EXPERIMENT, "--candidates", "--db", url(plate))
    assert code == 2
    assert "current solution" in err


def test_a_failed_export_leaves_the_folder_as_it_was(
    plate: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trackdb.io.parquet as parquet

    out = tmp_path / "out"
    export_parquet(plate, out, movie="A01")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    real = parquet._write_movie

    def fail_on_b01(store: Store, movie: Movie, staging: Path) -> tuple[int, int | None, dict[str, int]]:
        if movie.name == "B01":
            raise OSError("disk full")
        return real(store, movie, staging)

    monkeypatch.setattr(parquet, "_write_movie", fail_on_b01)
    with pytest.raises(OSError, match="disk full"):
        export_parquet(plate, out, experiment=EXPERIMENT, overwrite=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_a_3d_movie_fills_the_z_columns(tmp_path: Path, db_url: str) -> None:
    from synthetic.ctc_io import write_ctc
    from synthetic.movies import MovieSpec, generate
    from synthetic.simulate import Dynamics
    from trackdb.io.import_ctc import import_ctc

    movie = generate(MovieSpec(Dynamics(n_frames=4, n_cells=3, diameter=8.0, seed=3), (10, 40, 40)))
    store = Store(db_url, create=True)
    try:
        import_ctc(store, write_ctc(movie, tmp_path / "stack", raw=False), "01", "S01", experiment="stacks")
        res = export_parquet(store, tmp_path / "out", experiment="stacks")
        nodes = pd.read_parquet(tmp_path / "out" / "nodes")
        assert res.rows["nodes"] == len(nodes) == int((movie.tracks[:, 2] - movie.tracks[:, 1] + 1).sum())
        assert nodes["z"].notna().all()
        assert (nodes["bbox_z1"] > nodes["bbox_z0"]).all()
        assert nodes["probability"].isna().all()  # no uncertainty run: null, same schema
        assert res.rows["probabilities"] == 0
        movies = pd.read_parquet(tmp_path / "out" / "movies.parquet")
        assert movies[["ndim", "size_z"]].values.tolist() == [[3, 10]]
    finally:
        store.close()


def test_a_newer_uncertainty_run_of_another_solution_is_not_exported(plate: Store, tmp_path: Path) -> None:
    """The probabilities describe the exported solution (as `trackdb uncertain` and the plate
    queries pick them), not whatever uncertainty run is newest."""
    movie = plate.movie("B01")
    before = frames.graph_frames(plate, "B01")
    assert before.edge_probability_run is not None
    with plate.begin() as c:
        params = c.execute(
            sa.select(schema.run.c.params).where(schema.run.c.id == before.edge_probability_run)
        ).scalar_one()
        fake = c.execute(
            schema.run.insert()
            .values(movie_id=movie.id, kind="uncertainty", status="succeeded", params={**params, "solution_id": 10**6})
            .returning(schema.run.c.id)
        ).scalar_one()
    try:
        after = frames.graph_frames(plate, "B01")
        assert after.edge_probability_run == after.node_probability_run == before.edge_probability_run != fake
        assert np.allclose(after.edges["probability"], before.edges["probability"])
        res = export_parquet(plate, tmp_path / "out", movie="B01")
        assert res.movies == ["B01"]
        probs = pd.read_parquet(tmp_path / "out" / "probabilities")
        assert set(probs["run_id"]) == {before.edge_probability_run}
    finally:
        with plate.begin() as c:
            c.execute(schema.run.delete().where(schema.run.c.id == fake))
