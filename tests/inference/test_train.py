"""A tiny end-to-end training run on a synthetic movie of two touching cells (arrays in memory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.cluster import cluster_frame
from inference.model_io import load_model
from inference.predict import predict_movie
from inference.train import dihedral_array, dihedral_points, frame_medoids, train, training_frames

Movie = tuple[list[np.ndarray], list[np.ndarray], dict[int, int]]


def synthetic_movie(T: int = 6, size: int = 64) -> Movie:
    """Two touching rods (bright, a dark seam between them) drifting right: raw uint8 frames,
    uint16 tracking masks and the lineage (two tracks, no parents)."""
    rng = np.random.default_rng(0)
    images, masks = [], []
    for t in range(T):
        m = np.zeros((size, size), np.uint16)
        x0 = 14 + t
        m[22:42, x0 : x0 + 14] = 1
        m[22:42, x0 + 14 : x0 + 28] = 2
        img = np.where(m > 0, 200.0, 40.0)
        img[:, x0 + 13 : x0 + 15][m[:, x0 + 13 : x0 + 15] > 0] = 90.0  # the seam
        img += rng.normal(0, 6, img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(m)
    return images, masks, {1: 0, 2: 0}


def test_dihedral_points_follow_arrays() -> None:
    a = np.zeros((8, 8), int)
    a[1, 5] = 1
    for k in range(4):
        for f in (False, True):
            got = np.argwhere(dihedral_array(a, k, f))[0]
            np.testing.assert_array_equal(dihedral_points(np.array([[1.0, 5.0]]), k, f, 8)[0], got)


def test_medoid_lies_in_object() -> None:
    m = np.zeros((20, 20), np.int32)
    m[2:5, 2:18] = 3
    c = frame_medoids(m)[3]
    assert m[int(c[0]), int(c[1])] == 3
    assert abs(c[1] - 9.5) <= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tiny_training_separates_touching_objects(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images, masks, parent = synthetic_movie()
    metrics = train(
        images,
        masks,
        parent,
        range(0, 6),
        tmp_path / "model",
        width=0.25,
        crop=48,
        batch=2,
        steps=200,
        lr=5e-3,
        val_pairs=1,
        val_every=1000,
        seed=0,
        time_limit_s=None,
        num_threads=1,
        progress=False,
        command="test",
        source={"dataset": "synthetic", "seq": "01"},
    )
    assert (tmp_path / "model" / "checkpoint.pt").is_file()
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["format_version"] == 1
    assert (cfg["dataset"], cfg["seq"], cfg["frames"]) == ("synthetic", "01", [0, 6])
    assert (tmp_path / "model" / "command.txt").read_text() == "test\n"
    # GT-centred IoU > 0.5 is impossible if a cell's kernel also swallows its touching neighbour
    # (equal halves: IoU <= 0.5), so this is a separation criterion, not only a foreground one.
    assert metrics["best_val_iou"] > 0.65
    load_model(tmp_path / "model")
    predict_movie(images, tmp_path / "m.zarr", tmp_path / "model", progress=False)
    import zarr

    g = zarr.open_group(str(tmp_path / "m.zarr"))["pred"]
    assert isinstance(g, zarr.Group)
    seediness, offsets, sigma = (g[name] for name in ("seediness", "offsets", "sigma"))
    assert isinstance(seediness, zarr.Array)
    assert isinstance(offsets, zarr.Array)
    assert isinstance(sigma, zarr.Array)
    gt = masks[5]
    labels = cluster_frame(np.asarray(seediness[5]), np.asarray(offsets[5]), np.asarray(sigma[5]), min_object_size=100)
    # each touching cell is matched by its own cluster (a short run: clusters are still ragged)
    best = []
    for k in (1, 2):
        ious = [
            ((labels == j) & (gt == k)).sum() / ((labels == j) | (gt == k)).sum()
            for j in range(1, int(labels.max()) + 1)
        ]
        best.append((max(ious), int(np.argmax(ious))) if ious else (0.0, -1))
    assert best[0][1] != best[1][1], (labels.max(), best)
    assert min(b[0] for b in best) > 0.35, (labels.max(), best)


def test_init_from_starts_at_a_model_folder(tmp_path: Path) -> None:
    """A fine-tune starts from the folder's weights (lr 0 keeps them) and counts its steps on."""
    torch.set_num_threads(1)
    movie = synthetic_movie()
    frames = range(0, 6)
    kw: dict[str, Any] = dict(
        width=0.25, crop=48, batch=1, val_pairs=1, val_every=1000, seed=0, num_threads=1, progress=False, command="test"
    )
    train(*movie, frames, tmp_path / "a", steps=2, lr=5e-3, **kw)
    train(*movie, frames, tmp_path / "b", steps=1, lr=0.0, init_from=tmp_path / "a", **kw)
    wa = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    learned = [k for k in wa if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in learned)  # BN stats move ...
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)  # ... so the step did run
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["init_steps"] == 2
    assert cfg["trained_steps"] == 3
    with pytest.raises(ValueError, match="width 0.25"):
        train(*movie, frames, tmp_path / "c", steps=1, lr=0.0, init_from=tmp_path / "a", **{**kw, "width": 0.5})
    assert not (tmp_path / "c").exists()  # refused before the output folder is made
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="missing weights.pt"):
        train(*movie, frames, tmp_path / "d", steps=1, lr=0.0, init_from=tmp_path / "e", **kw)


def test_training_frames_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    images, masks, parent = synthetic_movie(T=4)
    kw: dict[str, Any] = dict(width=0.25, crop=48, steps=1, num_threads=1, progress=False)
    cases: list[tuple[Movie, list[int], str]] = [
        ((images, masks, parent), [0, 1, 3, 4], "consecutive"),
        ((images, masks[:3], parent), [0, 1, 2, 3], "one mask per frame"),
        ((images[:1], masks[:1], parent), [0], "at least 2 frames"),
        ((images[:2] + [images[2][:, :32]] + images[3:], masks, parent), [0, 1, 2, 3], "frame 2: image"),
        ((images[:1] + [np.full_like(images[1], 7)] + images[2:], masks, parent), [5, 6, 7, 8], "frame 6 is constant"),
    ]
    for (imgs, msks, par), frames, message in cases:
        with pytest.raises(ValueError, match=message):
            train(imgs, msks, par, frames, tmp_path / "out", **kw)
        assert not (tmp_path / "out").exists()


def test_training_frames_normalise_images_and_find_medoids() -> None:
    images, masks, parent = synthetic_movie(T=3)
    data = training_frames(images, masks, parent, [10, 11, 12])
    assert data.frames == [10, 11, 12]
    assert data.parent == {1: 0, 2: 0}
    for img in data.images:
        assert img.dtype == np.float32
        lo, hi = np.percentile(img, [1.0, 99.8])
        assert lo == pytest.approx(0.0, abs=1e-6)
        assert hi == pytest.approx(1.0, abs=1e-6)
    assert sorted(data.centres[0]) == [1, 2]
    for lab, centre in data.centres[0].items():
        assert masks[0][int(centre[0]), int(centre[1])] == lab
