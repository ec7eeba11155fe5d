"""``trackdb solve`` picks its solver: the exact assignment for a fixed segmentation (same
optimum as the joint program), the joint program for competing candidates; the run says which."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tifffile

from inference.synthetic import movie_prob_from_labels
from solvers.joint import solve_joint
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.candidates import run_candidates
from trackdb.stages.link import run_link
from trackdb.stages.solve import Method, build_solve, run_solve
from trackdb.store import Store, runs
from trackdb.store.runs import LinkParams, RunKind

from ..helpers import gt_masks


def test_fixed_masks_use_the_assignment_with_the_joint_optimum(store: Store, synthetic_ctc: Path) -> None:
    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=3)
    res = run_solve(store, "det", time_limit=60)
    assert res.solver == {"solver": "assignment"}
    summary = runs.get_run(store, res.run_id).summary
    assert summary is not None
    assert summary["solver"] == "assignment"
    # the scales the stored solution was priced with, the persistence among them, JSON-safe
    assert summary["rounds"] == len(res.history) >= 2
    scales = summary["scales"]
    assert scales["sigma_motion"] == pytest.approx(res.history[-1]["sigma_motion"])
    assert scales["sigma_motion"] > 0
    assert 0.0 <= scales["persistence"] <= 1.0
    assert all(v is None or math.isfinite(v) for v in scales.values())
    movie = store.movie("det")
    link = runs.latest_run(store, movie.id, RunKind.LINK)
    assert link is not None
    built = build_solve(
        store,
        movie,
        Method.JOINT,
        link.id,
        link.typed(LinkParams).candidate_run_id,
        window=None,
        time_limit=60,
        gap=0.0,
        iterations=4,
    )
    assert built.solution.info["solver"] == "assignment"
    joint = solve_joint(built.graph, gap=0.0, time_limit=60)
    assert built.solution.objective == pytest.approx(joint.objective, abs=1e-6)
    assert res.objective == pytest.approx(joint.objective, abs=1e-6)


def test_competing_candidates_use_the_joint_program(store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    # merged and split cells in the probability map: a forest of competing candidates
    prob = movie_prob_from_labels(gt_masks(synthetic_ctc), seed=1, merge_fraction=0.5, split_fraction=0.5)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    import_ctc(store, synthetic_ctc, "01", "raw", no_gt=True)
    run_candidates(store, "raw", prob=tmp_path / "prob.tif", min_area=5, progress=False)
    run_link(store, "raw", max_distance=30, k=5, dt=3)
    res = run_solve(store, "raw", time_limit=60)
    assert res.solver == {"solver": "joint", "joint_reason": "candidates compete (a segmentation forest)"}
    summary = runs.get_run(store, res.run_id).summary
    assert summary is not None
    assert summary["solver"] == "joint"
    assert summary["joint_reason"] == res.solver["joint_reason"]
