"""Bad input gets one clear error naming the culprit and leaves the database exactly as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from trackdb.errors import InputError, NotFoundError, TrackdbError
from trackdb.io.export_ctc import export_ctc
from trackdb.io.import_ctc import import_ctc
from trackdb.store import Store

from ..helpers import snapshot, trackdb


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


def negative_frame(root: Path) -> None:
    txt = (_tra(root) / "man_track.txt").read_text().replace("1 0 2 0", "1 -1 0 0")
    (_tra(root) / "man_track.txt").write_text(txt)


def non_integer_frame(root: Path) -> None:
    txt = (_tra(root) / "man_track.txt").read_text().replace("5 2 9 0", "5 2.5 9 0")
    (_tra(root) / "man_track.txt").write_text(txt)


def huge_label(root: Path) -> None:
    """Track 5 relabelled 4,000,000,000 everywhere (masks and lineage): a 30 GiB bincount."""
    for f in sorted(_tra(root).glob("man_track*.tif")):
        img = tifffile.imread(f).astype(np.uint32)
        img[img == 5] = 4_000_000_000
        tifffile.imwrite(f, img)
    txt = (_tra(root) / "man_track.txt").read_text().replace("5 2 9 0", "4000000000 2 9 0")
    (_tra(root) / "man_track.txt").write_text(txt)


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
    "negative frame": (negative_frame, "track 1 starts at frame -1: frames count from 0"),
    "non-integer frame": (non_integer_frame, "man_track.txt:5: expected 'label start end parent' integers"),
    "label beyond the frame": (huge_label, "label 4000000000 exceeds the 5120 pixels"),
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


@pytest.mark.parametrize("case", list(CASES))
def test_bad_ctc_input_is_one_line_from_the_cli(
    loaded: Store, db_url: str, synthetic_ctc: Path, tmp_path: Path, case: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(synthetic_ctc, bad)
    damage, expected = CASES[case]
    damage(bad)
    before = snapshot(loaded)
    r = trackdb("import-ctc", str(bad), "--movie", "broken", db=db_url)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert expected in lines[0]
    assert snapshot(loaded) == before


# (command, expected one-line error): every value the option's rule refuses, named
BAD_VALUES = [
    (
        ("solve", "--movie", "synth", "--time-limit", "-1"),
        "Invalid value for '--time-limit': -1.0 is not in the range x>0",
    ),
    (("solve", "--movie", "synth", "--time-limit", "nan"), "Invalid value for '--time-limit': 'nan' is not a finite"),
    (("solve", "--movie", "synth", "--gap", "-1"), "Invalid value for '--gap': -1.0 is not in the range 0<=x<1"),
    (("solve", "--movie", "synth", "--window", "0"), "Invalid value for '--window': 0 is not in the range x>=2"),
    (
        ("solve", "--movie", "synth", "--iterations", "0"),
        "Invalid value for '--iterations': 0 is not in the range x>=1",
    ),
    (("solve", "--movie", "synth", "--iterations", "1.5"), "Invalid value for '--iterations': '1.5'"),
    (("link", "--movie", "synth", "--k", "0"), "Invalid value for '--k': 0 is not in the range x>=1"),
    (("link", "--movie", "synth", "--dt", "0"), "Invalid value for '--dt': 0 is not in the range x>=1"),
    (("link", "--movie", "synth", "--max-distance", "-5"), "Invalid value for '--max-distance': -5.0"),
    (("resolve", "--movie", "synth", "--time-limit", "-1"), "Invalid value for '--time-limit': -1.0"),
    (("resolve", "--movie", "synth", "--gap", "-1"), "Invalid value for '--gap': -1.0"),
    (("resolve", "--movie", "synth", "--margin", "-1"), "Invalid value for '--margin': -1 is not in the range x>=0"),
    (("uncertainty", "--movie", "synth", "--method", "sm", "--k", "0"), "Invalid value for '--k': 0"),
    (("uncertainty", "--movie", "synth", "--method", "sm", "--temperature", "0"), "Invalid value for '--temperature'"),
    (("uncertain", "--movie", "synth", "--below", "2"), "Invalid value for '--below': 2.0 is not in the range 0<=x<=1"),
    (("candidates", "--movie", "synth", "--labels", "x", "--tau", "0"), "Invalid value for '--tau': 0.0"),
    (("candidates", "--movie", "synth", "--labels", "x", "--min-area", "0"), "Invalid value for '--min-area': 0"),
    (("train", "data", "--frames", "-1:3", "--out", "m"), "--frames -1:3: need 0 <= A < B"),
    (("train", "data", "--frames", "0.5:3", "--out", "m"), "--frames must look like A:B"),
    (("train", "data", "--frames", "0:3", "--out", "m", "--steps", "0"), "Invalid value for '--steps': 0"),
    (("predict", "--movie", "synth", "--model", "m", "--tile", "0"), "Invalid value for '--tile': 0"),
    (("candidates-from-predictions", "--movie", "synth", "--min-size", "0"), "Invalid value for '--min-size': 0"),
]


@pytest.mark.parametrize("args", [a for a, _ in BAD_VALUES], ids=lambda a: " ".join(a[::2][:1] + a[-2:]))
def test_bad_values_are_one_line_naming_the_value(loaded: Store, db_url: str, args: tuple[str, ...]) -> None:
    expected = dict(BAD_VALUES)[args]
    before = snapshot(loaded)
    r = trackdb(*args, db=None if args[0] == "train" else db_url)  # train needs no store
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert snapshot(loaded) == before


@pytest.mark.parametrize("url", ["notaurl", "sqlite:/bad", "mysql://u@host/db"])
def test_malformed_database_urls(loaded: Store, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = snapshot(loaded)
    for args in (("movies",), ("init",), ("import-ctc", "x", "--movie", "m")):
        r = trackdb(*args, db=url)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert url.split("@")[-1] in lines[0]
    assert list(cwd.iterdir()) == []  # no database file was made from a bad URL
    assert snapshot(loaded) == before


def test_stage_functions_validate_their_values_too(loaded: Store) -> None:
    """What the CLI's option types refuse, the stages refuse when called from Python."""
    from trackdb.stages.link import run_link
    from trackdb.stages.solve import run_solve
    from trackdb.stages.uncertainty import run_uncertainty

    before = snapshot(loaded)
    for call, match in (
        (lambda: run_solve(loaded, "synth", time_limit=-1), "--time-limit"),
        (lambda: run_solve(loaded, "synth", gap=-1), "--gap"),
        (lambda: run_solve(loaded, "synth", window=0), "--window"),
        (lambda: run_solve(loaded, "synth", iterations=0), "--iterations"),
        (lambda: run_link(loaded, "synth", k=0), "--k"),
        (lambda: run_link(loaded, "synth", max_distance=float("nan")), "--max-distance"),
        (lambda: run_uncertainty(loaded, "synth", "sm", k=0), "--k"),
    ):
        with pytest.raises(InputError, match=match):
            call()
    assert snapshot(loaded) == before


