"""`make demo` timed: wall time of each step of scripts/demo.sh, the load it ran under and the
disk its output takes (what the README quotes). Prints one JSON object (the demo's own output
goes to stderr)::

    .venv/bin/python benchmarks/demo_timing.py [--out DIR] [--data DATASET]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, ROOT, emit, log  # noqa: E402


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/trackdb-demo-out"))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    env = {**os.environ, "OUT": str(args.out), "DATA": str(args.data), "VENV": str(ROOT / ".venv")}
    samples: list[list[float]] = []
    done = threading.Event()

    def sample() -> None:  # the 1-minute load every 15 s while the demo runs
        while not done.wait(15.0):
            samples.append(loadavg())

    sampler = threading.Thread(target=sample, daemon=True)
    before = loadavg()
    sampler.start()
    steps: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        if line.startswith("== "):
            now = time.perf_counter() - t0
            if steps:
                steps[-1]["seconds"] = round(now - steps[-1]["start"], 1)
            steps.append({"step": line[3:].strip(), "start": now})
    rc = proc.wait()
    total = time.perf_counter() - t0
    done.set()
    if steps:
        steps[-1]["seconds"] = round(total - steps[-1]["start"], 1)
    for s in steps:
        s.pop("start")
    out = args.out
    sizes = {p.name: size_bytes(p) for p in sorted(out.iterdir())} if out.is_dir() else {}
    log(f"demo exit {rc} in {total:.0f} s")
    emit(
        "demo_timing",
        {
            "benchmark": "demo_timing",
            "returncode": rc,
            "total_seconds": round(total, 1),
            "steps": steps,
            "loadavg_before": before,
            "loadavg_after": loadavg(),
            "load1_during": {
                "min": min((s[0] for s in samples), default=None),
                "max": max((s[0] for s in samples), default=None),
                "mean": round(sum(s[0] for s in samples) / len(samples), 2) if samples else None,
            },
            "cpus": os.cpu_count(),
            "disk_bytes": sum(sizes.values()),
            "disk_bytes_by_item": sizes,
        },
    )


if __name__ == "__main__":
    main()
