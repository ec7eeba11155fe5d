"""Link-probability calibration on data the calibration did not see (issue 11, item 7).

Per set, on its ground-truth masks as detections, through the documented CLI with its
defaults (README "Doubt and calibration"): ``init``, ``import-ctc --masks-only`` (with
``--spacing`` for the synthetic stacks), ``link``, ``solve``, ``calibrate --method as`` (the
set's own temperature, in-sample) and ``uncertainty --method as --k 10`` (raw, T = 1). Sets:
the bacteria movie, the mouse epidermis (``../shared/data``) and the synthetic movies of
:mod:`synthetic.cases` (as ``benchmarks/generalise.py`` generates them).

Judged figure, leave-one-out: for every set X the temperature is fitted on the labelled cells
of every OTHER set, pooled (the NLL of the true options with the log-normal prior that
``trackdb calibrate`` uses, :func:`solvers.calibration.fit_temperature`, each set's cells in
their own softmax groups), and ``trackdb uncertainty --method as --k 10 --temperature T``
is run on X; the ECE (15 bins) and the reliability bins of the probabilities it stored, on
the current solution's links whose target has ground truth, are X's held-out figures. Beside
them: the raw ECE (T = 1), the in-sample ECE after ``calibrate``, and the ECE of X under each
other set's own ``calibrate`` temperature (the stored raw probabilities re-tempered:
``p^(1/T)`` renormalised per cell is exactly what ``--temperature T`` computes from the same
scores). Ground truth as ``trackdb calibrate`` derives it (:mod:`trackdb.stages.calibrate`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration_generalise.py [--cases a,b]
        [--quick] [--pythonpath DIR] [--keep]

Prints ONE JSON object (``benchmarks/results/calibration_generalise.json``); logs on stderr.
The ``gaps`` case (``link --dt 3``) is not in the default list: with gap-closing links AS is
no longer per frame pair and enumerates the whole movie's K best by re-solves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import emit  # noqa: E402
from fixed_masks import TrackdbCLI, code_version, log, scratch_dir  # noqa: E402
from generalise import prepare, with_zero_raw  # noqa: E402

from solvers.calibration import fit_temperature, reliability_diagram  # noqa: E402
from solvers.uncertainty import group_softmax  # noqa: E402

CASES = (
    "bacteria",
    "epidermis",
    "nuclei_border",
    "enter_leave_die",
    "stack_shallow",
    "stack_deep",
    "every2nd",
    "every4th",
)
GOAL_ECE = 0.03
K = 10


def _json(text: str) -> dict[str, Any]:
    """The last JSON object a command printed."""
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def truth(db: Path) -> dict[str, Any]:
    """The current solution's model with its ground truth, as ``trackdb calibrate`` labels it:
    edge ids, option truth, labelled cells, and the solution's links that have ground truth."""
    from solvers.calibration import option_truth
    from trackdb.stages.calibrate import match_nodes, read_ground_truth, true_mothers
    from trackdb.stages.uncertainty import _stored_selection, rebuild_model
    from trackdb.store import Store, runs
    from trackdb.store.graph import load_candidates
    from trackdb.store.runs import CalibrateParams, LinkParams, RunKind, SolveParams

    with Store(f"sqlite:///{db}") as store:
        movie = store.movie("m")
        sid, solve_run = runs.current_solve(store, movie)
        model = rebuild_model(store, movie, sid, solve_run)
        g = model.graph
        cal = runs.latest_run(store, movie.id, RunKind.CALIBRATE)
        assert cal is not None
        gt_dir = Path(cal.typed(CalibrateParams).gt)
        link_run_id = solve_run.typed(SolveParams).link_run_id
        assert link_run_id is not None
        link = runs.get_run(store, link_run_id).typed(LinkParams)
        cands, ids = load_candidates(store, link.candidate_run_id, movie.ndim, with_masks=True)
        pos = np.searchsorted(ids, model.node_ids)
        gt, tracks = read_ground_truth(gt_dir, movie)
        label, iou = match_nodes(cands.t[pos], cands.bbox[pos], [cands.masks[i] for i in pos.tolist()], gt)
        mother = true_mothers(g.node_t, label, iou, tracks)
        option_true, labelled = option_truth(g.edge_source, g.edge_target, mother)
        _, edge_sel, _ = _stored_selection(store, model)
    return {
        "edge_ids": model.edge_ids,
        "edge_target": g.edge_target,
        "n_nodes": g.n_nodes,
        "option_true": option_true,
        "cells": labelled & (g.node_t > g.node_t.min()),
        "evaluated": np.flatnonzero(edge_sel & (mother[g.edge_target] != -2)),
    }