def test_edits_print_run_ids_as_integers(db_url: str, synthetic_ctc: Path) -> None:
    """An applied edit's run id is an integer, a pending edit's is blank (not 6.0 / NaN)."""
    for args in (
        ("import-ctc", str(synthetic_ctc), "--movie", "m", "--masks-only"),
        ("link", "--movie", "m", "--max-distance", "30", "--k", "5"),
        ("solve", "--movie", "m", "--method", "lap"),
    ):
        assert trackdb(*args, db=db_url).returncode == 0, args
    r = trackdb("query", "SELECT MIN(edge_id) AS e FROM solution_edge", "--format", "csv", db=db_url)
    link = r.stdout.strip().splitlines()[-1]
    assert trackdb("edit", "--movie", "m", "forbid-edge", link, db=db_url).returncode == 0
    resolved = trackdb("resolve", "--movie", "m", db=db_url)
    assert resolved.returncode == 0, resolved.stderr
    run_id = json.loads(resolved.stdout)["run_id"]
    r = trackdb("query", "SELECT MIN(node_id) AS n FROM solution_node", "--format", "csv", db=db_url)
    node = r.stdout.strip().splitlines()[-1]
    assert trackdb("edit", "--movie", "m", "pin-node", node, db=db_url).returncode == 0  # pending
    table = trackdb("edits", "--movie", "m", db=db_url).stdout
    assert ".0" not in table
    assert "NaN" not in table
    assert "<NA>" not in table
    csv_lines = trackdb("edits", "--movie", "m", "--format", "csv", db=db_url).stdout.strip().splitlines()
    header = csv_lines[0].split(",")
    runs_col = [line.split(",")[header.index("run_id")] for line in csv_lines[1:]]
    assert runs_col == [str(run_id), ""]


