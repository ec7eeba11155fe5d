"""Helpers shared by the benchmark scripts (not a pytest module): strict JSON, quiet stdout, data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bacteria-divisualisation"


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