def stored_edge_p(db: Path, run_id: int, edge_ids: np.ndarray) -> np.ndarray:
    """The edge probabilities an uncertainty run stored, in the order of ``edge_ids``."""
    from trackdb.store import Store
    from trackdb.store.queries import run_sql

    with Store(f"sqlite:///{db}") as store:
        df = run_sql(store, "SELECT edge_id, p FROM edge_probability WHERE run_id = :r", {"r": int(run_id)})
    ids, p = df["edge_id"].to_numpy(np.int64), df["p"].to_numpy(np.float64)
    order = np.argsort(ids)
    at = np.searchsorted(ids[order], edge_ids)
    if np.any(at >= len(ids)) or np.any(ids[order][np.minimum(at, len(ids) - 1)] != edge_ids):
        raise RuntimeError(f"uncertainty run {run_id} did not store every edge of the model")
    return p[order][at]


def option_scores(t: dict[str, Any], edge_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities of every option (edges, then "appears" per cell) from stored edge
    probabilities: softmax-equivalent to the method's scores (a per-cell constant apart)."""
    n = t["n_nodes"]
    appear = 1.0 - np.bincount(t["edge_target"], weights=edge_p, minlength=n)
    score = np.log(np.clip(np.concatenate([edge_p, appear]), 1e-300, None))
    return score, np.concatenate([t["edge_target"], np.arange(n)])


def tempered(t: dict[str, Any], edge_p: np.ndarray, temperature: float) -> np.ndarray:
    score, group = option_scores(t, edge_p)
    p: np.ndarray = group_softmax(score, group, t["n_nodes"], temperature)[: len(edge_p)]
    return p


def score(t: dict[str, Any], edge_p: np.ndarray) -> dict[str, Any]:
    """ECE, reliability bins and the error picture of the solution's links with ground truth."""
    ev = t["evaluated"]
    ok = t["option_true"][: len(edge_p)][ev]
    p = np.clip(edge_p[ev], 0.0, 1.0)
    rd = reliability_diagram(p, ok)
    return {
        "ece": round(rd.ece, 4),
        "links": int(len(ev)),
        "accuracy": round(float(ok.mean()), 4),
        "mean_p": round(float(p.mean()), 4),
        "mean_p_correct": round(float(p[ok].mean()), 4) if ok.any() else None,
        "mean_p_wrong": round(float(p[~ok].mean()), 4) if (~ok).any() else None,
        "p_range_correct": [round(float(p[ok].min()), 4), round(float(p[ok].max()), 4)] if ok.any() else None,
        "wrong_above_0.95": int(np.sum(~ok & (p > 0.95))),
        "bins": [
            {"n": int(n), "confidence": round(float(c), 4), "accuracy": round(float(a), 4)}
            for n, c, a in zip(rd.count, rd.confidence, rd.accuracy)
            if n
        ],
    }


def run_set(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The CLI steps on one set (its own store), raw probabilities scored."""
    ds, info = prepare(name, args.quick, work)
    db = work / "t.sqlite"
    cli = TrackdbCLI(db, args.pythonpath)
    out: dict[str, Any] = {"case": name, "n_frames": info.get("n_frames"), "n_cells": info.get("n_cells"), "steps": {}}

    def step(label: str, *cmd: str) -> dict[str, Any]:
        rc, so, se, sec = cli.run(*cmd)
        out["steps"][label] = {"command": "trackdb " + " ".join(cmd), "seconds": round(sec, 2), "returncode": rc}
        if rc != 0:
            raise RuntimeError(f"{label}: exit {rc}: " + (se.strip().splitlines() or ["(no message)"])[-1])
        return _json(so) if label in ("solve", "calibrate", "uncertainty") else {}

    step("init", "init")
    imp = ["import-ctc", str(ds), "--seq", "01", "--movie", "m", "--masks-only"]
    if info.get("spacing"):
        imp += ["--spacing", ",".join(f"{s:g}" for s in info["spacing"])]
    try:
        step("import", *imp)
    except RuntimeError:
        if (ds / "01").is_dir():
            raise
        ds = with_zero_raw(ds, work / "zero-raw")
        imp[1] = str(ds)
        step("import", *imp)
    step("link", "link", "--movie", "m")
    solved = step("solve", "solve", "--movie", "m")
    gt = str(ds / "01_GT")
    cal = step("calibrate", "calibrate", "--movie", "m", "--gt", gt, "--method", "as", "--k", str(K), "--name", "self")
    unc = step("uncertainty", "uncertainty", "--movie", "m", "--method", "as", "--k", str(K))
    t = truth(db)
    raw = stored_edge_p(db, unc["run_id"], t["edge_ids"])
    out.update(
        solve={k: solved.get(k) for k in ("links", "tracks", "solver", "solve_seconds")},
        calibrate={
            k: cal.get(k)
            for k in (
                "temperature",
                "ece_before",
                "ece_after",
                "links",
                "accuracy",
                "calibration_cells",
                "wrong_calibration_cells",
            )
        },
        uncertainty_info=unc.get("info"),
        raw=score(t, raw),
    )
    out["_truth"], out["_raw"], out["_db"], out["_cli"] = t, raw, db, cli
    return out


def pooled_temperature(sets: list[dict[str, Any]]) -> float:
    """The temperature of the labelled cells of ``sets`` together (calibrate's fit and prior)."""
    from trackdb.stages.calibrate import TEMPERATURE_PRIOR

    scores, groups, trues = [], [], []
    offset = 0
    for s in sets:
        t = s["_truth"]
        sc, gr = option_scores(t, s["_raw"])
        keep = t["cells"][gr]
        scores.append(sc[keep])
        groups.append(gr[keep] + offset)
        trues.append(t["option_true"][keep])
        offset += t["n_nodes"]
    return fit_temperature(
        np.concatenate(scores), np.concatenate(groups), np.concatenate(trues), prior_sigma=TEMPERATURE_PRIOR
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--quick", action="store_true", help="small movies (smoke run)")
    ap.add_argument("--pythonpath", default=None, help="where the trackdb subprocesses import trackdb from")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    ap.add_argument("--name", default="calibration_generalise", help="results file name")
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c]
    t0 = time.perf_counter()
    done, failed = [], {}
    for name in names:
        work = scratch_dir(f"calgen-{name}-")
        log(f"== {name} ({work})")
        try:
            done.append(run_set(name, args, work))
            log(f"   raw ECE {done[-1]['raw']['ece']}, in-sample T {done[-1]['calibrate']['temperature']}")
        except Exception as exc:  # one set's failure is reported, the others still run
            failed[name] = f"{type(exc).__name__}: {exc}"
            log(f"   failed: {failed[name]}")
    for s in done:
        others = [o for o in done if o is not s]
        s["cross"] = {}
        for o in others:  # each other set's own calibrate temperature on this set
            tt = o["calibrate"]["temperature"]
            s["cross"][o["case"]] = {
                "temperature": tt,
                "ece": score(s["_truth"], tempered(s["_truth"], s["_raw"], tt))["ece"],
            }
        if not others:
            continue
        t_loo = pooled_temperature(others)
        cli: TrackdbCLI = s["_cli"]
        rc, so, se, sec = cli.run(
            "uncertainty", "--movie", "m", "--method", "as", "--k", str(K), "--temperature", repr(t_loo)
        )
        if rc != 0:
            s["held_out"] = {"error": se.strip().splitlines()[-1:]}
            continue
        stored = stored_edge_p(s["_db"], _json(so)["run_id"], s["_truth"]["edge_ids"])
        predicted = tempered(s["_truth"], s["_raw"], t_loo)
        s["held_out"] = {
            "temperature": round(t_loo, 4),
            "fitted_on": [o["case"] for o in others],
            "command": f"trackdb uncertainty --movie m --method as --k {K} --temperature {t_loo!r}",
            "seconds": round(sec, 2),
            "max_diff_from_retempered_raw": float(np.max(np.abs(stored - predicted))) if len(stored) else 0.0,
            **score(s["_truth"], stored),
        }
    table = [
        {
            "case": s["case"],
            "links": s["raw"]["links"],
            "accuracy": s["raw"]["accuracy"],
            "ece_raw": s["raw"]["ece"],
            "ece_in_sample": s["calibrate"]["ece_after"],
            "t_in_sample": s["calibrate"]["temperature"],
            "ece_held_out": (s.get("held_out") or {}).get("ece"),
            "t_held_out": (s.get("held_out") or {}).get("temperature"),
            "ece_worst_other_set_t": max((c["ece"] for c in s["cross"].values()), default=None),
        }
        for s in done
    ]
    held = [r["ece_held_out"] for r in table if r["ece_held_out"] is not None]
    result = {
        "benchmark": "calibration_generalise",
        "trackdb_code": code_version(args.pythonpath),
        "quick": args.quick,
        "k": K,
        "method": "as",
        "goal_ece": GOAL_ECE,
        "goal_met": bool(held) and not failed and max(held) <= GOAL_ECE,
        "table": table,
        "failed": failed,
        "sets": [{k: v for k, v in s.items() if not k.startswith("_")} for s in done],
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    if not args.keep:
        for s in done:
            shutil.rmtree(Path(s["_db"]).parent, ignore_errors=True)
    emit(args.name, result)


if __name__ == "__main__":
    main()
