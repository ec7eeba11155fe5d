"""calibrate's progress bar: every phase named once, in order, and the bar closed at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackdb.io.import_ctc import import_ctc
from trackdb.stages import calibrate
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.store import Store


def test_calibrate_reports_each_phase(store: Store, synthetic_ctc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_ctc(store, synthetic_ctc, "01", "det", masks_only=True)
    run_link(store, "det", max_distance=30, k=5, dt=1)
    run_solve(store, "det", method="lap")
    calls: list[tuple[int, int, str | None]] = []
    monkeypatch.setattr(calibrate, "_bar", lambda desc: lambda done, total, now=None: calls.append((done, total, now)))
    calibrate.run_calibrate(store, "det", synthetic_ctc / "01_GT", "as", k=5, png=None)
    n = len(calibrate.CALIBRATE_STEPS)
    assert calls == [(i, n, name) for i, name in enumerate(calibrate.CALIBRATE_STEPS)] + [(n, n, None)]
    calls.clear()
    calibrate.run_calibrate(store, "det", synthetic_ctc / "01_GT", "as", k=5, progress=False)
    assert calls == []
