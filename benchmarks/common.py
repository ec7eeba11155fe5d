"""Helpers shared by the benchmark scripts (not a pytest module): strict JSON, quiet stdout, data,
and :func:`emit`, which prints a script's one JSON object and keeps it as the last figures."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bacteria-divisualisation"
RESULTS = ROOT / "benchmarks" / "results"


def finite(obj: object) -> object:
    """NaN/inf → None so that the output is strict JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def stdout_to_stderr() -> int:
    """Send fd 1 to stderr (HiGHS prints some diagnostics from C++); returns the saved fd."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def restore_stdout(saved: int) -> None:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def load_gt_masks(gt_dir: Path) -> np.ndarray:
    """The (T, Y, X) ground-truth label movie of ``DATASET/SEQ_GT`` (TRA masks)."""
    from trackdb.io import ctc

    return ctc.read_stack(ctc.frame_files(Path(gt_dir) / "TRA", "man_track"), labels=True)


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def emit(name: str, result: Any, *, save: bool = True, indent: int | None = 1) -> None:
    """Print ``result`` as one strict JSON object on stdout and, with ``save``, write it with its
    provenance (command, commit, time, load) to ``benchmarks/results/<name>.json``, the figures
    ``benchmarks/compare.py`` compares a later run against."""
    body = finite(result)
    print(json.dumps(body, indent=indent, default=_json_default), flush=True)
    if not save:
        return
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    script = Path(sys.argv[0]).resolve()
    argv = [str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0], *sys.argv[1:]]
    record = {
        "benchmark": name,
        "command": " ".join(["python", *argv]),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "commit": sha or None,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg": list(os.getloadavg()),
        "result": body,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
