"""Compare a benchmark's new figures with its recorded ones (benchmarks/results/<name>.json).

A run rewrites its own ``benchmarks/results/<name>.json``, so the recorded figures are the
committed version of that file (``--rev``, default HEAD):

    OMP_NUM_THREADS=1 python benchmarks/track_gt.py >/dev/null   # rewrites results/track_gt.json
    python benchmarks/compare.py track_gt                        # ... against HEAD's version
    python benchmarks/compare.py track_gt --rev HEAD~5 --tolerance 0.02
    python benchmarks/compare.py track_gt new.json --rev ''      # a saved output vs the file on disk

Prints one JSON object: every numeric figure (by its path in the JSON) whose relative change
exceeds the tolerance, figures that appeared or disappeared, and the provenance (command,
commit, time, load) of both runs. Times are noisy on a shared machine; accuracy figures should
not move without a reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, ROOT  # noqa: E402

PROVENANCE = ("command", "omp_num_threads", "commit", "finished_at", "loadavg")


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


def read_recorded(name: str, rev: str) -> dict[str, Any]:
    """The record of ``name`` committed at ``rev`` (the file on disk when ``rev`` is empty)."""
    path = RESULTS / f"{name}.json"
    if not rev:
        if not path.is_file():
            sys.exit(f"error: no recorded figures {path}")
        return dict(json.loads(path.read_text()))
    spec = f"{rev}:{path.relative_to(ROOT).as_posix()}"
    proc = subprocess.run(["git", "show", spec], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"error: {spec} is not committed ({proc.stderr.strip()}); --rev '' compares with the file on disk")
    return dict(json.loads(proc.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="benchmark name (file stem in benchmarks/results)")
    ap.add_argument(
        "new", nargs="?", default=None, help="the new JSON: a path, - for stdin (default: results/<name>.json on disk)"
    )
    ap.add_argument("--rev", default="HEAD", help="git revision holding the recorded figures ('' = the file on disk)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative change to report")
    args = ap.parse_args()
    recorded = read_recorded(args.name, args.rev)
    if args.new is None:
        text = (RESULTS / f"{args.name}.json").read_text()
    else:
        text = sys.stdin.read() if args.new == "-" else Path(args.new).read_text()
    new = json.loads(text)
    is_record = isinstance(new, dict) and "benchmark" in new and "result" in new
    out = compare(recorded["result"], new["result"] if is_record else new, args.tolerance)
    out["recorded"] = {k: recorded.get(k) for k in PROVENANCE}
    out["new"] = {k: new.get(k) for k in PROVENANCE} if is_record else "plain output (no provenance)"
    if is_record and new.get("command") != recorded.get("command"):
        out["warning"] = "the two runs used different commands: figures may not be like for like"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
