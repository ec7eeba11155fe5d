"""predict_movie: Zarr layout, resumability, and clear errors with nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr
from scipy import ndimage

from inference.model import BranchedERFNet
from inference.model_io import load_model, model_config, save_model
from inference.pred_store import child_array, child_group, open_pred
from inference.predict import predict_movie


def make_model_dir(path: Path, width: float = 0.125) -> Path:
    torch.manual_seed(0)
    model = BranchedERFNet(2, 1, width)
    for mod in model.modules():
        if isinstance(mod, torch.nn.ConvTranspose2d) and mod.kernel_size == (2, 2):
            torch.nn.init.normal_(mod.weight, std=0.1)
    cfg = model_config(model, pixel_scale=1 / 1023, normalise_percentiles=[1.0, 99.8], min_object_size=5)
    return save_model(path, model, cfg, {"note": "test"}, "test")


def movie(T: int = 4, shape: tuple[int, int] = (40, 56)) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.stack([ndimage.gaussian_filter(rng.random(shape), 2) for _ in range(T)]).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model"))


def pred(store: Path, name: str) -> zarr.Array[Any]:
    """The array ``pred/<name>`` of a prediction store, read-only."""
    return child_array(open_pred(store), name)


def mark_undone(store: Path, t: int) -> None:
    """Clear frame ``t``'s completion marker, as an interrupted run leaves it."""
    child_array(child_group(zarr.open_group(str(store), mode="a"), "pred"), "done")[t] = False


def _chunk_files(store: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p): (p.stat().st_mtime_ns, p.read_bytes())
        for p in (store / "pred").rglob("*")
        if p.is_file() and "zarr.json" not in p.name
    }


