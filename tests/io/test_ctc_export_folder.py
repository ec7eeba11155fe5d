"""CTC exports are complete or refused: a non-empty folder needs --overwrite, which replaces
what an export owns (mask*.tif, res_track.txt) and nothing else (both engines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from trackdb.errors import InputError
from trackdb.io.export_ctc import export_ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.store import Store

from ..helpers import snapshot, trackdb


@pytest.fixture
def loaded(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", "synth")
    return store


def stale_export(out: Path, n_frames: int = 53) -> dict[str, bytes]:
    """An earlier export of a longer movie, and a file of the user's beside it."""
    out.mkdir()
    for t in range(n_frames):
        tifffile.imwrite(out / f"mask{t:03d}.tif", np.full((4, 4), 7, np.uint16))
    (out / "res_track.txt").write_text("7 0 52 0\n")
    (out / "notes.txt").write_text("mine\n")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_non_empty_folder_is_refused_then_replaced_with_overwrite(loaded: Store, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = stale_export(out)
    store_before = snapshot(loaded)
    r = trackdb("export-ctc", str(out), "--movie", "synth", db=db_url)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {out} is not empty (it holds an earlier CTC export (54 files)): choose an empty folder, "
        "or pass --overwrite to replace its mask*.tif and res_track.txt"
    ]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    r = trackdb("export-ctc", str(out), "--movie", "synth", "--overwrite", db=db_url)
    assert r.returncode == 0, r.stderr
    masks = sorted(p.name for p in out.glob("mask*.tif"))
    assert masks == [f"mask{t:03d}.tif" for t in range(10)]  # no stale frame 10..52 left
    assert (out / "notes.txt").read_text() == "mine\n"
    table = np.loadtxt(out / "res_track.txt", dtype=np.int64, ndmin=2)
    assert table[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert snapshot(loaded) == store_before


def test_other_files_and_a_file_path_are_refused(loaded: Store, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("x")
    with pytest.raises(InputError, match="holds other files"):
        export_ctc(loaded, busy, "synth")
    assert [p.name for p in busy.iterdir()] == ["thesis.docx"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        export_ctc(loaded, afile, "synth", overwrite=True)


def test_empty_or_new_folder_needs_no_flag(loaded: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        export_ctc(loaded, out, "synth")
        assert len(list(out.glob("mask*.tif"))) == 10
        assert (out / "res_track.txt").is_file()
