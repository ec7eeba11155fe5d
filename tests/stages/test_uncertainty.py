"""trackdb uncertainty / uncertain / calibrate on the store, on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import trackdb.cli  # noqa: F401
from solvers.uncertainty import Method
from trackdb.cli import cli
from trackdb.errors import InputError, NotFoundError
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.calibrate import ancestor_at, run_calibrate, true_mothers
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_summary, run_uncertainty, uncertain
from trackdb.store import Store

from ..conftest import write_synthetic_ctc
from ..helpers import snapshot


def solved(store: Store, root: Path, name: str = "det") -> int:
    """The synthetic movie's GT masks as detections, linked and solved with the LAP."""
    import_ctc(store, root, "01", name, masks_only=True)
    run_link(store, name, max_distance=30, k=5, dt=1)
    return run_solve(store, name, method="lap").solution_id


def rows(store: Store, sql: str, **params: object) -> list[tuple]:
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(sql), params)]


def selected_link_p(store: Store, run_id: int, sid: int) -> dict[int, tuple[int, float]]:
    """target node → (source node, p) of every link of solution ``sid``."""
    got = rows(
        store,
        "SELECT se.target_id, se.source_id, ep.p FROM solution_edge se "
        "JOIN edge_probability ep ON ep.edge_id = se.edge_id AND ep.run_id = :r "
        "WHERE se.solution_id = :s",
        r=run_id,
        s=sid,
    )
    return {int(t): (int(s), float(p)) for t, s, p in got}


def test_probabilities_tracks_and_alternatives(store: Store, synthetic_ctc: Path) -> None:
    sid = solved(store, synthetic_ctc)
    n_edges = rows(store, "SELECT COUNT(*) FROM edge")[0][0]
    n_nodes = rows(store, "SELECT COUNT(*) FROM node")[0][0]
    for method in ("sm", "fp", "fpa", "mm", "as"):
        # this movie's cells grow exactly (growth σ at its 0.02 floor): FP's default 5% area
        # jitter would be noisier than the movie itself, so jitter by less here
        run_id = run_uncertainty(store, "det", method, k=5, sigma_area=0.01)
        probs = rows(
            store,
            "SELECT e.target_id, ep.p FROM edge_probability ep JOIN edge e ON e.id = ep.edge_id WHERE ep.run_id = :r",
            r=run_id,
        )
        assert len(probs) == n_edges  # every candidate link
        p = np.array([q for _, q in probs])
        assert np.all((p >= 0) & (p <= 1))
        per_cell = rows(
            store,
            "SELECT e.target_id, SUM(ep.p) FROM edge_probability ep JOIN edge e "
            "ON e.id = ep.edge_id WHERE ep.run_id = :r GROUP BY e.target_id",
            r=run_id,
        )
        assert max(s for _, s in per_cell) <= 1 + 1e-6, method
        cells = rows(store, "SELECT p, entropy FROM node_probability WHERE run_id = :r", r=run_id)
        assert len(cells) == n_nodes
        assert all(0 <= q <= 1 and h >= 0 for q, h in cells)
        # the easy movie: continuing links of the MAP are near certain; what is doubtful is
        # the division 1 -> (2, 3) and the link across the 3 -> 4 gap that dt=1 cannot close
        links = selected_link_p(store, run_id, sid)
        confident = sorted(q for _, q in links.values())[3:]
        assert min(confident) > 0.9, method
        assert np.median([q for _, q in links.values()]) > 0.99, method
        summary = run_summary(store, run_id)
        assert summary["rebuilt_links_differ"] == 0
        assert summary["method"] == method

    # tracks of the current solution: min/product of the links into and inside each track
    tracks = rows(
        store,
        "SELECT track_id, parent_track_id, confidence_min, confidence_product FROM track WHERE solution_id = :s",
        s=sid,
    )
    links = selected_link_p(store, run_id, sid)
    track_of = dict(rows(store, "SELECT node_id, track_id FROM solution_node WHERE solution_id = :s", s=sid))
    for tid, parent, cmin, cprod in tracks:
        inside = [q for tgt, (_, q) in links.items() if track_of[tgt] == tid]
        assert cmin is not None
        assert cprod is not None
        assert cprod <= cmin + 1e-12
        if parent is not None:
            assert cmin == pytest.approx(min(inside))
            assert cprod == pytest.approx(np.prod(inside))

    # AS (the last run): the K best as ranked solutions, rank 0 the current one, weights sum ≤ 1
    assert store.movie("det").current_solution_id == sid
    alts = rows(store, "SELECT id, rank, weight, objective FROM solution WHERE run_id = :r ORDER BY rank", r=run_id)
    assert [r for _, r, _, _ in alts] == list(range(1, 5))
    current = rows(store, "SELECT rank, objective FROM solution WHERE id = :s", s=sid)[0]
    assert current[0] == 0
    assert all(obj >= current[1] - 1e-9 for *_, obj in alts)
    weights = [w for _, _, w, _ in alts]
    assert 0 < sum(weights) <= 1
    assert weights == sorted(weights, reverse=True)
    assert summary["rank0_links_differ"] == 0
    assert sum(weights) + summary["rank0_weight"] == pytest.approx(1.0)
    mine = set(rows(store, "SELECT edge_id FROM solution_edge WHERE solution_id = :s", s=sid))
    for alt_id, *_ in alts:  # each alternative is a different lineage with its own tracks
        assert set(rows(store, "SELECT edge_id FROM solution_edge WHERE solution_id = :s", s=alt_id)) != mine
        assert (
            rows(store, "SELECT COUNT(*) FROM track WHERE solution_id = :s AND confidence_min IS NULL", s=alt_id)[0][0]
            == 0
        )


