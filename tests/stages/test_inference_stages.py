"""train → predict → candidates from predictions → link → solve (joint and embedtrack) via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import zarr
from click.testing import CliRunner

from trackdb.cli import cli
from trackdb.store import Store, schema

from ..conftest import write_synthetic_ctc


def run(*args: str) -> str:
    result = CliRunner(mix_stderr=False).invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.stderr, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained for a few steps (wiring, not accuracy) on the synthetic movie."""
    root = write_synthetic_ctc(tmp_path_factory.mktemp("data") / "synth")
    model = tmp_path_factory.mktemp("model") / "m"
    out = run(
        "train",
        str(root),
        "--frames",
        "0:6",
        "--out",
        str(model),
        "--steps",
        "4",
        "--width",
        "0.25",
        "--crop",
        "32",
        "--batch",
        "2",
        "--threads",
        "1",
    )
    assert "parameters" in json.loads(out)
    return root, model


def test_prediction_stages(db_url: str, tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    root, model = tiny_model
    db = ["--db", db_url]
    run("init", *db)
    run("import-ctc", str(root), "--movie", "m", "--no-gt", *db)
    zpath = tmp_path / "m.zarr"
    first = json.loads(
        run(
            "predict",
            "--movie",
            "m",
            "--model",
            str(model),
            "--zarr",
            str(zpath),
            "--tile",
            "64",
            "--overlap",
            "16",
            *db,
        )
    )
    assert first["frames_written"] == 10
    again = json.loads(run("predict", "--movie", "m", "--model", str(model), *db))  # resumes: nothing to do
    assert again["frames_written"] == 0
    assert again["frames_skipped"] == 10
    assert zarr.open_array(str(zpath / "pred" / "seediness"), mode="r").shape == (10, 64, 80)
    assert zarr.open_array(str(zpath / "pred" / "track_offsets"), mode="r").shape == (10, 2, 64, 80)
    store = Store(db_url)
    assert store.movie("m").zarr_uri == str(zpath.resolve())
    # an untrained net may find nothing; the stage must then fail cleanly, else store features
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["candidates-from-predictions", "--movie", "m", "--fg-thresh", "0.3", "--min-size", "5", *db]
    )
    with store.engine.connect() as c:
        status = c.execute(sa.select(schema.run.c.status).where(schema.run.c.kind == "candidates")).scalar_one()
        n = c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one()
        with_features = c.execute(
            sa.select(sa.func.count())
            .select_from(schema.node)
            .where(schema.node.c.embedding_dim.is_not(None), schema.node.c.prev_y.is_not(None))
        ).scalar_one()
    if result.exit_code != 0:
        assert "no cells" in result.stderr
        assert status == "failed"
        assert n == 0
    else:
        assert status == "succeeded"
        assert n > 0
        assert with_features == n
    out = json.loads(run("solve", "--movie", "m", "--method", "embedtrack", *db))
    assert store.movie("m").current_solution_id == out["solution_id"]
    with store.engine.connect() as c:
        name = c.execute(
            sa.select(schema.solution.c.name).where(schema.solution.c.id == out["solution_id"])
        ).scalar_one()
    assert name == "embedtrack"
    store.close()


def test_predict_needs_raw_frames_and_a_model(db_url: str, tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    root, model = tiny_model
    db = ["--db", db_url]
    run("init", *db)
    run("import-ctc", str(root), "--movie", "det", "--masks-only", *db)
    (tmp_path / "empty").mkdir()
    r = CliRunner(mix_stderr=False).invoke(cli, ["predict", "--movie", "det", "--model", str(tmp_path / "empty"), *db])
    assert r.exit_code != 0
    r = CliRunner(mix_stderr=False).invoke(cli, ["solve", "--movie", "det", "--method", "embedtrack", *db])
    assert r.exit_code == 2
    assert "trackdb predict" in r.stderr
    r = CliRunner(mix_stderr=False).invoke(cli, ["train", str(root), "--frames", "5:2", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2
    assert "A < B" in r.stderr
