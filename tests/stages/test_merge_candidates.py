"""Merge hypotheses through the store: an over-split frame is solved as one cell, not a division."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import zarr

from trackdb.stages.link import run_link
from trackdb.stages.predictions import run_candidates_from_predictions
from trackdb.stages.solve import run_solve
from trackdb.store import schema

SHAPE = (30, 50)


def rod_votes(split: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seediness, offsets, sigma of one rod (rows 10–19, columns 5–44); ``split``: its halves
    vote 3 px either side of its centre, so that the clustering cuts it in two."""
    yy, xx = np.indices(SHAPE, dtype=np.float32)
    rod = (yy >= 10) & (yy < 20) & (xx >= 5) & (xx < 45)
    seed = np.where(rod, 0.9, 0.0).astype(np.float32)
    off = np.zeros((2, *SHAPE), np.float32)
    parts = ((rod & (xx < 25), 22.0), (rod & (xx >= 25), 28.0)) if split else ((rod, 24.5),)
    for m, cx in parts:
        off[0][m], off[1][m] = 14.5 - yy[m], cx - xx[m]
    return seed, off, np.full((2, *SHAPE), 1.5, np.float32)


def write_predictions(path: Path, split_frames: set[int], n: int = 5) -> None:
    g = zarr.open_group(str(path), mode="w").create_group("pred")
    arr = {
        name: g.create_array(name, shape=shape, dtype=dtype, fill_value=0)
        for name, shape, dtype in (
            ("seediness", (n, *SHAPE), "float16"),
            ("offsets", (n, 2, *SHAPE), "float16"),
            ("sigma", (n, 2, *SHAPE), "float16"),
            ("track_offsets", (n, 2, *SHAPE), "float16"),
            ("done", (n,), "bool"),
        )
    }
    for t in range(n):
        seed, off, sig = rod_votes(t in split_frames)
        arr["seediness"][t], arr["offsets"][t], arr["sigma"][t] = seed, off, sig
        arr["done"][t] = True


@pytest.mark.parametrize("merges", [True, False])
def test_over_split_frame_is_solved_as_one_cell(store, tmp_path: Path, merges: bool) -> None:
    zpath = tmp_path / "m.zarr"
    write_predictions(zpath, split_frames={2})
    with store.engine.begin() as c:
        store.add_movie(c, "m", SHAPE, 5, zarr_uri=str(zpath))
    run_id = run_candidates_from_predictions(store, "m", min_object_size=5, merges=merges, progress=False)
    n = schema.node.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(n.id, n.t, n.hier_parent_id, n.area).where(n.run_id == run_id)).mappings().all()
    at2 = [r for r in rows if r["t"] == 2]
    if merges:
        parent = [r for r in at2 if r["hier_parent_id"] is None]
        assert len(at2) == 3
        assert len(parent) == 1
        assert parent[0]["area"] == 400
        assert [r["hier_parent_id"] for r in at2 if r["hier_parent_id"] is not None] == [parent[0]["id"]] * 2
    else:
        assert len(at2) == 2
        assert all(r["hier_parent_id"] is None for r in at2)
    run_link(store, "m", max_distance=30, k=4)
    sol = run_solve(store, "m", method="joint")
    sn = schema.solution_node.c
    with store.engine.connect() as c:
        chosen = (
            c.execute(
                sa.select(n.t, n.area)
                .join(schema.solution_node, sn.node_id == n.id)
                .where(sn.solution_id == sol.solution_id)
            )
            .mappings()
            .all()
        )
    per_frame = np.bincount([r["t"] for r in chosen], minlength=5)
    if merges:  # the whole rod in every frame: one track, no division
        assert per_frame.tolist() == [1, 1, 1, 1, 1]
        assert {r["area"] for r in chosen} == {400}
        assert sol.n_tracks == 1
    else:  # without it the halves are all there is: both kept, a false division
        assert per_frame.tolist() == [1, 1, 2, 1, 1]
        assert sol.n_tracks > 1