# --- issue 11: spacing, annotation flaws, no pair within the radius ------------------------------
BAD_SPACING = [
    ("0,1", "every value must be a finite number > 0"),
    ("-1,1", "every value must be a finite number > 0"),
    ("nan,1", "every value must be a finite number > 0"),
    ("1,inf", "every value must be a finite number > 0"),
    ("1", "has 1 value(s); give 3 (z,y,x) or 2 (y,x)"),
    ("1,2,3,4", "has 4 value(s)"),
    ("a,b", "is not a comma-separated list of numbers"),
    ("1,1,1", "--spacing has 3 value(s) but the frames are 2D (shape (64, 80)): give 2 (y,x)"),
]


@pytest.mark.parametrize("spacing", [s for s, _ in BAD_SPACING])
def test_bad_spacing_is_one_line_and_store_unchanged(
    loaded: Store, db_url: str, synthetic_ctc: Path, spacing: str
) -> None:
    before = snapshot(loaded)
    r = trackdb("import-ctc", str(synthetic_ctc), "--movie", "s", "--masks-only", "--spacing", spacing, db=db_url)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert dict(BAD_SPACING)[spacing] in lines[0]
    assert snapshot(loaded) == before


def test_2d_spacing_on_a_3d_movie_is_refused(loaded: Store, db_url: str, tmp_path: Path) -> None:
    from synthetic.cases import case
    from synthetic.ctc_io import write_ctc
    from synthetic.movies import generate

    ds = write_ctc(generate(case("stack_shallow", quick=True)), tmp_path / "stack", raw=False)
    before = snapshot(loaded)
    r = trackdb("import-ctc", str(ds), "--movie", "s", "--masks-only", "--spacing", "0.5,0.5", db=db_url)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "--spacing has 2 value(s) but the frames are 3D (shape (5, 128, 128)): give 3 (z,y,x)" in lines[0]
    assert snapshot(loaded) == before
    with pytest.raises(InputError, match="give 3"):
        import_ctc(loaded, ds, "01", "s", masks_only=True, spacing=(0.5, 0.5))
    for bad in ((0.0, 1.0, 1.0), (3.0, -0.5, 0.5), (float("nan"), 1.0, 1.0), (True, 1.0, 1.0)):
        with pytest.raises(InputError, match="finite numbers > 0"):
            import_ctc(loaded, ds, "01", "s", masks_only=True, spacing=bad)
    assert snapshot(loaded) == before
    r = trackdb("import-ctc", str(ds), "--movie", "s", "--masks-only", "--spacing", "3,0.5,0.5", db=db_url)
    assert r.returncode == 0, r.stderr
    assert loaded.movie("s").spacing == (3.0, 0.5, 0.5)


def flawed(root: Path) -> None:
    """A stray fragment of track 5 in frame 3 and a 1-pixel object (its own track 6) in frame 4."""
    f = _tra(root) / "man_track003.tif"
    img = tifffile.imread(f)
    img[2:4, 2:4] = 5  # far from track 5's body at (50, 54)
    tifffile.imwrite(f, img)
    f = _tra(root) / "man_track004.tif"
    img = tifffile.imread(f)
    img[60, 75] = 6
    tifffile.imwrite(f, img)
    with (_tra(root) / "man_track.txt").open("a") as fh:
        fh.write("6 4 4 0\n")