def test_every_method_stores_its_ranked_alternatives(
    db_url: str, store: Store, synthetic_ctc: Path, tmp_path: Path
) -> None:
    """Each method's ranked alternatives round-trip through the store (the same selections,
    ranks, weights and objectives that the method computes) and export as CTC by name."""
    from trackdb.stages.uncertainty import compute, rebuild_model
    from trackdb.store.runs import current_solve

    sid = solved(store, synthetic_ctc)
    movie = store.movie("det")
    _, solve_run = current_solve(store, movie)
    model = rebuild_model(store, movie, sid, solve_run)
    current = set(rows(store, "SELECT edge_id FROM solution_edge WHERE solution_id = :s", s=sid))
    runner = CliRunner(mix_stderr=False)
    for method in ("sm", "fp", "fpa", "mm", "as"):
        # fpa: enough jitter that the perturbed optima differ on this easy movie
        run_id = run_uncertainty(store, "det", method, k=6, sigma_px=6.0, sigma_area=0.2)
        summary = run_summary(store, run_id)
        _, want = compute(model, Method(method), k=6, temperature=1.0, sigma_px=6.0, sigma_area=0.2)
        assert len(want) >= 2, method
        stored = rows(
            store, "SELECT id, rank, weight, objective, name FROM solution WHERE run_id = :r ORDER BY rank", r=run_id
        )
        assert [r for _, r, *_ in stored] == summary["ranks"]
        assert len(stored) >= 1, method
        assert summary["alternatives"] == len(stored), method
        for alt_id, rank, weight, obj, name in stored:
            sol = want[rank]
            assert name == f"{method}-rank{rank}"
            assert weight == pytest.approx(sol.weight)
            assert obj == pytest.approx(sol.solution.objective)
            edges = set(rows(store, "SELECT edge_id FROM solution_edge WHERE solution_id = :s", s=alt_id))
            assert edges == {(int(e),) for e in model.edge_ids[sol.solution.edge_selected]}
            assert edges != current  # the current solution is not stored twice
        if summary["current_rank"] is not None:
            assert summary["current_rank"] not in summary["ranks"]
            assert np.array_equal(want[summary["current_rank"]].solution.edge_selected, model.rebuilt.edge_selected)
        weights = [w.weight for w in want]
        assert sum(weights) == pytest.approx(1.0)
        if method == "fpa":  # frequencies among k = 6 draws, most frequent first
            assert all(round(w * 6) == pytest.approx(w * 6) for w in weights)
            assert weights == sorted(weights, reverse=True)
            assert summary["info"]["perturbation"] == {"kind": "features", "sigma_px": 6.0, "sigma_area": 0.2}
        # `trackdb export-ctc --solution <method>-rank<k>`: the alternative's own lineage
        rank = stored[-1][1]
        out = tmp_path / f"{method}{rank}"
        r = runner.invoke(
            cli, ["export-ctc", str(out), "--movie", "det", "--solution", f"{method}-rank{rank}", "--db", db_url]
        )
        assert r.exit_code == 0, r.stderr
        table = np.loadtxt(out / "res_track.txt", dtype=np.int64, ndmin=2)
        n_tracks = rows(store, "SELECT COUNT(*) FROM track WHERE solution_id = :s", s=stored[-1][0])[0][0]
        assert len(table) == n_tracks
        assert len(list(out.glob("mask*.tif"))) == movie.n_frames


