"""Results never depend on the working directory: the predictions' model folder is stored
absolute (and found again for Zarrs that stored it relative), so a stage run from another
folder uses the model's own minimum cell size (both engines)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import zarr

from trackdb.errors import InputError
from trackdb.stages.predictions import model_min_size
from trackdb.store import Store, schema

from ..conftest import write_synthetic_ctc
from ..helpers import trackdb

MODEL_MIN_SIZE = 37  # not the default 10, so a silent fallback shows


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a dataset and a tiny model under models/m (min_object_size 37)."""
    root = tmp_path_factory.mktemp("project")
    data = write_synthetic_ctc(root / "data")
    r = trackdb(
        "train",
        str(data),
        "--frames",
        "0:6",
        "--out",
        str(root / "models" / "m"),
        "--steps",
        "2",
        "--width",
        "0.25",
        "--crop",
        "32",
        "--batch",
        "2",
        "--threads",
        "1",
    )
    assert r.returncode == 0, r.stderr
    cfg_path = root / "models" / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["min_object_size"] = MODEL_MIN_SIZE
    cfg_path.write_text(json.dumps(cfg))
    return root


def candidates_min_size(db_url: str) -> int:
    store = Store(db_url)
    try:
        with store.engine.connect() as c:
            params = c.execute(
                sa.select(schema.run.c.params).where(schema.run.c.kind == "candidates").order_by(schema.run.c.id.desc())
            ).scalar_one()
    finally:
        store.close()
    params = json.loads(params) if isinstance(params, str) else params
    return int(params["min_object_size"])


def test_a_stage_run_from_another_folder_uses_the_models_size(
    db_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    shutil.copytree(project, work)
    monkeypatch.chdir(work)  # relative paths, as in the README
    for args in (
        ("init",),
        ("import-ctc", "data", "--movie", "m", "--no-gt"),
        ("predict", "--movie", "m", "--model", "models/m", "--zarr", "out/m.zarr", "--tile", "64", "--overlap", "16"),
    ):
        r = trackdb(*args, db=db_url)
        assert r.returncode == 0, (args, r.stderr)
    attrs = dict(zarr.open_group(str(work / "out" / "m.zarr"), mode="r")["pred"].attrs)
    assert attrs["model_dir"] == str((work / "models" / "m").resolve())
    assert attrs["min_object_size"] == MODEL_MIN_SIZE
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    trackdb("candidates-from-predictions", "--movie", "m", db=db_url)  # an untrained net may find no cell
    assert candidates_min_size(db_url) == MODEL_MIN_SIZE


def test_an_older_zarr_with_a_relative_model_folder(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by an older trackdb: relative model_dir, no min_object_size. Found from the
    Zarr's parent folders (model id checked), never from the working directory."""
    work = tmp_path / "work"
    shutil.copytree(project, work)
    group = zarr.open_group(str(work / "out" / "m.zarr"), mode="w")
    pred = group.create_group("pred")
    from inference.model_io import model_id

    pred.attrs.update({"model_dir": "models/m", "model_id": model_id(work / "models" / "m")})
    monkeypatch.chdir(tmp_path)  # models/m does not exist here
    assert model_min_size(str(work / "out" / "m.zarr")) == MODEL_MIN_SIZE
    pred.attrs.update({"model_id": "0123456789abcdef"})  # another model's predictions
    with pytest.raises(InputError, match="cannot be found from the Zarr group or its parent folders"):
        model_min_size(str(work / "out" / "m.zarr"))
    pred.attrs.update({"model_dir": str(tmp_path / "gone")})
    with pytest.raises(InputError, match="pass --min-size"):
        model_min_size(str(work / "out" / "m.zarr"))
    del pred.attrs["model_dir"]
    assert model_min_size(str(work / "out" / "m.zarr")) == 10  # names no model: the default
