"""benchmarks/generalise_spread.py: the spread of the generalise figures over draws."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.generalise_spread import spread


def _draw(path: Path, seed: int, lnk: dict[str, tuple[float, float]], errors: dict[str, int]) -> Path:
    cases = [
        {
            "case": name,
            "seed": seed,
            "trackdb": {
                "LNK": t,
                "TRA": 0.999,
                "division_f1": 0.9,
                "link_errors": {
                    "missing": {"total": errors[name], "border": 0},
                    "wrong": {"total": 0, "border": 0},
                },
            },
            "laptrack": {"LNK": lap, "TRA": 0.99, "division_f1": 0.5},
        }
        for name, (t, lap) in lnk.items()
    ]
    path.write_text(json.dumps({"cases": cases}))
    return path


def test_spread_over_draws(tmp_path: Path) -> None:
    a = _draw(tmp_path / "a.json", 1, {"x": (0.99, 0.98), "y": (0.95, 0.97)}, {"x": 3, "y": 10})
    b = _draw(tmp_path / "b.json", 2, {"x": (0.97, 0.98), "y": (0.96, 0.90)}, {"x": 7, "y": 8})
    c = _draw(tmp_path / "c.json", 3, {"x": (0.995, 0.98)}, {"x": 1})
    out = spread([a, b, c])["cases"]
    assert list(out) == ["x"]  # only the cases every draw has
    x = out["x"]
    assert x["seeds"] == [1, 2, 3]
    assert x["trackdb"]["LNK"] == {"min": 0.97, "median": 0.99, "max": 0.995}
    assert x["trackdb"]["link_errors"] == [3, 7, 1]
    assert x["trackdb_lnk_at_least_laptrack"] == 2
    two = spread([a, b])["cases"]
    assert two["y"]["laptrack"]["LNK"] == {"min": 0.9, "median": 0.935, "max": 0.97}
    assert two["y"]["trackdb_lnk_at_least_laptrack"] == 1
