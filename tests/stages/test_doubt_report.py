"""Doubt stages say what they did not deliver: a K best search that stops at a time-capped
re-solve is reported in the run's summary and on stderr, an unusable result fails the run
(exit 2), and the README's doubt workflow works on a joint-solved movie (both engines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import trackdb.stages.uncertainty as unc_stage
from solvers.kbest_joint import KBest
from trackdb.errors import InputError, SolveFailed
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.calibrate import run_calibrate
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_summary, run_uncertainty
from trackdb.store import Store

from ..helpers import snapshot, trackdb


def joint_solved(store: Store, root: Path) -> int:
    """GT masks as detections, one-frame links, joint solve (division pairs in its model)."""
    import_ctc(store, root, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=1)
    return run_solve(store, "det", method="joint", time_limit=60).solution_id


def runs_of(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text("SELECT kind, status, message FROM run ORDER BY id"))]


def test_readme_doubt_workflow_on_a_joint_solve(db_url: str, store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    """calibrate → uncertainty --calibration → uncertain → export-ctc --solution as-rank1."""
    joint_solved(store, synthetic_ctc)
    gt = str(synthetic_ctc / "01_GT")
    r = trackdb("calibrate", "--movie", "det", "--gt", gt, "--method", "as", db=db_url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["links"] > 0
    r = trackdb("uncertainty", "--movie", "det", "--method", "as", "--k", "4", "--calibration", "default", db=db_url)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["info"]["kbest"]["scheme"] == "pairs"
    assert summary["info"]["kbest"]["found"] == 4
    assert summary["alternatives"] == 3
    assert summary["warnings"] == []
    r = trackdb("uncertain", "--movie", "det", "--below", "0.99", db=db_url)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "alt"
    r = trackdb("export-ctc", str(out), "--movie", "det", "--solution", "as-rank1", db=db_url)
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("mask*.tif"))) == store.movie("det").n_frames


def stopped_after(found: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stage's K best search stop after ``found`` solutions, as a time cap would."""
    real = unc_stage.kbest_joint

    def capped(graph: Any, k: int, **kwargs: Any) -> KBest:
        got = real(graph, k, **kwargs)
        reason = "the re-solve of frame pair t=3 reached its time limit of 300 s with a solution"
        return KBest(got.solutions[:found], k, got.scheme, False, reason, got.seconds)

    monkeypatch.setattr(unc_stage, "kbest_joint", capped)


def test_a_stopped_search_with_no_alternative_fails_the_run(
    db_url: str, store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joint_solved(store, synthetic_ctc)
    stopped_after(1, monkeypatch)
    before = snapshot(store)
    with pytest.raises(SolveFailed, match="no alternative to the current solution: the re-solve of frame pair t=3"):
        run_uncertainty(store, "det", "sm", k=5)
    kind, status, message = runs_of(store)[-1]
    assert (kind, status) == ("uncertainty", "failed")
    assert "time limit of 300 s" in message
    r = trackdb("uncertainty", "--movie", "det", "--method", "sm", "--k", "5", db=db_url)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("error: sm on movie 'det': no alternative")
    with store.engine.connect() as c:  # nothing but the two failed run rows was written
        assert c.execute(sa.text("SELECT COUNT(*) FROM edge_probability")).scalar() == 0
        assert c.execute(sa.text("SELECT COUNT(*) FROM solution WHERE rank > 0")).scalar() == 0
    assert snapshot(store) != before  # the failed runs are recorded


def test_a_partial_search_succeeds_and_says_so(
    db_url: str, store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joint_solved(store, synthetic_ctc)
    stopped_after(3, monkeypatch)
    r = trackdb("uncertainty", "--movie", "det", "--method", "sm", "--k", "5", db=db_url)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["alternatives"] == 2
    assert summary["warnings"] == [
        "found 3 of the 5 best solutions: the re-solve of frame pair t=3 reached its time limit of 300 s "
        "with a solution"
    ]
    assert r.stderr.strip().splitlines()[-1] == f"warning: {summary['warnings'][0]}"
    with store.engine.connect() as c:  # the run row carries the same report
        stored = c.execute(sa.text("SELECT summary FROM run WHERE id = :r"), {"r": summary["run_id"]}).scalar()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored is not None
    assert stored["warnings"] == summary["warnings"]
    assert stored["info"]["kbest"]["stopped"].startswith("the re-solve of frame pair")


def test_fewer_solutions_than_asked_is_reported(
    store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joint_solved(store, synthetic_ctc)
    real = unc_stage.kbest_joint

    def all_there_are(graph: Any, k: int, **kwargs: Any) -> KBest:  # as if only 3 existed
        got = real(graph, 3, **kwargs)
        return KBest(got.solutions, k, got.scheme, True, None, got.seconds)

    monkeypatch.setattr(unc_stage, "kbest_joint", all_there_are)
    run_id = run_uncertainty(store, "det", "as", k=10)
    summary = run_summary(store, run_id)
    assert summary["info"]["kbest"]["exhausted"]
    assert summary["alternatives"] == 2
    assert summary["warnings"] == ["the model has only 3 solutions, fewer than the 10 asked for"]


def test_calibration_with_nothing_to_fit(store: Store, synthetic_ctc: Path) -> None:
    """The synthetic movie's GT masks: every chosen option is right, so only a prior can hold T."""
    joint_solved(store, synthetic_ctc)
    gt = synthetic_ctc / "01_GT"
    res = run_calibrate(store, "det", gt, "sm")
    assert res["wrong_calibration_cells"] == 0
    assert res["warnings"][0].startswith("no labelled cell's most probable option is wrong")
    assert np.isfinite(res["temperature"])
    before = snapshot(store)
    with pytest.raises(InputError, match="nothing to calibrate"):
        run_calibrate(store, "det", gt, "sm", temperature_prior=None)
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM calibration")).scalar() == 1
    assert snapshot(store) != before  # only the failed run row
    assert runs_of(store)[-1][:2] == ("calibrate", "failed")


def test_a_time_capped_solve_says_so(
    db_url: str, store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A solve that stops at its time limit with a feasible solution is kept (it is usable) and
    reported: a warning on stderr, in the JSON output and in the run's summary."""
    from dataclasses import replace

    import trackdb.stages.solve as solve_stage
    from solvers.types import SolveStatus

    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=1)
    real = solve_stage.build_solve

    def capped(*args: Any, **kwargs: Any) -> Any:
        built = real(*args, **kwargs)
        return replace(built, solution=replace(built.solution, status=SolveStatus.FEASIBLE, gap=0.02))

    monkeypatch.setattr(solve_stage, "build_solve", capped)
    r = trackdb("solve", "--movie", "det", "--time-limit", "5", db=db_url)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "feasible"
    expected = (
        "the solve stopped at its time limit (5 s per solve) before proving optimality, gap 0.02: "
        "the solution is feasible, not necessarily optimal (raise --time-limit)"
    )
    assert out["warnings"] == [expected]
    assert r.stderr.strip().splitlines()[-1] == f"warning: {expected}"
    with store.engine.connect() as c:
        stored = c.execute(sa.text("SELECT summary FROM run WHERE id = :r"), {"r": out["run_id"]}).scalar()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored is not None
    assert stored["warnings"] == [expected]
    assert stored["status"] == "feasible"
