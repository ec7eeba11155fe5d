"""benchmarks/link_error_counts.py: the per-case error counts cost changes are judged by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.link_error_counts import compare


def _output(path: Path, errors: dict[str, tuple[int, int, int]]) -> Path:
    cases = [
        {
            "case": name,
            "trackdb": {
                "link_errors": {
                    "missing": {"total": m, "border": b},
                    "wrong": {"total": w, "border": 0},
                }
            },
        }
        for name, (m, w, b) in errors.items()
    ]
    path.write_text(json.dumps({"cases": cases}))
    return path


def test_counts_are_missing_plus_wrong_against_the_first(tmp_path: Path) -> None:
    base = _output(tmp_path / "a.json", {"x": (4, 5, 1), "y": (10, 2, 0)})
    new = _output(tmp_path / "b.json", {"x": (2, 1, 0), "y": (11, 4, 3)})
    out = compare([base, new])
    assert out["cases"]["x"] == {"errors": [9, 3], "border": [1, 0], "change": [-6]}
    assert out["cases"]["y"]["change"] == [3]
    assert out["total"] == [21, 18]
    assert out["total_change"] == [-3]


def test_an_output_without_error_counts_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "quick.json"
    path.write_text(json.dumps({"cases": [{"case": "x", "trackdb": {"LNK": 1.0}}]}))
    with pytest.raises(SystemExit, match="no link_errors"):
        compare([path])
