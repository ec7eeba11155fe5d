"""A tiny end-to-end training run on a synthetic CTC movie of two touching cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from inference.cluster import cluster_frame
from inference.model_io import load_model
from inference.predict import predict_movie
from inference.train import dihedral_array, dihedral_points, frame_medoids, train


def write_synthetic_ctc(root: Path, T: int = 6, size: int = 64) -> None:
    """Two touching rods (bright, a dark seam between them) drifting right; CTC layout."""
    (root / "01").mkdir(parents=True)
    (root / "01_GT" / "TRA").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(T):
        m = np.zeros((size, size), np.uint16)
        x0 = 14 + t
        m[22:42, x0 : x0 + 14] = 1
        m[22:42, x0 + 14 : x0 + 28] = 2
        img = np.where(m > 0, 200.0, 40.0)
        img[:, x0 + 13 : x0 + 15][m[:, x0 + 13 : x0 + 15] > 0] = 90.0  # the seam
        img += rng.normal(0, 6, img.shape)
        tifffile.imwrite(root / "01" / f"t{t:03d}.tif", np.clip(img, 0, 255).astype(np.uint8))
        tifffile.imwrite(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", m)
    (root / "01_GT" / "TRA" / "man_track.txt").write_text(f"1 0 {T - 1} 0\n2 0 {T - 1} 0\n")


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
    assert m[int(c[0]), int(c[1])] == 3 and abs(c[1] - 9.5) <= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tiny_training_separates_touching_objects(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    write_synthetic_ctc(tmp_path / "data")
    metrics = train(
        tmp_path / "data",
        "01",
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
    )
    assert (tmp_path / "model" / "checkpoint.pt").is_file()
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    # GT-centred IoU > 0.5 is impossible if a cell's kernel also swallows its touching neighbour
    # (equal halves: IoU <= 0.5), so this is a separation criterion, not only a foreground one.
    assert cfg["format_version"] == 1 and metrics["best_val_iou"] > 0.65
    load_model(tmp_path / "model")
    frames = [tifffile.imread(tmp_path / "data" / "01" / f"t{t:03d}.tif") for t in range(6)]
    predict_movie(frames, tmp_path / "m.zarr", tmp_path / "model", progress=False)
    import zarr

    g = zarr.open_group(str(tmp_path / "m.zarr"))["pred"]
    gt = tifffile.imread(tmp_path / "data" / "01_GT" / "TRA" / "man_track005.tif")
    labels = cluster_frame(g["seediness"][5], g["offsets"][5], g["sigma"][5], min_object_size=100)
    # each touching cell is matched by its own cluster (a short run: clusters are still ragged)
    best = []
    for k in (1, 2):
        ious = [
            ((labels == j) & (gt == k)).sum() / ((labels == j) | (gt == k)).sum()
            for j in range(1, int(labels.max()) + 1)
        ]
        best.append((max(ious), int(np.argmax(ious))) if ious else (0.0, -1))
    assert best[0][1] != best[1][1] and min(b[0] for b in best) > 0.35, (labels.max(), best)


def test_init_from_starts_at_a_model_folder(tmp_path: Path) -> None:
    """A fine-tune starts from the folder's weights (lr 0 keeps them) and counts its steps on."""
    torch.set_num_threads(1)
    write_synthetic_ctc(tmp_path / "data")
    kw = dict(
        width=0.25, crop=48, batch=1, val_pairs=1, val_every=1000, seed=0, num_threads=1, progress=False, command="test"
    )
    train(tmp_path / "data", "01", range(0, 6), tmp_path / "a", steps=2, lr=5e-3, **kw)
    train(tmp_path / "data", "01", range(0, 6), tmp_path / "b", steps=1, lr=0.0, init_from=tmp_path / "a", **kw)
    wa = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    learned = [k for k in wa if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in learned)  # BN stats move
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)  # ... so the step did run
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["init_steps"] == 2 and cfg["trained_steps"] == 3
    with pytest.raises(ValueError, match="width 0.25"):
        train(
            tmp_path / "data",
            "01",
            range(0, 6),
            tmp_path / "c",
            steps=1,
            lr=0.0,
            init_from=tmp_path / "a",
            **{**kw, "width": 0.5},
        )
    assert not (tmp_path / "c").exists()  # refused before the output folder is made
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="missing weights.pt"):
        train(tmp_path / "data", "01", range(0, 6), tmp_path / "d", steps=1, lr=0.0, init_from=tmp_path / "e", **kw)