def test_layout_and_resume(model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "movie.zarr"
    frames = movie()
    res = predict_movie(frames, store, model_dir, tile=32, overlap=8, progress=False)
    assert res["frames_written"] == 4
    assert res["frames_skipped"] == 0
    attrs = open_pred(store).attrs
    assert pred(store, "seediness").shape == (4, 40, 56)
    assert pred(store, "seediness").dtype == np.float16
    assert pred(store, "offsets").shape == (4, 2, 40, 56)
    assert pred(store, "sigma").shape == (4, 2, 40, 56)
    assert pred(store, "track_offsets").shape == (4, 2, 40, 56)
    assert pred(store, "embedding").shape[:2] == (4, 2)
    assert pred(store, "offsets").chunks == (1, 2, 40, 56)
    assert bool(np.all(pred(store, "done")[:]))
    assert np.all(np.asarray(pred(store, "track_offsets")[0]) == 0)
    assert np.any(np.asarray(pred(store, "track_offsets")[1]) != 0)
    assert attrs["axis_order"] == "tyx"
    assert isinstance(attrs["model_id"], str)
    assert len(attrs["model_id"]) == 16
    seed = np.asarray(pred(store, "seediness")[:])
    assert np.all((seed >= 0) & (seed <= 1))
    before = _chunk_files(store)
    again = predict_movie(frames, store, model_dir, tile=32, overlap=8, progress=False)
    assert again["frames_written"] == 0
    assert again["frames_skipped"] == 4
    assert _chunk_files(store) == before  # nothing rewritten
    # an interrupted frame (no completion marker) is redone, finished ones are left alone
    mark_undone(store, 2)
    third = predict_movie(frames, store, model_dir, tile=32, overlap=8, progress=False)
    assert third["frames_written"] == 1
    after = _chunk_files(store)
    untouched = [p for p in before if "/c/0/" in p and p in after]
    assert untouched
    assert all(after[p] == before[p] for p in untouched)


def test_callable_source_and_single_tile_equal_sequence(model_dir: Path, tmp_path: Path) -> None:
    frames = movie(3)
    predict_movie(list(frames), tmp_path / "a.zarr", model_dir, progress=False, embedding=False)
    predict_movie(lambda t: frames[t], tmp_path / "b.zarr", model_dir, n_frames=3, progress=False, embedding=False)
    np.testing.assert_array_equal(
        np.asarray(pred(tmp_path / "a.zarr", "offsets")[:]), np.asarray(pred(tmp_path / "b.zarr", "offsets")[:])
    )
    assert "embedding" not in open_pred(tmp_path / "a.zarr")


def test_bad_frames_raise_and_leave_no_frame_half_written(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        predict_movie([np.zeros((2, 8, 8))], tmp_path / "x.zarr", model_dir, progress=False)
    assert not (tmp_path / "x.zarr" / "pred").exists()
    with pytest.raises(ValueError, match="constant"):
        predict_movie(np.full((2, 16, 16), 7.0), tmp_path / "c.zarr", model_dir, progress=False)
    assert not (tmp_path / "c.zarr" / "pred").exists()
    frames = movie(4)
    frames[2] = 3.0  # constant frame in the middle: frames 0-1 complete, 2-3 absent
    with pytest.raises(ValueError, match="frame 2 is constant"):
        predict_movie(frames, tmp_path / "m.zarr", model_dir, progress=False)
    done = np.asarray(pred(tmp_path / "m.zarr", "done")[:])
    assert done.tolist() == [True, True, False, False]
    ragged = [movie(1)[0], movie(1, (40, 48))[0]]
    with pytest.raises(ValueError, match="shape"):
        predict_movie(ragged, tmp_path / "r.zarr", model_dir, progress=False)


def test_mismatched_store_shape_raises_and_keeps_data(model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    predict_movie(movie(2), store, model_dir, progress=False, embedding=False)
    before = _chunk_files(store)
    with pytest.raises(ValueError, match="shape"):
        predict_movie(movie(2, (48, 56)), store, model_dir, progress=False, embedding=False)
    assert _chunk_files(store) == before


def test_model_folder_errors(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "old"
    bad.mkdir()
    cfg = json.loads((model_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "format_version": 99}))
    (bad / "weights.pt").write_bytes((model_dir / "weights.pt").read_bytes())
    with pytest.raises(ValueError, match="version 99"):
        predict_movie(movie(1), tmp_path / "v.zarr", bad, progress=False)
    (bad / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="weights.pt"):
        load_model(bad)
    with pytest.raises(FileNotFoundError):
        predict_movie(movie(1), tmp_path / "w.zarr", tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "v.zarr").exists()
    assert not (tmp_path / "w.zarr").exists()


def test_store_feeds_candidates_and_embedtrack_solve(model_dir: Path, tmp_path: Path) -> None:
    from inference.candidates_from_pred import candidates_from_zarr
    from inference.embedtrack_link import embedtrack_solve

    store = tmp_path / "e.zarr"
    predict_movie(movie(3), store, model_dir, progress=False)
    cands, labels = candidates_from_zarr(str(store), 1, min_object_size=1, fg_thresh=0.0)
    assert labels.shape == (40, 56)
    assert len(cands) == int(labels.max())
    assert cands.prev_centroid is not None
    assert cands.prev_centroid.shape == (len(cands), 2)
    assert cands.embedding is not None
    assert cands.embedding.shape == (len(cands), 2)
    tracks, table = embedtrack_solve(str(store), min_object_size=1, fg_thresh=0.0)
    assert tracks.shape == (3, 40, 56)
    assert table.shape[1] == 4
    assert set(np.unique(tracks)) - {0} == set(table[:, 0].tolist())
    mark_undone(store, 2)
    with pytest.raises(ValueError, match="frames \\[2\\]"):
        embedtrack_solve(str(store))


def test_3d_movie_with_tta(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BranchedERFNet(3, 1, 0.125)
    cfg = model_config(model, pixel_scale=1 / 255, normalise_percentiles=[1.0, 99.8])
    mdir = save_model(tmp_path / "m3", model, cfg)
    vol = np.random.default_rng(0).random((2, 8, 16, 24)).astype(np.float32)
    predict_movie(vol, tmp_path / "v.zarr", mdir, tta=True, tile=16, overlap=8, progress=False)
    assert pred(tmp_path / "v.zarr", "offsets").shape == (2, 3, 8, 16, 24)
    assert open_pred(tmp_path / "v.zarr").attrs["axis_order"] == "tzyx"
    assert bool(np.all(pred(tmp_path / "v.zarr", "done")[:]))
