"""`trackdb track`: link then solve in one process, the same store contents as the two commands."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from trackdb.store import Store, runs, schema

from ..helpers import snapshot, trackdb


def _selected(store: Store, movie: str) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """The current solution's links (source, target node ids) and cells (node id, t, track)."""
    sid = store.movie(movie).current_solution_id
    e, n = schema.solution_edge.c, schema.solution_node.c
    with store.engine.connect() as c:
        links = c.execute(sa.select(e.source_id, e.target_id).where(e.solution_id == sid).order_by(e.source_id)).all()
        cells = c.execute(sa.select(n.node_id, n.t, n.track_id).where(n.solution_id == sid).order_by(n.node_id)).all()
    return [tuple(r) for r in links], [tuple(r) for r in cells]


def _candidate_links(store: Store, run_id: int) -> list[tuple[int, int, float, float]]:
    e = schema.edge.c
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(e.source_id, e.target_id, e.distance, e.iou).where(e.run_id == run_id).order_by(e.id)
        ).all()
    return [tuple(r) for r in rows]


def test_track_is_link_then_solve(db_url: str, synthetic_ctc: Path) -> None:
    """The same links, solution and objective as `link` + `solve`, two honest run rows (a link run
    with its chosen radius, a solve run whose parent is it), and the result is correct."""
    for movie in ("a", "b"):
        r = trackdb("import-ctc", str(synthetic_ctc), "--movie", movie, "--masks-only", db=db_url)
        assert r.returncode == 0, r.stderr
    r = trackdb("track", "--movie", "a", db=db_url)
    assert r.returncode == 0, (r.stdout, r.stderr, r.exception)
    out = json.loads(r.stdout)
    assert "chosen from the cells" in r.stderr
    assert out["status"] == "optimal"
    assert out["solver"] == "assignment"
    assert trackdb("link", "--movie", "b", db=db_url).returncode == 0
    r2 = trackdb("solve", "--movie", "b", db=db_url)
    assert r2.returncode == 0, r2.stderr
    two = json.loads(r2.stdout)
    assert out["objective"] == two["objective"]
    assert (out["cells"], out["links"], out["tracks"]) == (two["cells"], two["links"], two["tracks"])
    assert out["divisions"] == two["divisions"]

    store = Store(db_url)
    try:
        kinds = {}
        for movie in ("a", "b"):
            mid = store.movie(movie).id
            link = runs.latest_run(store, mid, runs.RunKind.LINK)
            solve = runs.latest_run(store, mid, runs.RunKind.SOLVE)
            assert link is not None
            assert solve is not None
            assert link.status == solve.status == runs.RunStatus.SUCCEEDED
            assert solve.parent_run_id == link.id
            assert link.summary is not None
            assert link.summary["chosen"] == "from the cells"
            kinds[movie] = (link, solve)
        (la, sa_), (lb, _sb) = kinds["a"], kinds["b"]
        assert out["link_run_id"] == la.id
        assert out["run_id"] == sa_.id
        assert la.summary is not None
        assert lb.summary is not None
        assert out["candidate_links"] == la.summary["links"] == lb.summary["links"]
        pa, pb = la.typed(runs.LinkParams), lb.typed(runs.LinkParams)
        assert dataclasses.replace(pa, candidate_run_id=0) == dataclasses.replace(pb, candidate_run_id=0)
        assert sa_.typed(runs.SolveParams).link_run_id == la.id
        # node ids differ between the movies by a constant offset (imported one after the other)
        ida = np.array([r[:2] for r in _candidate_links(store, la.id)])
        idb = np.array([r[:2] for r in _candidate_links(store, lb.id)])
        offset = idb.min() - ida.min()
        assert np.array_equal(ida + offset, idb)
        feats_a = [r[2:] for r in _candidate_links(store, la.id)]
        assert feats_a == [r[2:] for r in _candidate_links(store, lb.id)]
        links_a, cells_a = _selected(store, "a")
        links_b, cells_b = _selected(store, "b")
        # the summary's divisions are the solution's mothers (the synthetic movie has some)
        sources = np.array([s for s, _ in links_a])
        mothers = int((np.unique(sources, return_counts=True)[1] == 2).sum())
        assert out["divisions"] == mothers > 0
        assert sa_.summary is not None
        assert sa_.summary["divisions"] == mothers
        assert [(s + offset, t + offset) for s, t in links_a] == links_b
        assert [(i + offset, t, k) for i, t, k in cells_a] == cells_b
    finally:
        store.close()
    gt = str(synthetic_ctc / "01_GT")
    score_a = json.loads(trackdb("evaluate", "--movie", "a", "--gt", gt, db=db_url).stdout)
    score_b = json.loads(trackdb("evaluate", "--movie", "b", "--gt", gt, db=db_url).stdout)
    assert score_a["LNK"] == score_b["LNK"] > 0.9  # the gap of 2 frames needs --dt 2: not the default


def test_track_without_pairs_is_one_line_and_store_unchanged(db_url: str, synthetic_ctc: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(synthetic_ctc, one)
    tra = one / "01_GT" / "TRA"
    for f in sorted(tra.glob("man_track*.tif"))[1:]:
        f.unlink()
    for f in sorted((one / "01").glob("t*.tif"))[1:]:
        f.unlink()
    (tra / "man_track.txt").write_text("1 0 0 0\n")
    assert trackdb("import-ctc", str(one), "--movie", "single", "--masks-only", db=db_url).returncode == 0
    store = Store(db_url)
    try:
        before = snapshot(store)
        r = trackdb("track", "--movie", "single", db=db_url)
        assert r.returncode == 2, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: ")
        assert "no candidate pairs" in lines[0]
        assert snapshot(store) == before
    finally:
        store.close()
