"""Bad input gets one clear error naming the culprit and leaves the database exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from trackdb.errors import InputError, NotFoundError, TrackdbError
from trackdb.io.export_ctc import export_ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.store import Store

from ..helpers import snapshot


@pytest.fixture
def loaded(store: Store, synthetic_ctc: Path) -> Store:
    import_ctc(store, synthetic_ctc, "01", "synth")
    return store


def _tra(root: Path) -> Path:
    return root / "01_GT" / "TRA"


def corrupt_tiff(root: Path) -> None:
    f = _tra(root) / "man_track004.tif"
    f.write_bytes(f.read_bytes()[:100])


def wrong_shape(root: Path) -> None:
    tifffile.imwrite(_tra(root) / "man_track003.tif", np.zeros((10, 10), np.uint16))


def float_masks(root: Path) -> None:
    tifffile.imwrite(_tra(root) / "man_track002.tif", np.zeros((64, 80), np.float32))


def label_not_in_lineage(root: Path) -> None:
    f = _tra(root) / "man_track005.tif"
    img = tifffile.imread(f)
    img[0:3, 0:3] = 99
    tifffile.imwrite(f, img)


def wrong_span(root: Path) -> None:
    txt = (_tra(root) / "man_track.txt").read_text().replace("5 2 9 0", "5 3 9 0")
    (_tra(root) / "man_track.txt").write_text(txt)


def unknown_parent(root: Path) -> None:
    txt = (_tra(root) / "man_track.txt").read_text().replace("4 7 9 3", "4 7 9 42")
    (_tra(root) / "man_track.txt").write_text(txt)


def label_absent(root: Path) -> None:
    f = _tra(root) / "man_track005.tif"
    img = tifffile.imread(f)
    img[img == 2] = 0
    tifffile.imwrite(f, img)


def missing_frames(root: Path) -> None:
    (_tra(root) / "man_track006.tif").unlink()


def empty_folder(root: Path) -> None:
    for f in _tra(root).glob("*.tif"):
        f.unlink()


def garbage_lineage(root: Path) -> None:
    (_tra(root) / "man_track.txt").write_text("1 0 two 0\n")


def raw_shape_differs(root: Path) -> None:
    tifffile.imwrite(root / "01" / "t001.tif", np.zeros((8, 8), np.uint8))


CASES = {
    "corrupt TIFF": (corrupt_tiff, "man_track004.tif"),
    "frame of another shape": (wrong_shape, "man_track003.tif"),
    "non-integer masks": (float_masks, "man_track002.tif"),
    "label not in man_track.txt": (label_not_in_lineage, "label 99"),
    "wrong span": (wrong_span, "label 5 in frame 2"),
    "unknown parent": (unknown_parent, "unknown parent 42"),
    "label absent inside its span": (label_absent, "label 2 is absent from frame 5"),
    "missing frame": (missing_frames, "missing [6]"),
    "empty folder": (empty_folder, "holds no man_track"),
    "garbage lineage": (garbage_lineage, "man_track.txt:1"),
    "raw frame shape": (raw_shape_differs, "t001.tif"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_ctc_input_is_refused_and_store_unchanged(
    loaded: Store, synthetic_ctc: Path, tmp_path: Path, case: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(synthetic_ctc, bad)
    damage, expected = CASES[case]
    damage(bad)
    before = snapshot(loaded)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        import_ctc(loaded, bad, "01", "broken")
    assert snapshot(loaded) == before


def test_missing_dataset(loaded: Store, tmp_path: Path) -> None:
    before = snapshot(loaded)
    with pytest.raises(InputError, match="does not exist"):
        import_ctc(loaded, tmp_path / "nowhere", "01", "x")
    assert snapshot(loaded) == before


def test_duplicate_movie_name_refused(loaded: Store, synthetic_ctc: Path) -> None:
    before = snapshot(loaded)
    with pytest.raises(TrackdbError, match="already exists"):
        import_ctc(loaded, synthetic_ctc, "01", "synth")
    assert snapshot(loaded) == before


def test_unknown_movie_and_solution(loaded: Store, tmp_path: Path) -> None:
    before = snapshot(loaded)
    with pytest.raises(NotFoundError, match="no movie 'nope'"):
        export_ctc(loaded, tmp_path / "o", "nope")
    with pytest.raises(NotFoundError, match="no solution '999'"):
        export_ctc(loaded, tmp_path / "o", "synth", "999")
    with pytest.raises(NotFoundError, match="no solution 'alt'"):
        export_ctc(loaded, tmp_path / "o", "synth", "alt")
    assert snapshot(loaded) == before
