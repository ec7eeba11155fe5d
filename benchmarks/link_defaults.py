"""The link radius and k trackdb chooses from the cells (issue 11): do the true links survive?

Per case, on the ground-truth masks as candidates (physical units from each case's spacing): the
radius and k of :func:`trackdb.stages.link.choose_link`, the recall of the true links among the
candidate links of that rule (continuations, divisions and, on the gap case, links across up to
``--gap-dt`` frames), the candidate links per cell, and the same for fixed values (the old
default 60 px / k 10, or ``--fixed R,K``). No solve: this isolates what the link stage gives the
solver. Cases: the bacteria and mouse-epidermis annotations (``../shared/data``) and the
synthetic movies of :mod:`synthetic.cases` (and ``speed``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/link_defaults.py [--quick] [--cases a,b]
        [--fixed 60,10] [--gap-dt 3]

Prints one JSON object (also benchmarks/results/link_defaults.json).

``--forest`` instead runs the bacteria movie's probability-map candidate forest (the map of
``pipeline_store.py --tasks prob``) through the store: ``run_link`` with the defaults and with
``--forest-fixed`` (the README's 100 px / k 12), each then ``solve --method joint``, and scores
both (JSON in benchmarks/results/link_defaults_forest.json): nested candidates count as cells
here, so this checks the rule where "cells" are competing hypotheses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from common import emit, log  # noqa: E402
from fixed_masks import read_frames, read_table  # noqa: E402

from inference.regions import candidates_from_labels  # noqa: E402
from synthetic.cases import CASES, case  # noqa: E402
from synthetic.movies import generate  # noqa: E402
from trackdb.io.import_ctc import lineage_links  # noqa: E402
from trackdb.stages.link import choose_link, link_cells  # noqa: E402
from trackdb.store.runs import LinkParams  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REAL = {"bacteria": DATA / "bacteria-divisualisation", "epidermis": DATA / "mouse-epidermis-area1"}
ALL = (*REAL, *CASES, "speed")


def movie_of(name: str, quick: bool) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    if name in REAL:
        tra = REAL[name] / "01_GT" / "TRA"
        masks = read_frames(tra, "man_track")
        return masks, read_table(tra / "man_track.txt"), (1.0,) * (masks.ndim - 1)
    m = generate(case(name, quick))
    return m.masks, m.tracks, tuple(m.spacing)


def recall(cands: Any, tracks: np.ndarray, params: LinkParams, spacing: tuple[float, ...]) -> dict[str, Any]:
    """Recall of the true links (those within ``params.dt`` frames) among the rule's links."""
    t0 = time.perf_counter()
    edges = link_cells(cands, params, spacing)
    seconds = time.perf_counter() - t0
    src, dst = lineage_links(cands.t, cands.label, tracks)
    near = (cands.t[dst] - cands.t[src]) <= params.dt
    true = set(zip(src[near].tolist(), dst[near].tolist()))
    have = set(zip(edges.source.tolist(), edges.target.tolist()))
    missed = true - have
    return {
        "max_distance": round(params.max_distance, 3),
        "k": params.k,
        "true_links": len(true),
        "missed": len(missed),
        "recall": round(1 - len(missed) / max(len(true), 1), 5),
        "links_per_cell": round(len(edges.source) / max(len(cands), 1), 2),
        "link_seconds": round(seconds, 2),
    }