def test_uncertain_lists_doubtful_links_divisions_cells(store: Store, synthetic_ctc: Path) -> None:
    sid = solved(store, synthetic_ctc)
    run_id = run_uncertainty(store, "det", "sm")
    below = 0.99
    links = selected_link_p(store, run_id, sid)
    node_p = dict(rows(store, "SELECT node_id, p FROM node_probability WHERE run_id = :r", r=run_id))
    p_in = dict(
        rows(
            store,
            "SELECT e.target_id, SUM(ep.p) FROM edge_probability ep JOIN edge e "
            "ON e.id = ep.edge_id WHERE ep.run_id = :r GROUP BY e.target_id",
            r=run_id,
        )
    )
    expected = {("link", t) for t, (_, q) in links.items() if q < below}
    mothers: dict[int, list[float]] = {}
    for s, q in links.values():
        mothers.setdefault(s, []).append(q)
    expected |= {("division", m) for m, qs in mothers.items() if len(qs) == 2 and qs[0] * qs[1] < below}
    expected |= {("cell", n) for n in node_p if node_p[n] < below or (n not in links and 1 - p_in.get(n, 0.0) < below)}
    got = uncertain(store, "det", below)
    assert {(k, int(n)) for k, n in zip(got["kind"], got["node_id"])} == expected
    assert {"link", "division"} <= set(got["kind"])
    assert list(got["p"]) == sorted(got["p"])
    assert (got["p"] < below).all()
    division = got[got["kind"] == "division"].iloc[0]
    a, b = map(int, division["daughter_ids"].split(","))
    assert links[a][0] == links[b][0] == division["node_id"]
    assert uncertain(store, "det", 0.0).empty


def test_true_mothers_follow_the_gt_lineage() -> None:
    tracks = np.array([[1, 0, 2, 0], [2, 3, 4, 1], [3, 3, 3, 1], [4, 6, 6, 3]])  # 3 -> 4 across a gap
    lineage = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in tracks}
    assert ancestor_at(2, 2, lineage) == 1
    assert ancestor_at(2, 3, lineage) == 2
    assert ancestor_at(1, -1, lineage) == 0
    # nodes: label 1 at t=1,2; label 2 at t=3; label 3 at t=3; label 4 at t=6; an unmatched node
    t = np.array([1, 2, 3, 3, 6, 4])
    label = np.array([1, 1, 2, 3, 4, 0])
    mother = true_mothers(t, label, np.ones(6), tracks)
    assert mother.tolist() == [-2, 0, 1, 1, 3, -2]  # t=1: label 1 at t=0 has no candidate


