"""Compare a benchmark's new JSON with its last recorded figures (benchmarks/results/<name>.json).

    python benchmarks/track_gt.py > /tmp/new.json
    python benchmarks/compare.py track_gt /tmp/new.json            # or: ... track_gt - < /tmp/new.json
    python benchmarks/compare.py track_gt /tmp/new.json --tolerance 0.02

Prints one JSON object: every numeric figure (by its path in the JSON) whose relative change
exceeds the tolerance, figures that appeared or disappeared, and the provenance of the recorded
run. Times are noisy on a shared machine; accuracy figures should not move without a reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS  # noqa: E402


def leaves(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value by path (``a.b.0.c``); booleans are not numbers here."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(leaves(v, f"{prefix}{i}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def compare(old: Any, new: Any, tolerance: float) -> dict[str, Any]:
    a, b = leaves(old), leaves(new)
    changed = {}
    for key in sorted(a.keys() & b.keys()):
        x, y = a[key], b[key]
        scale = max(abs(x), abs(y), 1e-12)
        if abs(y - x) / scale > tolerance:
            changed[key] = {"recorded": x, "new": y, "relative": round((y - x) / scale, 4)}
    return {"changed": changed, "only_recorded": sorted(a.keys() - b.keys()), "only_new": sorted(b.keys() - a.keys())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="benchmark name (file stem in benchmarks/results)")
    ap.add_argument("new", help="the new JSON output (a path, or - for stdin)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative change to report")
    args = ap.parse_args()
    recorded_path = RESULTS / f"{args.name}.json"
    if not recorded_path.is_file():
        sys.exit(f"error: no recorded figures {recorded_path}")
    recorded = json.loads(recorded_path.read_text())
    text = sys.stdin.read() if args.new == "-" else Path(args.new).read_text()
    new = json.loads(text)
    new = new.get("result", new) if isinstance(new, dict) and "benchmark" in new else new
    out = compare(recorded["result"], new, args.tolerance)
    out["recorded"] = {k: recorded.get(k) for k in ("command", "commit", "finished_at", "loadavg")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