def test_fragments_and_one_pixel_objects_warn_and_are_counted(
    loaded: Store, db_url: str, synthetic_ctc: Path, tmp_path: Path
) -> None:
    from trackdb.store import runs

    bad = tmp_path / "flawed"
    shutil.copytree(synthetic_ctc, bad)
    flawed(bad)
    for name, extra in (("flaws", ("--masks-only",)), ("flaws_gt", ())):
        r = trackdb("import-ctc", str(bad), "--movie", name, *extra, db=db_url)
        assert r.returncode == 0, r.stderr
        warnings = r.stderr.strip().splitlines()
        assert len(warnings) == 2, r.stderr
        assert "1 object(s) in more than one piece (stray fragments; first: label 5 in frame 3)" in warnings[0]
        assert "1 1-pixel object(s) (first: label 6 in frame 4)" in warnings[1]
        assert all(w.startswith("warning: ") for w in warnings)
        run = runs.latest_run(loaded, loaded.movie(name).id, runs.RunKind.IMPORT)
        assert run is not None
        assert run.summary is not None
        assert run.summary["fragmented_objects"] == 1
        assert run.summary["one_pixel_objects"] == 1
        assert len(run.summary["warnings"]) == 2
    # kept going: every object is a node, and the default link runs on them
    assert trackdb("link", "--movie", "flaws", db=db_url).returncode == 0
    clean = runs.latest_run(loaded, loaded.movie("synth").id, runs.RunKind.IMPORT)
    assert clean is not None
    assert clean.summary is not None
    assert clean.summary["fragmented_objects"] == 0


def test_no_pair_within_the_radius_is_one_line_and_store_unchanged(
    loaded: Store, db_url: str, synthetic_ctc: Path, tmp_path: Path
) -> None:
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", "m", "--masks-only", db=db_url).returncode == 0
    one = tmp_path / "one"
    shutil.copytree(synthetic_ctc, one)
    for f in sorted(_tra(one).glob("man_track*.tif"))[1:]:
        f.unlink()
    for f in sorted((one / "01").glob("t*.tif"))[1:]:
        f.unlink()
    (_tra(one) / "man_track.txt").write_text("1 0 0 0\n")
    assert trackdb("import-ctc", str(one), "--movie", "single", "--masks-only", db=db_url).returncode == 0
    before = snapshot(loaded)
    for args, expected in (
        (("--movie", "m", "--max-distance", "0.5"), "movie 'm': no candidate pairs within 0.5 physical units"),
        (("--movie", "m", "--max-distance", "0.5", "--k", "3", "--dt", "2"), "in the next 2 frame(s)"),
        (("--movie", "single"), "no candidate pairs: 1 frame(s) hold cells and none has cells in the next 1"),
    ):
        r = trackdb("link", *args, db=db_url)
        assert r.returncode == 2, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("error: ")
        assert expected in lines[0], lines[0]
        assert snapshot(loaded) == before
    from trackdb.stages.link import run_link

    with pytest.raises(InputError, match="no candidate pairs within 0.5"):
        run_link(loaded, "m", max_distance=0.5)
    assert snapshot(loaded) == before


def test_label_images_of_candidates_with_flaws_warn_and_are_counted(
    loaded: Store, db_url: str, synthetic_ctc: Path, tmp_path: Path
) -> None:
    """`candidates --labels`: the same flaws warn and are counted; 1-pixel objects fall below --min-area."""
    from trackdb.store import runs

    bad = tmp_path / "flawed"
    shutil.copytree(synthetic_ctc, bad)
    flawed(bad)
    stack = np.stack([tifffile.imread(f) for f in sorted(_tra(bad).glob("man_track*.tif"))])
    tifffile.imwrite(tmp_path / "labels.tif", stack)
    assert trackdb("import-ctc", str(bad), "--movie", "raw", "--no-gt", db=db_url).returncode == 0
    r = trackdb("candidates", "--movie", "raw", "--labels", str(tmp_path / "labels.tif"), db=db_url)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.strip().splitlines() if line.startswith("warning: ")]  # not the bar
    assert len(warnings) == 2, r.stderr
    assert "stray fragments; first: label 5 in frame 3" in warnings[0]
    assert "1 1-pixel object(s) (first: label 6 in frame 4); dropped (below --min-area 10)" in warnings[1]
    run = runs.latest_run(loaded, loaded.movie("raw").id, runs.RunKind.CANDIDATES)
    assert run is not None
    assert run.summary is not None
    printed = [w.removeprefix("warning: ") for w in warnings]
    assert run.summary == {"fragmented_objects": 1, "one_pixel_objects": 1, "warnings": printed}