def forest(fixed: tuple[float, int]) -> dict[str, Any]:
    """Defaults against fixed link values on the bacteria probability-map forest, solved."""
    import os
    import tempfile

    os.environ.setdefault("TQDM_DISABLE", "1")
    import tifffile
    from pipeline_store import scores

    from inference.synthetic import prob_from_labels
    from trackdb.io.import_ctc import import_ctc
    from trackdb.stages.candidates import run_candidates
    from trackdb.stages.link import run_link
    from trackdb.stages.solve import run_solve
    from trackdb.store import Store, runs

    data = REAL["bacteria"]
    tmp = Path(tempfile.mkdtemp(prefix="link-forest-"))
    labels = read_frames(data / "01_GT" / "TRA", "man_track")
    tifffile.imwrite(tmp / "prob.tif", np.stack([prob_from_labels(f, seed=t) for t, f in enumerate(labels)]))
    out: dict[str, Any] = {}
    for mode, kw in (("defaults", {}), ("fixed", {"max_distance": fixed[0], "k": fixed[1]})):
        with Store(f"sqlite:///{tmp / mode}.sqlite", create=True) as store:
            import_ctc(store, data, "01", "prob", no_gt=True)
            run_candidates(store, "prob", prob=tmp / "prob.tif", progress=False)
            t0 = time.perf_counter()
            run_id = run_link(store, "prob", **kw)  # type: ignore[arg-type]
            link_s = time.perf_counter() - t0
            p = runs.get_run(store, run_id).typed(LinkParams)
            summary = runs.get_run(store, run_id).summary or {}
            t0 = time.perf_counter()
            res = run_solve(store, "prob", method="joint")
            solve_s = time.perf_counter() - t0
            out[mode] = {
                "max_distance": round(p.max_distance, 3),
                "k": p.k,
                "reason": (p.chosen or {}).get("reason"),
                "links": summary.get("links"),
                "link_seconds": round(link_s, 2),
                "solve_seconds": round(solve_s, 2),
                "status": res.status,
                **scores(store, "prob", data / "01_GT", res.solution_id),
            }
        log(mode, out[mode])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(ALL))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fixed", default="60,10", help="R,K: fixed radius (pixels, as the old default) and k")
    ap.add_argument("--gap-dt", type=int, default=3, help="--dt on the gap case")
    ap.add_argument("--forest", action="store_true", help="the bacteria probability-map forest instead (solved)")
    ap.add_argument("--forest-fixed", default="100,12", help="R,K compared with the defaults on the forest")
    args = ap.parse_args()
    if args.forest:
        r, k = args.forest_fixed.split(",")
        emit("link_defaults_forest", {"fixed": {"max_distance": float(r), "k": int(k)}, **forest((float(r), int(k)))})
        return
    fixed_r, fixed_k = (float(v) for v in args.fixed.split(","))
    rows = []
    for name in [c for c in args.cases.split(",") if c]:
        masks, tracks, spacing = movie_of(name, args.quick)
        cands = candidates_from_labels(masks)
        dt = args.gap_dt if name == "gaps" else 1
        t0 = time.perf_counter()
        choice = choose_link(cands.t, cands.centroid, cands.area, spacing, dt)
        choose_s = time.perf_counter() - t0
        chosen = LinkParams(0, choice.max_distance, choice.k, dt, units="physical")
        old = LinkParams(0, fixed_r, int(fixed_k), dt)  # pixels, as every link before spacing
        row = {
            "case": name,
            "spacing": list(spacing),
            "cells": len(cands),
            "dt": dt,
            "chosen": {**recall(cands, tracks, chosen, spacing), "choose_seconds": round(choose_s, 3)},
            "reason": choice.reason(),
            "fixed": recall(cands, tracks, old, spacing),
        }
        log(f"{name}: chosen {row['chosen']}, fixed {row['fixed']}")
        rows.append(row)
    emit(
        "link_defaults",
        {
            "quick": args.quick,
            "fixed": {"max_distance_px": fixed_r, "k": int(fixed_k)},
            "table": [
                {
                    "case": r["case"],
                    "chosen R/k": f"{r['chosen']['max_distance']}/{r['chosen']['k']}",
                    "chosen recall": r["chosen"]["recall"],
                    "chosen links/cell": r["chosen"]["links_per_cell"],
                    "fixed recall": r["fixed"]["recall"],
                    "fixed links/cell": r["fixed"]["links_per_cell"],
                }
                for r in rows
            ],
            "cases": rows,
        },
    )


if __name__ == "__main__":
    main()
