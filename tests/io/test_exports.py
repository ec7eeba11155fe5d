"""GEFF, napari, networkx and table exports agree with the store, on both engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geff
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import tifffile
from geff.validate.data import ValidationConfig

from trackdb.errors import NotFoundError, TrackdbError
from trackdb.io.geff import export_geff
from trackdb.io.import_ctc import import_ctc
from trackdb.io.napari import napari_tracks, to_networkx, write_napari_tracks
from trackdb.io.tables import export_tables
from trackdb.store import ingest, runs, schema
from trackdb.store.frames import graph_frames
from trackdb.store.runs import RunKind, UncertaintyParams

from ..conftest import SYNTH_TRACKS


def _db_nodes(store, movie_id: int) -> pd.DataFrame:
    n = schema.node.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(n.id, n.t, n.label, n.z, n.y, n.x, n.area, n.mask).where(n.movie_id == movie_id).order_by(n.id)
        ).all()
    return pd.DataFrame(rows, columns=["node_id", "t", "label", "z", "y", "x", "area", "mask"]).set_index("node_id")


def _lineage_links(store, movie_id: int) -> set[tuple[int, int]]:
    """Node-id links the CTC lineage implies: consecutive frames of a track, parent end -> child start."""
    df = _db_nodes(store, movie_id)
    ids = {(int(t), int(lab)): int(i) for i, t, lab in zip(df.index, df["t"], df["label"], strict=True)}
    links = set()
    for lab, start, end, parent in SYNTH_TRACKS.tolist():
        links |= {(ids[(f, lab)], ids[(f + 1, lab)]) for f in range(start, end)}
        if parent:
            pend = int(SYNTH_TRACKS[SYNTH_TRACKS[:, 0] == parent][0, 2])
            links.add((ids[(pend, parent)], ids[(start, lab)]))
    return links


def _add_candidates_and_probabilities(store, movie_id: int) -> dict[str, Any]:
    """Two spurious candidates and a wrong link, then two uncertainty runs (the later one wins)."""
    nodes = _db_nodes(store, movie_id)
    real = int(nodes[(nodes.t == 4) & (nodes.label == 5)].index[0])
    with store.engine.begin() as c:
        nid = ingest.allocate_ids(c, "node", 2)
        eid = ingest.allocate_ids(c, "edge", 1)
        run = c.execute(sa.select(schema.node.c.run_id).where(schema.node.c.id == real)).scalar_one()
        for k, t in enumerate((5, 6)):
            c.execute(
                schema.node.insert().values(
                    id=nid + k,
                    movie_id=movie_id,
                    run_id=run,
                    t=t,
                    label=100,
                    y=60.0,
                    x=5.0 + k,
                    area=4,
                    bbox_y0=59,
                    bbox_x0=4 + k,
                    bbox_y1=61,
                    bbox_x1=6 + k,
                    source="forest",
                )
            )
        c.execute(
            schema.edge.insert().values(
                id=eid, movie_id=movie_id, run_id=run, source_id=real, target_id=nid, t=4, dt=1, distance=12.5, cost=3.0
            )
        )
    spurious = [nid, nid + 1]
    node_p, edge_p = {}, {}
    sid = store.solution_id(store.movie(movie_id))  # the runs describe the current (GT) solution
    for scale in (0.5, 0.9):  # the second run is the latest and must be the one exported
        params = UncertaintyParams(method="sm", k=1, temperature=1.0, solution_id=sid, solve_run_id=run)
        with runs.record(store, movie_id, RunKind.UNCERTAINTY, params) as run_id, store.engine.begin() as c:
            node_p = {int(i): scale * (1 + (int(i) % 3)) / 3 for i in list(nodes.index[:6]) + spurious[:1]}
            c.execute(
                schema.node_probability.insert(),
                [{"run_id": run_id, "node_id": i, "p": p, "entropy": 0.1, "method": "topk"} for i, p in node_p.items()],
            )
            edge_p = {eid: scale * 0.2}
            c.execute(
                schema.edge_probability.insert(),
                [{"run_id": run_id, "edge_id": i, "p": p, "method": "topk"} for i, p in edge_p.items()],
            )
    return {
        "spurious": spurious,
        "edge": (real, nid),
        "edge_id": eid,
        "node_p": node_p,
        "edge_p": edge_p,
        "run": run_id,
    }


def test_geff_solution_roundtrip(store, synthetic_ctc: Path, tmp_path: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    path = export_geff(store, tmp_path / "synth.geff", "synth")
    assert (path / "zarr.json").exists()  # Zarr v3
    graph, meta = geff.read(str(path), data_validation=ValidationConfig(graph=True, lineage=True))
    db = _db_nodes(store, res.movie_id)
    assert graph.number_of_nodes() == len(db) == res.n_nodes
    assert set(graph.edges) == _lineage_links(store, res.movie_id)
    for node_id, attrs in graph.nodes(data=True):
        row = db.loc[node_id]
        assert (attrs["t"], attrs["y"], attrs["x"]) == (row.t, row.y, row.x)
        assert (attrs["area"], attrs["label"], attrs["track_id"]) == (row.area, row.label, row.label)
        assert attrs["lineage_id"] == (5 if row.label == 5 else 1)
    assert {"distance", "iou", "edge_id", "dt"} <= set(next(iter(graph.edges(data=True)))[2])
    assert [(a.name, a.type, a.unit) for a in meta.axes] == [
        ("t", "time", "frame"),
        ("y", "space", "pixel"),
        ("x", "space", "pixel"),
    ]
    assert meta.track_node_props == {"lineage": "lineage_id"}
    assert meta.extra["trackdb"]["solution_id"] == res.solution_id
    with pytest.raises(TrackdbError, match="already exists"):
        export_geff(store, path, "synth")
    export_geff(store, path, "synth", overwrite=True)


def test_geff_candidate_graph_with_probabilities(store, synthetic_ctc: Path, tmp_path: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    extra = _add_candidates_and_probabilities(store, res.movie_id)
    path = export_geff(store, tmp_path / "cand.geff", "synth", candidates=True)
    graph, meta = geff.read(str(path))
    assert graph.number_of_nodes() == res.n_nodes + 2
    assert graph.number_of_edges() == res.n_edges + 1
    selected = {n for n, a in graph.nodes(data=True) if a["selected"]}
    assert selected == set(graph.nodes) - set(extra["spurious"])
    assert all("track_id" not in graph.nodes[n] for n in extra["spurious"])  # missing, not 0
    probs = {n: a["probability"] for n, a in graph.nodes(data=True) if "probability" in a}
    assert probs == extra["node_p"]  # exact: floats survive every read path bit for bit
    edge = graph.edges[extra["edge"]]
    assert not edge["selected"]
    assert edge["cost"] == 3.0
    assert edge["probability"] == pytest.approx(extra["edge_p"][extra["edge_id"]])
    assert meta.extra["trackdb"]["node_probability_run"] == extra["run"]
    # the solution alone leaves the spurious candidates out
    only = export_geff(store, tmp_path / "sol.geff", "synth", solution="gt")
    assert geff.read(str(only))[0].number_of_nodes() == res.n_nodes


def test_napari_tracks_follow_the_lineage(store, synthetic_ctc: Path, tmp_path: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    table, graph = napari_tracks(store, "synth")
    assert list(table.columns) == ["track_id", "t", "y", "x"]
    assert table.shape == (res.n_nodes, 4)
    assert graph == {2: [1], 3: [1], 4: [3]}
    spans = table.groupby("track_id")["t"].agg(["min", "max", "count"])
    for tid, start, end, _ in SYNTH_TRACKS.tolist():
        assert tuple(spans.loc[tid]) == (start, end, end - start + 1)
    db = _db_nodes(store, res.movie_id).set_index(["t", "label"])
    expect = db.loc[pd.MultiIndex.from_arrays([table.t, table.track_id]), ["y", "x"]].to_numpy()
    assert np.array_equal(table[["y", "x"]].to_numpy(), expect)
    paths = write_napari_tracks(store, tmp_path / "napari", "synth")
    assert pd.read_csv(paths["tracks"]).equals(table)
    assert json.loads(paths["graph"].read_text()) == {"2": [1], "3": [1], "4": [3]}


def test_networkx_edges_are_the_lineage_links(store, synthetic_ctc: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    g = to_networkx(store, "synth")
    assert set(g.edges) == _lineage_links(store, res.movie_id)
    assert g.number_of_nodes() == res.n_nodes
    assert g.graph["solution_id"] == res.solution_id
    gap = [d for _, _, d in g.edges(data=True) if d["dt"] == 3]  # 3 -> 4 across the gap
    e = schema.edge.c
    with store.engine.connect() as c:
        db_gap = c.execute(sa.select(e.id, e.distance, e.iou).where(e.dt == 3)).one()
    assert len(gap) == 1
    assert (gap[0]["edge_id"], gap[0]["distance"], gap[0]["iou"]) == tuple(db_gap)
    divisions = [n for n in g if g.out_degree(n) == 2]
    assert [g.nodes[n]["track_id"] for n in divisions] == [1]
    extra = _add_candidates_and_probabilities(store, res.movie_id)
    cand = to_networkx(store, "synth", candidates=True)
    assert set(cand.edges) == _lineage_links(store, res.movie_id) | {extra["edge"]}
    assert not cand.nodes[extra["spurious"][0]]["selected"]
    assert "hier_parent_id" not in cand.nodes[extra["spurious"][0]]  # NULL attributes are left out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_reread_equal_the_store(store, synthetic_ctc: Path, tmp_path: Path, fmt: str) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    paths = export_tables(store, tmp_path / "tables", "synth", fmt=fmt)  # type: ignore[arg-type]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    nodes, edges, tracks = (read(paths[k]) for k in ("nodes", "edges", "tracks"))
    db = _db_nodes(store, res.movie_id)
    assert "mask" not in nodes
    assert "z" not in nodes
    assert np.array_equal(nodes.node_id, db.index)
    for col in ("t", "label", "y", "x", "area"):
        assert np.array_equal(nodes[col].to_numpy(), db[col].to_numpy()), col
    assert np.array_equal(nodes.track_id, db.label)
    assert set(zip(edges.source_id, edges.target_id)) == _lineage_links(store, res.movie_id)
    e = schema.edge.c
    with store.engine.connect() as c:
        db_edges = c.execute(sa.select(e.id, e.distance, e.iou).order_by(e.id)).all()
    assert edges[["edge_id", "distance", "iou"]].to_numpy().tolist() == [list(r) for r in db_edges]
    assert edges.cost.isna().all()
    assert edges.iou.between(0, 1).all()
    assert len(set(edges.iou)) > 2
    assert tracks[["track_id", "start_t", "end_t"]].to_numpy().tolist() == SYNTH_TRACKS[:, :3].tolist()
    assert tracks.parent_track_id.fillna(0).astype(int).tolist() == SYNTH_TRACKS[:, 3].tolist()
    assert tracks.lineage_id.tolist() == [1, 1, 1, 1, 5]
    assert tracks.n_nodes.tolist() == (SYNTH_TRACKS[:, 2] - SYNTH_TRACKS[:, 1] + 1).tolist()


def test_parquet_blobs_and_bad_requests(store, synthetic_ctc: Path, tmp_path: Path) -> None:
    res = import_ctc(store, synthetic_ctc, "01", "synth")
    paths = export_tables(store, tmp_path / "pq", "synth", fmt="parquet", include_blobs=True)
    nodes = pd.read_parquet(paths["nodes"])
    assert nodes["mask"].tolist() == _db_nodes(store, res.movie_id)["mask"].tolist()
    with pytest.raises(TrackdbError, match="parquet"):
        export_tables(store, tmp_path / "csv", "synth", fmt="csv", include_blobs=True)
    with pytest.raises(NotFoundError):
        export_geff(store, tmp_path / "x.geff", "nope")
    with pytest.raises(NotFoundError):
        napari_tracks(store, "synth", solution="no-such-solution")
    masks_only = import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    with pytest.raises(NotFoundError):  # no solution yet: only the candidate graph exists
        to_networkx(store, "det")
    frames = graph_frames(store, "det", candidates=True)
    assert len(frames.nodes) == masks_only.n_nodes
    assert frames.tracks is None
    assert "selected" not in frames.nodes


def test_3d_movie_has_z(store, tmp_path: Path) -> None:
    tra = tmp_path / "vol" / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    zz, yy, xx = np.mgrid[:6, :16, :16]
    for t in range(3):
        lab = ((zz - 3) ** 2 + (yy - 8) ** 2 + (xx - 4 - 2 * t) ** 2 <= 4).astype(np.uint16)
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
    (tra / "man_track.txt").write_text("1 0 2 0\n")
    import_ctc(store, tmp_path / "vol", "01", "vol")
    table, graph = napari_tracks(store, "vol")
    assert list(table.columns) == ["track_id", "t", "z", "y", "x"]
    assert graph == {}
    assert table[["z", "y", "x"]].to_numpy().tolist() == [[3, 8, 4], [3, 8, 6], [3, 8, 8]]
    g, meta = geff.read(str(export_geff(store, tmp_path / "vol.geff", "vol")))
    assert [a.name for a in meta.axes] == ["t", "z", "y", "x"]
    assert sorted((a["t"], a["z"], a["x"]) for _, a in g.nodes(data=True)) == [(0, 3, 4), (1, 3, 6), (2, 3, 8)]
