"""candidates → link → solve on the store, on both engines: results, runs, and failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile

from inference.synthetic import movie_prob_from_labels
from solvers.types import Solution, SolveStatus
from trackdb.errors import InputError, NotFoundError, SolveFailed
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.candidates import run_candidates
from trackdb.stages.evaluate import evaluate_solution
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.store import Store, schema

from ..helpers import gt_masks, snapshot


def runs(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as c:
        return [
            (k, s) for k, s in c.execute(sa.select(schema.run.c.kind, schema.run.c.status).order_by(schema.run.c.id))
        ]


@pytest.mark.parametrize("method", ["joint", "lap"])
def test_tracking_fixed_masks_recovers_lineage(store: Store, synthetic_ctc: Path, method: str) -> None:
    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=1 if method == "lap" else 3)
    res = run_solve(store, "det", method=method, time_limit=60)
    assert res.status == "optimal"
    assert res.n_selected == sum(len(np.unique(m)) - 1 for m in gt_masks(synthetic_ctc))
    assert store.movie("det").current_solution_id == res.solution_id
    scores = evaluate_solution(store, "det", synthetic_ctc / "01_GT")
    assert scores["DET"] == pytest.approx(1.0)
    assert scores["division_True Positive Divisions"] == 1  # 1 -> (2, 3)
    if method == "joint":  # the gap 3 -> 4 is closed by a dt=3 link: exact
        assert scores["LNK"] == pytest.approx(1.0)
    else:  # the LAP links consecutive frames only, so the 3 -> 4 gap link is missing
        assert 0.85 <= scores["LNK"] < 1.0
    assert [k for k, _ in runs(store)] == ["import", "link", "solve"]
    assert all(s == "succeeded" for _, s in runs(store))


def test_forest_candidates_joint_selection(store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    labels = gt_masks(synthetic_ctc)
    prob = movie_prob_from_labels(labels, seed=1, merge_fraction=0.0, split_fraction=0.0)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    run_candidates(store, "raw", prob=tmp_path / "prob.tif", min_area=5, progress=False)
    with store.engine.connect() as c:
        n_cand = c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one()
    assert n_cand >= labels.shape[0]  # at least one candidate per frame
    run_link(store, "raw", max_distance=30, k=5, dt=3)
    res = run_solve(store, "raw", method="joint", time_limit=60)
    assert res.status == "optimal"
    scores = evaluate_solution(store, "raw", synthetic_ctc / "01_GT")
    assert scores["DET"] == pytest.approx(1.0)
    assert scores["SEG"] >= 0.7
    assert scores["LNK"] >= 0.9


def test_hemd_selection_then_linking(store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    labels = gt_masks(synthetic_ctc)
    prob = movie_prob_from_labels(labels, seed=1, merge_fraction=0.0, split_fraction=0.0)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    run_candidates(store, "raw", prob=tmp_path / "prob.tif", min_area=5, progress=False)
    run_link(store, "raw", max_distance=30, k=5)
    res = run_solve(store, "raw", method="hemd", time_limit=60)
    assert res.status == "optimal"
    scores = evaluate_solution(store, "raw", synthetic_ctc / "01_GT")
    assert scores["DET"] >= 0.95
    assert scores["SEG"] >= 0.7
    assert scores["LNK"] >= 0.8


def test_candidates_from_labels_match_import(store: Store, synthetic_ctc: Path) -> None:
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    run_candidates(store, "raw", labels=synthetic_ctc / "01_GT" / "TRA", progress=False)
    with store.engine.connect() as c:
        labels = sorted(c.execute(sa.select(schema.node.c.t, schema.node.c.label)).all())
    expected = sorted((t, int(v)) for t, m in enumerate(gt_masks(synthetic_ctc)) for v in np.unique(m) if v)
    assert [tuple(r) for r in labels] == expected


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda p: p * 2.0, "outside \\[0, 1\\]"),
        (lambda p: np.where(p > 0.9, np.nan, p), "NaN"),
        (lambda p: p[:, :10], "the movie is"),
        (lambda p: (p * 255).astype(np.uint8), "floating point"),
    ],
)
def test_bad_probability_maps_fail_the_run(
    store: Store, synthetic_ctc: Path, tmp_path: Path, bad, message: str
) -> None:
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    prob = movie_prob_from_labels(gt_masks(synthetic_ctc), seed=0)
    tifffile.imwrite(tmp_path / "bad.tif", bad(prob))
    with pytest.raises(InputError, match=message):
        run_candidates(store, "raw", prob=tmp_path / "bad.tif", progress=False)
    assert runs(store)[-1] == ("candidates", "failed")
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.node)).scalar_one() == 0


def test_empty_map_and_missing_stages(store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    tifffile.imwrite(tmp_path / "zero.tif", np.zeros((10, 64, 80), np.float32))
    with pytest.raises(InputError, match="no candidates"):
        run_candidates(store, "raw", prob=tmp_path / "zero.tif", progress=False)
    with pytest.raises(NotFoundError, match="no candidates"):
        run_link(store, "raw")
    with pytest.raises(NotFoundError, match="trackdb link"):
        run_solve(store, "raw")


def test_failed_solve_leaves_no_solution(store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5)
    before_solutions = snapshot(store)

    def timed_out(graph, *args, **kw):
        return Solution(np.zeros(graph.n_nodes, bool), np.zeros(graph.n_edges, bool), float("nan"), SolveStatus.TIMEOUT)

    monkeypatch.setattr("solvers.joint.solve_joint", timed_out)
    monkeypatch.setattr("solvers.assignment.solve_fixed", timed_out)  # fixed masks: the assignment runs
    with pytest.raises(SolveFailed, match="timeout"):
        run_solve(store, "det", method="joint", iterations=1)
    assert runs(store)[-1] == ("solve", "failed")
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.solution)).scalar_one() == 0
    assert store.movie("det").current_solution_id is None
    assert before_solutions != snapshot(store)  # only the failed run row was added


def test_resumed_candidates_skip_finished_frames(
    store: Store, synthetic_ctc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    prob = movie_prob_from_labels(gt_masks(synthetic_ctc), seed=0, merge_fraction=0.0, split_fraction=0.0)
    tifffile.imwrite(tmp_path / "p.tif", prob)
    import trackdb.stages.candidates as pl

    real = pl.build_forest
    calls: list[int] = []
    crashed: list[bool] = []

    def crash_at_5(p, t, **kw):
        calls.append(t)
        if t == 5 and not crashed:
            crashed.append(True)
            raise RuntimeError("worker lost")
        return real(p, t=t, **kw)

    monkeypatch.setattr(pl, "build_forest", crash_at_5)
    with pytest.raises(RuntimeError):
        run_candidates(store, "raw", prob=tmp_path / "p.tif", min_area=5, progress=False)
    first_calls = list(calls)
    calls.clear()
    run_id = run_candidates(store, "raw", prob=tmp_path / "p.tif", min_area=5, progress=False)
    assert first_calls == [0, 1, 2, 3, 4, 5]
    assert calls == [5, 6, 7, 8, 9]
    assert runs(store)[-1] == ("candidates", "succeeded")
    assert len(runs(store)) == 2
    with store.engine.connect() as c:
        frames = c.execute(sa.select(schema.node.c.t).where(schema.node.c.run_id == run_id).distinct()).scalars().all()
    assert sorted(frames) == list(range(10))