def test_calibrate_stores_and_is_reused(db_url: str, store: Store, synthetic_ctc: Path, tmp_path: Path) -> None:
    solved(store, synthetic_ctc)
    res = run_calibrate(store, "det", synthetic_ctc / "01_GT", "sm", png=tmp_path / "rel.png")
    assert res["temperature"] > 0
    assert 0 <= res["ece_before"] <= 1
    assert 0 <= res["ece_after"] <= 1
    # with dt=1 the daughter across the gap (3 -> 4) cannot be linked and appears; no other
    # cell takes it (the folded LAP made 2 divide into 2 and 4 there, 18 of 19 right)
    assert res["links"] == 18
    assert res["matched_nodes"] == 21
    assert (tmp_path / "rel.png").stat().st_size > 0
    assert res["accuracy"] == pytest.approx(1.0)
    assert 0 < res["sparsification_area"] <= res["sparsification_oracle_area"] <= 1
    run_calibrate(store, "det", synthetic_ctc / "01_GT", "sm")  # a re-fit replaces the row
    stored = rows(store, "SELECT name, method, temperature, ece_before, ece_after FROM calibration")
    assert len(stored) == 1
    assert stored[0][:2] == ("default", "sm")
    assert stored[0][2] == pytest.approx(res["temperature"], abs=1e-4)

    runner = CliRunner(mix_stderr=False)
    r = runner.invoke(
        cli, ["uncertainty", "--movie", "det", "--method", "sm", "--calibration", "default", "--db", db_url]
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["temperature"] == pytest.approx(stored[0][2])
    assert out["calibration"] == "default"
    r = runner.invoke(cli, ["uncertain", "--movie", "det", "--below", "0.9", "--format", "json", "--db", db_url])
    assert r.exit_code == 0, r.stderr
    assert {row["kind"] for row in json.loads(r.stdout)} <= {"link", "division", "cell"}
    r = runner.invoke(
        cli,
        [
            "calibrate",
            "--movie",
            "det",
            "--gt",
            str(synthetic_ctc / "01_GT"),
            "--method",
            "mm",
            "--name",
            "lab",
            "--db",
            db_url,
        ],
    )
    assert r.exit_code == 0
    assert json.loads(r.stdout)["method"] == "mm"
    r = runner.invoke(
        cli, ["uncertainty", "--movie", "det", "--method", "as", "--calibration", "lab", "--db", db_url]
    )  # calibrations are per method
    assert r.exit_code == 2
    assert "no calibration 'lab' for method 'as'" in r.stderr


def test_bad_input_is_refused_and_store_unchanged(
    db_url: str, store: Store, synthetic_ctc: Path, tmp_path: Path
) -> None:
    solved(store, synthetic_ctc)
    run_uncertainty(store, "det", "sm")
    import_ctc(store, synthetic_ctc, "01", "unsolved", masks_only=True)
    import_ctc(store, synthetic_ctc, "01", "gt")  # current solution: the imported ground truth
    other = write_synthetic_ctc(tmp_path / "other", n_frames=8)
    before = snapshot(store)
    cases = [
        (lambda: run_uncertainty(store, "det", "sm", k=0), InputError, "--k must be an integer >= 1"),
        (lambda: run_uncertainty(store, "det", "as", temperature=0.0), InputError, "--temperature must be"),
        (lambda: run_uncertainty(store, "det", "as", temperature=float("nan")), InputError, "--temperature must be"),
        (lambda: run_uncertainty(store, "det", "sm", calibration="nope"), NotFoundError, "no calibration 'nope'"),
        (lambda: run_uncertainty(store, "det", "sm", calibration="x", temperature=2.0), InputError, "not both"),
        (lambda: run_uncertainty(store, "det", "xx"), InputError, "unknown uncertainty method"),
        (lambda: run_uncertainty(store, "unsolved", "sm"), NotFoundError, "has no solution yet"),
        (lambda: run_uncertainty(store, "gt", "sm"), InputError, "not a solve"),
        (lambda: run_uncertainty(store, "nope", "sm"), NotFoundError, "no movie 'nope'"),
        (lambda: run_calibrate(store, "det", other / "01_GT", "sm"), InputError, "ground truth of another movie"),
        (lambda: run_calibrate(store, "det", tmp_path / "missing", "sm"), InputError, "does not exist"),
        (lambda: run_calibrate(store, "unsolved", synthetic_ctc / "01_GT", "sm"), NotFoundError, "no solution"),
        (lambda: run_calibrate(store, "det", synthetic_ctc / "01_GT", "sm", k=0), InputError, "--k"),
        (
            lambda: run_calibrate(store, "det", synthetic_ctc / "01_GT", "sm", temperature_prior=-1.0),
            InputError,
            "--temperature-prior",
        ),
        (lambda: run_uncertainty(store, "det", "fp", sigma_px=-1.0), InputError, "--sigma-px"),
        (lambda: uncertain(store, "det", 1.5), InputError, "--below"),
        (lambda: uncertain(store, "unsolved", 0.8), NotFoundError, "no solution"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert snapshot(store) == before
    r = CliRunner(mix_stderr=False).invoke(
        cli, ["uncertainty", "--movie", "det", "--method", "sm", "--k", "0", "--db", db_url]
    )
    assert r.exit_code == 2
    assert r.stderr.startswith("error: Invalid value for '--k': 0 is not in the range x>=1")
    assert len(r.stderr.splitlines()) == 1
    assert snapshot(store) == before


def test_joint_model_alternatives_and_refusals(store: Store, synthetic_ctc: Path) -> None:
    """A joint solve with gap-closing links: AS weighs the exact K best joint solutions, FP+A
    re-solves the joint model, MM (frame pairs only) is refused with its reason."""
    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=3)
    sid = run_solve(store, "det", method="joint", time_limit=60).solution_id
    run_id = run_uncertainty(store, "det", "as", k=3)
    summary = run_summary(store, run_id)
    assert summary["info"]["scope"] == "given"
    assert summary["alternatives"] == 2
    assert summary["rank0_links_differ"] == 0
    assert summary["rebuilt_links_differ"] == 0
    links = selected_link_p(store, run_id, sid)
    assert len(links) == 19
    assert np.median([q for _, q in links.values()]) > 0.9
    weights = [w for (w,) in rows(store, "SELECT weight FROM solution WHERE run_id = :r ORDER BY rank", r=run_id)]
    assert len(weights) == 2
    assert sum(weights) + summary["rank0_weight"] == pytest.approx(1.0)
    run_fpa = run_uncertainty(store, "det", "fpa", k=2)
    assert (
        len(rows(store, "SELECT * FROM edge_probability WHERE run_id = :r", r=run_fpa))
        == rows(store, "SELECT COUNT(*) FROM edge")[0][0]
    )
    with pytest.raises(InputError, match="mm needs a fixed segmentation with one-frame links"):
        run_uncertainty(store, "det", "mm")
    assert rows(store, "SELECT kind, status FROM run ORDER BY id DESC LIMIT 1") == [("uncertainty", "failed")]
