"""CTC import → export → import is exact, on both engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
import tifffile

from trackdb.io import ctc
from trackdb.io.export_ctc import export_ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.store import schema

from ..conftest import SYNTH_TRACKS


def _count(store, table) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_import_creates_nodes_links_and_gt_solution(store, synthetic_ctc: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    masks = ctc.read_stack(ctc.frame_files(synthetic_ctc / "01_GT" / "TRA", "man_track"), labels=True)
    n_cells = sum(len(np.unique(m)) - 1 for m in masks)
    assert res.n_nodes == n_cells == _count(store, schema.node)
    # links: within-track steps plus one per child (the 3 -> 4 link spans a gap of 3 frames)
    within = int((SYNTH_TRACKS[:, 2] - SYNTH_TRACKS[:, 1]).sum())
    assert res.n_edges == within + int((SYNTH_TRACKS[:, 3] > 0).sum())
    with store.engine.connect() as c:
        dts = c.execute(sa.select(schema.edge.c.dt).order_by(schema.edge.c.dt.desc())).scalars().all()
        labels = set(c.execute(sa.select(schema.node.c.label)).scalars().all())
    assert dts[0] == 3
    assert labels == {1, 2, 3, 4, 5}
    movie = store.movie("synth")
    assert movie.current_solution_id == res.solution_id
    assert movie.shape == (64, 80)
    assert movie.n_frames == 10


def test_roundtrip_is_exact(store, synthetic_ctc: Path, tmp_path: Path) -> None:
    import_ctc(store, synthetic_ctc, "01", "synth")
    out = export_ctc(store, tmp_path / "res", "synth")
    gt = synthetic_ctc / "01_GT" / "TRA"
    for t in range(10):
        a = tifffile.imread(out / f"mask{t:03d}.tif")
        b = tifffile.imread(gt / f"man_track{t:03d}.tif")
        assert np.array_equal(a, b), f"frame {t} differs"
    assert np.array_equal(ctc.read_man_track(out / "res_track.txt"), SYNTH_TRACKS)
    # re-import the export as a new movie: same lineage, same masks
    again = tmp_path / "again"
    (again / "01_GT").mkdir(parents=True)
    (out / "res_track.txt").rename(out / "man_track.txt")
    for t in range(10):
        (out / f"mask{t:03d}.tif").rename(out / f"man_track{t:03d}.tif")
    out.rename(again / "01_GT" / "TRA")
    import_ctc(store, again, "01", "again")
    out2 = export_ctc(store, tmp_path / "res2", "again")
    assert np.array_equal(ctc.read_man_track(out2 / "res_track.txt"), SYNTH_TRACKS)
    for t in range(10):
        assert np.array_equal(tifffile.imread(out2 / f"mask{t:03d}.tif"), tifffile.imread(gt / f"man_track{t:03d}.tif"))


def test_masks_only_and_no_gt(store, synthetic_ctc: Path) -> None:
    r1 = import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    assert r1.n_edges == 0
    assert r1.solution_id is None
    assert r1.n_nodes > 0
    r2 = import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    assert r2.n_nodes == 0
    assert store.movie("raw").uri is not None
    with store.engine.connect() as c:
        src = set(c.execute(sa.select(schema.node.c.source).where(schema.node.c.movie_id == r1.movie_id)).scalars())
    assert src == {"labels"}


def test_bacteria_roundtrip(store, bacteria: Path, tmp_path: Path) -> None:
    res = import_ctc(store, bacteria, "01", "bact")
    tracks = ctc.read_man_track(bacteria / "01_GT" / "TRA" / "man_track.txt")
    assert len(tracks) == 714
    assert int((tracks[:, 3] > 0).sum()) == 712
    out = export_ctc(store, tmp_path / "res", "bact")
    assert np.array_equal(ctc.read_man_track(out / "res_track.txt"), tracks)
    for t in (0, 26, 52):
        assert np.array_equal(
            tifffile.imread(out / f"mask{t:03d}.tif"),
            tifffile.imread(bacteria / "01_GT" / "TRA" / f"man_track{t:03d}.tif"),
        )
    assert res.n_frames == 53


def test_lineage_queries_match_the_lineage(store, synthetic_ctc: Path) -> None:
    from trackdb.store import queries

    import_ctc(store, synthetic_ctc, "01", "synth")
    cells = {
        (t, track): node
        for frame in (9, 0)
        for t, track, node in queries.cells(store, "synth", frame)[["t", "track_id", "node_id"]].to_numpy().tolist()
    }
    anc = queries.ancestors(store, cells[(9, 4)])
    assert anc.track_id.tolist() == [4, 4, 4, 3, 3, 1, 1, 1]
    assert anc.depth.tolist() == list(range(8))
    des = queries.descendants(store, cells[(0, 1)])
    # track 1 (0-2), daughters 2 (3-7) and 3 (3-4), grand-daughter 4 (7-9)
    assert len(des) == 3 + 5 + 2 + 3
    assert set(des.track_id) == {1, 2, 3, 4}
    assert queries.divisions(store, "synth").shape[0] == 1
    tree = queries.lineage_tree(store, "synth", 4)
    assert tree.track_id.tolist() == [1, 2, 3, 4]
    assert tree.generation.tolist() == [0, 1, 1, 2]
    box = queries.cells(store, "synth", 9, box=(40, 0, 64, 80))
    assert box.track_id.tolist() == [5]
    tr = queries.tracks(store, "synth")
    assert tr.set_index("track_id").n_children.to_dict() == {1: 2, 2: 0, 3: 1, 4: 0, 5: 0}
