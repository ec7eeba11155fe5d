"""Link errors per case of ``generalise.py`` outputs, side by side: the count to judge a cost
change by, since one link moves LNK by ~0.0003 on the small cases and not at all visibly on the
large ones.

Reads each file's per-case ``trackdb.link_errors`` (missing and wrong GT links, by category,
from ``fixed_masks.link_errors``) and prints, per case and in total, missing + wrong for every
file and its difference from the first:

    python benchmarks/link_error_counts.py benchmarks/results/generalise.json new.json [...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import emit  # noqa: E402


def counts(path: Path) -> dict[str, dict[str, int]]:
    """case → {missing, wrong, border, total} of one generalise output."""
    out: dict[str, dict[str, int]] = {}
    for case in json.loads(path.read_text())["cases"]:
        errors = case["trackdb"].get("link_errors")
        if not isinstance(errors, dict):
            raise SystemExit(f"{path}: case {case['case']} has no link_errors (run generalise.py without --quick)")
        m, w = errors["missing"], errors["wrong"]
        out[case["case"]] = {
            "missing": int(m["total"]),
            "wrong": int(w["total"]),
            "border": int(m["border"] + w["border"]),
            "total": int(m["total"] + w["total"]),
        }
    return out


def compare(paths: list[Path]) -> dict[str, Any]:
    tables = [counts(p) for p in paths]
    cases = list(tables[0])
    rows = {}
    for case in cases:
        totals = [t[case]["total"] if case in t else None for t in tables]
        rows[case] = {
            "errors": totals,
            "border": [t[case]["border"] if case in t else None for t in tables],
            "change": [None if v is None else v - totals[0] for v in totals[1:]] if totals[0] is not None else None,
        }
    shared = [c for c in cases if all(c in t for t in tables)]
    total = [sum(t[c]["total"] for c in shared) for t in tables]
    return {
        "files": [str(p) for p in paths],
        "cases": rows,
        "total": total,
        "total_change": [v - total[0] for v in total[1:]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="generalise.py outputs; the first is the baseline")
    args = ap.parse_args()
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")
    emit("link_error_counts", compare(args.files), save=False)


if __name__ == "__main__":
    main()
