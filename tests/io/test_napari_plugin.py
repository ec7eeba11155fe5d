"""The napari plugin: the reader's layer data (plain, without napari), the same through npe2 and
napari's ViewerModel (no window, no Qt), and the labels writer turning painted cells into edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trackdb.errors import ConflictError
from trackdb.io import ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.io.napari_reader import get_reader, movie_layers, split_target
from trackdb.io.render import render_labels
from trackdb.review.napari_writer import label_changes, write_edits
from trackdb.stages.edits import list_edits
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty
from trackdb.store import Store
from trackdb.store.solutions import selection, solution_tracks

from ..helpers import snapshot

MOVIE = "det"


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    run_uncertainty(store, MOVIE, "sm")
    return store


@pytest.fixture
def sqlite_store(tmp_path: Path, synthetic_ctc: Path) -> Path:
    """A solved store file napari can be pointed at."""
    path = tmp_path / "movie.sqlite"
    with Store(f"sqlite:///{path}", create=True) as store:
        import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
        run_link(store, MOVIE, max_distance=30, k=5, dt=3)
        run_solve(store, MOVIE, method="joint", time_limit=60)
        run_uncertainty(store, MOVIE, "sm")
    return path


def test_layer_data(solved: Store, synthetic_ctc: Path) -> None:
    layers = movie_layers(solved, MOVIE, "sqlite:///x")
    assert [kind for _, _, kind in layers] == ["image", "labels", "tracks"]
    (image, image_kw, _), (labels, labels_kw, _), (tracks, tracks_kw, _) = layers
    raw = ctc.read_stack(ctc.frame_files(synthetic_ctc / "01", "t"), labels=False)
    np.testing.assert_array_equal(np.asarray(image.compute()), raw)
    movie = solved.movie(MOVIE)
    sid = movie.current_solution_id
    assert sid is not None
    np.testing.assert_array_equal(labels, render_labels(solved, movie, sid))
    assert labels.dtype == np.uint8  # 5 tracks fit
    assert labels_kw["metadata"]["trackdb"] == {
        "url": "sqlite:///x",
        "movie": MOVIE,
        "movie_id": movie.id,
        "solution_id": sid,
    }
    assert image_kw["scale"] == labels_kw["scale"] == (1.0, 1.0, 1.0)
    # tracks: one vertex per cell, sorted by track then frame, at the cells' centres
    assert tracks.shape == (len(selection(solved, sid).node_ids), 4)
    table = solution_tracks(solved, sid)
    assert sorted(set(tracks[:, 0].astype(int).tolist())) == sorted(table[:, 0].tolist())
    parents = {int(k): [int(p)] for k, _, _, p in table.tolist() if p}
    assert tracks_kw["graph"] == parents
    props = tracks_kw["properties"]
    assert set(props) == {"node_id", "p_cell", "p_link", "confidence"}
    assert all(len(v) == len(tracks) for v in props.values())
    starts = np.r_[True, tracks[1:, 0] != tracks[:-1, 0]]
    assert np.isnan(props["p_link"][starts & ~np.isin(tracks[:, 0], list(parents))]).all()
    inner = props["p_link"][~starts]
    assert np.all((inner >= 0) & (inner <= 1))
    assert np.all((props["p_cell"] >= 0) & (props["p_cell"] <= 1))
    for (k, t, y, x), node in zip(tracks.tolist(), props["node_id"].tolist()):
        ys, xs = np.nonzero(labels[int(t)] == int(k))
        assert abs(ys.mean() - y) < 0.5
        assert abs(xs.mean() - x) < 0.5
        assert node > 0


def test_reader_hook_recognises_stores_only(sqlite_store: Path, tmp_path: Path) -> None:
    assert get_reader(str(sqlite_store)) is not None
    assert get_reader(f"{sqlite_store}#{MOVIE}") is not None
    assert get_reader(f"{sqlite_store}#nope") is None
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all")
    assert get_reader(str(other)) is None
    assert get_reader(str(tmp_path / "image.tif")) is None
    assert split_target("postgresql://u:pw@h/db#m") == ("postgresql+psycopg://u:pw@h/db", "m")


def test_napari_opens_a_store_without_a_window(sqlite_store: Path) -> None:
    pytest.importorskip("napari", reason="napari is in the napari extra")
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()  # napari's start-up does this; a bare ViewerModel does not

    viewer = ViewerModel()
    layers = viewer.open(str(sqlite_store), plugin="trackdb")  # napari opens files: every movie of the store
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels", "Tracks"]
    image, labels, tracks = layers
    assert image.data.shape == labels.data.shape == (10, 64, 80)
    assert set(tracks.properties) >= {"node_id", "p_cell", "p_link", "confidence"}
    assert tracks.graph  # the division and the gap


def test_npe2_reads_and_writes(sqlite_store: Path) -> None:
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()  # napari does this at start-up
    [image, labels, tracks] = npe2.read([f"{sqlite_store}#{MOVIE}"], stack=False, plugin_name="trackdb")
    data, attrs, kind = labels
    assert kind == "labels"
    edited = np.array(data)
    edited[6][edited[6] == edited[6].max()] = 0  # erase one cell of frame 6
    npe2.write(str(sqlite_store), [(edited, attrs, "labels")], plugin_name="trackdb")
    with Store(f"sqlite:///{sqlite_store}") as store:
        log = list_edits(store, MOVIE)
        assert log["kind"].tolist() == ["delete-cell"]
        assert log["state"].tolist() == ["applied"]
        movie = store.movie(MOVIE)
        assert movie.current_solution_id != attrs["metadata"]["trackdb"]["solution_id"]
        np.testing.assert_array_equal(render_labels(store, movie, store.solution_id(movie))[6] > 0, edited[6] > 0)


def test_label_changes() -> None:
    before = np.zeros((2, 6, 6), np.uint8)
    before[0, :2, :2] = 1
    before[1, :2, :2] = 1
    before[1, 4:, 4:] = 2
    after = before.copy()
    after[1, 4:, 4:] = 0  # 2 gone
    after[1, 0, 3] = 1  # 1 grows
    after[0, 3:5, 0:2] = 7  # a new cell
    got = {(c.t, c.label): None if c.mask is None else int(c.mask.sum()) for c in label_changes(before, after)}
    assert got == {(0, 7): 4, (1, 1): 5, (1, 2): None}


def test_painted_cells_become_edits(solved: Store) -> None:
    movie = solved.movie(MOVIE)
    sid = movie.current_solution_id
    assert sid is not None
    labels = render_labels(solved, movie, sid)
    edited = labels.copy()
    edited[8, 2:8, 2:8] = 99  # a cell nobody detected
    gone = int(np.unique(labels[4][labels[4] > 0])[0])
    edited[4][edited[4] == gone] = 0
    made = write_edits(solved, MOVIE, sid, edited, "painter")
    log = list_edits(solved, MOVIE).set_index("edit_id").loc[made]
    assert sorted(log["kind"]) == ["add-cell", "delete-cell"]
    assert set(log["author"]) == {"painter"}
    # painted on a solution that is no longer current: refused, nothing written
    from trackdb.stages.resolve import resolve

    resolve(solved, MOVIE)
    before = snapshot(solved)
    with pytest.raises(ConflictError):
        write_edits(solved, MOVIE, sid, edited, "painter")
    assert snapshot(solved) == before
