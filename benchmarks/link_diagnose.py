"""Which links the default pipeline gets wrong on a generalise case, and what they cost.

Runs the same stages as ``benchmarks/generalise.py`` in-process (``import_ctc --masks-only``,
``run_link`` with its chosen radius, ``build_solve`` with the defaults) and compares the selected
links with the ground truth's. For every GT link that was missed and every selected link that is
wrong it prints both cells (frame, label, area, centroid, whether the image edge cuts them,
P_start / P_end) and the costs the solver compared: the GT link's continuation cost (or its
division pair's), the alternative that was taken, the appear / disappear costs; and ``swaps``:
the pairs of GT tracks whose next cells were exchanged, sisters (and how soon after their
division) among them. To find causes, not to score: the scores are generalise.py's.
``--case speed`` diagnoses track_speed.py's movie (sparse migrating nuclei).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/link_diagnose.py --case stack_shallow [--limit 40] [--method lap]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixed_masks import ctc_links, read_table  # noqa: E402
from generalise import ALL_CASES, prepare  # noqa: E402

from solvers.costs import end_probabilities  # noqa: E402
from solvers.features import motion_space  # noqa: E402
from solvers.motion import touches_edge  # noqa: E402


@dataclasses.dataclass
class Case:
    """A generalise case tracked by the default pipeline in-process: the solve's graph,
    solution and final cost model, its candidates, and the GT links as (source, target) node
    indices of that graph."""

    name: str
    method: str
    dataset: Path
    cands: Any  # inference.types.Candidates, without masks
    built: Any  # trackdb.stages.solve's built solve
    gt_pairs: set[tuple[int, int]]
    gt_tracks: np.ndarray


def build_case(name: str, dt_gap: int, method: str = "joint", seed_offset: int = 0) -> Case:
    """Import, link and solve one case as generalise.py does (defaults, GT masks)."""
    from trackdb.io.import_ctc import import_ctc
    from trackdb.stages.link import run_link
    from trackdb.stages.solve import Method, build_solve
    from trackdb.store import runs
    from trackdb.store.core import Store
    from trackdb.store.graph import load_candidates
    from trackdb.store.runs import LinkParams, RunKind

    work = Path(tempfile.mkdtemp(prefix=f"diagnose-{name}-"))
    ds, info = prepare(name, False, work, seed_offset)
    spacing = tuple(info["spacing"]) if info["spacing"] else None
    dt = dt_gap if info.get("missed_rate") else 1
    store = Store(f"sqlite:///{work / 'db.sqlite'}", create=True)
    import_ctc(store, ds, "01", "m", masks_only=True, spacing=spacing)
    run_link(store, "m", dt=dt)
    movie = store.movie("m")
    link = runs.latest_run(store, movie.id, RunKind.LINK)
    assert link is not None
    cand_run = link.typed(LinkParams).candidate_run_id
    built = build_solve(
        store, movie, Method(method), link.id, cand_run, window=None, time_limit=300.0, gap=1e-4, iterations=4
    )
    cands, node_ids = load_candidates(store, cand_run, movie.ndim, with_masks=False)
    assert np.array_equal(node_ids, built.node_ids)
    key = {(int(t), int(lab)): i for i, (t, lab) in enumerate(zip(cands.t, cands.label))}
    gt_tracks = read_table(ds / "01_GT" / "TRA" / "man_track.txt")
    t0, l0, t1, l1 = ctc_links(gt_tracks)
    gt_pairs = {(key[(a, b)], key[(c, d)]) for a, b, c, d in zip(t0, l0, t1, l1) if (a, b) in key and (c, d) in key}
    return Case(name, method, ds, cands, built, gt_pairs, gt_tracks)


def diagnose(name: str, dt_gap: int, limit: int, method: str = "joint", seed_offset: int = 0) -> dict[str, Any]:
    case = build_case(name, dt_gap, method, seed_offset)
    cands, built, gt_pairs, gt_tracks, ds = case.cands, case.built, case.gt_pairs, case.gt_tracks, case.dataset
    g, sol, model = built.graph, built.solution, built.cost_model
    assert model is not None
    cells = model.cells
    src, dst = g.edge_source, g.edge_target
    edge_of = {(int(a), int(b)): e for e, (a, b) in enumerate(zip(src, dst))}
    sel = sol.edge_selected
    pred_pairs = {(int(src[e]), int(dst[e])) for e in np.flatnonzero(sel)}
    p_start, p_end = end_probabilities(cells, model.motion, model.params)
    cut = touches_edge(cells)
    geom = motion_space(cells)
    out_deg = np.bincount(src[sel], minlength=g.n_nodes)
    in_sel = np.full(g.n_nodes, -1)
    in_sel[dst[sel]] = src[sel]
    pairs = g.division_pairs if g.division_pairs is not None else np.zeros((0, 2), np.int64)
    pair_cost = g.division_pair_cost if g.division_pair_cost is not None else np.zeros(0)

    def cell(i: int) -> dict[str, Any]:
        return {
            "t": int(cands.t[i]),
            "label": int(cands.label[i]),
            "area": float(cands.area[i]),
            "centroid": [round(float(x), 1) for x in geom.centroid[i]],
            "cut": bool(cut[i]),
            "p_start": round(float(p_start[i]), 4),
            "p_end": round(float(p_end[i]), 4),
            "appear": round(float(g.appear_cost[i]), 2),
            "disappear": round(float(g.disappear_cost[i]), 2),
            "selected_out": [int(cands.label[j]) for j in dst[sel & (src == i)]],
            "selected_in": int(cands.label[in_sel[i]]) if in_sel[i] >= 0 else None,
        }

    def division_of(e: int) -> list[dict[str, Any]]:
        hit = np.flatnonzero((pairs[:, 0] == e) | (pairs[:, 1] == e))
        rows = []
        for p in hit[np.argsort(pair_cost[hit])][:3].tolist():
            a, b = pairs[p]
            rows.append(
                {
                    "daughters": [int(cands.label[dst[a]]), int(cands.label[dst[b]])],
                    "pair_extra": round(float(pair_cost[p]), 2),
                    "total": round(float(pair_cost[p] + g.edge_cost[a] + g.edge_cost[b]), 2),
                }
            )
        return rows

    def describe(i: int, j: int) -> dict[str, Any]:
        e = edge_of.get((i, j))
        return {
            "from": cell(i),
            "to": cell(j),
            "distance": round(float(np.linalg.norm(geom.centroid[j] - geom.centroid[i])), 2),
            "candidate": e is not None,
            "edge_cost": None if e is None else round(float(g.edge_cost[e]), 2),
            "divisions": [] if e is None else division_of(e),
            "source_divides_in_solution": bool(out_deg[i] >= 2),
        }

    missing = sorted(gt_pairs - pred_pairs, key=lambda p: (cands.t[p[0]], p))
    wrong = sorted(pred_pairs - gt_pairs, key=lambda p: (cands.t[p[0]], p))
    swaps = exchanges(missing, wrong, cands.t, cands.label, gt_tracks)
    mot = model.motion
    return {
        "case": name,
        "method": method,
        "dataset": str(ds),
        "gt_links": len(gt_pairs),
        "missing_total": len(missing),
        "wrong_total": len(wrong),
        "motion": {
            "sigma_motion": float(mot.sigma_motion),
            "growth_mean": float(mot.growth_mean),
            "growth_sigma": float(mot.growth_sigma),
            "appear_rate": None if mot.appear_rate is None else float(np.mean(mot.appear_rate)),
            "disappear_rate": None if mot.disappear_rate is None else float(np.mean(mot.disappear_rate)),
            "division_rate_mean": None if mot.division_rate is None else float(np.mean(mot.division_rate)),
            "union_mean": mot.union_mean,
            "union_sigma": mot.union_sigma,
            "sep_mean": mot.sep_mean,
            "sep_sigma": mot.sep_sigma,
            "perp_sigma": mot.perp_sigma,
            "ratio_sigma": mot.ratio_sigma,
            "cut_sigma": None if mot.cut_sigma is None else float(np.mean(mot.cut_sigma)),
            "dim": geom.dim,
            "persistence": None if mot.persistence is None else dataclasses.asdict(mot.persistence),
        },
        "swaps": swaps,
        "missing": [describe(i, j) for i, j in missing[:limit]],
        "wrong": [describe(i, j) for i, j in wrong[:limit]],
    }


def exchanges(
    missing: list[tuple[int, int]],
    wrong: list[tuple[int, int]],
    t: np.ndarray,
    label: np.ndarray,
    gt_tracks: np.ndarray,
) -> dict[str, Any]:
    """Pairs of GT tracks whose next cells the solution exchanged (i→j', k→j chosen for the GT's
    i→j, k→j'): how many there are, how many are sisters (one GT parent), and how many frames
    after their division the sisters were exchanged. Cells are GT masks, so a cell's label is
    its GT track."""
    parent = {int(r[0]): int(r[3]) for r in np.asarray(gt_tracks, np.int64)}
    start = {int(r[0]): int(r[1]) for r in np.asarray(gt_tracks, np.int64)}
    gt_next = dict(missing)
    chosen = set(wrong)
    rows = []
    seen: set[tuple[int, int]] = set()
    for i, j in missing:
        for k, j2 in missing:
            if k == i or (k, i) in seen or (i, j2) not in chosen or (k, j) not in chosen or gt_next.get(k) != j2:
                continue
            seen.add((i, k))
            a, b = int(label[i]), int(label[k])
            sisters = parent.get(a, 0) > 0 and parent.get(a) == parent.get(b)
            rows.append(
                {
                    "t": int(t[i]),
                    "tracks": [a, b],
                    "sisters": bool(sisters),
                    "frames_since_division": int(t[i]) - start.get(a, 0) if sisters else None,
                }
            )
    return {"total": len(rows), "sisters": sum(r["sisters"] for r in rows), "exchanges": rows}


def main() -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", required=True, choices=(*ALL_CASES, "speed"), help="speed: track_speed.py's movie")
    ap.add_argument("--gap-dt", type=int, default=3)
    ap.add_argument("--method", choices=("joint", "lap"), default="joint", help="as `trackdb solve --method`")
    ap.add_argument("--limit", type=int, default=60, help="links listed per kind")
    ap.add_argument("--seed-offset", type=int, default=0, help="as generalise.py's: the synthetic movie drawn again")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    res = diagnose(args.case, args.gap_dt, args.limit, args.method, args.seed_offset)
    text = json.dumps(res, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
