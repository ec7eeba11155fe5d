"""calibrate's AS scores re-tempered by uncertainty on both engines: the same probabilities and
alternatives as a fresh run at that temperature, and recomputed when anything they depend on
changes (solution, method, K, pins)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from trackdb.io.import_ctc import import_ctc
from trackdb.stages.calibrate import run_calibrate
from trackdb.stages.edits import add_edit
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_summary, run_uncertainty
from trackdb.store import Store, schema

MOVIE = "det"


@pytest.fixture
def solved(store: Store, synthetic_ctc: Path) -> Store:
    """The synthetic movie with GT masks, one-frame links (per-pair AS), solved jointly."""
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=1)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    return store


def outputs(store: Store, run_id: int) -> tuple[dict, dict, dict]:
    """A run's link probabilities, cell (p, entropy) and alternatives (name → objective, weight, links)."""
    with store.engine.connect() as c:
        edges: dict[int, float] = dict(
            c.execute(sa.text("SELECT edge_id, p FROM edge_probability WHERE run_id = :r"), {"r": run_id}).all()
        )
        nodes = {
            n: (p, h)
            for n, p, h in c.execute(
                sa.text("SELECT node_id, p, entropy FROM node_probability WHERE run_id = :r"), {"r": run_id}
            )
        }
        alts = {}
        for sid, name, obj, w in c.execute(
            sa.text("SELECT id, name, objective, weight FROM solution WHERE run_id = :r"), {"r": run_id}
        ):
            links = c.execute(
                sa.select(schema.solution_edge.c.edge_id).where(schema.solution_edge.c.solution_id == sid)
            ).scalars()
            alts[name] = (obj, w, sorted(links))
    return edges, nodes, alts


def assert_same(a: tuple[dict, dict, dict], b: tuple[dict, dict, dict]) -> None:
    (ea, na, aa), (eb, nb, ab) = a, b
    assert ea.keys() == eb.keys()
    assert len(ea) > 0
    np.testing.assert_allclose([ea[i] for i in ea], [eb[i] for i in ea], rtol=0, atol=1e-12)
    assert na.keys() == nb.keys()
    np.testing.assert_allclose([na[i] for i in na], [nb[i] for i in na], rtol=0, atol=1e-12)
    assert aa.keys() == ab.keys()
    assert len(aa) > 0
    for name in aa:
        assert aa[name][2] == ab[name][2]
        assert aa[name][:2] == pytest.approx(ab[name][:2], abs=1e-9)


def reused_from(store: Store, run_id: int) -> int | None:
    return ((run_summary(store, run_id).get("info") or {}).get("reused_scores") or {}).get("run_id")


def drop_stored_scores(store: Store) -> None:
    with store.engine.begin() as c:
        c.execute(schema.option_score.delete())


def test_reused_scores_equal_a_fresh_run(solved: Store, synthetic_ctc: Path) -> None:
    cal = run_calibrate(solved, MOVIE, synthetic_ctc / "01_GT", "as", k=5)
    assert cal["scores_stored"] is True
    t = cal["temperature"]
    reused = run_uncertainty(solved, MOVIE, "as", k=5, calibration="default")
    assert reused_from(solved, reused) == cal["run_id"]
    assert run_summary(solved, reused)["temperature"] == pytest.approx(t, abs=1e-4)
    drop_stored_scores(solved)
    fresh = run_uncertainty(solved, MOVIE, "as", k=5, temperature=run_summary(solved, reused)["temperature"])
    assert reused_from(solved, fresh) is None
    assert_same(outputs(solved, reused), outputs(solved, fresh))
    info_r, info_f = run_summary(solved, reused)["info"], run_summary(solved, fresh)["info"]
    for report in (info_r, info_f):
        report.pop("reused_scores", None)
        report["kbest"].pop("seconds")
    assert info_r == info_f
    # a re-fit on the same model reuses the scores it stored, and fits the same temperature
    run_calibrate(solved, MOVIE, synthetic_ctc / "01_GT", "as", k=5)  # stores them again
    again = run_calibrate(solved, MOVIE, synthetic_ctc / "01_GT", "as", k=5)
    assert again["scores_stored"] is False
    assert again["info"]["reused_scores"]["run_id"] > cal["run_id"]
    assert again["temperature"] == t
    assert again["ece_after"] == cal["ece_after"]


def test_changed_k_method_pins_or_solution_recompute(solved: Store, synthetic_ctc: Path) -> None:
    cal = run_calibrate(solved, MOVIE, synthetic_ctc / "01_GT", "as", k=5)
    assert reused_from(solved, run_uncertainty(solved, MOVIE, "as", k=4, temperature=1.0)) is None
    assert reused_from(solved, run_uncertainty(solved, MOVIE, "mm", k=5, temperature=1.0)) is None
    assert reused_from(solved, run_uncertainty(solved, MOVIE, "as", k=5, temperature=2.0)) == cal["run_id"]

    # a pin (an unselected link forbidden) changes the model's costs: recomputed, then the
    # recomputation equals what the pinned model gives without stored scores
    sid = solved.movie(MOVIE).current_solution_id
    with solved.engine.connect() as c:
        chosen = set(
            c.execute(
                sa.select(schema.solution_edge.c.edge_id).where(schema.solution_edge.c.solution_id == sid)
            ).scalars()
        )
        other = next(
            e for e in c.execute(sa.select(schema.edge.c.id).order_by(schema.edge.c.id)).scalars() if e not in chosen
        )
    add_edit(solved, MOVIE, "forbid-edge", other)
    pinned = run_uncertainty(solved, MOVIE, "as", k=5, temperature=1.0)
    assert reused_from(solved, pinned) is None

    # another solution (a new solve of the movie): recomputed, although the model is alike
    run_solve(solved, MOVIE, method="joint", time_limit=60)
    assert reused_from(solved, run_uncertainty(solved, MOVIE, "as", k=5, temperature=1.0)) is None
    cal2 = run_calibrate(solved, MOVIE, synthetic_ctc / "01_GT", "as", k=5)
    assert cal2["scores_stored"] is True
    with solved.engine.connect() as c:  # the earlier model's scores are dropped: one set per movie and method
        assert c.execute(sa.select(schema.option_score.c.run_id)).scalars().all() == [cal2["run_id"]]
    assert reused_from(solved, run_uncertainty(solved, MOVIE, "as", k=5, temperature=1.0)) == cal2["run_id"]
