"""How much the generalise figures move with the draw of the synthetic movies: per case, over
several ``generalise.py --seed-offset N`` outputs (fresh movies of the same kinds), trackdb's and
laptrack's LNK, TRA and division F1 (minimum, median, maximum) and trackdb's link errors, and
on how many draws trackdb's LNK is at least laptrack's.

    python benchmarks/generalise_spread.py OUT1.json OUT2.json [...] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import emit  # noqa: E402
from link_error_counts import counts  # noqa: E402

METRICS = ("LNK", "TRA", "division_f1")


def _spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"min": round(float(v.min()), 4), "median": round(float(np.median(v)), 4), "max": round(float(v.max()), 4)}


def spread(paths: list[Path]) -> dict[str, Any]:
    """Per case present in every file: the spread of each tracker's metrics over the files."""
    runs = [{c["case"]: c for c in json.loads(p.read_text())["cases"]} for p in paths]
    errors = [counts(p) for p in paths]
    shared = [c for c in runs[0] if all(c in r for r in runs)]
    out: dict[str, Any] = {}
    for case in shared:
        rows = [r[case] for r in runs]
        row: dict[str, Any] = {
            "draws": len(rows),
            "seeds": [r.get("seed", r.get("dynamics", {}).get("seed")) for r in rows],
        }
        for tracker in ("trackdb", "laptrack"):
            row[tracker] = {m: _spread([float(r[tracker][m]) for r in rows]) for m in METRICS}
        row["trackdb"]["link_errors"] = [e[case]["total"] for e in errors]
        row["trackdb_lnk_at_least_laptrack"] = sum(
            float(r["trackdb"]["LNK"]) >= float(r["laptrack"]["LNK"]) for r in rows
        )
        out[case] = row
    return {"files": [str(p) for p in paths], "cases": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="generalise.py outputs (one per draw)")
    ap.add_argument("--name", default=None, help="save as benchmarks/results/NAME.json (default: print only)")
    args = ap.parse_args()
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")
    emit(args.name or "generalise_spread", spread(args.files), save=args.name is not None)


if __name__ == "__main__":
    main()
