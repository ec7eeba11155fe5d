"""Issue 11's failure modes through the store, on both engines: the documented defaults
(``import_ctc --masks-only`` with the movie's spacing, ``link`` and ``solve`` without flags) on
quick synthetic movies with known lineages, scored against their ground truth.

Before issue 11 (free ends for every box within 2 px of the image edge) the shallow stack got
no link at all and the border nuclei lost a quarter of theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic.cases import case
from synthetic.ctc_io import write_ctc
from synthetic.movies import generate
from trackdb.io.import_ctc import import_ctc
from trackdb.stages.evaluate import evaluate_solution
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.store import Store


def tracked(store: Store, tmp_path: Path, name: str) -> tuple[dict[str, float], int]:
    """(CTC scores, true division count) of the quick case ``name`` tracked with the defaults."""
    movie = generate(case(name, quick=True))
    ds = write_ctc(movie, tmp_path / name, raw=False)
    import_ctc(store, ds, "01", name, masks_only=True, spacing=tuple(movie.spacing))
    run_link(store, name)
    res = run_solve(store, name)
    assert res.status == "optimal"
    return evaluate_solution(store, name, ds / "01_GT"), movie.n_divisions


def test_shallow_stack_links_its_cells(store: Store, tmp_path: Path) -> None:
    scores, _ = tracked(store, tmp_path, "stack_shallow")
    assert scores["DET"] == pytest.approx(1.0)
    assert scores["LNK"] >= 0.95  # 0.0 before issue 11


def test_border_nuclei_are_linked(store: Store, tmp_path: Path) -> None:
    scores, _ = tracked(store, tmp_path, "nuclei_border")
    assert scores["LNK"] >= 0.98  # 0.76 before issue 11


def test_dying_and_leaving_cells_end_and_are_no_divisions(store: Store, tmp_path: Path) -> None:
    scores, n_div = tracked(store, tmp_path, "enter_leave_die")
    assert scores["LNK"] >= 0.99  # 0.89 before issue 11
    assert scores["division_False Positive Divisions"] == 0
    assert scores["division_True Positive Divisions"] == n_div
