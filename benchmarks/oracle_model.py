"""Whether a case's link errors come from what the cost rounds estimate or from the cost model
itself.

Tracks a generalise case as the default pipeline does (``link_diagnose.build_case``), then
re-estimates the final cost model from the *ground-truth* links instead of the solve's
(``solvers.motion.estimate_motion`` on the GT selection: motion field, noise scales, rates) and
solves the same candidates with it; and swaps the GT-fitted value of one field at a time into
the default model. Errors are missing + wrong GT links. If the GT-fitted model still makes most
of the errors, no estimate of this model's parameters removes them: the evidence the costs
read does not tell those links apart. Also prints what the GT configuration costs minus the
chosen one under the default model, per kind of cost (appear, disappear, continuations,
divisions: which the truth pays more for).

    OMP_NUM_THREADS=1 python benchmarks/oracle_model.py [--cases epidermis,nuclei_border] [--name NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import emit, log  # noqa: E402
from link_diagnose import build_case  # noqa: E402

from solvers.assignment import solve_fixed_or_joint  # noqa: E402
from solvers.model import completion, cost_vector  # noqa: E402
from solvers.motion import MotionModel, estimate_motion  # noqa: E402
from solvers.types import CandidateGraph, Solution, SolveStatus  # noqa: E402

CASES = ("bacteria", "epidermis", "nuclei_border", "enter_leave_die", "stack_shallow", "stack_deep", "every4th")
FIELDS = (
    "shift",
    "sigma_motion",
    "growth_sigma",
    "sep_sigma",
    "perp_sigma",
    "ratio_sigma",
    "union_sigma",
    "division_rate",
    "appear_rate",
    "disappear_rate",
)


def config_costs(g: CandidateGraph, sel: np.ndarray) -> dict[str, float]:
    """The objective of selecting edges ``sel`` (every node selected), by kind of cost: the
    program's own coefficients and completed selection (``solvers.model``), node costs left out."""
    n, e = g.n_nodes, g.n_edges
    terms = cost_vector(g) * completion(g, np.ones(n, bool), sel)
    edge_terms = terms[n : n + e]
    n_out = np.bincount(g.edge_source[sel], minlength=n)
    dividing = n_out[g.edge_source] == 2
    return {
        "appear": float(terms[n + e : 2 * n + e].sum()),
        "disappear": float(terms[2 * n + e : 3 * n + e].sum()),
        "continuations": float(edge_terms[~dividing].sum()),
        # the mother's division cost and the chosen pairs' costs (the q columns cost 0)
        "divisions": float(edge_terms[dividing].sum() + terms[3 * n + e :].sum()),
    }


def errors(sel: np.ndarray, gt: np.ndarray) -> dict[str, int]:
    return {"missing": int((gt & ~sel).sum()), "wrong": int((sel & ~gt).sum()), "errors": int((gt ^ sel).sum())}


def oracle(name: str, dt_gap: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    case = build_case(name, dt_gap)
    built = case.built
    g, sol, model = built.graph, built.solution, built.cost_model
    assert model is not None
    src, dst = g.edge_source, g.edge_target
    edge_of = {(int(a), int(b)): e for e, (a, b) in enumerate(zip(src, dst))}
    gt = np.zeros(g.n_edges, bool)
    gt[[edge_of[p] for p in case.gt_pairs if p in edge_of]] = True
    not_candidates = sum(p not in edge_of for p in case.gt_pairs)
    gt_sol = Solution(np.ones(g.n_nodes, bool), gt, 0.0, SolveStatus.OPTIMAL)
    fitted = estimate_motion(
        model.cells, model.edge_source, model.edge_target, gt_sol, model.motion, model.params.div_rate_bounds
    )

    def solved(motion: MotionModel) -> dict[str, int]:
        graph = dataclasses.replace(model, motion=motion).graph()
        return errors(np.asarray(solve_fixed_or_joint(graph, time_limit=300.0).edge_selected, bool), gt)

    chosen = np.asarray(sol.edge_selected, bool)
    truth, picked = config_costs(g, gt), config_costs(g, chosen)
    scalars = {}
    for f in FIELDS:
        a, b = getattr(model.motion, f), getattr(fitted, f)
        if f != "shift" and a is not None and b is not None:
            scalars[f] = {"solve": float(f"{np.mean(a):.4g}"), "gt_fitted": float(f"{np.mean(b):.4g}")}
    return {
        "gt_links": int(gt.sum()) + not_candidates,
        "gt_links_not_candidates": not_candidates,
        "default": errors(chosen, gt),
        "gt_fitted_model": solved(fitted),
        "one_field_from_gt": {f: solved(dataclasses.replace(model.motion, **{f: getattr(fitted, f)})) for f in FIELDS},
        "values": scalars,
        "shift_change_px": {
            "median": round(float(np.median(np.linalg.norm(fitted.shift - model.motion.shift, axis=1))), 3),
            "p90": round(float(np.percentile(np.linalg.norm(fitted.shift - model.motion.shift, axis=1), 90)), 3),
        },
        "gt_minus_chosen_cost": {k: round(truth[k] - picked[k], 1) for k in truth},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--gap-dt", type=int, default=3)
    ap.add_argument("--name", default=None, help="save as benchmarks/results/NAME.json (default: print only)")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    for name in args.cases.split(","):
        log(f"{name} ...")
        out[name] = oracle(name, args.gap_dt)
        log(f"  default {out[name]['default']['errors']}, GT-fitted model {out[name]['gt_fitted_model']['errors']}")
    result = {
        "cases": out,
        "errors_default": sum(r["default"]["errors"] for r in out.values()),
        "errors_gt_fitted_model": sum(r["gt_fitted_model"]["errors"] for r in out.values()),
    }
    emit(args.name or "oracle_model", result, save=args.name is not None)


if __name__ == "__main__":
    main()
