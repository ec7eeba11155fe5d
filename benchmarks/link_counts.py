"""Link errors of one solve method over generalise cases: missing and wrong GT links and the
exchanges among them (``link_diagnose.diagnose`` per case, no listings).

For a method generalise.py does not run (it runs the default, joint): ``--method lap`` is
``trackdb solve --method lap`` with its own cost rounds. The gap case needs links over several
frames, which the LAP does not take, so it is left out of the default list.

    OMP_NUM_THREADS=1 python benchmarks/link_counts.py --method lap [--cases a,b] [--name NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import emit, log  # noqa: E402
from link_diagnose import diagnose  # noqa: E402

CASES = (
    "bacteria",
    "epidermis",
    "nuclei_border",
    "enter_leave_die",
    "stack_shallow",
    "stack_deep",
    "every2nd",
    "every4th",
    "speed",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=("joint", "lap"), default="lap")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--gap-dt", type=int, default=3)
    ap.add_argument("--name", default=None, help="save as benchmarks/results/NAME.json (default: print only)")
    args = ap.parse_args()
    out: dict[str, Any] = {"method": args.method, "cases": {}}
    for case in [c for c in args.cases.split(",") if c]:
        t = time.perf_counter()
        log(f"{case} ...")
        r = diagnose(case, args.gap_dt, 0, args.method)
        out["cases"][case] = {
            "gt_links": r["gt_links"],
            "missing": r["missing_total"],
            "wrong": r["wrong_total"],
            "errors": r["missing_total"] + r["wrong_total"],
            "exchanges": r["swaps"]["total"],
            "sister_exchanges": r["swaps"]["sisters"],
            "seconds": round(time.perf_counter() - t, 1),
        }
    out["errors"] = sum(c["errors"] for c in out["cases"].values())
    emit(args.name or "link_counts", out, save=args.name is not None)


if __name__ == "__main__":
    main()
